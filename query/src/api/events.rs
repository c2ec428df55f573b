//! `POST /api/v1/events`: NDJSON, one JSON event, or a JSON array of events.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use callstate_ingest::Outcome;
use callstate_schemas::{Event, Kind};

use super::metrics::Metrics;
use super::respond::content_type;
use super::{ApiError, AppState, blocking};

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

/// The items of a body: (line, text).
fn items(body: &str, json: bool) -> Result<Vec<(u64, &str)>, ApiError> {
    let trimmed = body.trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n']);
    if trimmed.starts_with('[') {
        let arr: Vec<&RawValue> = serde_json::from_str(trimmed)
            .map_err(|e| ApiError::bad_request(format!("body: not a JSON array of events: {e}")))?;
        return Ok(arr
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i as u64 + 1, v.get()))
            .collect());
    }
    if json
        && let Ok(one) = serde_json::from_str::<&RawValue>(trimmed)
        && trimmed.starts_with('{')
    {
        return Ok(vec![(1, one.get())]);
    }
    Ok(body
        .split('\n')
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.strip_suffix('\r').unwrap_or(l)))
        .filter(|(i, l)| {
            let l = if *i == 1 {
                l.trim_start_matches('\u{feff}')
            } else {
                l
            };
            !l.trim().is_empty()
        })
        .collect())
}

fn kind_of(text: &str) -> String {
    #[derive(serde::Deserialize)]
    struct K<'a> {
        kind: Option<&'a str>,
    }
    serde_json::from_str::<K<'_>>(text)
        .ok()
        .and_then(|k| k.kind)
        .filter(|k| Kind::parse(k).is_some())
        .unwrap_or("unknown")
        .to_string()
}

/// Appends events; the answer comes after they are durable. Status 200, or 422 when every
/// event was rejected (same body).
#[utoipa::path(post, path = "/api/v1/events", tag = "ingest",
    request_body(content = String, description = "NDJSON (one v1 event per line), one JSON event, or a JSON array of events; gzip with Content-Encoding: gzip",
        content_type = "application/x-ndjson"),
    responses(
        (status = 200, description = "Stored; per-line rejects listed", body = IngestAnswer),
        (status = 400, description = "The body is not UTF-8 or not a JSON array", body = super::ErrorBody),
        (status = 401, description = "Token missing or wrong", body = super::ErrorBody),
        (status = 413, description = "Body larger than the limit"),
        (status = 422, description = "Every event was rejected", body = IngestAnswer)),
    security((), ("bearer" = [])))]
pub async fn post_events(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let json = content_type(&headers).starts_with("application/json");
    let app2 = app.clone();
    let answer = blocking(move || {
        let body = std::str::from_utf8(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "body: invalid UTF-8 at byte {}",
                e.valid_up_to() + 1
            ))
        })?;
        let now = chrono::Utc::now();
        let mut events = Vec::new();
        let mut lines = Vec::new();
        let mut rejected = Vec::new();
        for (line, text) in items(body, json)? {
            match Event::from_json(text, now) {
                Ok(e) => {
                    events.push(e);
                    lines.push(line);
                }
                Err(e) => {
                    Metrics::count(&app2.metrics.rejected, &kind_of(text), 1);
                    rejected.push(Rejected {
                        line,
                        field: e.field.clone(),
                        error: e.to_string(),
                    });
                }
            }
        }
        let res = if events.is_empty() {
            Default::default()
        } else {
            app2.appender.append(&events)?
        };
        let m = &app2.metrics;
        for ((e, outcome), line) in events.iter().zip(&res.outcomes).zip(lines) {
            let kind = e.kind().as_str();
            match outcome {
                Outcome::Accepted(_) | Outcome::Queued => Metrics::count(&m.ingested, kind, 1),
                Outcome::Duplicate => Metrics::count(&m.duplicates, kind, 1),
                Outcome::Conflict => {
                    Metrics::count(&m.rejected, kind, 1);
                    rejected.push(Rejected {
                        line,
                        field: Some("seq".into()),
                        error: format!(
                            "source `{}` seq {} is already stored with different content",
                            e.source, e.seq
                        ),
                    });
                }
            }
        }
        rejected.sort_by_key(|r| r.line);
        Ok(IngestAnswer {
            accepted: res.accepted as u64,
            duplicates: res.duplicates as u64,
            rejected,
        })
    })
    .await?;
    let status = if answer.accepted == 0 && answer.duplicates == 0 && !answer.rejected.is_empty() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(answer)).into_response())
}
