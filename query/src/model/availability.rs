//! Availability of a device over a window (design.md §3): seconds in service, out of service,
//! unknown and excluded by maintenance windows, and its outages.

use serde::Serialize;

use callstate_schemas::{Scope, ServiceState, Us};

use super::intervals::ServiceInterval;
use super::rows::MaintenanceRow;

const US: f64 = 1_000_000.0;

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
    /// Outages (out-of-service periods, outside exclusions) starting in the window.
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
    /// Adds another device's seconds (group roll-ups sum seconds).
    pub fn add(&mut self, o: &Seconds) {
        self.in_service_s += o.in_service_s;
        self.out_of_service_s += o.out_of_service_s;
        self.unknown_s += o.unknown_s;
        self.excluded_s += o.excluded_s;
        self.outages += o.outages;
        self.outage_total_s += o.outage_total_s;
        self.longest_outage_s = self.longest_outage_s.max(o.longest_outage_s);
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

/// Length of the part of [a, b) covered by the union of `spans`.
fn covered(a: Us, b: Us, spans: &mut [(Us, Us)]) -> Us {
    spans.sort_unstable();
    let mut total = 0;
    let mut cursor = a;
    for &(s, e) in spans.iter() {
        let (s, e) = (s.max(cursor), e.min(b));
        if s < e {
            total += e - s;
            cursor = e;
        }
    }
    total
}

/// Seconds of one device's intervals (from [`derive`](super::intervals::derive)) over [from, to).
pub fn device_seconds(
    intervals: &[ServiceInterval],
    from: Us,
    to: Us,
    windows: &[MaintenanceRow],
) -> Seconds {
    let mut s = Seconds::default();
    if to <= from {
        return s;
    }
    let mut known = 0;
    let mut outage: Option<(Us, Us)> = None; // current outage (start, end) inside the window
    let flush = |o: Option<(Us, Us)>, s: &mut Seconds| {
        if let Some((a, b)) = o {
            let d = (b - a) as f64 / US;
            s.outages += 1;
            s.outage_total_s += d;
            s.longest_outage_s = s.longest_outage_s.max(d);
        }
    };
    for i in intervals {
        let a = i.valid_from.max(from);
        let b = i.valid_to.unwrap_or(Us::MAX).min(to);
        if a >= b {
            continue;
        }
        known += b - a;
        let mut spans: Vec<(Us, Us)> = windows
            .iter()
            .filter(|w| w.start < b && w.end > a && covers(w, i))
            .map(|w| (w.start, w.end))
            .collect();
        let excluded = covered(a, b, &mut spans);
        let counted = ((b - a) - excluded) as f64 / US;
        s.excluded_s += excluded as f64 / US;
        match i.state {
            ServiceState::InService => s.in_service_s += counted,
            ServiceState::OutOfService => s.out_of_service_s += counted,
            ServiceState::Unknown => s.unknown_s += counted,
        }
        // Outages: consecutive out-of-service time that is not excluded.
        if i.state == ServiceState::OutOfService && excluded == 0 {
            outage = match outage {
                Some((start, end)) if end == a => Some((start, b)),
                other => {
                    flush(other, &mut s);
                    Some((a, b))
                }
            };
        } else {
            flush(outage.take(), &mut s);
        }
    }
    flush(outage, &mut s);
    s.unknown_s += ((to - from) - known) as f64 / US;
    s
}
