//! The figures of the monthly SLA report, per cluster and group, computed with the functions
//! that answer the API's `sla` and `incidents` (so each equals the API's answer for the same
//! window, grouping and cluster filter).

use std::collections::BTreeMap;

use serde::Serialize;

use callstate_query::model::calendar::{Period, calendar_windows};
use callstate_query::model::fleet::{DeviceHistory, Fleet, in_groups};
use callstate_query::model::incidents::{Incident, IncidentOptions, detect};
use callstate_query::model::rows::MaintenanceRow;
use callstate_query::model::sla::{GroupBy, SlaRow, sla_over};
use callstate_query::model::tally::device_seconds;
use callstate_query::{Cancel, Result};
use callstate_schemas::{ServiceState, US_PER_S, Us};

use crate::month::Month;

/// What a report covers and how it groups.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// The month.
    pub month: Month,
    /// Groups inside each cluster.
    pub group_by: GroupBy,
    /// Incident detection (the API's defaults unless set).
    pub incidents: IncidentOptions,
    /// How many worst devices per cluster.
    pub worst: usize,
    /// When the report was made (shown; nothing is computed from it).
    pub generated_at: Us,
}

impl ReportOptions {
    /// A report of `month` grouped by `group_by`, with the API's defaults otherwise.
    pub fn new(month: Month, group_by: GroupBy, generated_at: Us) -> Self {
        ReportOptions {
            month,
            group_by,
            incidents: IncidentOptions::default(),
            worst: 10,
            generated_at,
        }
    }
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct SlaReport {
    /// `YYYY-MM`.
    pub month: String,
    /// Time zone of the month and its days.
    pub tz: String,
    /// Month start.
    pub from: Us,
    /// Month end (exclusive).
    pub to: Us,
    /// The previous month's label.
    pub previous_month: String,
    /// What groups are made of.
    pub group_by: &'static str,
    /// When it was made.
    pub generated_at: Us,
    /// Incidents: fewest devices.
    pub incident_min_devices: usize,
    /// One section per cluster, by name.
    pub clusters: Vec<ClusterReport>,
}

/// A group's figures: the month, the month before, and each day.
#[derive(Debug, Clone, Serialize)]
pub struct GroupFigures {
    /// The month's row.
    pub month: SlaRow,
    /// The previous month's row, if the group had devices then.
    pub previous: Option<SlaRow>,
    /// One row per local day of the month.
    pub daily: Vec<SlaRow>,
}

impl GroupFigures {
    /// Availability change from the previous month, in percentage points.
    pub fn change_pp(&self) -> Option<f64> {
        let now = self.month.availability?;
        let before = self.previous.as_ref()?.availability?;
        Some((now - before) * 100.0)
    }
}

/// One cluster's section.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterReport {
    /// Cluster.
    pub cluster: String,
    /// The cluster as a whole (the API's `group_by=cluster` row).
    pub summary: GroupFigures,
    /// Its groups (the API's rows with `cluster=` this one).
    pub groups: Vec<GroupFigures>,
    /// Incidents starting in the month.
    pub incidents: Vec<IncidentFigures>,
    /// The worst devices (availability below 1, lowest first).
    pub worst: Vec<SlaRow>,
    /// The maintenance windows that excluded time in the month.
    pub exclusions: Vec<Exclusion>,
}

/// An incident and its recovery curve.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentFigures {
    /// The API's incident.
    pub incident: Incident,
    /// Seconds after the start at which each affected device was back in service, sorted
    /// (devices not back by the end of the month are missing).
    pub recovered_after_s: Vec<f64>,
}

/// One maintenance window applied: the audit trail of excluded time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exclusion {
    /// `cluster`, `node`, `device_pool` or `device`.
    pub scope: String,
    /// Its target.
    pub target: String,
    /// Window start.
    pub start: Us,
    /// Window end.
    pub end: Us,
    /// Why.
    pub reason: Option<String>,
    /// Devices with excluded time in the month.
    pub devices: u64,
    /// Device-seconds it excluded in the month (where windows overlap, each counts its own).
    pub excluded_s: f64,
}

fn keyed(rows: Vec<SlaRow>) -> BTreeMap<String, Vec<SlaRow>> {
    let mut m: BTreeMap<String, Vec<SlaRow>> = BTreeMap::new();
    for r in rows {
        m.entry(r.group_key.clone()).or_default().push(r);
    }
    m
}

/// Rows of `devices` for the month, the month before and each day, grouped by `by`.
fn figures<'a>(
    devices: &[DeviceHistory<'a>],
    fleet: &dyn Fleet,
    o: &ReportOptions,
    by: GroupBy,
    days: &[(Us, Us)],
    cancel: &Cancel,
) -> Result<Vec<GroupFigures>> {
    let m = &o.month;
    let run = |w: &[(Us, Us)]| {
        sla_over(
            devices.iter().copied(),
            fleet.windows(),
            w,
            by,
            fleet.targets(),
            cancel,
        )
    };
    let now = run(&[(m.from, m.to)])?;
    let mut before = keyed(run(&[(m.prev_from, m.from)])?);
    let mut daily = keyed(run(days)?);
    Ok(now
        .into_iter()
        .map(|row| GroupFigures {
            previous: before.remove(&row.group_key).and_then(|mut v| v.pop()),
            daily: daily.remove(&row.group_key).unwrap_or_default(),
            month: row,
        })
        .collect())
}

/// The month's report of every cluster.
pub fn build(fleet: &dyn Fleet, o: &ReportOptions, cancel: &Cancel) -> Result<SlaReport> {
    let m = &o.month;
    // the month before is in the report too (its availability: from frozen rollups if its
    // intervals were retired); the month's incidents need its intervals
    fleet.availability_known(&[(m.prev_from, m.from)])?;
    fleet.intervals_known(m.from)?;
    let days = calendar_windows(m.from, m.to, Period::Day, m.tz);
    let all: Vec<DeviceHistory<'_>> = fleet.devices().collect();
    let clusters = figures(&all, fleet, o, GroupBy::Cluster, &days, cancel)?;
    let incidents = detect(fleet, m.from, m.to, &o.incidents, cancel)?;
    let mut out = Vec::new();
    for summary in clusters {
        cancel.check()?;
        let name = summary.month.group_key.clone();
        let devices: Vec<DeviceHistory<'_>> = all
            .iter()
            .copied()
            .filter(|d| in_groups(d, Some(&name), None))
            .collect();
        let groups = figures(&devices, fleet, o, o.group_by, &days, cancel)?;
        let worst = worst(&devices, fleet, o, cancel)?;
        let incidents = incidents
            .iter()
            .filter(|i| i.cluster == name)
            .map(|i| IncidentFigures {
                recovered_after_s: recovery(fleet, i, m.to),
                incident: i.clone(),
            })
            .collect();
        let exclusions = exclusions(&devices, fleet.windows(), &name, m.from, m.to, cancel)?;
        out.push(ClusterReport {
            cluster: name,
            summary,
            groups,
            incidents,
            worst,
            exclusions,
        });
    }
    Ok(SlaReport {
        month: m.label(),
        tz: m.tz.name().to_string(),
        from: m.from,
        to: m.to,
        previous_month: m.prev_label(),
        group_by: o.group_by.as_str(),
        generated_at: o.generated_at,
        incident_min_devices: o.incidents.min_devices,
        clusters: out,
    })
}

/// The devices with the lowest availability below 1 (then most out-of-service time, then
/// name), at most `o.worst`.
fn worst(
    devices: &[DeviceHistory<'_>],
    fleet: &dyn Fleet,
    o: &ReportOptions,
    cancel: &Cancel,
) -> Result<Vec<SlaRow>> {
    let m = &o.month;
    let mut rows: Vec<SlaRow> = sla_over(
        devices.iter().copied(),
        fleet.windows(),
        &[(m.from, m.to)],
        GroupBy::Device,
        fleet.targets(),
        cancel,
    )?
    .into_iter()
    .filter(|r| r.availability.is_some_and(|a| a < 1.0))
    .collect();
    rows.sort_by(|a, b| {
        a.availability
            .partial_cmp(&b.availability)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(b.budget_used_s.total_cmp(&a.budget_used_s))
            .then_with(|| a.group_key.cmp(&b.group_key))
    });
    rows.truncate(o.worst);
    Ok(rows)
}

/// When each affected device was first in service again after the incident's start.
fn recovery(fleet: &dyn Fleet, i: &Incident, until: Us) -> Vec<f64> {
    let mut out: Vec<f64> = i
        .devices
        .iter()
        .filter_map(|name| {
            let d = fleet.device(name)?;
            let iv = d.window(i.started_at, until);
            let down = iv
                .iter()
                .position(|x| x.state == ServiceState::OutOfService)?;
            iv[down..]
                .iter()
                .find(|x| x.state == ServiceState::InService && x.valid_from > i.started_at)
                .map(|x| (x.valid_from - i.started_at) as f64 / US_PER_S as f64)
        })
        .collect();
    out.sort_by(f64::total_cmp);
    out
}

/// Each maintenance window of the cluster that overlaps [from, to), with the device-seconds
/// it excluded there.
fn exclusions(
    devices: &[DeviceHistory<'_>],
    windows: &[MaintenanceRow],
    cluster: &str,
    from: Us,
    to: Us,
    cancel: &Cancel,
) -> Result<Vec<Exclusion>> {
    let mut out = Vec::new();
    for w in windows
        .iter()
        .filter(|w| &*w.cluster == cluster && w.start < to && w.end > from)
    {
        cancel.check()?;
        let (a, b) = (w.start.max(from), w.end.min(to));
        let one = std::slice::from_ref(w);
        let (mut n, mut s) = (0u64, 0.0);
        for d in devices {
            let x = device_seconds(&d.window(a, b), a, b, one).excluded_s;
            if x > 0.0 {
                n += 1;
                s += x;
            }
        }
        out.push(Exclusion {
            scope: w.scope.to_string(),
            target: w.target.to_string(),
            start: w.start,
            end: w.end,
            reason: w.reason.as_deref().map(str::to_string),
            devices: n,
            excluded_s: s,
        });
    }
    Ok(out)
}
