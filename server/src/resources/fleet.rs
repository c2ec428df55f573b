//! `GET /api/v1/state`: every device's state at an instant, with counts per state.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use callstate_query::model::state::{DeviceState, states_at};
use callstate_query::tables::device_state;
use callstate_schemas::{ServiceState, format_instant};

use crate::app::AppState;
use crate::bodies::FleetBody;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Params;
use crate::params::{self, now};
use crate::respond::{encode, negotiate, to_json_sized, with_type};

/// Parameters of a fleet snapshot.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FleetParams {
    /// Instant (RFC 3339, epoch ms or `now`); default now.
    at: Option<String>,
    /// Answer with only the events ingested by then.
    known_at: Option<String>,
    /// Only this cluster.
    cluster: Option<String>,
    /// Only this device pool.
    device_pool: Option<String>,
    /// Only devices on this node (in service there, or last there).
    node: Option<String>,
    /// Only this state: `in_service`, `out_of_service`, `unknown`.
    state: Option<String>,
    /// Only devices in service on their home node (`true`) or on another node (`false`:
    /// failed over and not yet re-homed).
    on_home_node: Option<bool>,
    /// `json` (default), `csv`, `arrow` or `parquet` (the rows only).
    format: Option<String>,
}

#[derive(Serialize)]
struct Fleet<'a> {
    at: String,
    counts: BTreeMap<&'static str, u64>,
    devices: &'a [DeviceState],
}

/// Every device's state at an instant, with counts per state.
#[utoipa::path(get, path = "/api/v1/state", tag = "state", params(FleetParams),
    responses(
        (status = 200, description = "Fleet snapshot", body = FleetBody),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 422, description = "The question reaches before a retention horizon (named)", body = ErrorBody)))]
pub async fn fleet_state(
    State(app): State<AppState>,
    Params(p): Params<FleetParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let format = negotiate(p.format.as_deref(), &headers)?;
    let at = params::instant("at", &p.at)?.unwrap_or_else(now);
    let known_at = params::instant("known_at", &p.known_at)?;
    let state: Option<ServiceState> = p
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|e| ApiError::param("state", e)))
        .transpose()?;
    let fleet = app.fleet(known_at).await?;
    // derived and encoded off the HTTP runtime (50k devices make megabytes)
    let (body, content_type) = app
        .run(move |cancel| {
            let mut rows = states_at(&*fleet, at, cancel)?;
            rows.retain(|r| {
                p.cluster.as_ref().is_none_or(|c| *c == r.cluster)
                    && p.device_pool
                        .as_ref()
                        .is_none_or(|d| Some(d) == r.device_pool.as_ref())
                    && p.node.as_ref().is_none_or(|n| {
                        Some(n) == r.node.as_ref() || Some(n) == r.last_node.as_ref()
                    })
                    && state.is_none_or(|s| s == r.state)
                    && p.on_home_node.is_none_or(|h| r.on_home_node == Some(h))
            });
            cancel.check()?;
            encode(
                format,
                || Ok(vec![device_state::batch(&rows)]),
                || {
                    let mut counts: BTreeMap<&'static str, u64> =
                        ServiceState::NAMES.iter().map(|s| (*s, 0)).collect();
                    for r in &rows {
                        *counts.entry(r.state.as_str()).or_default() += 1;
                    }
                    to_json_sized(
                        &Fleet {
                            at: format_instant(at),
                            counts,
                            devices: &rows,
                        },
                        256 * rows.len() + 256,
                    )
                },
            )
        })
        .await?;
    Ok(with_type(body, content_type))
}
