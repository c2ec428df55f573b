//! What a poller reports: counts, the cycle gaps it achieved, the nodes that did not answer,
//! the CTIManagers' health.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::perfmon;
use crate::tracker::TrackerCounts;

/// A time during which a node's part of the picture was missing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeGap {
    /// The node.
    pub node: String,
    /// First answer it was missing from.
    pub from: DateTime<Utc>,
    /// First answer it was back in (none: still missing).
    pub to: Option<DateTime<Utc>>,
    /// Its `ReturnCode`.
    pub return_code: String,
}

/// What the poller has done; printed by `callstate ingest risport`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PollerStatus {
    /// Poll cycles completed.
    pub cycles: u64,
    /// Of those, full polls.
    pub full_polls: u64,
    /// Requests sent (RisPort and AXL).
    pub requests: u64,
    /// RisPort requests sent.
    pub risport_requests: u64,
    /// `Server.RateControl` faults.
    pub rate_faults: u64,
    /// Other failed cycles.
    pub errors: u64,
    /// The last error.
    pub last_error: Option<String>,
    /// Answers found truncated (names re-asked in smaller chunks).
    pub truncations: u64,
    /// Names per request now.
    pub chunk: usize,
    /// Watched devices.
    pub watched: usize,
    /// Devices whose state is known.
    pub known: usize,
    /// Watched devices RisPort has no record of.
    pub absent: usize,
    /// Events appended (heartbeats included).
    pub events: u64,
    /// Events the validation refused (a bug if ever non-zero).
    pub rejected: u64,
    /// Events waiting for a failed append to be retried.
    pub unsent: usize,
    /// Last complete cycle.
    pub last_cycle: Option<DateTime<Utc>>,
    /// The longest time between the starts of two complete cycles, in seconds (the sensing
    /// limit actually achieved).
    pub max_cycle_gap_s: f64,
    /// Times nodes did not answer (their devices' state was left as it was).
    pub node_gaps: Vec<NodeGap>,
    /// What the records said.
    pub records: TrackerCounts,
    /// PerfMon requests sent.
    pub perfmon_requests: u64,
    /// Each CTIManager's last PerfMon reading.
    pub ctimanagers: BTreeMap<String, CtiManagerStatus>,
}

/// A CTIManager's health from PerfMon.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CtiManagerStatus {
    /// When it was read.
    pub at: Option<DateTime<Utc>>,
    /// The counters (none when the object could not be read).
    pub counters: Option<perfmon::CtiManagerCounters>,
    /// Why it could not be read.
    pub error: Option<String>,
}
