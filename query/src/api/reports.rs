//! Availability, SLA and incidents.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;

use super::respond::{negotiate, rows, tabular};
use super::state::{instant_param, window};
use super::{ApiError, AppState, blocking};
use std::borrow::Cow;

use crate::functions::{Shared, availability_schema, batch, incidents_batch, sla_rows, sla_schema};
use crate::incidents::{Incident, IncidentOptions, detect};
use crate::intervals::{ServiceInterval, by_device, in_groups};
use crate::rows::Us;
use crate::sla::{GroupAvailability, GroupBy, SlaRow, availability as availability_of};

/// Parameters of an availability question.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AvailabilityParams {
    /// Window start (RFC 3339 or epoch ms).
    from: Option<String>,
    /// Window end (exclusive).
    to: Option<String>,
    /// `device` (default), `device_pool`, `node` (home node), `cluster` or `device_type`.
    group_by: Option<String>,
    /// Only this device.
    device: Option<String>,
    /// Only this cluster.
    cluster: Option<String>,
    /// Only this device pool.
    device_pool: Option<String>,
    /// Answer with only the events ingested by then.
    known_at: Option<String>,
    /// `json` (default), `csv` or `arrow`.
    format: Option<String>,
}

/// The intervals of the devices a report covers: one device, or those of a cluster and/or
/// device pool (their latest), or all.
fn select<'a>(
    shared: &'a Shared,
    device: &Option<String>,
    cluster: &Option<String>,
    device_pool: &Option<String>,
) -> Cow<'a, [ServiceInterval]> {
    let keep = |iv: &[ServiceInterval]| in_groups(iv, cluster.as_deref(), device_pool.as_deref());
    match (device, cluster, device_pool) {
        (None, None, None) => Cow::Borrowed(&shared.intervals),
        (Some(d), ..) => {
            let iv = shared.device(d);
            Cow::Borrowed(if iv.is_empty() || keep(iv) { iv } else { &[] })
        }
        _ => Cow::Owned(
            by_device(&shared.intervals)
                .filter(|iv| keep(iv))
                .flatten()
                .cloned()
                .collect(),
        ),
    }
}

fn group_by(v: &Option<String>, default: GroupBy) -> Result<GroupBy, ApiError> {
    v.as_deref().map_or(Ok(default), |s| {
        s.parse()
            .map_err(|e: String| ApiError::bad_request(format!("group_by: {e}")))
    })
}

/// Seconds in/out of service, unknown and excluded, and availability, per group.
#[utoipa::path(get, path = "/api/v1/availability", tag = "sla", params(AvailabilityParams),
    responses(
        (status = 200, description = "One row per group", body = Vec<GroupAvailability>),
        (status = 400, description = "Bad parameter", body = super::ErrorBody)))]
pub async fn availability(
    State(app): State<AppState>,
    Query(p): Query<AvailabilityParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let format = negotiate(p.format.as_deref(), &headers)?;
    let (from, to) = window(&p.from, &p.to)?;
    let by = group_by(&p.group_by, GroupBy::Device)?;
    let known_at = instant_param("known_at", &p.known_at)?;
    let shared = app.shared(known_at).await?;
    let b = blocking(move || {
        let iv = select(&shared, &p.device, &p.cluster, &p.device_pool);
        let r = availability_of(&iv, &shared.rows.windows, from, to, by);
        batch(availability_schema(), &r).map_err(|e| ApiError::internal(e.to_string()))
    })
    .await?;
    rows(format, &[b])
}

/// Parameters of an SLA report.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SlaParams {
    /// Window start (RFC 3339 or epoch ms).
    from: Option<String>,
    /// Window end (exclusive).
    to: Option<String>,
    /// `device_pool` (default), `device`, `node`, `cluster` or `device_type`.
    group_by: Option<String>,
    /// Only this device.
    device: Option<String>,
    /// Only this cluster.
    cluster: Option<String>,
    /// Only this device pool.
    device_pool: Option<String>,
    /// Calendar periods inside the window: `day`, `week` or `month`; none: the whole window.
    period: Option<String>,
    /// IANA time zone of the calendar periods (default UTC).
    tz: Option<String>,
    /// Answer with only the events ingested by then.
    known_at: Option<String>,
    /// `json` (default), `csv` or `arrow`.
    format: Option<String>,
}

/// The SLA report: availability against the target of each group, error budget, outages,
/// MTTR, longest outage; per calendar period with `period` and `tz`.
#[utoipa::path(get, path = "/api/v1/sla", tag = "sla", params(SlaParams),
    responses(
        (status = 200, description = "One row per group (and period)", body = Vec<SlaRow>),
        (status = 400, description = "Bad parameter", body = super::ErrorBody)))]
pub async fn sla(
    State(app): State<AppState>,
    Query(p): Query<SlaParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let format = negotiate(p.format.as_deref(), &headers)?;
    let (from, to) = window(&p.from, &p.to)?;
    let by = group_by(&p.group_by, GroupBy::DevicePool)?;
    let known_at = instant_param("known_at", &p.known_at)?;
    if p.period.is_none() && p.tz.is_some() {
        return Err(ApiError::bad_request("tz: only meaningful with period"));
    }
    let shared = app.shared(known_at).await?;
    let b = blocking(move || {
        let iv = select(&shared, &p.device, &p.cluster, &p.device_pool);
        let r = sla_rows(
            &iv,
            &shared,
            from,
            to,
            by,
            p.period.as_deref(),
            p.tz.as_deref(),
        )
        .map_err(ApiError::bad_request)?;
        batch(sla_schema(), &r).map_err(|e| ApiError::internal(e.to_string()))
    })
    .await?;
    rows(format, &[b])
}

/// Parameters of an incident list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IncidentParams {
    /// Incidents starting at or after (RFC 3339 or epoch ms); default: from the beginning.
    from: Option<String>,
    /// … and before; default: no end.
    to: Option<String>,
    /// Answer with only the events ingested by then.
    known_at: Option<String>,
    /// `json` (default), `csv` or `arrow`.
    format: Option<String>,
}

async fn detect_all(
    app: &AppState,
    from: Us,
    to: Us,
    known_at: Option<Us>,
) -> Result<Vec<Incident>, ApiError> {
    let shared = app.shared(known_at).await?;
    blocking(move || {
        Ok(detect(
            &shared.intervals,
            &shared.rows,
            shared.calls()?,
            from,
            to,
            &IncidentOptions::default(),
        ))
    })
    .await
}

/// The incident with this id (404 when there is none).
pub(super) async fn find_incident(
    app: &AppState,
    id: &str,
    known_at: Option<Us>,
) -> Result<Incident, ApiError> {
    detect_all(app, Us::MIN, Us::MAX, known_at)
        .await?
        .into_iter()
        .find(|i| i.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no incident `{id}`")))
}

/// Incidents (design.md §4) starting in the window: one row each, lists as counts.
#[utoipa::path(get, path = "/api/v1/incidents", tag = "incidents", params(IncidentParams),
    responses(
        (status = 200, description = "One row per incident", body = Vec<Object>),
        (status = 400, description = "Bad parameter", body = super::ErrorBody)))]
pub async fn incidents(
    State(app): State<AppState>,
    Query(p): Query<IncidentParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let format = negotiate(p.format.as_deref(), &headers)?;
    let from = instant_param("from", &p.from)?.unwrap_or(Us::MIN);
    let to = instant_param("to", &p.to)?.unwrap_or(Us::MAX);
    let known_at = instant_param("known_at", &p.known_at)?;
    let found = detect_all(&app, from, to, known_at).await?;
    let b = incidents_batch(&found).map_err(|e| ApiError::internal(e.to_string()))?;
    rows(format, &[b])
}

/// Parameters of one incident.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OneIncidentParams {
    /// Answer with only the events ingested by then.
    known_at: Option<String>,
}

/// One incident in full: devices, failovers and re-homes with their times, calls and how
/// they ended. The id is URL-encoded (it holds `/`).
#[utoipa::path(get, path = "/api/v1/incidents/{id}", tag = "incidents",
    params(("id" = String, Path, description = "Incident id, URL-encoded"), OneIncidentParams),
    responses(
        (status = 200, description = "The incident", body = Incident),
        (status = 404, description = "No such incident", body = super::ErrorBody)))]
pub async fn incident(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(p): Query<OneIncidentParams>,
) -> Result<Response, ApiError> {
    let known_at = instant_param("known_at", &p.known_at)?;
    let inc = find_incident(&app, &id, known_at).await?;
    tabular(super::respond::Format::Json, &[], || {
        super::respond::to_json(&inc)
    })
}
