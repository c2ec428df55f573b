//! `/healthz` (the process answers) and `/readyz` (it can take writes).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::error::ErrorBody;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "alive", body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the log accepts appends (and, in the Kafka mode, the materializer runs).
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "ready", body = String),
              (status = 503, description = "the log refuses appends (a failed write, a full disk), or the Kafka materializer stopped", body = ErrorBody)))]
pub async fn readyz(State(app): State<AppState>) -> Response {
    let log = app.log.clone();
    // the log re-checks a full disk here, which touches the file system
    let refusal = tokio::task::spawn_blocking(move || log.failure())
        .await
        .ok()
        .flatten();
    let why = refusal
        .map(|f| format!("the log refuses appends: {f}"))
        .or_else(|| app.readiness.as_ref().and_then(|r| r()));
    match why {
        None => "ready".into_response(),
        Some(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(ErrorBody { error }),
        )
            .into_response(),
    }
}
