//! Service-state intervals derived from the log, checked against the simulator's ground truth
//! for every built-in scenario; shuffled and re-delivered input gives the same intervals.

use std::collections::BTreeSet;

use callstate_log::{Log, LogOptions};
use callstate_query::{DeviceIndex, LogRows, ServiceInterval, derive, device_seconds};
use callstate_schemas::Event;
use callstate_schemas::Movement;
use callstate_sim::{BUILT_IN, Scenario, Truth};

mod common;

use common::simulate;

/// Derives intervals from a fresh log on disk holding `events` (small segments, so both
/// segments and the WAL tail are read).
fn intervals_via_log(events: &[Event]) -> Vec<ServiceInterval> {
    let (_dir, log) = common::log_with(events, 20_000);
    let rows = LogRows::load(&log.snapshot(), None).unwrap();
    derive(&rows)
}

fn us(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_micros()
}

/// A deterministic shuffle with every 7th event delivered twice.
fn shuffled_with_duplicates(events: &[Event]) -> Vec<Event> {
    let mut v: Vec<Event> = events.to_vec();
    v.extend(events.iter().step_by(7).cloned());
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

fn key(i: &ServiceInterval) -> String {
    format!(
        "{} {} {:?} {:?} {:?} {} {:?} {:?}",
        i.device,
        i.state.as_str(),
        i.node,
        i.home_node,
        i.cause,
        i.valid_from,
        i.valid_to,
        i.movement
    )
}

fn check_against_truth(name: &str, intervals: &[ServiceInterval], truth: &Truth) {
    let idx = DeviceIndex::new(intervals);
    let (start, end) = (us(truth.start), us(truth.end));

    // state and node at many instants, every device
    let span = end - start;
    for k in 0..300 {
        let t = start + span * k / 300 + 1_234_567;
        let tt = chrono::DateTime::from_timestamp_micros(t).unwrap();
        for d in truth.device_info.keys() {
            let want = truth.state_at(d, tt);
            let got = idx
                .at(d, t)
                .map_or(("unknown", None), |i| (i.state.as_str(), i.node.as_deref()));
            assert_eq!(got, want, "{name}: {d} at {tt}");
        }
    }

    // seconds per state over the whole run, to the microsecond
    for d in truth.device_info.keys() {
        let s = device_seconds(idx.device(d), start, end, &[]);
        let want = truth.seconds(d, truth.start, truth.end);
        let w = |k: &str| want.get(k).copied().unwrap_or(0.0);
        assert!(
            (s.in_service_s - w("in_service")).abs() < 1e-3,
            "{name} {d}: {s:?} vs {want:?}"
        );
        assert!(
            (s.out_of_service_s - w("out_of_service")).abs() < 1e-3,
            "{name} {d}: {s:?} vs {want:?}"
        );
        assert!(
            (s.unknown_s - w("unknown")).abs() < 1e-3,
            "{name} {d}: {s:?} vs {want:?}"
        );
    }

    // failovers and re-homes
    let moves = |m: Movement| -> BTreeSet<(String, i64, String)> {
        intervals
            .iter()
            .filter(|i| i.movement == Some(m))
            .map(|i| {
                (
                    i.device.to_string(),
                    i.valid_from,
                    i.node.as_deref().unwrap().to_string(),
                )
            })
            .collect()
    };
    let truth_moves = |v: &[callstate_sim::truth::Move]| -> BTreeSet<(String, i64, String)> {
        v.iter()
            .map(|m| (m.device.clone(), us(m.at), m.to.clone()))
            .collect()
    };
    assert_eq!(
        moves(Movement::Failover),
        truth_moves(&truth.failovers),
        "{name}: failovers"
    );
    assert_eq!(
        moves(Movement::Rehome),
        truth_moves(&truth.rehomes),
        "{name}: re-homes"
    );

    // home node from the pools' CUCM groups
    for i in intervals.iter().filter(|i| i.node.is_some()) {
        assert_eq!(
            i.home_node.as_deref(),
            Some(truth.device_info[&*i.device].home.as_str()),
            "{name}"
        );
    }
}

#[test]
fn every_built_in_scenario_matches_the_truth() {
    for name in BUILT_IN {
        let (events, truth) = simulate(name, 150, 21);
        let intervals = intervals_via_log(&events);
        check_against_truth(name, &intervals, &truth);
    }
}

#[test]
fn shuffled_and_duplicated_delivery_gives_identical_intervals() {
    for name in ["chaos", "ctimanager-failover", "node-failover"] {
        let (events, truth) = simulate(name, 150, 4);
        let a: Vec<String> = intervals_via_log(&events).iter().map(key).collect();
        let b: Vec<String> = intervals_via_log(&shuffled_with_duplicates(&events))
            .iter()
            .map(key)
            .collect();
        assert_eq!(a.len(), b.len(), "{name}");
        assert!(a == b, "{name}: intervals differ with shuffled delivery");
        assert!(truth.stream.events > 0);
    }
}

/// "What did we know then": the CTIManager failover's out-of-service events arrive after the
/// reconnection, so before they were ingested the devices looked in service.
#[test]
fn known_at_answers_with_what_was_ingested_then() {
    let (events, truth) = simulate("ctimanager-failover", 120, 8);
    let inc = truth
        .incidents
        .iter()
        .find(|i| i.cause == "ctimanager_failure")
        .unwrap();
    let crash = us(inc.start.unwrap());
    // deliver up to the first late out-of-service event, then the rest later
    let cut = events
        .iter()
        .position(|e| {
            e.time.timestamp_micros() < crash + 10_000_000
                && matches!(&e.body, callstate_schemas::Body::DeviceOutOfService { .. })
                && e.time.timestamp_micros() >= crash
        })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogOptions::default()).unwrap();
    log.append(&events[..cut]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let known_at = chrono::Utc::now().timestamp_micros();
    std::thread::sleep(std::time::Duration::from_millis(5));
    log.append(&events[cut..]).unwrap();
    let snap = log.snapshot();
    let then = derive(&LogRows::load(&snap, Some(known_at)).unwrap());
    let now = derive(&LogRows::load(&snap, None).unwrap());
    let at = crash + 5_000_000;
    let d = &inc.devices[0];
    let (idx_then, idx_now) = (DeviceIndex::new(&then), DeviceIndex::new(&now));
    assert_eq!(
        idx_then.at(d, at).unwrap().state.as_str(),
        "in_service",
        "not known yet"
    );
    assert_eq!(idx_now.at(d, at).unwrap().state.as_str(), "out_of_service");
    let at_dt = chrono::DateTime::from_timestamp_micros(at).unwrap();
    assert_eq!(truth.state_at(d, at_dt).0, "out_of_service");
}

/// A node maintenance window excludes its devices' outages, failovers and re-homes.
#[test]
fn maintenance_windows_exclude_the_node_restart() {
    let (events, truth) = simulate("rolling-upgrade", 150, 2);
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogOptions::default()).unwrap();
    log.append(&events).unwrap();
    let rows = LogRows::load(&log.snapshot(), None).unwrap();
    assert_eq!(rows.windows.len(), truth.maintenance_windows.len());
    let intervals = derive(&rows);
    let idx = DeviceIndex::new(&intervals);
    let (start, end) = (us(truth.start), us(truth.end));
    let mut outage_devices = 0;
    for (d, info) in &truth.device_info {
        let all = device_seconds(idx.device(d), start, end, &rows.windows);
        let total = all.in_service_s + all.out_of_service_s + all.unknown_s + all.excluded_s;
        assert!(
            (total - (end - start) as f64 / 1e6).abs() < 1e-3,
            "{d}: seconds are conserved"
        );
        let w = truth
            .maintenance_windows
            .iter()
            .find(|w| w.target == info.home)
            .unwrap();
        let inside = device_seconds(idx.device(d), us(w.start), us(w.end), &rows.windows);
        assert_eq!(
            inside.out_of_service_s, 0.0,
            "{d}: outage inside its node's window counted"
        );
        assert!(
            (inside.excluded_s - (w.end - w.start).num_seconds() as f64).abs() < 1e-3,
            "{d}"
        );
        let without = device_seconds(idx.device(d), start, end, &[]);
        if without.out_of_service_s > 0.0 {
            outage_devices += 1;
            assert!(
                all.out_of_service_s < without.out_of_service_s,
                "{d}: exclusions reduce outage time"
            );
        }
    }
    assert!(outage_devices > 100, "the restarts took devices out");
}

/// A bridge silent for 4 minutes: its devices are unknown from 90 s after its last event until
/// it reconnects, and known again from its resynchronization.
#[test]
fn collector_silence_makes_devices_unknown_after_90_seconds() {
    let mut sc = Scenario::load("node-failover").unwrap();
    sc.topology.devices = 120;
    sc.faults
        .push(callstate_sim::scenario::Fault::CollectorSilence {
            at: "3h".into(),
            duration: "4m".into(),
            cluster: None,
        });
    let (events, truth) = callstate_sim::collect(&sc, 5).unwrap();
    let sil = &truth.silences[0];
    let from = us(sil.unknown_from.unwrap());
    let intervals = intervals_via_log(&events);
    let idx = DeviceIndex::new(&intervals);
    let d = truth.device_info.keys().next().unwrap();
    assert_eq!(idx.at(d, from - 1).unwrap().state.as_str(), "in_service");
    assert_eq!(idx.at(d, from).unwrap().state.as_str(), "unknown");
    assert_eq!(idx.at(d, us(sil.to) - 1).unwrap().state.as_str(), "unknown");
    assert_eq!(idx.at(d, us(sil.to)).unwrap().state.as_str(), "in_service");
    check_against_truth("node-failover+silence", &intervals, &truth);
}

/// Segment digests (control events and source activity spans) give exactly the intervals the
/// full events give, also for "what did we know then" cut inside and between segments.
#[test]
fn segment_digests_give_the_intervals_of_the_full_events() {
    for (name, devices) in [
        ("chaos", 60),
        ("ctimanager-failover", 80),
        ("node-failover", 80),
    ] {
        let (events, _) = simulate(name, devices, 5);
        let events = shuffled_with_duplicates(&events);
        let (_dir, log) = common::log_with(&events, events.len() / 5);
        let snap = log.snapshot();
        assert!(
            snap.segments.len() >= 3,
            "{name}: {} segments",
            snap.segments.len()
        );
        assert!(snap.segments.iter().all(|s| s.digest.is_some()));
        let mut ingest_times: Vec<i64> = snap
            .stored_events()
            .unwrap()
            .iter()
            .map(|e| e.ingest_time.timestamp_micros())
            .collect();
        ingest_times.sort_unstable();
        ingest_times.dedup();
        let n = ingest_times.len();
        let cuts = [
            None,
            Some(ingest_times[n / 5]),
            Some(ingest_times[n / 2]),
            Some(ingest_times[n - 2]),
        ];
        for known_at in cuts {
            let digests = LogRows::load_with(&snap, known_at, false).unwrap();
            let full = LogRows::load_without_digests(&snap, known_at).unwrap();
            assert_eq!(
                digests.source_spans, full.source_spans,
                "{name} {known_at:?}"
            );
            let (a, b) = (derive(&digests), derive(&full));
            assert!(!a.is_empty());
            assert_eq!(
                a.iter().map(key).collect::<Vec<_>>(),
                b.iter().map(key).collect::<Vec<_>>(),
                "{name} known_at {known_at:?}"
            );
        }
    }
}
