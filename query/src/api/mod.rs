//! The HTTP API of design.md §5 (axum): ingest, device and fleet state, timelines,
//! availability, SLA, incidents, read-only SQL, Prometheus metrics, health and the OpenAPI
//! document generated from the handlers.
//!
//! Answers come from the same code as the SQL functions. The derived state (intervals, call
//! legs) of the log's current version is built once and shared by every request until new
//! events arrive; `known_at` requests derive their own.

mod error;
mod events;
pub mod metrics;
mod query;
mod reports;
pub mod respond;
pub mod series;
mod state;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use datafusion::prelude::SessionContext;
use tokio::net::TcpListener;
use tower_http::compression::CompressionLayer;
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use callstate_ingest::{Appender, Log};

pub use error::{ApiError, ErrorBody};

use crate::functions::Shared;
use crate::intervals::interval_at;
use crate::lazy::LazyShared;
use crate::rows::Us;
use crate::session::context_for;
use crate::sla::Targets;

/// Who may read (every GET and `POST /api/v1/query`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadAuth {
    /// Anyone.
    #[default]
    Open,
    /// Only with the bearer token (when one is configured).
    Token,
}

impl std::str::FromStr for ReadAuth {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "open" => Ok(ReadAuth::Open),
            "token" => Ok(ReadAuth::Token),
            _ => Err(format!("read auth must be `open` or `token`, not `{s}`")),
        }
    }
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Bearer token required for writes (and reads with [`ReadAuth::Token`]); none: open.
    pub token: Option<String>,
    /// Who may read.
    pub read_auth: ReadAuth,
    /// Largest request body, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Time limit of one SQL query.
    pub sql_timeout: Duration,
    /// Memory limit of SQL operators (sorts, joins, aggregates), in bytes.
    pub sql_memory_bytes: usize,
    /// SLA targets.
    pub targets: Targets,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            token: None,
            read_auth: ReadAuth::Open,
            max_body_bytes: 64 << 20,
            sql_timeout: Duration::from_secs(30),
            sql_memory_bytes: 1 << 30,
            targets: Targets::default(),
        }
    }
}

/// The derived state of one log version, and a SQL context over it.
#[derive(Clone)]
struct Current {
    version: u64,
    shared: Arc<LazyShared>,
    ctx: SessionContext,
}

/// Everything a request handler needs.
pub struct Api {
    log: Arc<Log>,
    appender: Arc<dyn Appender>,
    readiness: Option<Readiness>,
    config: ApiConfig,
    current: Mutex<Option<Current>>,
    metrics: metrics::Metrics,
}

/// Why the server is not ready beyond the log itself (the Kafka materializer failed), if it
/// is not.
pub type Readiness = Box<dyn Fn() -> Option<String> + Send + Sync>;

/// Shared state of the handlers.
pub type AppState = Arc<Api>;

impl Api {
    /// An API over an open log.
    pub fn new(log: Arc<Log>, config: ApiConfig) -> AppState {
        Api::with_appender(log.clone(), log, None, config)
    }

    /// An API over `log` whose collector (`POST /api/v1/events`) writes to `appender` (the
    /// canonical Kafka topic in the Kafka-backed mode; the log materializes it).
    /// `readiness` adds a condition to `/readyz`.
    pub fn with_appender(
        log: Arc<Log>,
        appender: Arc<dyn Appender>,
        readiness: Option<Readiness>,
        config: ApiConfig,
    ) -> AppState {
        Arc::new(Api {
            log,
            appender,
            readiness,
            config,
            current: Mutex::new(None),
            metrics: metrics::Metrics::default(),
        })
    }

    /// The log.
    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// The derived state and SQL context of the log's current version (built on first use).
    async fn current(&self) -> Result<Current, ApiError> {
        let (version, snap) = self.log.versioned_snapshot();
        if let Some(c) = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|c| c.version == version)
        {
            return Ok(c.clone());
        }
        let shared = Arc::new(LazyShared::new(snap, None, self.config.targets.clone()));
        let ctx = context_for(shared.clone(), Some(self.config.sql_memory_bytes))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let c = Current {
            version,
            shared,
            ctx,
        };
        let mut slot = self.current.lock().unwrap_or_else(|p| p.into_inner());
        // keep the newest; a request that raced with a newer one keeps its own
        if slot.as_ref().is_none_or(|s| s.version <= version) {
            *slot = Some(c.clone());
        }
        Ok(c)
    }

    /// What was known at `known_at` (not cached).
    fn known_at(&self, known_at: Us) -> Arc<LazyShared> {
        Arc::new(LazyShared::new(
            self.log.snapshot(),
            Some(known_at),
            self.config.targets.clone(),
        ))
    }

    /// What derived answers come from: the current version, or as known at `known_at`.
    async fn shared(&self, known_at: Option<Us>) -> Result<Arc<Shared>, ApiError> {
        derived(match known_at {
            None => self.current().await?.shared,
            Some(k) => self.known_at(k),
        })
        .await
    }
}

/// Loads and derives (once per [`LazyShared`]) off the async threads.
async fn derived(lazy: Arc<LazyShared>) -> Result<Arc<Shared>, ApiError> {
    blocking(move || lazy.get().map_err(ApiError::from_sql)).await
}

/// Runs CPU- or disk-bound work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("worker failed: {e}")))?
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "callstate",
        description = "CUCM CTI device state, availability/SLA and failover forensics from an append-only event log. Timestamps in and out are RFC 3339 UTC; epoch milliseconds are accepted too."
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The routes and the OpenAPI document describing them (generated from the same handlers).
pub fn router(app: AppState) -> Router {
    let writes = OpenApiRouter::new()
        .routes(routes!(events::post_events))
        .layer(middleware::from_fn_with_state(
            app.clone(),
            require_write_token,
        ));
    let reads = OpenApiRouter::new()
        .routes(routes!(state::device_state))
        .routes(routes!(state::fleet_state))
        .routes(routes!(state::device_timeline))
        .routes(routes!(series::state_series_endpoint))
        .routes(routes!(series::annotations))
        .routes(routes!(reports::availability))
        .routes(routes!(reports::sla))
        .routes(routes!(reports::incidents))
        .routes(routes!(reports::incident))
        .routes(routes!(query::post_query))
        .routes(routes!(metrics_endpoint))
        .layer(middleware::from_fn_with_state(
            app.clone(),
            require_read_token,
        ));
    let open = OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz));
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(writes)
        .merge(reads)
        .merge(open)
        .split_for_parts();
    let doc = Arc::new(doc);
    router
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json((*doc).clone()) }
            }),
        )
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(middleware::from_fn_with_state(app.clone(), metrics::track))
        .layer(CompressionLayer::new())
        .layer(RequestBodyLimitLayer::new(app.config.max_body_bytes))
        .layer(RequestDecompressionLayer::new())
        .with_state(app)
}

/// Serves the API on `listener` until `shutdown` completes, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    app: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await
}

fn bearer_ok(app: &Api, req: &Request) -> bool {
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

async fn require_write_token(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if bearer_ok(&app, &req) {
        next.run(req).await
    } else {
        // Read the (size-limited) body first: a client still sending it would otherwise see
        // a broken connection instead of the 401.
        let _ = axum::body::to_bytes(req.into_body(), usize::MAX).await;
        unauthorized()
    }
}

async fn require_read_token(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if app.config.read_auth == ReadAuth::Open || bearer_ok(&app, &req) {
        next.run(req).await
    } else {
        unauthorized()
    }
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "alive", body = String)))]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the log accepts appends (and, in the Kafka mode, the materializer runs).
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "ready", body = String),
              (status = 503, description = "the log refuses appends, or the Kafka materializer stopped", body = ErrorBody)))]
async fn readyz(State(app): State<AppState>) -> Response {
    let why = app
        .log
        .failure()
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

/// Prometheus metrics (text format).
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text exposition format", body = String)))]
async fn metrics_endpoint(State(app): State<AppState>) -> Result<Response, ApiError> {
    let shared = app.shared(None).await?;
    let now = chrono::Utc::now().timestamp_micros();
    let (by_state, pools) = blocking(move || {
        let mut counts = std::collections::BTreeMap::<String, i64>::new();
        for s in ["in_service", "out_of_service", "unknown"] {
            counts.insert(s.to_string(), 0);
        }
        for iv in shared.intervals.chunk_by(|a, b| a.device == b.device) {
            let state = interval_at(iv, now).map_or("unknown", |i| i.state.as_str());
            *counts.entry(state.to_string()).or_default() += 1;
        }
        let midnight = now - now.rem_euclid(86_400_000_000);
        let pools: Vec<(String, f64)> = crate::sla::availability(
            &shared.intervals,
            &shared.rows.windows,
            midnight,
            now.max(midnight + 1),
            crate::sla::GroupBy::DevicePool,
        )
        .into_iter()
        .filter_map(|g| Some((g.group, g.seconds.availability()?)))
        .collect();
        Ok((counts.into_iter().collect::<Vec<_>>(), pools))
    })
    .await?;
    let text = app
        .metrics
        .render(&by_state, &pools)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(r)
}
