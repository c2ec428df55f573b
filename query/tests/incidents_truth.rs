//! Incidents detected from the log against the incidents the simulator injected; the same
//! from the live state, and with the devices read on any number of threads.

use std::collections::BTreeSet;

use callstate_query::Cancel;
use callstate_query::model::fleet::Fleet;
use callstate_query::model::incidents::{IncidentOptions, detect, detect_split};

mod common;

#[test]
fn detected_incidents_match_the_injected_ones() {
    for name in [
        "node-failover",
        "ctimanager-failover",
        "rolling-upgrade",
        "demo",
    ] {
        let (events, truth) = common::simulate(name, 250, 12);
        let (_dir, _log, derived, live) = common::both_fleets(&events, 3_000);
        let (from, to) = (truth.start.timestamp_micros(), truth.end.timestamp_micros());
        let opts = IncidentOptions::default();
        let found = detect(&derived, from, to, &opts, &Cancel::new()).unwrap();
        let live_found = detect(&*live as &dyn Fleet, from, to, &opts, &Cancel::new()).unwrap();
        assert_eq!(
            found, live_found,
            "{name}: the live state finds the same incidents"
        );
        // the devices read on several threads (each with a share of them): the same
        for threads in [2, 3, 7] {
            let split = detect_split(
                &*live as &dyn Fleet,
                from,
                to,
                &opts,
                &Cancel::new(),
                Some(threads),
            );
            assert_eq!(split.unwrap(), live_found, "{name}: {threads} threads");
        }
        let expected: Vec<_> = truth
            .incidents
            .iter()
            .filter(|i| i.devices.len() >= 5)
            .collect();
        assert_eq!(
            found.len(),
            expected.len(),
            "{name}: {:?}",
            found.iter().map(|f| &f.id).collect::<Vec<_>>()
        );
        for want in expected {
            let start = want.start.unwrap().timestamp_micros();
            let got = found
                .iter()
                .find(|f| f.started_at == start)
                .unwrap_or_else(|| panic!("{name}: no incident at {start}"));
            assert_eq!(got.scope, want.scope, "{name}");
            assert_eq!(got.target, want.target, "{name}");
            assert_eq!(got.cause, want.cause, "{name}");
            let a: BTreeSet<&String> = got.devices.iter().collect();
            let b: BTreeSet<&String> = want.devices.iter().collect();
            assert_eq!(a, b, "{name}: devices");
            let close = |x: Option<f64>, y: Option<f64>| match (x, y) {
                (Some(x), Some(y)) => (x - y).abs() < 1e-3,
                (None, None) => true,
                _ => false,
            };
            assert!(
                close(got.recovery_50_s, want.recovery.p50_s),
                "{name}: {got:?} vs {:?}",
                want.recovery
            );
            assert!(close(got.recovery_90_s, want.recovery.p90_s), "{name}");
            assert!(close(got.recovery_100_s, want.recovery.p100_s), "{name}");
            assert_eq!(
                got.ended_at,
                want.end.map(|t| t.timestamp_micros()),
                "{name}"
            );
            assert_eq!(
                got.failovers.len(),
                want.failovers.len(),
                "{name}: failovers"
            );
            assert_eq!(got.rehomes.len(), want.rehomes.len(), "{name}: re-homes");
            assert_eq!(got.calls_active, Some(want.calls_active), "{name}: calls");
            let ended = got.calls_ended.as_ref().expect("no retention: calls known");
            let dropped = ended.get(&want.cause).copied().unwrap_or(0);
            assert_eq!(
                dropped, want.calls_dropped,
                "{name}: dropped calls {:?}",
                got.calls_ended
            );
        }
    }
}
