//! Retention of intervals: folding the history before a horizon into the log's base leaves
//! every device's intervals from the horizon on, and the availability of every window from
//! it, exactly as a derivation of the whole log gives them (the from-scratch derivation of
//! the folded log, a live state running through the fold and one started after it), at
//! horizons across failovers, re-homes, silences and late delivery; questions reaching
//! before the horizon are refused.

use std::time::Duration;

use callstate_log::{Log, LogStats};
use callstate_query::fold::fold_before;
use callstate_query::model::fleet::Fleet;
use callstate_query::model::frozen::Edges;
use callstate_query::model::intervals::clip_from;
use callstate_query::model::sla::{availability_over, sla_over};
use callstate_query::model::targets::GroupBy;
use callstate_query::{Cancel, Derived, Live, ServiceInterval};
use callstate_schemas::{Body, Event, Scope, Us};

mod common;

const HOUR: Us = 3_600_000_000;
/// Events a segment (small: the failovers of a simulated day fall in a few hours, and a fold
/// needs segments wholly before its horizon).
const SEGMENT_ROWS: usize = 300;

/// Every device's intervals that end after `horizon`, as a fleet gives them (those before
/// left out when the fleet keeps more).
fn intervals_from(f: &dyn Fleet, horizon: Us) -> Vec<String> {
    let mut out = Vec::new();
    for d in f.devices() {
        let mut iv: Vec<ServiceInterval> = d.all().into_owned();
        clip_from(&mut iv, 0, horizon);
        out.extend(iv.iter().map(|i| format!("{i:?}")));
    }
    out
}

/// Availability by device and by node over windows from `horizon` on: the hour after it, a
/// window cut mid-hour, and everything to the end.
fn availability_from(f: &dyn Fleet, horizon: Us, end: Us) -> Vec<String> {
    let next = horizon.div_euclid(HOUR) * HOUR + HOUR;
    let windows = [
        (horizon, end),
        (next, next + HOUR),
        (horizon + 61_000_000, next + 3 * HOUR + 7),
    ];
    let mut out = Vec::new();
    for by in [GroupBy::Device, GroupBy::Node] {
        let rows =
            availability_over(f.devices(), f.windows(), &windows, by, &Cancel::new()).unwrap();
        out.extend(rows.iter().map(|r| format!("{r:?}")));
    }
    out
}

fn answers(f: &dyn Fleet, horizon: Us, end: Us) -> Vec<String> {
    let mut out = intervals_from(f, horizon);
    out.extend(availability_from(f, horizon, end));
    out
}

/// A log of `events` rolled every `rows` events but the last (segments whose spans of time
/// follow each other, so that horizons across the history have segments wholly before
/// them, and a tail).
fn rolled_log(events: &[callstate_schemas::Event], rows: usize) -> (tempfile::TempDir, Log) {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), callstate_log::LogOptions::default()).unwrap();
    let chunks: Vec<_> = events.chunks(rows).collect();
    for (k, chunk) in chunks.iter().enumerate() {
        log.append(chunk).unwrap();
        // the last left in the WAL's tail
        if k + 1 < chunks.len() {
            log.roll_now().unwrap();
        }
    }
    (dir, log)
}

/// Asserts `got == want`, showing the first difference only.
fn same(got: &[String], want: &[String], what: &str) {
    if let Some(k) = (0..got.len().max(want.len())).find(|&k| got.get(k) != want.get(k)) {
        panic!(
            "{what}: answer {k} of {} differs\n got: {:?}\nwant: {:?}",
            want.len(),
            got.get(k),
            want.get(k)
        );
    }
}

fn derived(log: &Log) -> Derived {
    Derived::load(log.snapshot(), None, Default::default(), false).unwrap()
}

/// The view of `live` once it holds the log's version and the fold.
fn folded_view(live: &Live, log: &Log, horizon: Us) -> std::sync::Arc<callstate_query::View> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let v = common::caught_up(live, log.version(), Duration::from_secs(60));
        if v.intervals_kept_from() == Some(horizon) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the fold never reached the live state"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for every device of `live` to read its history from the service file (written
/// again after the fold), then checks its answers again.
fn reading_the_service_file(live: &Live, want: &[String], horizon: Us, end: Us, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let v = live.view();
        let devices = Fleet::devices(&*v).count();
        if v.devices_reading_service_file() == devices {
            same(&answers(&*v, horizon, end), want, what);
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: the service file was not written again: {} of {devices} devices read it",
            v.devices_reading_service_file(),
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Folds a log of `events` at `horizon` and checks every answer from it on against the
/// derivation of the whole log; false when no segment lay wholly before it (no fold).
fn check(events: &[callstate_schemas::Event], horizon: Us, segment_rows: usize) -> bool {
    let (_dir, log) = rolled_log(events, segment_rows);
    let whole = derived(&log);
    let end = whole.intervals.iter().map(|i| i.valid_from).max().unwrap() + HOUR;
    let want = answers(&whole, horizon, end);
    assert!(want.len() > 50, "{}", want.len());
    let running = Live::start(&log, Default::default()).unwrap();
    let view = common::caught_up(&running, log.version(), Duration::from_secs(60));

    let Some(folded) = fold_before(&log, &view, horizon, None, Duration::ZERO).unwrap() else {
        // no segment wholly before the horizon: nothing folded, every question answered
        let snap = log.snapshot();
        assert!(snap.segments.iter().all(|s| s.max_time_us >= horizon));
        assert!(snap.base.is_none());
        assert_eq!(derived(&log).intervals_kept_from(), None);
        return false;
    };
    let snap = log.snapshot();
    let base = snap.base.clone().expect("a base");
    assert_eq!(base.horizon_us, horizon);
    for s in &snap.segments {
        assert_eq!(s.folded, folded.segments.contains(&s.file), "{}", s.file);
        assert_eq!(s.folded, s.max_time_us < horizon, "{}", s.file);
        assert!(!s.folded || s.digest.is_none());
    }
    let stats = LogStats::of(&snap).unwrap();
    assert_eq!(stats.folded_segments, folded.segments.len() as u64);
    assert_eq!(stats.folded_events, folded.events);
    assert!(stats.base_bytes > 0);
    assert!(stats.intervals_kept_from.is_some());

    let after = derived(&log);
    assert_eq!(after.intervals_kept_from(), Some(horizon));
    assert!(
        after
            .intervals
            .iter()
            .all(|i| i.valid_to.is_none_or(|e| e > horizon))
    );
    same(
        &answers(&after, horizon, end),
        &want,
        "from scratch, folded",
    );
    let view = folded_view(&running, &log, horizon);
    same(
        &answers(&*view, horizon, end),
        &want,
        "live through the fold",
    );
    // the running state writes the service file again: the devices it derived again read
    // it then
    reading_the_service_file(&running, &want, horizon, end, "through the fold");
    drop(running);
    let restarted = Live::start(&log, Default::default()).unwrap();
    let view = folded_view(&restarted, &log, horizon);
    same(
        &answers(&*view, horizon, end),
        &want,
        "live after a restart",
    );
    // the service file, written before the fold, is written again from the history kept
    // (the start finds its devices' histories changed at the same version), then read
    reading_the_service_file(&restarted, &want, horizon, end, "after a restart");

    // reaching before the horizon is refused, from it on answered
    assert!(after.intervals_known(horizon - 1).is_err());
    assert!(after.intervals_known(horizon).is_ok());
    assert!(
        Derived::load(
            log.snapshot(),
            Some(base.max_ingest_time_us - 1),
            Default::default(),
            false
        )
        .is_err(),
        "what was known before the fold's ingest times cannot be told"
    );
    true
}

/// The events of the stream but those of its first source over [a, b] (fractions of its
/// span): a silence of that source, its devices unknown from 90 s after `a` to `b`.
fn carve_silence(events: &mut Vec<Event>, a: f64, b: f64) -> (Us, Us) {
    let t = |e: &callstate_schemas::Event| e.time.timestamp_micros();
    let (first, last) = (t(&events[0]), t(events.last().unwrap()));
    let at = |f: f64| first + ((last - first) as f64 * f) as Us;
    let (a, b) = (at(a), at(b));
    let source = events[0].source.clone();
    events.retain(|e| e.source != source || t(e) < a || t(e) > b);
    (a, b)
}

#[test]
fn a_fold_after_a_silence_keeps_where_the_interval_holding_the_horizon_starts() {
    let (mut events, _) = common::simulate("quiet-day", 30, 4);
    let (_, b) = carve_silence(&mut events, 0.3, 0.4);
    // just after the silence, and later in the span after it
    for h in [b + 2_000_000, b + 3 * HOUR + 17] {
        assert!(check(&events, h, SEGMENT_ROWS), "a fold at {h}");
    }
}

#[test]
fn a_fold_keeps_every_interval_and_availability_from_its_horizon() {
    for (scenario, devices, seed) in [
        ("rolling-upgrade", 30, 3),
        ("site-outage", 30, 5),
        ("chaos", 60, 11),
        ("ctimanager-failover", 30, 2),
    ] {
        let (events, _) = common::simulate(scenario, devices, seed);
        let (_dir, log) = rolled_log(&events, SEGMENT_ROWS);
        let whole = derived(&log);
        let (first, last) = (
            whole.intervals.iter().map(|i| i.valid_from).min().unwrap(),
            whole.intervals.iter().map(|i| i.valid_from).max().unwrap(),
        );
        drop(log);
        // at starts of intervals spread over the history (where failovers, re-homes and
        // silences begin), just before and after, and at hours between
        let mut starts: Vec<Us> = whole
            .intervals
            .iter()
            .map(|i| i.valid_from)
            .filter(|&t| t > first + HOUR)
            .collect();
        starts.sort();
        starts.dedup();
        let mut horizons: Vec<Us> = (1..=6)
            .map(|k| starts[k * starts.len() / 7])
            .flat_map(|t| [t, t + 1, t - 1])
            .chain((1..4).map(|k| (first + k * (last - first) / 4).div_euclid(HOUR) * HOUR))
            .filter(|&h| h > first && h < last)
            .collect();
        horizons.sort();
        horizons.dedup();
        let mut folds = 0;
        for &h in &horizons {
            folds += usize::from(check(&events, h, SEGMENT_ROWS));
        }
        assert!(
            folds * 4 >= horizons.len() * 3,
            "{scenario}: {folds} folds of {} horizons",
            horizons.len()
        );
    }
}

/// Every grouping's SLA (availability, outages, MTTR, longest) over whole-hour windows
/// reaching before `horizon` (the hours frozen there answer them), checked answerable first.
fn sla_before(f: &dyn Fleet, first: Us, horizon: Us, end: Us) -> Vec<String> {
    let h0 = first.div_euclid(HOUR) * HOUR;
    let end = end.div_euclid(HOUR) * HOUR;
    let windows = [
        (h0, horizon),
        (h0, end),
        (h0 + HOUR, horizon - HOUR),
        (horizon - 2 * HOUR, horizon + HOUR),
        // a window from the horizon's hour to an edge inside a later hour (kept intervals)
        (horizon - HOUR, end - 7),
    ];
    f.availability_known(&windows).unwrap();
    let mut out = Vec::new();
    for by in [
        GroupBy::Device,
        GroupBy::DevicePool,
        GroupBy::Node,
        GroupBy::Cluster,
    ] {
        let rows = sla_over(
            f.devices(),
            f.windows(),
            &windows,
            by,
            f.targets(),
            &Cancel::new(),
        )
        .unwrap();
        out.extend(rows.iter().map(|r| format!("{r:?}")));
    }
    out
}

/// A maintenance window on `device` over [start, end), announced at `at` by an operator.
fn window_on(device: &str, start: Us, end: Us, at: Us) -> Event {
    let t = |us: Us| chrono::DateTime::from_timestamp_micros(us).unwrap();
    Event {
        source: "a-late-operator".into(),
        seq: 1,
        time: t(at),
        cluster: "c1".into(),
        body: Body::MaintenanceWindow {
            scope: Scope::Device,
            target: device.into(),
            start: t(start),
            end: t(end),
            reason: "announced late".into(),
        },
        extra: None,
    }
}

#[test]
fn hourly_rollups_kept_before_the_horizon_answer_as_the_whole_log() {
    for (scenario, devices, seed) in [
        ("rolling-upgrade", 30, 3),
        ("site-outage", 30, 5),
        ("chaos", 60, 11),
    ] {
        let (events, _) = common::simulate(scenario, devices, seed);
        let (_dir, log) = rolled_log(&events, SEGMENT_ROWS);
        let whole = derived(&log);
        let first = whole.intervals.iter().map(|i| i.valid_from).min().unwrap();
        let last = whole.intervals.iter().map(|i| i.valid_from).max().unwrap();
        let end = last + 2 * HOUR;
        let at = |k: Us| (first + k * (last - first) / 3).div_euclid(HOUR) * HOUR;
        let (h1, h2) = (at(1), at(2));
        assert!(
            first + HOUR < h1 && h1 + 3 * HOUR < h2,
            "{scenario}: a history of hours"
        );
        let running = Live::start(&log, Default::default()).unwrap();
        // two folds: the second keeps the first's hours and freezes those up to its own
        for h in [h1, h2] {
            let view = common::caught_up(&running, log.version(), Duration::from_secs(60));
            fold_before(&log, &view, h, None, Duration::ZERO)
                .unwrap()
                .expect("segments before the horizon");
            let want = sla_before(&whole, first, h, end);
            let what = format!("{scenario}, frozen before {h}");
            same(&sla_before(&derived(&log), first, h, end), &want, &what);
            let live = folded_view(&running, &log, h);
            same(&sla_before(&*live, first, h, end), &want, &what);
        }
        drop(running);
        let restarted = Live::start(&log, Default::default()).unwrap();
        let view = folded_view(&restarted, &log, h2);
        let want = sla_before(&whole, first, h2, end);
        same(
            &sla_before(&*view, first, h2, end),
            &want,
            "after a restart",
        );

        // what the hours cannot answer is refused, naming why
        let after = derived(&log);
        for (w, why) in [
            ((h1 + 1, h2 + HOUR), "whole UTC hours"),
            ((h1, h2 - 7), "whole UTC hours"),
        ] {
            let e = after.availability_known(&[w]).unwrap_err().to_string();
            assert!(e.contains(why), "{w:?}: {e}");
        }
        assert!(after.availability_known(&[(h1, h2 + 7)]).is_ok());
        // edges=hours: such edges moved inward to the hour, then answered as the whole log
        let asked = vec![(h1 + 1, h2 + HOUR + 7), (h2 - 7, h2 + 7), (h1 + 7, h2 - 7)];
        let e = after
            .availability_windows(asked.clone(), Edges::Exact)
            .unwrap_err()
            .to_string();
        assert!(e.contains("whole UTC hours"), "{e}");
        let whole_hours = vec![(h1, h2 + 7), (h2 + 1, h2 + 7)];
        assert_eq!(
            after
                .availability_windows(whole_hours.clone(), Edges::Exact)
                .unwrap(),
            whole_hours
        );
        let moved = after.availability_windows(asked, Edges::Hours).unwrap();
        assert_eq!(
            moved,
            [
                (h1 + HOUR, h2 + HOUR + 7),
                (h2, h2 + 7),
                (h1 + HOUR, h2 - HOUR)
            ]
        );
        after.availability_known(&moved).unwrap();
        let by_device = |f: &dyn Fleet| {
            let rows = availability_over(
                f.devices(),
                f.windows(),
                &moved,
                GroupBy::Device,
                &Cancel::new(),
            )
            .unwrap();
            rows.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>()
        };
        same(
            &by_device(&after),
            &by_device(&whole),
            "edges moved to hours",
        );
        let e = after
            .availability_windows(vec![(h1 + 7, h1 + HOUR - 7)], Edges::Hours)
            .unwrap_err()
            .to_string();
        assert!(e.contains("inside one hour"), "{e}");
        // state and intervals before the horizon stay refused
        assert!(after.intervals_known(h2 - 1).is_err());
        // as known before the fold's last ingest: the frozen hours are not that knowledge
        let base = log.snapshot().base.unwrap();
        let known = Derived::load(
            log.snapshot(),
            Some(base.max_ingest_time_us.max(0) + 1),
            Default::default(),
            false,
        );
        if let Ok(k) = known {
            let frozen_known = k.frozen().is_some();
            let refused = k.availability_known(&[(h1, h2)]).is_err();
            assert_eq!(frozen_known, !refused, "{scenario}: known_at");
        }

        // retention of rollups: the hours before h1 go, those after still answer
        let restarted_view = common::caught_up(&restarted, log.version(), Duration::from_secs(60));
        fold_before(&log, &restarted_view, h2, Some(h1), Duration::ZERO)
            .unwrap()
            .expect("the rollups trimmed");
        assert_eq!(log.snapshot().base.unwrap().horizon_us, h2);
        let after = derived(&log);
        let e = after
            .availability_known(&[(h1 - HOUR, h2)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("retention of rollups"), "{e}");
        same(
            &sla_before(&after, h1, h2, end),
            &sla_before(&whole, h1, h2, end),
            &format!("{scenario}: rollups kept from {h1}"),
        );

        // a maintenance window announced after the freeze over frozen hours: not applied,
        // so the windows it touches are refused; the others still answer
        let device = whole.intervals[0].device.to_string();
        let late = window_on(&device, h1 + HOUR, h1 + 2 * HOUR, last + HOUR);
        let r = log.append(std::slice::from_ref(&late)).unwrap();
        assert_eq!(r.accepted, 1, "{r:?}");
        let after = derived(&log);
        let e = after
            .availability_known(&[(h1, h2)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("announced"), "{e}");
        assert!(e.contains(&device), "{e}");
        assert!(after.availability_known(&[(h1 + 2 * HOUR, h2)]).is_ok());
        assert!(after.availability_known(&[(h1, h1 + HOUR)]).is_ok());
    }
}

#[test]
fn a_window_announced_between_two_folds_is_answered_where_the_second_applied_it() {
    let (events, _) = common::simulate("rolling-upgrade", 30, 3);
    let (_dir, log) = rolled_log(&events, SEGMENT_ROWS);
    let before = derived(&log);
    let first = before.intervals.iter().map(|i| i.valid_from).min().unwrap();
    let last = before.intervals.iter().map(|i| i.valid_from).max().unwrap();
    let end = last + 2 * HOUR;
    let at = |k: Us| (first + k * (last - first) / 3).div_euclid(HOUR) * HOUR;
    let (h1, h2) = (at(1), at(2));
    assert!(
        first + 2 * HOUR < h1 && h1 + 3 * HOUR < h2,
        "a history of hours"
    );
    let running = Live::start(&log, Default::default()).unwrap();
    let view = common::caught_up(&running, log.version(), Duration::from_secs(60));
    fold_before(&log, &view, h1, None, Duration::ZERO)
        .unwrap()
        .expect("segments before h1");
    // a window over the hour before h1 and the hour after, announced after the first fold:
    // the second fold applies it to the hour after h1, which is answered; the hour before
    // was frozen without it and is refused
    let device = before.intervals[0].device.to_string();
    let late = window_on(&device, h1 - HOUR, h1 + HOUR, last + HOUR);
    assert_eq!(log.append(std::slice::from_ref(&late)).unwrap().accepted, 1);
    let view = common::caught_up(&running, log.version(), Duration::from_secs(60));
    fold_before(&log, &view, h2, None, Duration::ZERO)
        .unwrap()
        .expect("segments before h2");

    let mut all = events.clone();
    all.push(late);
    let (_whole_dir, whole_log) = rolled_log(&all, SEGMENT_ROWS);
    let whole = derived(&whole_log);
    let want = sla_before(&whole, h1, h2, end);
    // the window changes the device's answer over the hour after h1: the check can fail
    assert_ne!(
        sla_before(&before, h1, h2, end),
        want,
        "the window changes the device's SLA"
    );
    let after = derived(&log);
    same(&sla_before(&after, h1, h2, end), &want, "from scratch");
    let live = folded_view(&running, &log, h2);
    same(&sla_before(&*live, h1, h2, end), &want, "live");
    drop(running);
    let restarted = Live::start(&log, Default::default()).unwrap();
    let live = folded_view(&restarted, &log, h2);
    same(&sla_before(&*live, h1, h2, end), &want, "after a restart");

    for f in [&after as &dyn Fleet, &*live] {
        let e = f
            .availability_known(&[(h1 - HOUR, h2)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("announced") && e.contains(&device), "{e}");
        let h0 = first.div_euclid(HOUR) * HOUR + HOUR;
        assert!(f.availability_known(&[(h0, h1 - HOUR)]).is_ok());
    }
}
