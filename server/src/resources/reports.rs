//! Availability and the SLA report.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;

use callstate_query::model::calendar::report_windows;
use callstate_query::model::fleet::{DeviceHistory, in_groups};
use callstate_query::model::sla::{GroupBy, availability_over, sla_over};
use callstate_query::tables;
use callstate_report::{Month, ReportOptions, html};

use crate::app::AppState;
use crate::bodies::{AvailabilityBody, SlaBody};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Params;
use crate::params;
use crate::respond::{negotiate, rows, with_type};

/// Which devices a report covers: one device, or those of a cluster and/or device pool
/// (their latest), or all.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceFilter {
    /// Only this device.
    device: Option<String>,
    /// Only this cluster.
    cluster: Option<String>,
    /// Only this device pool.
    device_pool: Option<String>,
}

impl DeviceFilter {
    /// Whether a device is selected (cluster and pool by its latest report).
    fn keeps(&self, d: &DeviceHistory<'_>) -> bool {
        self.device.as_deref().is_none_or(|x| x == d.name())
            && in_groups(d, self.cluster.as_deref(), self.device_pool.as_deref())
    }
}

/// Parameters of an availability question.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AvailabilityParams {
    /// Window start (RFC 3339 or epoch ms).
    from: Option<String>,
    /// Window end (exclusive).
    to: Option<String>,
    /// `device` (default), `device_pool`, `node` (home node), `cluster` or `device_type`.
    group_by: Option<String>,
    /// `exact` (default) or `hours`: an edge inside an hour before the horizon of retention
    /// of intervals (where only hourly rollups are kept) moved inward to the whole hour, as
    /// the rows' window bounds then say, where `exact` refuses it.
    edges: Option<String>,
    /// Answer with only the events ingested by then.
    known_at: Option<String>,
    /// `json` (default), `csv`, `arrow` or `parquet`.
    format: Option<String>,
}

/// Seconds in/out of service, unknown and excluded, and availability, per group.
#[utoipa::path(get, path = "/api/v1/availability", tag = "sla", params(AvailabilityParams, DeviceFilter),
    responses(
        (status = 200, description = "One row per group", body = Vec<AvailabilityBody>),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 422, description = "The question reaches before a retention horizon (named)", body = ErrorBody)))]
pub async fn availability(
    State(app): State<AppState>,
    Params(p): Params<AvailabilityParams>,
    Params(filter): Params<DeviceFilter>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let format = negotiate(p.format.as_deref(), &headers)?;
    let (from, to) = params::window(&p.from, &p.to)?;
    let by = params::group_by(&p.group_by, GroupBy::Device)?;
    let edges = params::edges(&p.edges)?;
    let known_at = params::instant("known_at", &p.known_at)?;
    let fleet = app.fleet(known_at).await?;
    let windows = fleet.availability_windows(vec![(from, to)], edges)?;
    let b = app
        .run(move |cancel| {
            let devices = fleet.devices().filter(|d| filter.keeps(d));
            let r = availability_over(devices, fleet.windows(), &windows, by, cancel)?;
            Ok(tables::availability::batch(&r))
        })
        .await?;
    rows(format, &[b])
}

/// Parameters of an SLA report.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SlaParams {
    /// Window start (RFC 3339 or epoch ms).
    from: Option<String>,
    /// Window end (exclusive).
    to: Option<String>,
    /// `device_pool` (default), `device`, `node`, `cluster` or `device_type`.
    group_by: Option<String>,
    /// `exact` (default) or `hours`: an edge inside an hour before the horizon of retention
    /// of intervals (where only hourly rollups are kept) moved inward to the whole hour, as
    /// the rows' window bounds then say, where `exact` refuses it.
    edges: Option<String>,
    /// Calendar periods inside the window: `day`, `week` or `month`; none: the whole window.
    period: Option<String>,
    /// IANA time zone of the calendar periods (default UTC).
    tz: Option<String>,
    /// Answer with only the events ingested by then.
    known_at: Option<String>,
    /// `json` (default), `csv`, `arrow` or `parquet`.
    format: Option<String>,
}

/// The SLA report: availability against the target of each group, error budget, outages,
/// MTTR, longest outage; per calendar period with `period` and `tz`.
#[utoipa::path(get, path = "/api/v1/sla", tag = "sla", params(SlaParams, DeviceFilter),
    responses(
        (status = 200, description = "One row per group (and period)", body = Vec<SlaBody>),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 422, description = "The question reaches before a retention horizon (named)", body = ErrorBody)))]
pub async fn sla(
    State(app): State<AppState>,
    Params(p): Params<SlaParams>,
    Params(filter): Params<DeviceFilter>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let format = negotiate(p.format.as_deref(), &headers)?;
    let (from, to) = params::window(&p.from, &p.to)?;
    let by = params::group_by(&p.group_by, GroupBy::DevicePool)?;
    let edges = params::edges(&p.edges)?;
    let known_at = params::instant("known_at", &p.known_at)?;
    if p.period.is_none() && p.tz.is_some() {
        return Err(ApiError::param("tz", "only meaningful with period"));
    }
    let windows = report_windows(from, to, p.period.as_deref(), p.tz.as_deref())?;
    let fleet = app.fleet(known_at).await?;
    let windows = fleet.availability_windows(windows, edges)?;
    let b = app
        .run(move |cancel| {
            let devices = fleet.devices().filter(|d| filter.keeps(d));
            let r = sla_over(
                devices,
                fleet.windows(),
                &windows,
                by,
                fleet.targets(),
                cancel,
            )?;
            Ok(tables::sla::batch(&r))
        })
        .await?;
    rows(format, &[b])
}

/// Parameters of the monthly SLA report.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SlaReportParams {
    /// The month, `YYYY-MM` (default: the current month).
    month: Option<String>,
    /// IANA time zone of the month and its days (default UTC).
    tz: Option<String>,
    /// Groups inside each cluster: `device_pool` (default), `node` or `device_type`.
    group_by: Option<String>,
    /// Answer with only the events ingested by then.
    known_at: Option<String>,
}

/// The monthly SLA report: one self-contained HTML page (inline SVG charts, print stylesheet
/// for A4) per cluster and group: availability against target, error budget, daily chart,
/// outages, incidents with recovery curves, worst devices, maintenance exclusions, and the
/// change from the previous month.
#[utoipa::path(get, path = "/api/v1/reports/sla", tag = "sla", params(SlaReportParams),
    responses(
        (status = 200, description = "The report", body = String, content_type = "text/html"),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 422, description = "The question reaches before a retention horizon (named)", body = ErrorBody)))]
pub async fn sla_report(
    State(app): State<AppState>,
    Params(p): Params<SlaReportParams>,
) -> Result<Response, ApiError> {
    let tz = p.tz.as_deref().unwrap_or("UTC");
    let now = params::now();
    let month = match &p.month {
        Some(m) => Month::parse(m, tz)?,
        None => Month::containing(now, tz)?,
    };
    let by = params::group_by(&p.group_by, GroupBy::DevicePool)?;
    let known_at = params::instant("known_at", &p.known_at)?;
    let fleet = app.fleet(known_at).await?;
    let page = app
        .run(move |cancel| {
            let o = ReportOptions::new(month, by, now);
            Ok(html::render(&callstate_report::build(&*fleet, &o, cancel)?))
        })
        .await?;
    Ok(with_type(page.into_bytes(), "text/html; charset=utf-8"))
}
