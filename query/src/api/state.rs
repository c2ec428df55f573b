//! Device state, fleet snapshot and device timeline.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use callstate_schemas::decode_batch;

use super::respond::{Format, json_raw, negotiate, tabular, to_json};
use super::{ApiError, AppState, blocking, derived};
use crate::functions::{StateRow, batch, state_row, state_schema, states_at};
use crate::instant::{format_instant, parse_instant};
use crate::rows::Us;
use crate::session::intervals_batch;

/// Parses an optional instant parameter.
pub(super) fn instant_param(name: &str, v: &Option<String>) -> Result<Option<Us>, ApiError> {
    // an empty value (a Grafana variable left blank) is no value
    v.as_deref()
        .filter(|s| !s.trim().is_empty())
        .map(|s| parse_instant(s).map_err(|e| ApiError::bad_request(format!("{name}: {e}"))))
        .transpose()
}

/// Parses a required instant parameter.
pub(super) fn required_param(name: &str, v: &Option<String>) -> Result<Us, ApiError> {
    instant_param(name, v)?.ok_or_else(|| ApiError::bad_request(format!("{name} is required")))
}

/// Parses the required window `from` < `to`.
pub(super) fn window(from: &Option<String>, to: &Option<String>) -> Result<(Us, Us), ApiError> {
    let (from, to) = (required_param("from", from)?, required_param("to", to)?);
    if from >= to {
        return Err(ApiError::bad_request("from must be before to"));
    }
    Ok((from, to))
}

fn now() -> Us {
    chrono::Utc::now().timestamp_micros()
}

/// Parameters of a state question.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StateParams {
    /// Instant (RFC 3339 or epoch ms); default now.
    at: Option<String>,
    /// Answer with only the events ingested by then (RFC 3339 or epoch ms).
    known_at: Option<String>,
    /// `json` (default), `csv` or `arrow`.
    format: Option<String>,
}

/// A device's state at an instant.
#[utoipa::path(get, path = "/api/v1/devices/{device}/state", tag = "state",
    params(("device" = String, Path, description = "Device name"), StateParams),
    responses(
        (status = 200, description = "The device's state", body = StateRow),
        (status = 400, description = "Bad parameter", body = super::ErrorBody),
        (status = 404, description = "Device not in the log", body = super::ErrorBody)))]
pub async fn device_state(
    State(app): State<AppState>,
    Path(device): Path<String>,
    Query(p): Query<StateParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let format = negotiate(p.format.as_deref(), &headers)?;
    let at = instant_param("at", &p.at)?.unwrap_or_else(now);
    let known_at = instant_param("known_at", &p.known_at)?;
    let shared = app.shared(known_at).await?;
    let row = blocking(move || {
        let iv = shared.device(&device);
        if iv.is_empty() {
            return Err(ApiError::not_found(format!(
                "device `{device}` is not in the log"
            )));
        }
        Ok(state_row(iv, shared.device_calls(&device)?, at))
    })
    .await?;
    let b = batch(state_schema(), std::slice::from_ref(&row))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    tabular(format, &[b], || to_json(&row))
}

/// Parameters of a fleet snapshot.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FleetParams {
    /// Instant (RFC 3339 or epoch ms); default now.
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
    /// `json` (default), `csv` or `arrow` (the rows only).
    format: Option<String>,
}

/// A fleet snapshot.
#[derive(Debug, Serialize, ToSchema)]
pub struct FleetAnswer {
    /// The instant.
    at: String,
    /// Devices per state among the selected devices (every state present, 0 if none).
    counts: BTreeMap<String, u64>,
    /// The selected devices, by name.
    devices: Vec<StateRow>,
}

/// Every device's state at an instant, with counts per state.
#[utoipa::path(get, path = "/api/v1/state", tag = "state", params(FleetParams),
    responses(
        (status = 200, description = "Fleet snapshot", body = FleetAnswer),
        (status = 400, description = "Bad parameter", body = super::ErrorBody)))]
pub async fn fleet_state(
    State(app): State<AppState>,
    Query(p): Query<FleetParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let format = negotiate(p.format.as_deref(), &headers)?;
    let at = instant_param("at", &p.at)?.unwrap_or_else(now);
    let known_at = instant_param("known_at", &p.known_at)?;
    if let Some(s) = &p.state
        && !["in_service", "out_of_service", "unknown"].contains(&s.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "state: `{s}` is not one of in_service, out_of_service, unknown"
        )));
    }
    let shared = app.shared(known_at).await?;
    let rows = blocking(move || {
        let mut rows = states_at(&shared.intervals, shared.calls()?, at);
        rows.retain(|r| {
            p.cluster.as_ref().is_none_or(|c| *c == r.cluster)
                && p.device_pool
                    .as_ref()
                    .is_none_or(|d| Some(d) == r.device_pool.as_ref())
                && p.node
                    .as_ref()
                    .is_none_or(|n| Some(n) == r.node.as_ref() || Some(n) == r.last_node.as_ref())
                && p.state.as_ref().is_none_or(|s| s == r.state)
                && p.on_home_node.is_none_or(|h| r.on_home_node == Some(h))
        });
        Ok(rows)
    })
    .await?;
    let b = batch(state_schema(), &rows).map_err(|e| ApiError::internal(e.to_string()))?;
    tabular(format, &[b], || {
        let mut counts: BTreeMap<String, u64> = ["in_service", "out_of_service", "unknown"]
            .iter()
            .map(|s| (s.to_string(), 0))
            .collect();
        for r in &rows {
            *counts.entry(r.state.to_string()).or_default() += 1;
        }
        to_json(&FleetAnswer {
            at: format_instant(at),
            counts,
            devices: rows,
        })
    })
}

/// Parameters of a timeline.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimelineParams {
    /// Window start (RFC 3339 or epoch ms); default 24 h before `to`.
    from: Option<String>,
    /// Window end; default now.
    to: Option<String>,
    /// `json` (default); `csv` or `arrow` give the state intervals.
    format: Option<String>,
}

/// A device's events and state intervals in a window (intervals overlapping it, events in it;
/// events in the v1 contract form plus `ingest_time` and `ingest_seq`).
#[utoipa::path(get, path = "/api/v1/devices/{device}/timeline", tag = "state",
    params(("device" = String, Path, description = "Device name"), TimelineParams),
    responses(
        (status = 200, description = "`{device, from, to, intervals: [...], events: [...]}`", body = Object),
        (status = 400, description = "Bad parameter", body = super::ErrorBody),
        (status = 404, description = "Device not in the log", body = super::ErrorBody)))]
pub async fn device_timeline(
    State(app): State<AppState>,
    Path(device): Path<String>,
    Query(p): Query<TimelineParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let format = negotiate(p.format.as_deref(), &headers)?;
    let to = instant_param("to", &p.to)?.unwrap_or_else(now);
    let from = instant_param("from", &p.from)?.unwrap_or(to - 86_400_000_000);
    if from >= to {
        return Err(ApiError::bad_request("from must be before to"));
    }
    // one version for both the intervals and the events
    let current = app.current().await?;
    let shared = derived(current.shared.clone()).await?;
    let d = device.clone();
    let intervals = blocking(move || {
        let iv = shared.device(&d);
        if iv.is_empty() {
            return Err(ApiError::not_found(format!(
                "device `{d}` is not in the log"
            )));
        }
        let window: Vec<_> = iv
            .iter()
            .filter(|i| i.valid_from < to && i.valid_to.is_none_or(|e| e > from))
            .cloned()
            .collect();
        Ok(intervals_batch(&window))
    })
    .await?;
    if format != Format::Json {
        return super::respond::rows(format, &[intervals]);
    }
    let sql = format!(
        "SELECT * FROM events WHERE device = '{}' AND time >= to_timestamp_micros({from}) \
         AND time < to_timestamp_micros({to}) ORDER BY time, ingest_seq",
        device.replace('\'', "''")
    );
    let batches = current
        .ctx
        .sql(&sql)
        .await
        .map_err(ApiError::from_sql)?
        .collect()
        .await
        .map_err(ApiError::from_sql)?;
    let mut events = Vec::new();
    for b in &batches {
        events.extend(decode_batch(b).map_err(|e| ApiError::internal(e.to_string()))?);
    }
    let events: Vec<TimelineEvent<'_>> = events
        .iter()
        .map(|e| TimelineEvent {
            event: &e.event,
            ingest_time: format_instant(e.ingest_time.timestamp_micros()),
            ingest_seq: e.ingest_seq,
        })
        .collect();
    tabular(Format::Json, &[], || {
        to_json(&Timeline {
            device: &device,
            from: format_instant(from),
            to: format_instant(to),
            intervals: json_raw(std::slice::from_ref(&intervals))?,
            events,
        })
    })
}

/// An event of a timeline: the v1 event and where the log put it.
#[derive(Serialize)]
struct TimelineEvent<'a> {
    #[serde(flatten)]
    event: &'a callstate_schemas::Event,
    ingest_time: String,
    ingest_seq: u64,
}

/// A device's timeline.
#[derive(Serialize)]
struct Timeline<'a> {
    device: &'a str,
    from: String,
    to: String,
    intervals: Box<serde_json::value::RawValue>,
    events: Vec<TimelineEvent<'a>>,
}
