//! Dashboards' time series: devices per state (or per node) at every step of a window, and
//! the control events as annotations.

use std::collections::HashSet;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;

use callstate_query::model::annotations::annotations as annotations_of;
use callstate_query::model::fleet::in_groups;
use callstate_query::model::series::{MAX_STEPS, SeriesBy, state_series as series_of};
use callstate_query::tables;
use callstate_schemas::{US_PER_S, parse_positive_duration};

use crate::app::AppState;
use crate::bodies::{AnnotationBody, SeriesPointBody};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Params;
use crate::params;
use crate::resources::incidents::find_incident;
use crate::respond::{negotiate, rows};

/// Parameters of a state series.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SeriesParams {
    /// Window start (RFC 3339 or epoch ms).
    from: Option<String>,
    /// Window end (exclusive).
    to: Option<String>,
    /// Step: seconds, or a duration (`30s`, `5m`, `1h`); default: the window / 300, at least
    /// 1 s.
    step: Option<String>,
    /// `state` (default: devices per state) or `node` (devices in service per node).
    group_by: Option<String>,
    /// Only this cluster.
    cluster: Option<String>,
    /// Only this device pool.
    device_pool: Option<String>,
    /// Only devices whose home node is this one (the devices a node failure hits).
    home_node: Option<String>,
    /// Only the devices of this incident (its recovery curve).
    incident: Option<String>,
    /// Answer with only the events ingested by then.
    known_at: Option<String>,
    /// `json` (default), `csv`, `arrow` or `parquet`.
    format: Option<String>,
}

/// Devices per state (or per node) at every step of a window: the fleet over time.
#[utoipa::path(get, path = "/api/v1/state/series", tag = "state", params(SeriesParams),
    responses(
        (status = 200, description = "One row per step and group", body = Vec<SeriesPointBody>),
        (status = 400, description = "Bad parameter, or more than 11,000 steps", body = ErrorBody),
        (status = 422, description = "The question reaches before a retention horizon (named)", body = ErrorBody)))]
pub async fn state_series(
    State(app): State<AppState>,
    Params(p): Params<SeriesParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let format = negotiate(p.format.as_deref(), &headers)?;
    let (from, to) = params::window(&p.from, &p.to)?;
    let step = match p.step.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => parse_positive_duration(s).map_err(|e| ApiError::param("step", e))?,
        None => ((to - from) / 300).max(US_PER_S),
    };
    if (to - from) / step >= MAX_STEPS {
        return Err(ApiError::param(
            "step",
            format!(
                "{} steps in the window; at most {MAX_STEPS} (use a larger step)",
                (to - from) / step + 1
            ),
        ));
    }
    let by: SeriesBy = p
        .group_by
        .as_deref()
        .unwrap_or("state")
        .parse()
        .map_err(|e| ApiError::param("group_by", e))?;
    let known_at = params::instant("known_at", &p.known_at)?;
    let only: Option<HashSet<String>> = match p.incident.as_deref().filter(|s| !s.is_empty()) {
        Some(id) => Some(
            find_incident(&app, id, known_at)
                .await?
                .devices
                .into_iter()
                .collect(),
        ),
        None => None,
    };
    let fleet = app.fleet(known_at).await?;
    fleet.intervals_known(from)?;
    let b = app
        .run(move |cancel| {
            let devices = fleet
                .devices()
                .filter(|d| {
                    only.as_ref().is_none_or(|o| o.contains(d.name()))
                        && in_groups(d, p.cluster.as_deref(), p.device_pool.as_deref())
                        && p.home_node.as_ref().is_none_or(|h| {
                            let home = d
                                .at(to - 1)
                                .map_or_else(|| d.last().home_node, |i| i.home_node);
                            Some(h.as_str()) == home.as_deref()
                        })
                })
                .take_while(|_| !cancel.is_cancelled())
                .map(|d| d.window(from, to));
            let points = series_of(devices, from, to, step, by);
            cancel.check()?;
            Ok(tables::series::batch(&points))
        })
        .await?;
    rows(format, &[b])
}

/// Parameters of the annotations.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnnotationParams {
    /// Window start (RFC 3339 or epoch ms).
    from: Option<String>,
    /// Window end (exclusive).
    to: Option<String>,
    /// Only this cluster.
    cluster: Option<String>,
    /// `json` (default), `csv`, `arrow` or `parquet`.
    format: Option<String>,
}

/// Node and CTIManager events (`node_down`, `node_up`, `provider_out_of_service`,
/// `provider_in_service`) and maintenance windows in a window, for Grafana annotations
/// (`time_end` = `time` but for maintenance windows).
#[utoipa::path(get, path = "/api/v1/annotations", tag = "state", params(AnnotationParams),
    responses(
        (status = 200, description = "One row per event, by time", body = Vec<AnnotationBody>),
        (status = 400, description = "Bad parameter", body = ErrorBody)))]
pub async fn annotations(
    State(app): State<AppState>,
    Params(p): Params<AnnotationParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let format = negotiate(p.format.as_deref(), &headers)?;
    let (from, to) = params::window(&p.from, &p.to)?;
    let fleet = app.fleet(None).await?;
    let b = app
        .run(move |_cancel| {
            let found = annotations_of(
                fleet.node_events(),
                fleet.windows(),
                from,
                to,
                p.cluster.as_deref(),
            );
            Ok(tables::annotations::batch(&found))
        })
        .await?;
    rows(format, &[b])
}
