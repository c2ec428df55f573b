//! The routes and the OpenAPI document describing them, generated from the same handler
//! annotations: every route is registered with `routes!` and documented by its
//! `#[utoipa::path]`.

use std::sync::Arc;

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower_http::compression::CompressionLayer;
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::{require_read_token, require_write_token};
use crate::error::{ApiError, ErrorBody};
use crate::health::{__path_healthz, __path_readyz, healthz, readyz};
use crate::limits;
use crate::metrics::RouteLabels;
use crate::resources::metrics::{__path_metrics_endpoint, metrics_endpoint};
use crate::resources::{devices, events, fleet, incidents, query, reports, series, slo};

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
        .layer(middleware::from_fn_with_state(app.clone(), limits::writes))
        .layer(middleware::from_fn_with_state(
            app.clone(),
            require_write_token,
        ));
    // Heavy reads take a place in the gate (503 when there is none) and a time limit.
    let heavy = OpenApiRouter::new()
        .routes(routes!(fleet::fleet_state))
        .routes(routes!(devices::device_timeline))
        .routes(routes!(series::state_series))
        .routes(routes!(series::annotations))
        .routes(routes!(reports::availability))
        .routes(routes!(reports::sla))
        .routes(routes!(reports::sla_report))
        .routes(routes!(slo::slo_burn))
        .routes(routes!(incidents::incidents))
        .routes(routes!(incidents::incident))
        .routes(routes!(query::post_query))
        .layer(middleware::from_fn_with_state(app.clone(), limits::gated));
    // Light reads stay answered while heavy ones run: a time limit only.
    let light = OpenApiRouter::new()
        .routes(routes!(devices::device_state))
        .routes(routes!(metrics_endpoint))
        .layer(middleware::from_fn_with_state(app.clone(), limits::timed));
    let reads = heavy.merge(light).layer(middleware::from_fn_with_state(
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
        .layer(middleware::from_fn_with_state(app.clone(), track))
        .layer(CompressionLayer::new())
        .layer(RequestBodyLimitLayer::new(app.config.max_body_bytes))
        .layer(RequestDecompressionLayer::new())
        .with_state(app)
}

/// Middleware: records each request's latency by method, route template and status.
async fn track(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().to_string();
    let start = Instant::now();
    let resp = next.run(req).await;
    app.metrics
        .requests
        .get_or_create(&RouteLabels {
            method,
            route,
            status: resp.status().as_u16().to_string(),
        })
        .observe(start.elapsed().as_secs_f64());
    resp
}
