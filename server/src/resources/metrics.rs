//! `GET /metrics`: the registry's counters, and gauges computed from the log at scrape time.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use callstate_query::model::sla::{GroupBy, availability_over};
use callstate_report::slo::sli::totals;
use callstate_schemas::{ServiceState, US_PER_DAY, Us};

use crate::app::AppState;
use crate::error::ApiError;
use crate::params::now;

/// Prometheus metrics (text format).
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text exposition format", body = String)))]
pub async fn metrics_endpoint(State(app): State<AppState>) -> Result<Response, ApiError> {
    let fleet = app.fleet(None).await?;
    let view = app.live().view();
    let now = now();
    let (by_state, pools, sli, live_bytes) = app
        .run(move |cancel| {
            let mut counts: std::collections::BTreeMap<&str, i64> =
                ServiceState::NAMES.iter().map(|s| (*s, 0)).collect();
            for d in fleet.devices() {
                let state = d.at(now).map_or(ServiceState::Unknown, |i| i.state);
                *counts.entry(state.as_str()).or_default() += 1;
            }
            // (from the horizon of retention of intervals, if it is later)
            let midnight = (now - now.rem_euclid(US_PER_DAY))
                .max(fleet.intervals_kept_from().unwrap_or(Us::MIN));
            let today = [(midnight, now.max(midnight + 1))];
            let pools: Vec<(String, f64)> = availability_over(
                fleet.devices(),
                fleet.windows(),
                &today,
                GroupBy::DevicePool,
                cancel,
            )?
            .into_iter()
            .filter_map(|g| Some((g.group_key, g.seconds.availability()?)))
            .collect();
            let by_state: Vec<(String, i64)> = counts
                .into_iter()
                .map(|(s, n)| (s.to_string(), n))
                .collect();
            let sli = totals(&*fleet, now, cancel)?;
            // (after the availability above: the rollups it built are counted)
            Ok((by_state, pools, sli, view.memory().parts()))
        })
        .await?;
    let text = app
        .metrics
        .render(&by_state, &pools, sli, &live_bytes)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(r)
}
