//! `POST /api/v1/events`: the HTTP collector. NDJSON, one JSON event, or a JSON array of
//! events, split and validated by the collectors' shared front end.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use callstate_ingest::frontend::{Reject, parse_body};
use callstate_log::Outcome;
use callstate_schemas::Kind;

use crate::app::{AppState, write_blocking};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Params;
use crate::metrics::Metrics;
use crate::respond::content_type;

/// One rejected event.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rejected {
    /// 1-based line of the NDJSON body, or position in the JSON array.
    pub line: u64,
    /// The field at fault, when the problem is one field.
    pub field: Option<String>,
    /// Why it was rejected.
    pub error: String,
}

impl From<Reject> for Rejected {
    fn from(r: Reject) -> Self {
        Rejected {
            line: r.line,
            field: r.field,
            error: r.reason,
        }
    }
}

/// What happened to the posted events.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestAnswer {
    /// Events stored durably before this answer (in the Kafka-backed mode: durable in the
    /// canonical topic; copies are then dropped when materialized, and counted in metrics).
    pub accepted: u64,
    /// Events already stored with the same `(source, seq)` and content: dropped.
    pub duplicates: u64,
    /// Events not stored, each with its line and reason.
    pub rejected: Vec<Rejected>,
}

/// Parameters of a post.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PostParams {
    /// When to answer: `visible` (default: once the events are durable and visible to reads,
    /// so the writer reads its own writes) or `durable` (once they are durable; faster for
    /// bulk loads that do not read back at once).
    wait: Option<String>,
}

/// The kind a rejected line claims, for the metrics (`unknown` if none or not a kind).
fn kind_of(raw: &str) -> &'static str {
    #[derive(serde::Deserialize)]
    struct K<'a> {
        kind: Option<&'a str>,
    }
    serde_json::from_str::<K<'_>>(raw)
        .ok()
        .and_then(|k| k.kind.and_then(Kind::parse))
        .map_or("unknown", Kind::as_str)
}

/// Appends events; the answer comes after they are durable and visible to reads
/// (`?wait=durable`: durable only). Status 200, or 422 when every
/// event was rejected (same body); 503 with `Retry-After` when the log refuses writes.
#[utoipa::path(post, path = "/api/v1/events", tag = "ingest",
    request_body(content = String, description = "NDJSON (one v1 event per line), one JSON event, or a JSON array of events; gzip with Content-Encoding: gzip",
        content_type = "application/x-ndjson"),
    params(PostParams),
    responses(
        (status = 200, description = "Stored; per-line rejects listed", body = IngestAnswer),
        (status = 400, description = "The body is not a JSON array of events", body = ErrorBody),
        (status = 401, description = "Token missing or wrong", body = ErrorBody),
        (status = 413, description = "Body larger than the limit"),
        (status = 422, description = "Every event was rejected", body = IngestAnswer),
        (status = 503, description = "The log refuses writes (a failed write, a full disk, Kafka unreachable); retry after Retry-After seconds", body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn post_events(
    State(app): State<AppState>,
    Params(p): Params<PostParams>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let visible = match p.wait.as_deref() {
        None | Some("" | "visible") => true,
        Some("durable") => false,
        Some(other) => {
            return Err(ApiError::param(
                "wait",
                format!("expected visible or durable, not {other:?}"),
            ));
        }
    };
    let json = content_type(&headers).starts_with("application/json");
    let app2 = app.clone();
    let answer = write_blocking(move || {
        let now = chrono::Utc::now();
        let mut parsed =
            parse_body("http", &body, json, now).map_err(|r| ApiError::bad_request(r.reason))?;
        let m = &app2.metrics;
        for r in &parsed.rejects {
            Metrics::count(&m.rejected, kind_of(&r.raw), 1);
        }
        let res = if parsed.events.is_empty() {
            Default::default()
        } else {
            app2.appender.append(&parsed.events)?
        };
        for (e, outcome) in parsed.events.iter().zip(&res.outcomes) {
            let kind = e.kind().as_str();
            match outcome {
                Outcome::Accepted(_) | Outcome::Queued => Metrics::count(&m.ingested, kind, 1),
                Outcome::Duplicate => Metrics::count(&m.duplicates, kind, 1),
                Outcome::Conflict => Metrics::count(&m.rejected, kind, 1),
            }
        }
        parsed.add_conflicts("http", &res.outcomes);
        let last = res.outcomes.iter().filter_map(|o| match o {
            Outcome::Accepted(seq) => Some(*seq),
            _ => None,
        });
        Ok((
            last.max(),
            IngestAnswer {
                accepted: res.accepted as u64,
                duplicates: res.duplicates as u64,
                rejected: parsed.rejects.into_iter().map(Rejected::from).collect(),
            },
        ))
    })
    .await?;
    let (last, answer) = answer;
    // the answer comes once the events are visible to reads too (reads never wait for the
    // applier), so a client reads its own writes; durable they are already
    if let Some(seq) = last.filter(|_| visible) {
        app.visible(seq).await;
    }
    let status = if answer.accepted == 0 && answer.duplicates == 0 && !answer.rejected.is_empty() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(answer)).into_response())
}
