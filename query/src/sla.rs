//! Availability by group and the SLA report (design.md §3): availability against a target per
//! group, error budget, outages, MTTR and longest outage, over arbitrary or calendar windows.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::availability::{Seconds, device_seconds};
use crate::intervals::{DeviceIndex, ServiceInterval};
use crate::rows::{MaintenanceRow, Us};

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
    pub fn from_toml(text: &str) -> Result<Targets, String> {
        let t: Targets = toml::from_str(text).map_err(|e| e.to_string())?;
        for (by, groups) in &t.targets {
            GroupBy::from_str(by)?;
            for (g, v) in groups {
                if !(0.0..=1.0).contains(v) {
                    return Err(format!("targets.{by}.{g}: {v} is not between 0 and 1"));
                }
            }
        }
        if !(0.0..=1.0).contains(&t.default) {
            return Err(format!("default: {} is not between 0 and 1", t.default));
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
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct GroupAvailability {
    /// Window start (RFC 3339).
    pub from: String,
    /// Window end.
    pub to: String,
    /// Group key.
    pub group: String,
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
    let fmt = |t: Us| {
        DateTime::from_timestamp_micros(t)
            .map_or_else(String::new, |t| callstate_schemas::format_time(&t))
    };
    groups
        .into_iter()
        .map(|(group, (devices, seconds))| GroupAvailability {
            from: fmt(from),
            to: fmt(to),
            group,
            devices,
            availability: seconds.availability(),
            seconds,
        })
        .collect()
}

/// One row of the SLA report.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SlaRow {
    /// Window start.
    pub from: String,
    /// Window end.
    pub to: String,
    /// Group key.
    pub group: String,
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
            let target = targets.of(by, &g.group);
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
                from: g.from,
                to: g.to,
                group: g.group,
                devices: g.devices,
            }
        })
        .collect()
}

/// A calendar period length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// Calendar days.
    Day,
    /// ISO weeks (Monday to Monday).
    Week,
    /// Calendar months.
    Month,
}

impl FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "day" => Ok(Period::Day),
            "week" => Ok(Period::Week),
            "month" => Ok(Period::Month),
            _ => Err(format!("unknown period `{s}`; expected day, week or month")),
        }
    }
}

/// Parses an IANA time zone name.
pub fn parse_tz(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>()
        .map_err(|_| format!("unknown time zone `{name}` (IANA names, e.g. Europe/Paris, UTC)"))
}

fn local_midnight(tz: Tz, d: NaiveDate) -> Us {
    // Midnight may not exist (DST gap): take the first instant of the day that does.
    let mut t = d.and_hms_opt(0, 0, 0).expect("midnight");
    for _ in 0..4 {
        if let Some(dt) = tz.from_local_datetime(&t).earliest() {
            return dt.with_timezone(&Utc).timestamp_micros();
        }
        t += Duration::hours(1);
    }
    tz.from_utc_datetime(&t).timestamp_micros()
}

/// Calendar periods in `tz` that overlap [from, to), clipped to it.
pub fn calendar_windows(from: Us, to: Us, period: Period, tz: Tz) -> Vec<(Us, Us)> {
    let Some(start) = DateTime::from_timestamp_micros(from) else {
        return Vec::new();
    };
    let local = start.with_timezone(&tz).date_naive();
    let mut d = match period {
        Period::Day => local,
        Period::Week => local - Duration::days(local.weekday().num_days_from_monday() as i64),
        Period::Month => local.with_day(1).expect("day 1"),
    };
    let mut out = Vec::new();
    loop {
        let next = match period {
            Period::Day => d + Duration::days(1),
            Period::Week => d + Duration::days(7),
            Period::Month => {
                let (y, m) = if d.month() == 12 {
                    (d.year() + 1, 1)
                } else {
                    (d.year(), d.month() + 1)
                };
                NaiveDate::from_ymd_opt(y, m, 1).expect("first of month")
            }
        };
        let (a, b) = (local_midnight(tz, d), local_midnight(tz, next));
        if a >= to {
            break;
        }
        if b > from {
            out.push((a.max(from), b.min(to)));
        }
        d = next;
    }
    out
}
