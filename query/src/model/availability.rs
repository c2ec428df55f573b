//! Availability of a device over a window (design.md §3): seconds in service, out of service,
//! unknown and excluded by maintenance windows, and its outages.

use serde::Serialize;

use callstate_schemas::Scope;

use super::intervals::ServiceInterval;
use super::rows::MaintenanceRow;

/// Seconds of one device (or, summed, of a group) over a window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Seconds {
    /// In service, not excluded.
    pub in_service_s: f64,
    /// Out of service, not excluded.
    pub out_of_service_s: f64,
    /// Unknown (before the first event, or source silent), not excluded.
    pub unknown_s: f64,
    /// Inside a maintenance window covering the device.
    pub excluded_s: f64,
    /// Outages in the window: runs of out-of-service time not excluded by a maintenance
    /// window (consecutive out-of-service intervals join), cut at the window's edges.
    pub outages: u64,
    /// Longest outage, seconds (of those counted).
    pub longest_outage_s: f64,
    /// Sum of the durations of those outages, seconds (for MTTR).
    pub outage_total_s: f64,
}

impl Seconds {
    /// `in / (in + out)`, or `None` when there is no such time.
    pub fn availability(&self) -> Option<f64> {
        let d = self.in_service_s + self.out_of_service_s;
        (d > 0.0).then(|| self.in_service_s / d)
    }
    /// Mean time to repair, seconds.
    pub fn mttr_s(&self) -> Option<f64> {
        (self.outages > 0).then(|| self.outage_total_s / self.outages as f64)
    }
}

/// Whether a maintenance window covers the device during this interval. A node window covers
/// the devices on the node and those homed to it: their failover to a backup node and their
/// re-home are part of the maintenance.
pub fn covers(w: &MaintenanceRow, i: &ServiceInterval) -> bool {
    let t = Some(&*w.target);
    match Scope::parse(&w.scope) {
        Some(Scope::Cluster) => Some(&*i.cluster) == t,
        Some(Scope::Device) => Some(&*i.device) == t,
        Some(Scope::DevicePool) => i.device_pool.as_deref() == t,
        Some(Scope::Node) => {
            i.node.as_deref() == t || i.last_node.as_deref() == t || i.home_node.as_deref() == t
        }
        None => false,
    }
}
