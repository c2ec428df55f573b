//! Request limits: a time limit on every read, and concurrency limits on the heavy ones (per
//! client and overall) that answer 503 with `Retry-After` at once instead of queueing, so
//! that `/healthz`, `/readyz`, `/metrics` and a single device's state stay answered.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use callstate_query::exec::Deadline;

use crate::app::AppState;
use crate::deadline;
use crate::error::ApiError;

fn client(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Runs `next` within `limit`; past it, or once a shutdown begins, the request's work is
/// dropped (and so cancelled) and the answer is 422 naming the setting, or 503. Work it
/// hands to the query runtime also stops by itself at the deadline.
async fn within(
    app: &AppState,
    limit: Duration,
    setting: &'static str,
    req: Request,
    next: Next,
) -> Response {
    let deadline = Deadline {
        at: Instant::now() + limit,
        limit,
        setting,
    };
    tokio::select! {
        r = tokio::time::timeout(limit, deadline::within(deadline, next.run(req))) => match r {
            Ok(r) => r,
            Err(_) => ApiError::over_limit(format!(
                "the request exceeded the time limit of {} s ({setting})",
                limit.as_secs_f64()
            ))
            .into_response(),
        },
        () = app.stopped() => ApiError::unavailable("the server is stopping; retry shortly").into_response(),
    }
}

/// Middleware of the light reads: the time limit.
pub async fn timed(State(app): State<AppState>, req: Request, next: Next) -> Response {
    within(&app, app.config.read_timeout, "read_timeout_s", req, next).await
}

/// Middleware of the heavy reads: a place in the gate, then the time limit.
pub async fn gated(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let permit = match app.gate.try_enter(client(&req)) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let r = within(&app, app.config.read_timeout, "read_timeout_s", req, next).await;
    drop(permit);
    r
}

/// Middleware of the writes: a place among the writers (appends queue on the log anyway).
pub async fn writes(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let permit = match app.write_gate.try_enter(client(&req)) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let r = next.run(req).await;
    drop(permit);
    r
}
