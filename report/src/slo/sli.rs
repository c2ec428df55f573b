//! The SLI counters `/metrics` exports: device-seconds per state (`in_service`,
//! `out_of_service`, `unknown`, `excluded`) per device pool, home node and cluster, from each
//! device's first event up to the scrape (event time: a device's state holds until its next
//! event; a source silent for 90 s makes its devices unknown).
//!
//! A late event can move seconds that were already scraped from one state to another. Counters
//! never go down (Prometheus would read a reset): the state that gains shows the correction
//! at the next scrape, the one that loses holds its value until time catches up. See
//! docs/slo.md.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use callstate_query::model::availability::Seconds;
use callstate_query::model::fleet::Fleet;
use callstate_query::model::rollup::Exclusions;
use callstate_query::model::tally::Total;
use callstate_query::{Cancel, Result};
use callstate_schemas::{ServiceState, Us};

use super::objectives::SCOPES;

/// The four states, as the `state` label.
pub const STATES: [&str; 4] = [
    ServiceState::InService.as_str(),
    ServiceState::OutOfService.as_str(),
    ServiceState::Unknown.as_str(),
    "excluded",
];

/// Device-seconds of one group up to an instant.
#[derive(Debug, Clone, PartialEq)]
pub struct SliTotal {
    /// `device_pool`, `node` or `cluster`.
    pub scope: &'static str,
    /// The group.
    pub group: String,
    /// Seconds in each of [`STATES`].
    pub seconds: [f64; 4],
}

fn by_state(s: &Seconds) -> [f64; 4] {
    [
        s.in_service_s,
        s.out_of_service_s,
        s.unknown_s,
        s.excluded_s,
    ]
}

/// Every group's device-seconds from each device's first event up to `now` (from its first
/// hour kept, where retention of intervals kept only its hourly rollups before a horizon).
pub fn totals(fleet: &dyn Fleet, now: Us, cancel: &Cancel) -> Result<Vec<SliTotal>> {
    // groups borrow their names from the fleet: no allocation per device
    let mut acc: BTreeMap<(&'static str, &str), Total> = BTreeMap::new();
    let ex = Exclusions::new(fleet.windows());
    for (n, d) in fleet.devices().enumerate() {
        if n % 512 == 0 {
            cancel.check()?;
        }
        let reader = d.reader(&ex);
        let first = reader.first_from();
        if first >= now {
            continue;
        }
        let t = reader.tally(first, now);
        for scope in SCOPES {
            acc.entry((scope.as_str(), d.group(scope)))
                .or_default()
                .add(&t);
        }
    }
    Ok(acc
        .into_iter()
        .map(|((scope, group), s)| SliTotal {
            scope,
            group: group.to_string(),
            seconds: by_state(&s.seconds()),
        })
        .collect())
}

/// Keeps the exported counters monotonic across scrapes.
#[derive(Debug, Default)]
pub struct Monotonic {
    last: Mutex<HashMap<(&'static str, String), [f64; 4]>>,
}

impl Monotonic {
    /// The values to export: each at least what was exported before. A group that
    /// disappeared (its devices moved) keeps its last values.
    pub fn export(&self, now: Vec<SliTotal>) -> Vec<SliTotal> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        for t in now {
            let e = last.entry((t.scope, t.group)).or_insert([0.0; 4]);
            for (v, n) in e.iter_mut().zip(t.seconds) {
                *v = v.max(n);
            }
        }
        let mut out: Vec<SliTotal> = last
            .iter()
            .map(|((scope, group), s)| SliTotal {
                scope,
                group: group.clone(),
                seconds: *s,
            })
            .collect();
        out.sort_by(|a, b| (a.scope, &a.group).cmp(&(b.scope, &b.group)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_counters_never_go_down() {
        let m = Monotonic::default();
        let t = |s: [f64; 4]| SliTotal {
            scope: "cluster",
            group: "C1".into(),
            seconds: s,
        };
        m.export(vec![t([100.0, 10.0, 0.0, 0.0])]);
        // a late event moved 5 s from in to out service
        let e = m.export(vec![t([96.0, 16.0, 0.0, 0.0])]);
        assert_eq!(e[0].seconds, [100.0, 16.0, 0.0, 0.0]);
        let e = m.export(vec![t([120.0, 16.0, 0.0, 0.0])]);
        assert_eq!(e[0].seconds, [120.0, 16.0, 0.0, 0.0]);
    }
}
