//! On every built-in scenario (run for three days, so that whole days settle into daily
//! rollups), availability and the SLA report from the live state — whole days read from
//! rollups — equal the from-scratch derivation's, which reads intervals alone: per device
//! and per pool, over each UTC day, each day and month in zones whose midnight is not UTC's,
//! the whole run, and windows cut at arbitrary microseconds. Equal to the last bit.
//!
//! The live state then follows a compaction of the log (its small segments merged) and still
//! answers the same, its `events` table reading the merged segment.

use callstate_log::{CompactOptions, Log, LogOptions};
use callstate_query::model::calendar::{Period, calendar_windows, parse_tz};
use callstate_query::model::fleet::Fleet;
use callstate_query::model::sla::{
    GroupBy, SlaRow, availability_over, availability_split, sla_over,
};
use callstate_query::{Cancel, Derived, Live};
use callstate_sim::Scenario;

mod common;

const DAY: i64 = 86_400_000_000;

/// The windows asked about, over the run [start, end).
fn windows(start: i64, end: i64) -> Vec<(i64, i64)> {
    let mut w = vec![(start - DAY, end + DAY), (start + 1, end - 7)];
    let first = start.div_euclid(DAY) * DAY;
    w.extend((0..5).map(|k| (first + k * DAY, first + (k + 1) * DAY)));
    for tz in ["Europe/Paris", "America/New_York", "Asia/Kolkata"] {
        let tz = parse_tz(tz).unwrap();
        w.extend(calendar_windows(start, end, Period::Day, tz));
        w.extend(calendar_windows(start, end, Period::Month, tz));
    }
    // odd microseconds, spanning one to three midnights
    w.extend((0..6).map(|k| {
        let a = start + 3_600_000_007 * k;
        (a, a + DAY * (1 + k % 3) + 123_456_789)
    }));
    w
}

fn report(f: &dyn Fleet, w: &[(i64, i64)], by: GroupBy) -> Vec<SlaRow> {
    sla_over(f.devices(), f.windows(), w, by, f.targets(), &Cancel::new()).unwrap()
}

fn same(what: &str, live: &dyn Fleet, scratch: &dyn Fleet, w: &[(i64, i64)]) {
    for by in [GroupBy::Device, GroupBy::DevicePool, GroupBy::Cluster] {
        let (a, b) = (report(live, w, by), report(scratch, w, by));
        assert_eq!(a.len(), b.len(), "{what} {by:?}");
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x, y, "{what} {by:?}");
        }
    }
}

#[test]
fn rollups_answer_as_intervals_on_every_scenario() {
    for name in callstate_sim::scenario::BUILT_IN {
        let mut sc = Scenario::load(name).unwrap();
        sc.topology.devices = sc.topology.devices.min(40);
        sc.duration = "72h".into();
        let (events, _) = common::simulate_scenario(&sc, 11);
        let (_dir, log, scratch, view) = common::both_fleets(&events, 50_000);
        let start = events
            .iter()
            .map(|e| e.time)
            .min()
            .unwrap()
            .timestamp_micros();
        let end = events
            .iter()
            .map(|e| e.time)
            .max()
            .unwrap()
            .timestamp_micros();
        let w = windows(start, end);
        same(name, &*view, &scratch, &w);
        // asked again: the rollups built by the first round answer
        same(&format!("{name}, again"), &*view, &scratch, &w);
        // split between threads (as on a large fleet): the same to the last bit
        for threads in [2, 3, 7] {
            for by in [GroupBy::Device, GroupBy::DevicePool, GroupBy::Node] {
                let f: &dyn Fleet = &*view;
                let split = availability_split(
                    f.devices().collect(),
                    f.windows(),
                    &w,
                    by,
                    &Cancel::new(),
                    threads,
                )
                .unwrap();
                let one =
                    availability_over(f.devices(), f.windows(), &w, by, &Cancel::new()).unwrap();
                assert_eq!(split, one, "{name} {by:?} on {threads} threads");
            }
        }
        drop(log);
    }
}

#[test]
fn the_live_state_follows_a_compaction() {
    let mut sc = Scenario::load("node-failover").unwrap();
    sc.topology.devices = 30;
    sc.duration = "48h".into();
    let (events, _) = common::simulate_scenario(&sc, 5);
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(
        dir.path(),
        LogOptions {
            segment_rows: 1_000_000,
        },
    )
    .unwrap();
    let live = Live::start(&log, Default::default()).unwrap();
    // short ingest runs, each ending with a roll: small segments
    let (head, tail) = events.split_at(events.len() - 1);
    for chunk in head.chunks(2_000) {
        log.append(chunk).unwrap();
        log.roll_now().unwrap();
    }
    let before = log.snapshot().segments.len();
    assert!(before > 3, "{before} segments");
    let opts = CompactOptions {
        grace: std::time::Duration::from_secs(3600),
        ..log.compact_options()
    };
    let done = log.compact_all(&opts).unwrap();
    assert_eq!(done.len(), 1);
    log.append(tail).unwrap();
    let view = common::caught_up(&live, log.version(), std::time::Duration::from_secs(60));
    assert_eq!(view.version, log.version());
    let snap = log.snapshot();
    assert_eq!(snap.segments.len(), 1);
    assert_eq!(
        view.snapshot().segments,
        snap.segments,
        "the live snapshot moved on"
    );
    assert_eq!(view.snapshot().len(), events.len() as u64);
    let mut got: Vec<u64> = view
        .snapshot()
        .stored_events()
        .unwrap()
        .iter()
        .map(|e| e.ingest_seq)
        .collect();
    got.sort_unstable();
    assert_eq!(got, (1..=events.len() as u64).collect::<Vec<_>>());
    let scratch = Derived::load(snap, None, Default::default(), true).unwrap();
    let start = events[0].time.timestamp_micros();
    same(
        "after compaction",
        &*view,
        &scratch,
        &windows(start, start + 2 * DAY),
    );
}
