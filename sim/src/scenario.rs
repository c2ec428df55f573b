//! Scenario files (TOML): topology size, traffic, delivery faults and scripted or random
//! failures. Built-in scenarios live in `sim/scenarios/*.toml` and are compiled in.

use crate::error::SimError;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

/// A parsed scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Scenario name.
    pub name: String,
    /// Simulation start (RFC 3339).
    #[serde(default = "default_start")]
    pub start: String,
    /// How long to simulate (`24h`, `90m`, `1d2h`).
    #[serde(default = "default_duration")]
    pub duration: String,
    /// Cluster sizes.
    #[serde(default)]
    pub topology: TopologySpec,
    /// Call traffic.
    #[serde(default)]
    pub traffic: TrafficSpec,
    /// Delivery faults (late, out-of-order, duplicated events): in the stream, not in truth.
    #[serde(default)]
    pub delivery: DeliverySpec,
    /// Scripted failures.
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Random failures drawn from the seed.
    #[serde(default)]
    pub random: RandomSpec,
}

fn default_start() -> String {
    "2026-11-24T00:00:00Z".into()
}
fn default_duration() -> String {
    "24h".into()
}

/// Sizes of the simulated estate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopologySpec {
    /// Clusters.
    pub clusters: usize,
    /// CUCM nodes per cluster (each runs a CTIManager).
    pub nodes: usize,
    /// Sites per cluster.
    pub sites: usize,
    /// Device pools per cluster.
    pub pools: usize,
    /// Devices per cluster.
    pub devices: usize,
    /// Share of CTI Ports.
    pub cti_ports: f64,
    /// Share of CTI Route Points.
    pub cti_route_points: f64,
    /// Share of CTI Remote Devices.
    pub cti_remote_devices: f64,
}

impl Default for TopologySpec {
    fn default() -> Self {
        TopologySpec {
            clusters: 1,
            nodes: 4,
            sites: 2,
            pools: 8,
            devices: 2_000,
            cti_ports: 0.12,
            cti_route_points: 0.03,
            cti_remote_devices: 0.05,
        }
    }
}

/// Call traffic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrafficSpec {
    /// Multiplier of every call arrival rate.
    pub scale: f64,
    /// Share of calls that end in a consultation transfer.
    pub transfer_ratio: f64,
    /// Share of active calls dropped when their device's node fails (the rest are preserved).
    pub drop_on_node_failure: f64,
}

impl Default for TrafficSpec {
    fn default() -> Self {
        TrafficSpec {
            scale: 1.0,
            transfer_ratio: 0.05,
            drop_on_node_failure: 0.5,
        }
    }
}

/// Delivery faults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySpec {
    /// Share of events delivered late.
    pub late_ratio: f64,
    /// Longest lateness.
    pub late_max: String,
    /// Share of events delivered after one or more later events (a few seconds).
    pub reorder_ratio: f64,
    /// Share of events delivered twice.
    pub duplicate_ratio: f64,
}

impl Default for DeliverySpec {
    fn default() -> Self {
        DeliverySpec {
            late_ratio: 0.0,
            late_max: "5m".into(),
            reorder_ratio: 0.0,
            duplicate_ratio: 0.0,
        }
    }
}

/// Random failures.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RandomSpec {
    /// How many random faults to inject.
    pub faults: usize,
}

/// A scripted failure. `at` is an offset from the start (`10h`, `10h30m`).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// A CUCM node crashes; its devices fail over and re-home after it returns.
    NodeCrash {
        /// When.
        at: String,
        /// Node name (e.g. `CL1-cucm2`).
        node: String,
        /// How long it stays down.
        down_for: String,
    },
    /// The CTIManager the cluster's provider is on crashes; JTAPI reconnects to the backup.
    CtimanagerCrash {
        /// When.
        at: String,
        /// Cluster name (default: the first).
        #[serde(default)]
        cluster: Option<String>,
        /// Time until the provider is back on the backup CTIManager.
        #[serde(default = "default_reconnect")]
        reconnect_after: String,
    },
    /// A site loses its network: its devices go out of service until it returns.
    SiteOutage {
        /// When.
        at: String,
        /// Site name (e.g. `CL1-S2`).
        site: String,
        /// How long.
        duration: String,
    },
    /// Devices that unregister and register again several times.
    DeviceFlap {
        /// When.
        at: String,
        /// How many devices (chosen by the seed).
        count: usize,
        /// Flaps per device.
        flaps: usize,
        /// Time between flaps.
        period: String,
    },
    /// Devices that fail to register a few times before they succeed.
    RegistrationFailure {
        /// When.
        at: String,
        /// How many devices.
        count: usize,
        /// Failed attempts before success.
        attempts: usize,
        /// Time between attempts.
        retry_every: String,
    },
    /// An operator maintenance window; with `restart`, a node is restarted inside it.
    Maintenance {
        /// Window start.
        at: String,
        /// Window length.
        duration: String,
        /// `cluster`, `node`, `device_pool` or `device`.
        scope: String,
        /// Name of the cluster, node, pool or device.
        target: String,
        /// Restart the node inside the window (scope `node` only).
        #[serde(default)]
        restart: bool,
        /// Reason given.
        #[serde(default = "default_reason")]
        reason: String,
    },
    /// Every node of a cluster restarted one after the other, each in its maintenance window.
    RollingUpgrade {
        /// First window start.
        at: String,
        /// Cluster name (default: the first).
        #[serde(default)]
        cluster: Option<String>,
        /// Window per node.
        per_node: String,
    },
    /// The bridge goes silent (no events, no heartbeat), then reconnects and resynchronizes.
    CollectorSilence {
        /// When.
        at: String,
        /// How long.
        duration: String,
        /// Cluster whose bridge goes silent (default: the first).
        #[serde(default)]
        cluster: Option<String>,
    },
}

fn default_reconnect() -> String {
    "20s".into()
}
fn default_reason() -> String {
    "planned maintenance".into()
}

/// Parses a duration in the contract's one grammar ([`callstate_schemas::parse_duration`]:
/// `24h`, `90m`, `1h30m`, `45s`, `500ms`, `1d`, or a number of seconds).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    callstate_schemas::parse_duration(text)
        .map(Duration::microseconds)
        .map_err(|e| e.to_string())
}

/// Names of the built-in scenarios.
pub const BUILT_IN: &[&str] = &[
    "quiet-day",
    "node-failover",
    "ctimanager-failover",
    "rolling-upgrade",
    "site-outage",
    "chaos",
    "demo",
];

fn built_in_text(name: &str) -> Option<&'static str> {
    Some(match name {
        "quiet-day" => include_str!("../scenarios/quiet-day.toml"),
        "node-failover" => include_str!("../scenarios/node-failover.toml"),
        "ctimanager-failover" => include_str!("../scenarios/ctimanager-failover.toml"),
        "rolling-upgrade" => include_str!("../scenarios/rolling-upgrade.toml"),
        "site-outage" => include_str!("../scenarios/site-outage.toml"),
        "chaos" => include_str!("../scenarios/chaos.toml"),
        "demo" => include_str!("../scenarios/demo.toml"),
        _ => return None,
    })
}

impl Scenario {
    /// Parses a scenario from TOML text.
    pub fn from_toml(text: &str) -> Result<Scenario, SimError> {
        let s: Scenario = toml::from_str(text).map_err(|e| SimError::Scenario(e.to_string()))?;
        s.validate().map_err(SimError::Scenario)?;
        Ok(s)
    }

    /// A built-in scenario by name, or a scenario file by path.
    pub fn load(name_or_path: &str) -> Result<Scenario, SimError> {
        if let Some(text) = built_in_text(name_or_path) {
            return Scenario::from_toml(text);
        }
        let text = std::fs::read_to_string(name_or_path).map_err(|e| {
            SimError::Scenario(format!(
                "`{name_or_path}` is neither a built-in scenario ({}) nor a readable file: {e}",
                BUILT_IN.join(", ")
            ))
        })?;
        Scenario::from_toml(&text).map_err(|e| SimError::Scenario(format!("{name_or_path}: {e}")))
    }

    /// Start time.
    pub fn start_time(&self) -> Result<DateTime<Utc>, SimError> {
        self.start_time_str().map_err(SimError::Scenario)
    }

    /// End time.
    pub fn end_time(&self) -> Result<DateTime<Utc>, SimError> {
        self.end_time_str().map_err(SimError::Scenario)
    }

    fn start_time_str(&self) -> Result<DateTime<Utc>, String> {
        callstate_schemas::parse_time(&self.start).map_err(|e| format!("start: {e}"))
    }

    fn end_time_str(&self) -> Result<DateTime<Utc>, String> {
        Ok(self.start_time_str()?
            + parse_duration(&self.duration).map_err(|e| format!("duration: {e}"))?)
    }

    fn validate(&self) -> Result<(), String> {
        self.end_time_str()?;
        parse_duration(&self.delivery.late_max).map_err(|e| format!("delivery.late_max: {e}"))?;
        let t = &self.topology;
        if t.clusters == 0 || t.nodes == 0 || t.pools == 0 || t.sites == 0 {
            return Err("topology: clusters, nodes, pools and sites must be at least 1".into());
        }
        if t.cti_ports + t.cti_route_points + t.cti_remote_devices > 1.0 {
            return Err("topology: device type shares add up to more than 1".into());
        }
        for (i, f) in self.faults.iter().enumerate() {
            let durations: Vec<&String> = match f {
                Fault::NodeCrash { at, down_for, .. } => vec![at, down_for],
                Fault::CtimanagerCrash {
                    at,
                    reconnect_after,
                    ..
                } => vec![at, reconnect_after],
                Fault::SiteOutage { at, duration, .. }
                | Fault::Maintenance { at, duration, .. }
                | Fault::CollectorSilence { at, duration, .. } => vec![at, duration],
                Fault::DeviceFlap { at, period, .. } => vec![at, period],
                Fault::RegistrationFailure {
                    at, retry_every, ..
                } => vec![at, retry_every],
                Fault::RollingUpgrade { at, per_node, .. } => vec![at, per_node],
            };
            for d in durations {
                parse_duration(d).map_err(|e| format!("faults[{i}]: {e}"))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::minutes(90));
        assert_eq!(parse_duration("1d").unwrap(), Duration::hours(24));
        assert_eq!(
            parse_duration("250ms").unwrap(),
            Duration::milliseconds(250)
        );
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("h").is_err());
    }

    #[test]
    fn built_ins_parse() {
        for name in BUILT_IN {
            Scenario::load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn bad_files_name_the_problem() {
        let err = Scenario::from_toml("name = \"x\"\nduration = \"5q\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown unit"), "{err}");
        let err = Scenario::from_toml("name = \"x\"\n[[faults]]\nkind = \"meteor\"\nat = \"1h\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("meteor"), "{err}");
    }
}
