//! Time series for dashboards: devices per state (or per node) at every step of a window, and
//! the control events (node and CTIManager up/down, maintenance windows) as annotations.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::respond::{negotiate, rows};
use super::state::{instant_param, window};
use super::{ApiError, AppState, blocking};
use crate::functions::batch;
use crate::instant::format_instant;
use crate::intervals::{ServiceInterval, ServiceState, by_device, in_groups, interval_at};
use crate::rows::Us;

/// Most points a series answer may have (steps × groups are bounded by it per group).
pub const MAX_STEPS: i64 = 11_000;

/// Parses a step: a number of seconds, or a duration such as `30s`, `5m`, `1h`, `1d`, `500ms`
/// (Grafana's `$__interval`).
pub fn parse_step(text: &str) -> Result<Us, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (e.g. 60, 30s, 5m, 1h, 1d)"))?;
    let scale = match unit {
        "" | "s" => 1e6,
        "ms" => 1e3,
        "m" => 60e6,
        "h" => 3600e6,
        "d" => 86400e6,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (ms, s, m, h, d)")),
    };
    let us = (n * scale).round() as Us;
    if us <= 0 {
        return Err(format!("`{text}` is not a positive duration"));
    }
    Ok(us)
}

/// Parameters of a state series.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SeriesParams {
    /// Window start (RFC 3339 or epoch ms).
    from: Option<String>,
    /// Window end (exclusive).
    to: Option<String>,
    /// Step: seconds, or a duration (`30s`, `5m`, `1h`); default: the window / 300, at least
    /// 1 s.
    step: Option<String>,
    /// `state` (default: devices per state) or `node` (devices in service per node).
    group_by: Option<String>,
    /// Only this cluster.
    cluster: Option<String>,
    /// Only this device pool.
    device_pool: Option<String>,
    /// Only devices whose home node is this one (the devices a node failure hits).
    home_node: Option<String>,
    /// Only the devices of this incident (its recovery curve).
    incident: Option<String>,
    /// Answer with only the events ingested by then.
    known_at: Option<String>,
    /// `json` (default), `csv` or `arrow`.
    format: Option<String>,
}

/// One point: how many devices were in a group at an instant.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SeriesPoint {
    /// The instant (RFC 3339).
    pub time: String,
    /// The state, or the node.
    pub group: String,
    /// Devices.
    pub devices: u64,
}

fn series_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("group", DataType::Utf8, false),
        Field::new("devices", DataType::UInt64, false),
    ]))
}

/// Grouping of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesBy {
    /// Per state (every state present at every step, 0 if none).
    State,
    /// Per node, devices in service there.
    Node,
}

/// Devices per group at `from`, `from + step`, … before `to`. `devices` yields each device's
/// intervals (in time order).
pub fn state_series<'a>(
    devices: impl Iterator<Item = &'a [ServiceInterval]>,
    from: Us,
    to: Us,
    step: Us,
    by: SeriesBy,
) -> Vec<SeriesPoint> {
    let steps = ((to - from) + step - 1) / step;
    let mut counts: Vec<BTreeMap<Arc<str>, u64>> = vec![BTreeMap::new(); steps as usize];
    let (ins, oos, unk): (Arc<str>, Arc<str>, Arc<str>) = (
        "in_service".into(),
        "out_of_service".into(),
        "unknown".into(),
    );
    for iv in devices {
        // walk the steps and the device's intervals together
        let mut k = 0;
        for (s, c) in counts.iter_mut().enumerate() {
            let t = from + s as Us * step;
            while k + 1 < iv.len() && iv[k + 1].valid_from <= t {
                k += 1;
            }
            let i = iv.get(k).filter(|i| i.contains(t));
            let key = match (by, i) {
                (SeriesBy::State, None) => &unk,
                (SeriesBy::State, Some(i)) => match i.state {
                    ServiceState::InService => &ins,
                    ServiceState::OutOfService => &oos,
                    ServiceState::Unknown => &unk,
                },
                (SeriesBy::Node, Some(i)) if i.state == ServiceState::InService => match &i.node {
                    Some(n) => n,
                    None => continue,
                },
                (SeriesBy::Node, _) => continue,
            };
            *c.entry(key.clone()).or_default() += 1;
        }
    }
    let mut out = Vec::new();
    let all_groups: Vec<Arc<str>> = match by {
        SeriesBy::State => vec![ins, oos, unk],
        SeriesBy::Node => {
            let mut g: Vec<Arc<str>> = counts.iter().flat_map(|c| c.keys().cloned()).collect();
            g.sort();
            g.dedup();
            g
        }
    };
    for (s, c) in counts.iter().enumerate() {
        let time = format_instant(from + s as Us * step);
        // every group at every step, so that a series drops to 0 instead of breaking off
        for g in &all_groups {
            out.push(SeriesPoint {
                time: time.clone(),
                group: g.to_string(),
                devices: c.get(g).copied().unwrap_or(0),
            });
        }
    }
    out
}

/// Devices per state (or per node) at every step of a window: the fleet over time.
#[utoipa::path(get, path = "/api/v1/state/series", tag = "state", params(SeriesParams),
    responses(
        (status = 200, description = "One row per step and group: `{time, group, devices}`", body = Vec<SeriesPoint>),
        (status = 400, description = "Bad parameter, or more than 11,000 steps", body = super::ErrorBody)))]
pub async fn state_series_endpoint(
    State(app): State<AppState>,
    Query(p): Query<SeriesParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let format = negotiate(p.format.as_deref(), &headers)?;
    let (from, to) = window(&p.from, &p.to)?;
    let step = match p.step.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => parse_step(s).map_err(|e| ApiError::bad_request(format!("step: {e}")))?,
        None => ((to - from) / 300).max(1_000_000),
    };
    if (to - from) / step >= MAX_STEPS {
        return Err(ApiError::bad_request(format!(
            "step: {} steps in the window; at most {MAX_STEPS} (use a larger step)",
            (to - from) / step + 1
        )));
    }
    let by = match p.group_by.as_deref().unwrap_or("state") {
        "state" => SeriesBy::State,
        "node" => SeriesBy::Node,
        other => {
            return Err(ApiError::bad_request(format!(
                "group_by: `{other}` is not one of state, node"
            )));
        }
    };
    let known_at = instant_param("known_at", &p.known_at)?;
    let only: Option<HashSet<String>> = match p.incident.as_deref().filter(|s| !s.is_empty()) {
        Some(id) => Some(
            super::reports::find_incident(&app, id, known_at)
                .await?
                .devices
                .into_iter()
                .collect(),
        ),
        None => None,
    };
    let shared = app.shared(known_at).await?;
    let b = blocking(move || {
        let devices = by_device(&shared.intervals).filter(|iv| {
            let device = &*iv[0].device;
            only.as_ref().is_none_or(|o| o.contains(device))
                && in_groups(iv, p.cluster.as_deref(), p.device_pool.as_deref())
                && p.home_node.as_ref().is_none_or(|h| {
                    interval_at(iv, to - 1)
                        .or(iv.last())
                        .is_some_and(|i| Some(h.as_str()) == i.home_node.as_deref())
                })
        });
        let points = state_series(devices, from, to, step, by);
        batch(series_schema(), &points).map_err(|e| ApiError::internal(e.to_string()))
    })
    .await?;
    rows(format, &[b])
}

/// Parameters of the annotations.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnnotationParams {
    /// Window start (RFC 3339 or epoch ms).
    from: Option<String>,
    /// Window end (exclusive).
    to: Option<String>,
    /// Only this cluster.
    cluster: Option<String>,
    /// `json` (default), `csv` or `arrow`.
    format: Option<String>,
}

/// One annotation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
struct Annotation {
    /// Sort key (RFC 3339 text with its fraction left out at whole seconds does not sort).
    #[serde(skip)]
    at: Us,
    time: String,
    time_end: String,
    kind: &'static str,
    cluster: String,
    target: String,
    text: String,
}

fn annotation_schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("time", ts.clone(), false),
        Field::new("time_end", ts, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("cluster", DataType::Utf8, false),
        Field::new("target", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
    ]))
}

/// Node and CTIManager events (`node_down`, `node_up`, `provider_out_of_service`,
/// `provider_in_service`) and maintenance windows in a window, for Grafana annotations:
/// `{time, time_end, kind, cluster, target, text}` (`time_end` = `time` but for maintenance
/// windows).
#[utoipa::path(get, path = "/api/v1/annotations", tag = "state", params(AnnotationParams),
    responses(
        (status = 200, description = "One row per event, by time", body = Vec<Object>),
        (status = 400, description = "Bad parameter", body = super::ErrorBody)))]
pub async fn annotations(
    State(app): State<AppState>,
    Query(p): Query<AnnotationParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let format = negotiate(p.format.as_deref(), &headers)?;
    let (from, to) = window(&p.from, &p.to)?;
    let shared = app.shared(None).await?;
    let b = blocking(move || {
        let cluster_ok = |c: &str| p.cluster.as_deref().is_none_or(|w| w == c);
        let mut out: Vec<Annotation> = Vec::new();
        for e in &shared.rows.node_events {
            if e.time >= from && e.time < to && cluster_ok(&e.cluster) {
                let cause = e
                    .cause
                    .as_deref()
                    .map_or_else(String::new, |c| format!(" ({c})"));
                out.push(Annotation {
                    at: e.time,
                    time: format_instant(e.time),
                    time_end: format_instant(e.time),
                    kind: e.kind,
                    cluster: e.cluster.to_string(),
                    target: e.target.to_string(),
                    text: format!("{} {}{cause}", e.kind.replace('_', " "), e.target),
                });
            }
        }
        for w in &shared.rows.windows {
            if w.start < to && w.end > from && cluster_ok(&w.cluster) {
                let reason = w
                    .reason
                    .as_deref()
                    .map_or_else(String::new, |r| format!(": {r}"));
                out.push(Annotation {
                    at: w.start,
                    time: format_instant(w.start),
                    time_end: format_instant(w.end),
                    kind: "maintenance_window",
                    cluster: w.cluster.to_string(),
                    target: w.target.to_string(),
                    text: format!("maintenance {} {}{reason}", w.scope, w.target),
                });
            }
        }
        // by time, each once
        out.sort();
        out.dedup();
        batch(annotation_schema(), &out).map_err(|e| ApiError::internal(e.to_string()))
    })
    .await?;
    rows(format, &[b])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps() {
        assert_eq!(parse_step("60"), Ok(60_000_000));
        assert_eq!(parse_step("30s"), Ok(30_000_000));
        assert_eq!(parse_step("5m"), Ok(300_000_000));
        assert_eq!(parse_step("1h"), Ok(3_600_000_000));
        assert_eq!(parse_step("1d"), Ok(86_400_000_000));
        assert_eq!(parse_step("500ms"), Ok(500_000));
        assert!(parse_step("0s").is_err());
        assert!(parse_step("5w").is_err());
        assert!(parse_step("abc").is_err());
    }
}
