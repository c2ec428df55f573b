//! One device: its state at an instant, and its timeline (events and intervals).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use callstate_query::QueryError;
use callstate_query::model::state::state_at;
use callstate_query::tables::{device_intervals, device_state};
use callstate_schemas::{US_PER_DAY, decode_batch, format_instant};

use crate::app::AppState;
use crate::bodies::DeviceStateBody;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Params, PathParam};
use crate::params::{self, now};
use crate::respond::{Format, json_raw, negotiate, rows, tabular, to_json};

/// Parameters of a state question.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StateParams {
    /// Instant (RFC 3339, epoch ms or `now`); default now.
    at: Option<String>,
    /// Answer with only the events ingested by then.
    known_at: Option<String>,
    /// `json` (default), `csv`, `arrow` or `parquet`.
    format: Option<String>,
}

fn not_in_log(device: &str) -> ApiError {
    QueryError::NotFound(format!("device `{device}` is not in the log")).into()
}

/// A device's state at an instant.
#[utoipa::path(get, path = "/api/v1/devices/{device}/state", tag = "state",
    params(("device" = String, Path, description = "Device name"), StateParams),
    responses(
        (status = 200, description = "The device's state", body = DeviceStateBody),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 422, description = "The question reaches before a retention horizon (named)", body = ErrorBody),
        (status = 404, description = "Device not in the log", body = ErrorBody)))]
pub async fn device_state(
    State(app): State<AppState>,
    PathParam(device): PathParam<String>,
    Params(p): Params<StateParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let format = negotiate(p.format.as_deref(), &headers)?;
    let at = params::instant("at", &p.at)?.unwrap_or_else(now);
    let known_at = params::instant("known_at", &p.known_at)?;
    // one device: microseconds on the live state, answered here (a `known_at` fleet is
    // derived on the query runtime)
    let fleet = app.fleet(known_at).await?;
    fleet.intervals_known(at)?;
    let d = fleet.device(&device).ok_or_else(|| not_in_log(&device))?;
    let state = state_at(&d, fleet.active_calls_known(&device, at), at);
    let b = device_state::batch(std::slice::from_ref(&state));
    tabular(format, &[b], || to_json(&state))
}

/// Parameters of a timeline.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimelineParams {
    /// Window start (RFC 3339 or epoch ms); default 24 h before `to`.
    from: Option<String>,
    /// Window end; default now.
    to: Option<String>,
    /// `json` (default); `csv`, `arrow` or `parquet` give the state intervals.
    format: Option<String>,
}

/// A device's events and state intervals in a window (intervals overlapping it, events in it;
/// events in the v1 contract form plus `ingest_time` and `ingest_seq`).
#[utoipa::path(get, path = "/api/v1/devices/{device}/timeline", tag = "state",
    params(("device" = String, Path, description = "Device name"), TimelineParams),
    responses(
        (status = 200, description = "`{device, from, to, intervals: [...], events: [...]}`", body = Object),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 422, description = "The question reaches before a retention horizon (named)", body = ErrorBody),
        (status = 404, description = "Device not in the log", body = ErrorBody)))]
pub async fn device_timeline(
    State(app): State<AppState>,
    PathParam(device): PathParam<String>,
    Params(p): Params<TimelineParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let format = negotiate(p.format.as_deref(), &headers)?;
    let to = params::instant("to", &p.to)?.unwrap_or_else(now);
    let from = params::instant("from", &p.from)?.unwrap_or(to - US_PER_DAY);
    if from >= to {
        return Err(ApiError::bad_request("from must be before to"));
    }
    // one version for both the intervals and the events
    let fleet = app.fleet(None).await?;
    let ctx = app.context(None).await?;
    fleet.intervals_known(from)?;
    let d = fleet.device(&device).ok_or_else(|| not_in_log(&device))?;
    let intervals = device_intervals::batch(&d.window(from, to));
    if format != Format::Json {
        return rows(format, &[intervals]);
    }
    let sql = format!(
        "SELECT * FROM events WHERE device = '{}' AND time >= to_timestamp_micros({from}) \
         AND time < to_timestamp_micros({to}) ORDER BY time, ingest_seq",
        device.replace('\'', "''")
    );
    let batches = app
        .runtime
        .spawn(async move { Ok(ctx.sql(&sql).await?.collect().await?) })
        .await?;
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
