//! Burn rates over a window ending now, per SLI group: how fast each group spends its error
//! budget (1 = exactly the budget over the SLO period). What `GET /api/v1/slo/burn` answers
//! for teams that alert from Grafana without Prometheus.

use serde::Serialize;

use callstate_query::model::fleet::Fleet;
use callstate_query::model::frozen::Edges;
use callstate_query::model::sla::{GroupBy, availability_over};
use callstate_query::{Cancel, Result};
use callstate_schemas::Us;

use super::objectives::SCOPES;

/// One group's burn over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BurnRow {
    /// `device_pool`, `node` or `cluster`.
    pub scope: &'static str,
    /// Group.
    pub group: String,
    /// Window length, seconds.
    pub window_s: f64,
    /// Target.
    pub target: f64,
    /// Availability over the window (null: nothing measured).
    pub availability: Option<f64>,
    /// Out-of-service share of the measured time (1 − availability).
    pub error_ratio: Option<f64>,
    /// error_ratio ÷ (1 − target); null when nothing was measured or the target is 1.
    pub burn_rate: Option<f64>,
}

/// Burn rates over [now − window, now) of every group of `scopes` (all SLI scopes if empty);
/// where only hourly rollups are kept (before the horizon of retention of intervals), from
/// the whole hour after its start ([`Edges::Hours`]: under an hour less of the window).
pub fn burn(
    fleet: &dyn Fleet,
    now: Us,
    window: Us,
    scopes: &[GroupBy],
    cancel: &Cancel,
) -> Result<Vec<BurnRow>> {
    let scopes = if scopes.is_empty() {
        &SCOPES[..]
    } else {
        scopes
    };
    let windows = fleet.availability_windows(vec![(now - window, now)], Edges::Hours)?;
    let mut out = Vec::new();
    for &by in scopes {
        let rows = availability_over(fleet.devices(), fleet.windows(), &windows, by, cancel)?;
        for g in rows {
            let target = fleet.targets().of(by, &g.group_key);
            let error_ratio = g.availability.map(|a| 1.0 - a);
            let budget = 1.0 - target;
            out.push(BurnRow {
                scope: by.as_str(),
                window_s: window as f64 / 1e6,
                target,
                availability: g.availability,
                burn_rate: error_ratio.filter(|_| budget > 0.0).map(|e| e / budget),
                error_ratio,
                group: g.group_key,
            });
        }
    }
    Ok(out)
}
