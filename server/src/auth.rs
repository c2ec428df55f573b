//! Bearer-token checks: always for writes, for reads with `read_auth = token`.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::{App, AppState};
use crate::error::ErrorBody;
use crate::settings::ReadAuth;

fn bearer_ok(app: &App, req: &Request) -> bool {
    let Some(token) = &app.config.token else {
        return true;
    };
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| constant_time_eq(t.trim().as_bytes(), token.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unauthorized() -> Response {
    let mut r = (
        StatusCode::UNAUTHORIZED,
        axum::Json(ErrorBody {
            error: "a bearer token is required (Authorization: Bearer <token>)".into(),
        }),
    )
        .into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// Middleware of the write routes.
pub async fn require_write_token(
    State(app): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if bearer_ok(&app, &req) {
        next.run(req).await
    } else {
        // Read the (size-limited) body first: a client still sending it would otherwise see
        // a broken connection instead of the 401.
        let _ = axum::body::to_bytes(req.into_body(), usize::MAX).await;
        unauthorized()
    }
}

/// Middleware of the read routes.
pub async fn require_read_token(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if app.config.read_auth == ReadAuth::Open || bearer_ok(&app, &req) {
        next.run(req).await
    } else {
        unauthorized()
    }
}
