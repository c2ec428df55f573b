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
use super::shares::{in_shares, threads_for};
use super::tally::Total;
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

/// Each group's sums over each window, for a share of the devices.
fn sums_of<'a>(
    devices: &[DeviceHistory<'a>],
    ex: &Exclusions<'_>,
    windows: &[(Us, Us)],
    by: GroupBy,
    cancel: &Cancel,
) -> Result<hashbrown::HashMap<&'a str, Vec<Total>>> {
    let mut groups: hashbrown::HashMap<&'a str, Vec<Total>> = hashbrown::HashMap::new();
    for (n, dev) in devices.iter().enumerate() {
        if n % 512 == 0 {
            cancel.check()?;
        }
        let sums = groups
            .entry(dev.group(by))
            .or_insert_with(|| vec![Total::default(); windows.len()]);
        let reader = dev.reader(ex);
        for (sum, &(from, to)) in sums.iter_mut().zip(windows) {
            sum.add(&reader.tally(from, to));
        }
    }
    Ok(groups)
}

/// Availability of every group over each of `windows` (window after window, groups by
/// name), one pass over the devices, split between the cores. Sums are exact (integer
/// microseconds), so the split does not change a bit of the answer.
pub fn availability_over<'a>(
    devices: impl Iterator<Item = DeviceHistory<'a>>,
    maintenance: &[MaintenanceRow],
    windows: &[(Us, Us)],
    by: GroupBy,
    cancel: &Cancel,
) -> Result<Vec<GroupAvailability>> {
    let devices: Vec<DeviceHistory<'a>> = devices.collect();
    let threads = threads_for(devices.len());
    availability_split(devices, maintenance, windows, by, cancel, threads)
}

/// [`availability_over`] on `threads` threads (at least one), each with a share of the
/// devices: the answer does not depend on it.
pub fn availability_split<'a>(
    devices: Vec<DeviceHistory<'a>>,
    maintenance: &[MaintenanceRow],
    windows: &[(Us, Us)],
    by: GroupBy,
    cancel: &Cancel,
    threads: usize,
) -> Result<Vec<GroupAvailability>> {
    let ex = Exclusions::new(maintenance);
    let parts = in_shares(&devices, threads, "availability", |share| {
        sums_of(share, &ex, windows, by, cancel)
    })?;
    let mut groups: BTreeMap<&'a str, Vec<Total>> = BTreeMap::new();
    for part in parts {
        for (key, sums) in part {
            match groups.get_mut(key) {
                Some(have) => have.iter_mut().zip(&sums).for_each(|(a, b)| a.merge(b)),
                None => {
                    groups.insert(key, sums);
                }
            }
        }
    }
    let mut out = Vec::with_capacity(groups.len() * windows.len());
    for (w, &(window_start, window_end)) in windows.iter().enumerate() {
        for (group_key, sums) in &groups {
            let seconds = sums[w].seconds();
            out.push(GroupAvailability {
                window_start,
                window_end,
                group_key: group_key.to_string(),
                devices: sums[w].devices,
                availability: seconds.availability(),
                seconds,
            });
        }
    }
    Ok(out)
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
        frozen: None,
        intervals: iv.into(),
        open: None,
        rollup: None,
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
