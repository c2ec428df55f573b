//! Ground truth: what the simulator did, recorded as it did it (never re-read from the
//! event stream). Tests, benchmarks and the demo check answers against it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use callstate_schemas::ServiceState;

const UNKNOWN: &str = ServiceState::Unknown.as_str();

/// A device's service state over an interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Start (inclusive).
    pub from: DateTime<Utc>,
    /// End (exclusive); the end of the simulation for the last interval.
    pub to: DateTime<Utc>,
    /// `in_service`, `out_of_service` or `unknown`.
    pub state: String,
    /// Node handling the device (in service only).
    pub node: Option<String>,
    /// Why it is out of service.
    pub cause: Option<String>,
}

/// A device's move between nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Move {
    /// Device.
    pub device: String,
    /// When it came in service on `to`.
    pub at: DateTime<Utc>,
    /// Node it was last in service on.
    pub from: String,
    /// Node it is in service on now.
    pub to: String,
    /// For re-homes: it had to wait for its calls to end.
    pub waited_for_calls: bool,
}

/// One call leg observed on a device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Call id.
    pub call_id: String,
    /// Device.
    pub device: String,
    /// Start.
    pub start: DateTime<Utc>,
    /// End, if it ended before the simulation did.
    pub end: Option<DateTime<Utc>>,
    /// How it ended.
    pub cause: Option<String>,
    /// For a consultation call: the call it was made from.
    pub consult_for: Option<String>,
}

/// Recovery of an incident's devices, in seconds after the incident start.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    /// Half the affected devices back in service.
    pub p50_s: Option<f64>,
    /// 90%.
    pub p90_s: Option<f64>,
    /// All.
    pub p100_s: Option<f64>,
}

/// A failure the simulator injected, with its effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Id (`INC-001`).
    pub id: String,
    /// Device cause: `node_failure`, `ctimanager_failure`, `network`, `admin`, `unregistered`.
    pub cause: String,
    /// `node`, `ctimanager`, `site`, `device`.
    pub scope: String,
    /// Node, CTIManager, site or `devices`.
    pub target: String,
    /// Cluster.
    pub cluster: String,
    /// First device outage.
    pub start: Option<DateTime<Utc>>,
    /// Last affected device back in service.
    pub end: Option<DateTime<Utc>>,
    /// Affected devices.
    pub devices: Vec<String>,
    /// Recovery curve.
    pub recovery: Recovery,
    /// Devices that came back on a node other than the one they were on.
    pub failovers: Vec<Move>,
    /// Re-homes to the failed node after it returned.
    pub rehomes: Vec<Move>,
    /// Call legs active on affected devices when they went out of service (a consultation in
    /// progress is a second leg).
    pub calls_active: usize,
    /// Of those, dropped at the outage.
    pub calls_dropped: usize,
    /// Of those, preserved (ended later).
    pub calls_preserved: usize,
}

/// A maintenance window announced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Scope.
    pub scope: String,
    /// Target.
    pub target: String,
    /// Start.
    pub start: DateTime<Utc>,
    /// End.
    pub end: DateTime<Utc>,
    /// Reason.
    pub reason: String,
}

/// A bridge silence: no event from `source` in [from, to); device state is unknown from
/// `unknown_from` (90 s after its last event) until `to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    /// Source.
    pub source: String,
    /// Cluster.
    pub cluster: String,
    /// Silence start.
    pub from: DateTime<Utc>,
    /// Reconnection.
    pub to: DateTime<Utc>,
    /// Start of the unknown period, if the silence exceeded 90 s.
    pub unknown_from: Option<DateTime<Utc>>,
}

/// Counts of the generated stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamStats {
    /// Events written (duplicates included).
    pub events: u64,
    /// Distinct events (what a log should hold).
    pub distinct: u64,
    /// Extra copies injected.
    pub duplicates: u64,
    /// Events delivered late by the delivery faults.
    pub late: u64,
    /// Events delivered out of order by the delivery faults.
    pub reordered: u64,
    /// Events delivered after a CTIManager reconnection.
    pub replayed: u64,
}

/// A device of the topology as the truth names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Type.
    pub device_type: String,
    /// Cluster.
    pub cluster: String,
    /// Device pool.
    pub device_pool: String,
    /// Site.
    pub site: String,
    /// Home node (first of the pool's CUCM group).
    pub home: String,
}

/// Everything the simulator did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Start.
    pub start: DateTime<Utc>,
    /// End.
    pub end: DateTime<Utc>,
    /// Device pools and their CUCM groups.
    pub pools: BTreeMap<String, Vec<String>>,
    /// Devices.
    pub device_info: BTreeMap<String, DeviceInfo>,
    /// Service-state intervals per device, from its first event to the end.
    pub devices: BTreeMap<String, Vec<Interval>>,
    /// Failovers (in service on a node other than home and other than before).
    pub failovers: Vec<Move>,
    /// Re-homes (back in service on home from another node).
    pub rehomes: Vec<Move>,
    /// Calls.
    pub calls: Vec<CallRecord>,
    /// Incidents (one per injected failure that took devices out of service).
    pub incidents: Vec<Incident>,
    /// Maintenance windows.
    pub maintenance_windows: Vec<Window>,
    /// Bridge silences.
    pub silences: Vec<Silence>,
    /// Stream counts.
    pub stream: StreamStats,
}

impl Truth {
    /// A device's state at `t`: `(state, node)`; `unknown` before its first interval.
    pub fn state_at(&self, device: &str, t: DateTime<Utc>) -> (&str, Option<&str>) {
        let Some(iv) = self.devices.get(device) else {
            return (UNKNOWN, None);
        };
        match iv.iter().find(|i| i.from <= t && t < i.to) {
            Some(i) => (i.state.as_str(), i.node.as_deref()),
            None => (UNKNOWN, None),
        }
    }

    /// Seconds per state for a device in [from, to).
    pub fn seconds(
        &self,
        device: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        let mut covered = 0.0;
        for i in self.devices.get(device).into_iter().flatten() {
            let a = i.from.max(from);
            let b = i.to.min(to);
            if a < b {
                let s = (b - a).num_microseconds().unwrap_or(0) as f64 / 1e6;
                *out.entry(i.state.clone()).or_insert(0.0) += s;
                covered += s;
            }
        }
        let total = (to - from).num_microseconds().unwrap_or(0) as f64 / 1e6;
        if total > covered {
            *out.entry(UNKNOWN.into()).or_insert(0.0) += total - covered;
        }
        out
    }
}
