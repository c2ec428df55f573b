//! Availability by group and the SLA report (design.md §3): availability against a target per
//! group, error budget, outages, MTTR and longest outage, over arbitrary or calendar windows.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use callstate_schemas::Us;

use super::availability::{Seconds, device_seconds};
use super::intervals::{DeviceIndex, ServiceInterval};
use super::rows::MaintenanceRow;
use super::ser;

/// What availability is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// Each device.
    Device,
    /// Device pool.
    DevicePool,
    /// Home node (the devices that belong to a node; their time on a backup node counts too).
    Node,
    /// Cluster.
    Cluster,
    /// Device type.
    DeviceType,
}

impl FromStr for GroupBy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "device" => GroupBy::Device,
            "device_pool" => GroupBy::DevicePool,
            "node" => GroupBy::Node,
            "cluster" => GroupBy::Cluster,
            "device_type" => GroupBy::DeviceType,
            _ => {
                return Err(format!(
                    "unknown group_by `{s}`; expected device, device_pool, node, cluster or device_type"
                ));
            }
        })
    }
}

impl GroupBy {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Device => "device",
            GroupBy::DevicePool => "device_pool",
            GroupBy::Node => "node",
            GroupBy::Cluster => "cluster",
            GroupBy::DeviceType => "device_type",
        }
    }

    fn key(self, iv: &[ServiceInterval]) -> String {
        let last = iv.last().expect("a device has intervals");
        let v = match self {
            GroupBy::Device => Some(&last.device),
            GroupBy::DevicePool => last.device_pool.as_ref(),
            GroupBy::Node => iv.iter().rev().find_map(|i| i.home_node.as_ref()),
            GroupBy::Cluster => Some(&last.cluster),
            GroupBy::DeviceType => last.device_type.as_ref(),
        };
        v.map_or_else(|| "(none)".to_string(), |s| s.to_string())
    }
}

/// SLA targets: a default, and overrides per group (`[targets.device_pool] "DP-HQ" = 0.9995`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    /// Target for groups without an override (0.999 = 99.9%).
    #[serde(default = "default_target")]
    pub default: f64,
    /// Overrides: group_by name → group → target.
    #[serde(default)]
    pub targets: BTreeMap<String, BTreeMap<String, f64>>,
}

fn default_target() -> f64 {
    0.999
}

impl Default for Targets {
    fn default() -> Self {
        Targets {
            default: default_target(),
            targets: BTreeMap::new(),
        }
    }
}

impl Targets {
    /// Parses a targets file (TOML).
    pub fn from_toml(text: &str) -> crate::error::Result<Targets> {
        use crate::error::QueryError;
        let t: Targets = toml::from_str(text).map_err(|e| QueryError::bad("targets", e))?;
        for (by, groups) in &t.targets {
            GroupBy::from_str(by).map_err(|e| QueryError::bad(&format!("targets.{by}"), e))?;
            for (g, v) in groups {
                if !(0.0..=1.0).contains(v) {
                    let name = format!("targets.{by}.{g}");
                    return Err(QueryError::bad(
                        &name,
                        format!("{v} is not between 0 and 1"),
                    ));
                }
            }
        }
        if !(0.0..=1.0).contains(&t.default) {
            let why = format!("{} is not between 0 and 1", t.default);
            return Err(QueryError::bad("default", why));
        }
        Ok(t)
    }

    /// The target of a group.
    pub fn of(&self, by: GroupBy, group: &str) -> f64 {
        self.targets
            .get(by.as_str())
            .and_then(|m| m.get(group))
            .copied()
            .unwrap_or(self.default)
    }
}

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

/// Availability of every group over [from, to).
pub fn availability(
    intervals: &[ServiceInterval],
    windows: &[MaintenanceRow],
    from: Us,
    to: Us,
    by: GroupBy,
) -> Vec<GroupAvailability> {
    let idx = DeviceIndex::new(intervals);
    let mut groups: BTreeMap<String, (u64, Seconds)> = BTreeMap::new();
    let mut devices: Vec<&&str> = idx.devices().collect();
    devices.sort();
    for d in devices {
        let iv = idx.device(d);
        let s = device_seconds(iv, from, to, windows);
        let g = groups.entry(by.key(iv)).or_default();
        g.0 += 1;
        g.1.add(&s);
    }
    groups
        .into_iter()
        .map(|(group_key, (devices, seconds))| GroupAvailability {
            window_start: from,
            window_end: to,
            group_key,
            devices,
            availability: seconds.availability(),
            seconds,
        })
        .collect()
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

/// The SLA report of every group over [from, to).
pub fn sla(
    intervals: &[ServiceInterval],
    windows: &[MaintenanceRow],
    from: Us,
    to: Us,
    by: GroupBy,
    targets: &Targets,
) -> Vec<SlaRow> {
    availability(intervals, windows, from, to, by)
        .into_iter()
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

/// The SLA report over each of `windows` (see
/// [`report_windows`](super::calendar::report_windows)), window after window.
pub fn sla_over(
    intervals: &[ServiceInterval],
    maintenance: &[MaintenanceRow],
    windows: &[(Us, Us)],
    by: GroupBy,
    targets: &Targets,
) -> Vec<SlaRow> {
    windows
        .iter()
        .flat_map(|&(a, b)| sla(intervals, maintenance, a, b, by, targets))
        .collect()
}

/// Availability over each of `windows`, window after window.
pub fn availability_over(
    intervals: &[ServiceInterval],
    maintenance: &[MaintenanceRow],
    windows: &[(Us, Us)],
    by: GroupBy,
) -> Vec<GroupAvailability> {
    windows
        .iter()
        .flat_map(|&(a, b)| availability(intervals, maintenance, a, b, by))
        .collect()
}
