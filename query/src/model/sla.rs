//! Availability by group and the SLA report (design.md §3): availability against a target per
//! group, error budget, outages, MTTR and longest outage, over arbitrary or calendar windows.

use std::collections::BTreeMap;

use serde::Serialize;

use callstate_schemas::Us;

use super::availability::Seconds;
use super::fleet::DeviceHistory;
use super::intervals::{ServiceInterval, by_device};
use super::rollup::Exclusions;
use super::rows::MaintenanceRow;
use super::ser;
pub use super::targets::{GroupBy, Targets};
use crate::error::Result;
use crate::exec::Cancel;

/// One group's availability over a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupAvailability {
    /// Window start.
    #[serde(serialize_with = "ser::instant")]
    pub window_start: Us,
    /// Window end (exclusive).
    #[serde(serialize_with = "ser::instant")]
    pub window_end: Us,
    /// Group key.
    pub group_key: String,
    /// Devices in the group.
    pub devices: u64,
    /// Summed seconds.
    #[serde(flatten)]
    pub seconds: Seconds,
    /// in / (in + out), or null.
    pub availability: Option<f64>,
}

/// Availability of every group over each of `windows` (window after window, groups by
/// name), one pass over the devices.
pub fn availability_over<'a>(
    devices: impl Iterator<Item = DeviceHistory<'a>>,
    maintenance: &[MaintenanceRow],
    windows: &[(Us, Us)],
    by: GroupBy,
    cancel: &Cancel,
) -> Result<Vec<GroupAvailability>> {
    let mut groups: BTreeMap<(usize, &'a str), (u64, Seconds)> = BTreeMap::new();
    let ex = Exclusions::new(maintenance);
    for (n, dev) in devices.enumerate() {
        if n % 512 == 0 {
            cancel.check()?;
        }
        let key = by.key(dev.intervals);
        for (w, &(from, to)) in windows.iter().enumerate() {
            let s = dev.seconds(from, to, &ex);
            let g = groups.entry((w, key)).or_default();
            g.0 += 1;
            g.1.add(&s);
        }
    }
    Ok(groups
        .into_iter()
        .map(|((w, group_key), (devices, seconds))| GroupAvailability {
            window_start: windows[w].0,
            window_end: windows[w].1,
            group_key: group_key.to_string(),
            devices,
            availability: seconds.availability(),
            seconds,
        })
        .collect())
}

/// Availability of every group over [from, to), from every device's final intervals (as
/// [`derive`](super::intervals::derive) gives them).
pub fn availability(
    intervals: &[ServiceInterval],
    maintenance: &[MaintenanceRow],
    from: Us,
    to: Us,
    by: GroupBy,
) -> Vec<GroupAvailability> {
    availability_over(
        histories(intervals),
        maintenance,
        &[(from, to)],
        by,
        &Cancel::new(),
    )
    .expect("not cancelled")
}

/// Every device's history, from final intervals grouped by device.
pub fn histories(intervals: &[ServiceInterval]) -> impl Iterator<Item = DeviceHistory<'_>> {
    by_device(intervals).map(|iv| DeviceHistory {
        intervals: iv,
        open: None,
        days: None,
    })
}

/// One row of the SLA report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlaRow {
    /// Window start.
    #[serde(serialize_with = "ser::instant")]
    pub window_start: Us,
    /// Window end (exclusive).
    #[serde(serialize_with = "ser::instant")]
    pub window_end: Us,
    /// Group key.
    pub group_key: String,
    /// Devices in the group.
    pub devices: u64,
    /// Availability, or null when nothing was measured.
    pub availability: Option<f64>,
    /// Target.
    pub target: f64,
    /// Whether availability ≥ target (null when nothing was measured).
    pub met: Option<bool>,
    /// Error budget: (1 − target) × measured seconds (in + out service).
    pub budget_allowed_s: f64,
    /// Out-of-service seconds.
    pub budget_used_s: f64,
    /// allowed − used (negative when breached).
    pub budget_remaining_s: f64,
    /// Outages.
    pub outages: u64,
    /// Mean time to repair, seconds.
    pub mttr_s: Option<f64>,
    /// Longest outage, seconds.
    pub longest_outage_s: f64,
    /// In service, seconds.
    pub in_service_s: f64,
    /// Unknown, seconds.
    pub unknown_s: f64,
    /// Excluded by maintenance windows, seconds.
    pub excluded_s: f64,
}

/// The SLA rows of availability rows.
fn to_sla(rows: Vec<GroupAvailability>, by: GroupBy, targets: &Targets) -> Vec<SlaRow> {
    rows.into_iter()
        .map(|g| {
            let s = &g.seconds;
            let target = targets.of(by, &g.group_key);
            let measured = s.in_service_s + s.out_of_service_s;
            let allowed = (1.0 - target) * measured;
            SlaRow {
                met: g.availability.map(|a| a >= target),
                budget_allowed_s: allowed,
                budget_used_s: s.out_of_service_s,
                budget_remaining_s: allowed - s.out_of_service_s,
                outages: s.outages,
                mttr_s: s.mttr_s(),
                longest_outage_s: s.longest_outage_s,
                in_service_s: s.in_service_s,
                unknown_s: s.unknown_s,
                excluded_s: s.excluded_s,
                availability: g.availability,
                target,
                window_start: g.window_start,
                window_end: g.window_end,
                group_key: g.group_key,
                devices: g.devices,
            }
        })
        .collect()
}

/// The SLA report of every group over [from, to), from every device's final intervals.
pub fn sla(
    intervals: &[ServiceInterval],
    maintenance: &[MaintenanceRow],
    from: Us,
    to: Us,
    by: GroupBy,
    targets: &Targets,
) -> Vec<SlaRow> {
    to_sla(
        availability(intervals, maintenance, from, to, by),
        by,
        targets,
    )
}

/// The SLA report over each of `windows` (see
/// [`report_windows`](super::calendar::report_windows)), window after window.
pub fn sla_over<'a>(
    devices: impl Iterator<Item = DeviceHistory<'a>>,
    maintenance: &[MaintenanceRow],
    windows: &[(Us, Us)],
    by: GroupBy,
    targets: &Targets,
    cancel: &Cancel,
) -> Result<Vec<SlaRow>> {
    let rows = availability_over(devices, maintenance, windows, by, cancel)?;
    Ok(to_sla(rows, by, targets))
}
