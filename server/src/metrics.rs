//! `/metrics` in the Prometheus text format: ingest counters by kind, request latency by
//! route, and, computed at scrape time from the log, devices by state and today's
//! availability per device pool.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use callstate_query::model::intervals::{by_device, interval_at};
use callstate_query::model::sla::{GroupBy, availability};
use callstate_schemas::{ServiceState, US_PER_S};

use crate::app::{AppState, blocking};
use crate::error::ApiError;
use crate::params::now;

/// Label: an event kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// The kind (`unknown` when a rejected event had none or an unknown one).
    pub kind: String,
}

/// Labels of a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Method.
    pub method: String,
    /// Route template (e.g. `/api/v1/devices/{device}/state`), never the raw path.
    pub route: String,
    /// Status code.
    pub status: String,
}

/// Label: a service state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// `in_service`, `out_of_service`, `unknown`.
    pub state: String,
}

/// Label: a device pool.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabel {
    /// The pool.
    pub device_pool: String,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    /// Events stored, by kind.
    pub ingested: Family<KindLabel, Counter>,
    /// Events rejected (invalid or conflicting), by kind.
    pub rejected: Family<KindLabel, Counter>,
    /// Duplicates dropped, by kind.
    pub duplicates: Family<KindLabel, Counter>,
    requests: HistogramFamily,
    devices: Family<StateLabel, Gauge>,
    availability: Family<PoolLabel, Gauge<f64, AtomicU64>>,
    scrape: Mutex<()>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("callstate");
        let ingested = Family::<KindLabel, Counter>::default();
        let rejected = Family::<KindLabel, Counter>::default();
        let duplicates = Family::<KindLabel, Counter>::default();
        let requests: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let devices = Family::<StateLabel, Gauge>::default();
        let availability = Family::<PoolLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "events_ingested",
            "Events stored in the log",
            ingested.clone(),
        );
        registry.register(
            "events_rejected",
            "Events rejected (invalid, or a conflicting (source, seq))",
            rejected.clone(),
        );
        registry.register(
            "events_duplicate",
            "Events dropped as duplicates of a stored (source, seq)",
            duplicates.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            requests.clone(),
        );
        registry.register("devices", "Devices by service state now", devices.clone());
        registry.register(
            "device_pool_availability_today_ratio",
            "Availability of each device pool since 00:00 UTC today (null days are left out)",
            availability.clone(),
        );
        Metrics {
            registry,
            ingested,
            rejected,
            duplicates,
            requests,
            devices,
            availability,
            scrape: Mutex::new(()),
        }
    }
}

impl Metrics {
    /// Counts `n` events of `kind` in `family`.
    pub fn count(family: &Family<KindLabel, Counter>, kind: &str, n: u64) {
        if n > 0 {
            family
                .get_or_create(&KindLabel {
                    kind: kind.to_string(),
                })
                .inc_by(n);
        }
    }

    /// Sets the scrape-time gauges and renders everything.
    pub fn render(
        &self,
        by_state: &[(String, i64)],
        pools: &[(String, f64)],
    ) -> Result<String, std::fmt::Error> {
        let _one_scrape_at_a_time = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        self.devices.clear();
        for (state, n) in by_state {
            self.devices
                .get_or_create(&StateLabel {
                    state: state.clone(),
                })
                .set(*n);
        }
        self.availability.clear();
        for (pool, a) in pools {
            self.availability
                .get_or_create(&PoolLabel {
                    device_pool: pool.clone(),
                })
                .set(*a);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Middleware: records each request's latency by method, route template and status.
pub async fn track(State(app): State<AppState>, req: Request, next: Next) -> Response {
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

/// Prometheus metrics (text format).
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text exposition format", body = String)))]
pub async fn metrics_endpoint(State(app): State<AppState>) -> Result<Response, ApiError> {
    let derived = app.derived(None).await?;
    let now = now();
    let (by_state, pools) = blocking(move || {
        let mut counts: std::collections::BTreeMap<&str, i64> =
            ServiceState::NAMES.iter().map(|s| (*s, 0)).collect();
        for iv in by_device(&derived.intervals) {
            let state = interval_at(iv, now).map_or(ServiceState::Unknown, |i| i.state);
            *counts.entry(state.as_str()).or_default() += 1;
        }
        let day = 86_400 * US_PER_S;
        let midnight = now - now.rem_euclid(day);
        let pools: Vec<(String, f64)> = availability(
            &derived.intervals,
            &derived.rows.windows,
            midnight,
            now.max(midnight + 1),
            GroupBy::DevicePool,
        )
        .into_iter()
        .filter_map(|g| Some((g.group_key, g.seconds.availability()?)))
        .collect();
        let by_state: Vec<(String, i64)> = counts
            .into_iter()
            .map(|(s, n)| (s.to_string(), n))
            .collect();
        Ok((by_state, pools))
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
