//! Hourly rollups answer availability exactly as intervals do.
//!
//! Random device histories (states lasting minutes to days, gaps, two sources, open
//! silences), random maintenance windows of every scope, and random windows (whole days,
//! calendar months in a zone whose midnight is not UTC's, arbitrary microseconds): the tally
//! read through a device's rollup equals the tally read from its intervals alone, field by
//! field, the rollup built from the intervals packed as the live state holds them, and built
//! again when the windows change; and the
//! tally of a window equals the tallies of any two halves joined.
//!
//! A longer run: `PROPTEST_CASES=20000 cargo test -p callstate-query --test rollup`.

use std::sync::Arc;

use proptest::prelude::*;

use callstate_query::model::Name;
use callstate_query::model::fleet::{DeviceHistory, OpenSilence};
use callstate_query::model::intervals::ServiceInterval;
use callstate_query::model::pack::IntervalPack;
use callstate_query::model::rollup::{Exclusions, Rollup, RollupCache, UNIT};
use callstate_query::model::rows::MaintenanceRow;
use callstate_query::model::tally::{Tally, device_seconds};

use callstate_schemas::{ServiceState, Us};

const DAY: Us = 86_400_000_000;
const HOUR: Us = 3_600_000_000;
const MIN: Us = 60_000_000;
/// 2026-11-02T00:00:00Z.
const T0: Us = 1_793_577_600_000_000;

/// Open silences per source (index 0 and 1).
struct Open([Option<Us>; 2]);

impl OpenSilence for Open {
    fn open_from(&self, source: &str) -> Option<Us> {
        self.0[usize::from(source == "s1")]
    }
}

#[derive(Debug, Clone)]
struct Piece {
    state: u8,
    len: Us,
    gap: Us,
    source: u8,
    node: u8,
}

fn piece() -> impl Strategy<Value = Piece> {
    let len = prop_oneof![1..10 * MIN, 1..6 * HOUR, 1..4 * DAY, Just(DAY)];
    let gap = prop_oneof![6 => Just(0), 1 => 1..3 * HOUR];
    (0..3u8, len, gap, 0..2u8, 0..2u8).prop_map(|(state, len, gap, source, node)| Piece {
        state,
        len,
        gap,
        source,
        node,
    })
}

fn intervals(pieces: &[Piece], start: Us, open_ended: bool) -> Vec<ServiceInterval> {
    let a = Name::new;
    let mut t = start;
    let mut out = Vec::new();
    for (k, p) in pieces.iter().enumerate() {
        t += p.gap;
        let state = [
            ServiceState::InService,
            ServiceState::OutOfService,
            ServiceState::Unknown,
        ][p.state as usize];
        let node = a(["cm1", "cm2"][p.node as usize]);
        let last = k + 1 == pieces.len();
        out.push(ServiceInterval {
            device: a("D1"),
            cluster: a("c1"),
            device_type: Some(a("phone")),
            device_pool: Some(a("DP-A")),
            state,
            node: (state == ServiceState::InService).then_some(node),
            last_node: Some(node),
            home_node: Some(a("cm1")),
            cause: None,
            movement: None,
            valid_from: t,
            valid_to: (!(last && open_ended)).then_some(t + p.len),
            source: a(["s0", "s1"][p.source as usize]),
            known_from: t,
        });
        t += p.len;
    }
    out
}

fn window() -> impl Strategy<Value = MaintenanceRow> {
    let scope = prop_oneof![
        Just(("device", "D1")),
        Just(("device", "D2")),
        Just(("node", "cm2")),
        Just(("device_pool", "DP-A")),
        Just(("cluster", "c1")),
    ];
    (scope, 0..20 * DAY, 1..2 * DAY).prop_map(|((scope, target), at, len)| MaintenanceRow {
        time: T0,
        ingest_time: T0,
        scope: Arc::from(scope),
        target: Arc::from(target),
        start: T0 + at,
        end: T0 + at + len,
        reason: None,
        cluster: Arc::from("c1"),
    })
}

/// A question's window: whole UTC days, zone days (23:00 UTC), or any microseconds.
fn span() -> impl Strategy<Value = (Us, Us)> {
    prop_oneof![
        (-2..25i64, 0..25i64).prop_map(|(a, n)| (T0 + a * DAY, T0 + (a + n) * DAY)),
        (-2..25i64, 0..25i64)
            .prop_map(|(a, n)| (T0 + a * DAY - HOUR, T0 + (a + n) * DAY - 2 * HOUR)),
        (-DAY..25 * DAY, 0..25 * DAY).prop_map(|(a, n)| (T0 + a, T0 + a + n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn rollups_answer_as_intervals_do(
        pieces in proptest::collection::vec(piece(), 1..40),
        start in 0..2 * DAY,
        open_ended in any::<bool>(),
        open in proptest::collection::vec(prop_oneof![Just(None), (0..30 * DAY).prop_map(Some)], 2),
        rows in proptest::collection::vec(window(), 0..4),
        other_rows in proptest::collection::vec(window(), 0..4),
        spans in proptest::collection::vec(span(), 1..8),
    ) {
        let iv = intervals(&pieces, T0 + start, open_ended);
        let open = Open([open[0].map(|o| T0 + o), open[1].map(|o| T0 + o)]);
        let cache = RollupCache::default();
        // the rollup built from the live state's pack, read against the plain slice
        let pack = IntervalPack::new(&iv);
        let rolled = DeviceHistory { intervals: (&pack).into(), open: Some(&open), rollup: Some(&cache), frozen: None };
        let plain = DeviceHistory { intervals: (&iv).into(), open: Some(&open), rollup: None, frozen: None };
        // one reader asked every window, in the order given and in time order (it walks on
        // from where the last window's searches ended); then with other windows (the rollup is
        // built again with them) and the first ones again
        let mut sorted = spans.clone();
        sorted.sort();
        for rows in [&rows, &other_rows, &rows] {
            let ex = Exclusions::new(rows);
            for order in [&spans, &sorted] {
                let reader = rolled.reader(&ex);
                for &(from, to) in order {
                    let want = Tally::of(&plain.window(from, to), from, to, rows);
                    prop_assert_eq!(reader.tally(from, to), want, "reader, window {}..{}", from, to);
                }
            }
        }
        let ex = Exclusions::new(&rows);
        for &(from, to) in &spans {
            let want = Tally::of(&plain.window(from, to), from, to, &rows);
            prop_assert_eq!(rolled.tally(from, to, &ex), want, "window {}..{}", from, to);
            prop_assert_eq!(plain.tally(from, to, &ex), want);
            prop_assert_eq!(
                rolled.tally(from, to, &ex).seconds(),
                device_seconds(&plain.window(from, to), from, to, &rows)
            );
        }
        prop_assert!(cache.get().is_some(), "the rollup was built");
    }

    #[test]
    fn a_window_is_its_halves_joined(
        pieces in proptest::collection::vec(piece(), 1..30),
        rows in proptest::collection::vec(window(), 0..4),
        (from, to) in span(),
        cut in 0.0..1.0f64,
    ) {
        let iv = intervals(&pieces, T0, false);
        let mid = from + ((to - from) as f64 * cut) as Us;
        let whole = Tally::of(&iv, from, to, &rows);
        let halves = Tally::of(&iv, from, mid, &rows).then(Tally::of(&iv, mid, to, &rows));
        prop_assert_eq!(whole, halves);
    }
}

fn one(state: ServiceState, from: Us, to: Option<Us>) -> ServiceInterval {
    let mut iv = intervals(
        &[Piece {
            state: 0,
            len: 1,
            gap: 0,
            source: 0,
            node: 0,
        }],
        from,
        true,
    );
    let mut i = iv.remove(0);
    i.state = state;
    i.valid_to = to;
    i
}

#[test]
fn an_outage_across_midnight_is_one_outage_in_a_window_and_one_per_day() {
    let iv = vec![
        one(ServiceState::InService, T0, Some(T0 + DAY - HOUR)),
        one(
            ServiceState::OutOfService,
            T0 + DAY - HOUR,
            Some(T0 + DAY + 2 * HOUR),
        ),
        one(ServiceState::InService, T0 + DAY + 2 * HOUR, None),
    ];
    let s = device_seconds(&iv, T0, T0 + 3 * DAY, &[]);
    assert_eq!(
        (s.outages, s.longest_outage_s, s.outage_total_s),
        (1, 10_800.0, 10_800.0)
    );
    let first = device_seconds(&iv, T0, T0 + DAY, &[]);
    let second = device_seconds(&iv, T0 + DAY, T0 + 2 * DAY, &[]);
    assert_eq!((first.outages, first.longest_outage_s), (1, 3_600.0));
    assert_eq!((second.outages, second.longest_outage_s), (1, 7_200.0));
    // the rollup holds the outage's hours whole: the same answer through it
    // the source falls silent for good at T0 + 3 days
    let unit = |t: Us| t / UNIT;
    let none = Exclusions::new(&[]);
    let rollup = Rollup::build("D1", &iv, |_| Some(T0 + 3 * DAY), &none);
    assert_eq!(rollup.covered(), (unit(T0), unit(T0 + 3 * DAY)));
    assert_eq!(rollup.tally(unit(T0), unit(T0 + 3 * DAY)).seconds(), s);
    // runs of whole hours in one state: in service, out of service (three hours), in
    // service again however long
    let rollup = Rollup::build("D1", &iv, |_| Some(T0 + 10 * DAY), &none);
    assert_eq!(rollup.len(), 3);
    assert_eq!(
        rollup.tally(unit(T0 + 2 * DAY), unit(T0 + 10 * DAY)),
        Tally::pure(ServiceState::InService, 8 * DAY)
    );
}

#[test]
fn maintenance_inside_an_outage_splits_it_and_only_the_time_outside_counts() {
    let iv = vec![
        one(ServiceState::InService, T0, Some(T0 + HOUR)),
        one(ServiceState::OutOfService, T0 + HOUR, Some(T0 + 5 * HOUR)),
        one(ServiceState::InService, T0 + 5 * HOUR, None),
    ];
    let w = MaintenanceRow {
        time: T0,
        ingest_time: T0,
        scope: Arc::from("device"),
        target: Arc::from("D1"),
        start: T0 + 2 * HOUR,
        end: T0 + 3 * HOUR,
        reason: None,
        cluster: Arc::from("c1"),
    };
    let s = device_seconds(&iv, T0, T0 + DAY, &[w]);
    assert_eq!(s.excluded_s, 3_600.0);
    assert_eq!(s.out_of_service_s, 3.0 * 3_600.0);
    assert_eq!(
        (s.outages, s.longest_outage_s, s.outage_total_s),
        (2, 7_200.0, 10_800.0)
    );
}

#[test]
fn a_rollup_is_built_again_only_when_windows_touching_the_device_change() {
    let pieces: Vec<Piece> = (0..6)
        .map(|k| Piece {
            state: (k % 2) as u8,
            len: 5 * HOUR + 7 * MIN,
            gap: 0,
            source: 0,
            node: (k % 2) as u8,
        })
        .collect();
    let iv = intervals(&pieces, T0, false);
    let pack = IntervalPack::new(&iv);
    let cache = RollupCache::default();
    let dev = DeviceHistory {
        intervals: (&pack).into(),
        open: None,
        rollup: Some(&cache),
        frozen: None,
    };
    let row = |scope: &str, target: &str, at: Us| MaintenanceRow {
        time: T0,
        ingest_time: T0,
        scope: Arc::from(scope),
        target: Arc::from(target),
        start: T0 + at,
        end: T0 + at + 40 * MIN,
        reason: None,
        cluster: Arc::from("c1"),
    };
    let mut rows = vec![row("node", "cm2", 6 * HOUR)];
    let (from, to) = (T0, T0 + DAY);
    let built = |rows: &[MaintenanceRow]| {
        let t = dev.tally(from, to, &Exclusions::new(rows));
        assert_eq!(t, Tally::of(&iv, from, to, rows));
        cache.get().expect("built")
    };
    let first = built(&rows);
    assert!(first.len() > 1);
    // a window on a node the device never was on, or on another device: the same rollup
    rows.push(row("node", "cm9", 2 * HOUR));
    rows.push(row("device", "D2", 3 * HOUR));
    assert!(Arc::ptr_eq(&first, &built(&rows)), "kept");
    // one on its pool: built again, and the excluded time is its
    rows.push(row("device_pool", "DP-A", 13 * HOUR));
    let second = built(&rows);
    assert!(!Arc::ptr_eq(&first, &second), "built again");
    let t = dev.tally(from, to, &Exclusions::new(&rows));
    assert!(t.seconds().excluded_s > 0.0);
    // the same windows again: kept
    assert!(Arc::ptr_eq(&second, &built(&rows)));
}
