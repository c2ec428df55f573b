//! The shapes of the JSON answers, as the OpenAPI document describes them. Answers are
//! written from the domain values (or the tables' batches) directly; these types only
//! document them, and `tests/api.rs` checks that every answered key is documented.

#![allow(dead_code)]

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

/// A device's state at an instant.
#[derive(Serialize, ToSchema)]
pub struct DeviceStateBody {
    /// Device.
    device: String,
    /// The instant asked about (RFC 3339).
    at: String,
    /// `in_service`, `out_of_service` or `unknown`.
    state: String,
    /// Node handling it (in service).
    node: Option<String>,
    /// Home node: the first node of its device pool's CUCM group.
    home_node: Option<String>,
    /// node == home (in service).
    on_home_node: Option<bool>,
    /// Since when it is in this state.
    since: Option<String>,
    /// Device type.
    device_type: Option<String>,
    /// Device pool.
    device_pool: Option<String>,
    /// Cluster.
    cluster: String,
    /// Node it was last in service on.
    last_node: Option<String>,
    /// Cause of an outage.
    cause: Option<String>,
    /// Call legs active on the device at that instant; null when retention removed the call
    /// legs of that time (`retain_legs_days`).
    active_calls: Option<u64>,
}

/// A fleet snapshot.
#[derive(Serialize, ToSchema)]
pub struct FleetBody {
    /// The instant.
    at: String,
    /// Devices per state among the selected devices (every state present, 0 if none).
    counts: BTreeMap<String, u64>,
    /// The selected devices, by name.
    devices: Vec<DeviceStateBody>,
}

/// One group's availability over a window.
#[derive(Serialize, ToSchema)]
pub struct AvailabilityBody {
    /// Window start.
    window_start: String,
    /// Window end (exclusive).
    window_end: String,
    /// The group: device, pool, home node, cluster or device type.
    group_key: String,
    /// Devices in the group.
    devices: u64,
    /// In service, not excluded, seconds.
    in_service_s: f64,
    /// Out of service, not excluded, seconds.
    out_of_service_s: f64,
    /// Unknown (before the first event, or source silent), not excluded, seconds.
    unknown_s: f64,
    /// Inside a maintenance window covering the device, seconds.
    excluded_s: f64,
    /// Outages starting in the window.
    outages: u64,
    /// Longest outage, seconds.
    longest_outage_s: f64,
    /// Sum of the outages' durations, seconds.
    outage_total_s: f64,
    /// in / (in + out), or null.
    availability: Option<f64>,
}

/// One row of the SLA report.
#[derive(Serialize, ToSchema)]
pub struct SlaBody {
    /// Window (or calendar period) start.
    window_start: String,
    /// Window end (exclusive).
    window_end: String,
    /// The group.
    group_key: String,
    /// Devices in the group.
    devices: u64,
    /// Availability, or null when nothing was measured.
    availability: Option<f64>,
    /// Target.
    target: f64,
    /// availability ≥ target (null when nothing was measured).
    met: Option<bool>,
    /// Error budget: (1 − target) × measured seconds.
    budget_allowed_s: f64,
    /// Out-of-service seconds.
    budget_used_s: f64,
    /// allowed − used (negative when breached).
    budget_remaining_s: f64,
    /// Outages.
    outages: u64,
    /// Mean time to repair, seconds.
    mttr_s: Option<f64>,
    /// Longest outage, seconds.
    longest_outage_s: f64,
    /// In service, seconds.
    in_service_s: f64,
    /// Unknown, seconds.
    unknown_s: f64,
    /// Excluded by maintenance windows, seconds.
    excluded_s: f64,
}

/// One incident in a list.
#[derive(Serialize, ToSchema)]
pub struct IncidentRowBody {
    /// Stable id: cluster, scope, target and start.
    id: String,
    /// Cluster.
    cluster: String,
    /// `node` or `ctimanager`.
    scope: String,
    /// Node or CTIManager.
    target: String,
    /// Most common cause among the outages.
    cause: String,
    /// First outage start.
    started_at: String,
    /// All devices back in service, if they are.
    ended_at: Option<String>,
    /// Devices affected.
    devices_affected: u64,
    /// Seconds until 50% were back in service.
    recovery_50_s: Option<f64>,
    /// … 90%.
    recovery_90_s: Option<f64>,
    /// … 100%.
    recovery_100_s: Option<f64>,
    /// Devices that came back on another node.
    failovers: u64,
    /// Of those, how many went home again.
    rehomes: u64,
    /// Longest re-home lag, seconds.
    rehome_lag_max_s: Option<f64>,
    /// Calls active on affected devices when they went out of service; null when retention
    /// removed the call legs of that time (`retain_legs_days`).
    calls_active: Option<u64>,
}

/// A device that came back on another node, or went home again.
#[derive(Serialize, ToSchema)]
pub struct DeviceMoveBody {
    /// Device.
    device: String,
    /// When it came in service there.
    at: String,
    /// Node.
    node: String,
    /// Failovers: seconds after the incident's start; re-homes: after its first re-home.
    lag_s: f64,
}

/// One incident in full.
#[derive(Serialize, ToSchema)]
pub struct IncidentBody {
    /// Stable id.
    id: String,
    /// Cluster.
    cluster: String,
    /// `node` or `ctimanager`.
    scope: String,
    /// Node or CTIManager.
    target: String,
    /// Most common cause.
    cause: String,
    /// First outage start.
    started_at: String,
    /// All devices back in service, if they are.
    ended_at: Option<String>,
    /// Devices affected.
    devices_affected: u64,
    /// Seconds until 50% were back.
    recovery_50_s: Option<f64>,
    /// … 90%.
    recovery_90_s: Option<f64>,
    /// … 100%.
    recovery_100_s: Option<f64>,
    /// Devices that came back on another node.
    failovers: Vec<DeviceMoveBody>,
    /// Of those, when they went home.
    rehomes: Vec<DeviceMoveBody>,
    /// Longest re-home lag, seconds.
    rehome_lag_max_s: Option<f64>,
    /// Calls active on affected devices when they went out of service; null when retention
    /// removed the call legs of that time (`retain_legs_days`).
    calls_active: Option<u64>,
    /// How those calls ended (cause → count; `active` if not ended); null as above.
    calls_ended: Option<BTreeMap<String, u64>>,
    /// The affected devices.
    devices: Vec<String>,
}

/// One point of a state series.
#[derive(Serialize, ToSchema)]
pub struct SeriesPointBody {
    /// The instant.
    time: String,
    /// The state, or the node.
    group_key: String,
    /// Devices.
    devices: u64,
}

/// One annotation.
#[derive(Serialize, ToSchema)]
pub struct AnnotationBody {
    /// When.
    time: String,
    /// Until when (`time` but for maintenance windows).
    time_end: String,
    /// The event kind.
    kind: String,
    /// Cluster.
    cluster: String,
    /// Node, CTIManager or window target.
    target: String,
    /// A line for people.
    text: String,
}

/// One group's error-budget burn over a window ending now.
#[derive(Serialize, ToSchema)]
pub struct BurnBody {
    /// `device_pool`, `node` or `cluster`.
    scope: String,
    /// The group.
    group: String,
    /// Window length, seconds.
    window_s: f64,
    /// The group's target.
    target: f64,
    /// Availability over the window (null: nothing measured).
    availability: Option<f64>,
    /// 1 − availability.
    error_ratio: Option<f64>,
    /// error_ratio ÷ (1 − target); null when nothing was measured or the target is 1.
    burn_rate: Option<f64>,
}
