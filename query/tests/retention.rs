//! Retention of raw events: once the segments wholly before a horizon lose their files, the
//! live state answers every service and call question as before (intervals from the digests,
//! legs from the checkpoint), after a restart too; the `events` table refuses a question
//! reaching into what was removed and says what was, and answers one bounded after it.
//!
//! Retention of call legs: the legs that started and ended before a horizon leave the
//! checkpoint and the live state; every call question from the horizon on is answered as the
//! derivation from scratch answers it, one before it says that the legs were removed (the
//! `calls` table refuses, device states and incidents give their calls as null), after a
//! restart too, and a later horizon counts only what it adds.

use std::time::Duration;

use std::sync::Arc;

use callstate_log::Log;
use callstate_query::live::checkpoint::{LegsRetention, covered_through, retention};
use callstate_query::model::fleet::Fleet;
use callstate_query::model::incidents::{IncidentOptions, detect};
use callstate_query::model::rows::CallRow;
use callstate_query::model::state::states_at;
use callstate_query::{Cancel, Derived, Live, LiveSource, View};
use callstate_schemas::{Us, format_instant};

mod common;

/// What the live state answers: every device's intervals, every call question, incidents.
fn answers(f: &dyn Fleet) -> Vec<String> {
    let mut out: Vec<String> = f
        .devices()
        .flat_map(|d| {
            d.intervals
                .all()
                .iter()
                .map(|i| format!("{i:?}"))
                .collect::<Vec<_>>()
        })
        .collect();
    out.extend(common::call_questions(f));
    let incidents = detect(f, 0, Us::MAX, &IncidentOptions::default(), &Cancel::new()).unwrap();
    out.extend(incidents.iter().map(|i| format!("{i:?}")));
    out
}

fn live_answers(log: &Log) -> (Vec<String>, Live) {
    let live = Live::start(log, Default::default()).unwrap();
    let view = common::caught_up(&live, log.version(), Duration::from_secs(60));
    (answers(&*view), live)
}

fn sql(log: &Log, query: &str) -> std::result::Result<Vec<Vec<Option<String>>>, String> {
    let snap = log.snapshot();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let ctx = callstate_query::session::context(&snap, None)
            .await
            .map_err(|e| e.to_string())?;
        let df = ctx.sql(query).await.map_err(|e| e.to_string())?;
        let batches = df.collect().await.map_err(|e| e.to_string())?;
        Ok(common::strings(&batches))
    })
}

#[test]
fn retired_raw_events_leave_every_answer_and_the_events_table_says_so() {
    let (events, _) = common::simulate("node-failover", 40, 7);
    let (dir, log) = common::log_with(&events, 2_000);
    log.roll_now().unwrap();
    let (before, live) = live_answers(&log);
    assert!(before.len() > 1_000);
    // the legs' checkpoint first: retention keeps the legs there
    let written = live.checkpoint().unwrap();
    drop(live);
    assert_eq!(covered_through(&log.snapshot()), Some(written.version));
    let snap = log.snapshot();
    let times: Vec<i64> = snap.segments.iter().map(|s| s.max_time_us).collect();
    let horizon = times[times.len() / 2];
    let total: u64 = snap.segments.iter().map(|s| s.rows).sum();

    // a live state running while it happens
    let (_, running) = live_answers(&log);

    // nothing above the checkpoint's version goes
    let none = log.retire(horizon, 0, Duration::ZERO).unwrap();
    assert!(none.segments.is_empty());
    let retired = log
        .retire(horizon, written.version, Duration::ZERO)
        .unwrap();
    assert!(!retired.segments.is_empty(), "{times:?}");
    let snap = log.snapshot();
    for s in &snap.segments {
        assert_eq!(s.retired, s.max_time_us < horizon, "{}", s.file);
        assert_eq!(snap.segment_path(s).exists(), !s.retired, "{}", s.file);
        assert!(
            s.digest
                .as_ref()
                .is_some_and(|d| dir.path().join("segments").join(&d.file).exists()),
            "its digest stays"
        );
    }
    let stats = callstate_log::LogStats::of(&snap).unwrap();
    assert_eq!(stats.retired_events, retired.events);
    assert_eq!(stats.events + stats.retired_events, total);

    // the state running on is told (its `events` table no longer names the files) and
    // answers as before, and so does a restart from the checkpoint
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let view = loop {
        let v = running.view();
        if v.snapshot().held_segments().count() == snap.held_segments().count() {
            break v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the running state was not told"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(answers(&*view), before);
    drop(running);
    let (after, live) = live_answers(&log);
    assert_eq!(after, before);
    assert_eq!(live.legs_from(), Some(written.version));

    // the events table: refused without a bound past what was removed, answered with one
    let through = snap
        .segments
        .iter()
        .filter(|s| s.retired)
        .map(|s| s.max_time_us)
        .max()
        .unwrap();
    let err = sql(&log, "SELECT count(*) FROM events").unwrap_err();
    assert!(err.contains("removed by retention"), "{err}");
    assert!(err.contains(&retired.events.to_string()), "{err}");
    let bound = chrono::DateTime::from_timestamp_micros(through)
        .unwrap()
        .to_rfc3339();
    let early = format!("SELECT count(*) FROM events WHERE time >= '{bound}'");
    assert!(
        sql(&log, &early).is_err(),
        "at the last retired instant still reaches in"
    );
    let q = format!("SELECT count(*) FROM events WHERE time > '{bound}'");
    let n: u64 = sql(&log, &q).unwrap()[0][0]
        .as_ref()
        .unwrap()
        .parse()
        .unwrap();
    let kept = events
        .iter()
        .filter(|e| e.time.timestamp_micros() > through)
        .count() as u64;
    assert!(n > 0 && n <= kept, "{n} of {kept}");

    // the derivation from scratch cannot pair the retired call events: it says so
    let scratch = callstate_query::Derived::load(log.snapshot(), None, Default::default(), true);
    let Err(err) = scratch else {
        panic!("the derivation from scratch must refuse")
    };
    let err = err.to_string();
    assert!(err.contains("retention removed"), "{err}");

    // a restart of the log: the retired files stay gone, re-sent old events are duplicates
    drop(live);
    drop(log);
    let log = callstate_log::Log::open(
        dir.path(),
        callstate_log::LogOptions {
            segment_rows: 2_000,
        },
    )
    .unwrap();
    let r = log.append(&events).unwrap();
    assert_eq!((r.accepted, r.conflicts), (0, 0));
    let (again, _) = live_answers(&log);
    assert_eq!(again, before);
}

/// Every complete leg of a fleet.
fn complete_legs(f: &dyn Fleet) -> Vec<CallRow> {
    f.calls()
        .flat_map(|l| {
            l.iter()
                .filter(|c| c.end.is_some())
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect()
}

fn removed_at(h: Us, c: &CallRow) -> bool {
    c.start < h && c.end.is_some_and(|e| e < h)
}

/// SQL over the live view `view`.
fn live_sql(
    view: &Arc<View>,
    query: &str,
) -> std::result::Result<Vec<Vec<Option<String>>>, String> {
    let source = Arc::new(LiveSource {
        view: view.clone(),
        as_of: Default::default(),
    });
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let ctx = callstate_query::session::context_for(source, None)
            .await
            .map_err(|e| e.to_string())?;
        let df = ctx.sql(query).await.map_err(|e| e.to_string())?;
        let batches = df.collect().await.map_err(|e| e.to_string())?;
        Ok(common::strings(&batches))
    })
}

/// The live view once it holds the legs of a checkpoint retaining from `want`.
fn retaining(live: &Live, want: Option<LegsRetention>) -> Arc<View> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v = live.view();
        if v.legs_retention() == want {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the checkpoint was not taken in"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a live view retaining the legs from `h` answers, against the derivation from scratch
/// (which holds every leg).
fn check_retained(view: &Arc<View>, scratch: &Derived, h: Us) {
    let f: &dyn Fleet = &**view;
    assert_eq!(f.calls_kept_from(), Some(h));
    // the legs it keeps, and every call question from the horizon on
    let held: Vec<CallRow> = complete_legs(f)
        .into_iter()
        .filter(|c| removed_at(h, c))
        .collect();
    assert!(
        held.is_empty(),
        "{} legs held, mapped {}: {:?}",
        held.len(),
        view.devices_with_mapped_legs(),
        &held[..held.len().min(3)]
    );
    assert_eq!(
        common::call_questions_from(f, h),
        common::call_questions_from(scratch, h)
    );
    // service history untouched
    let intervals = |f: &dyn Fleet| -> Vec<String> {
        f.devices()
            .flat_map(|d| {
                let w = d.window(Us::MIN, Us::MAX);
                w.iter().map(|i| format!("{i:?}")).collect::<Vec<_>>()
            })
            .collect()
    };
    assert!(intervals(f) == intervals(scratch), "intervals differ");
    // device states: the calls from the horizon on, null before it
    let cancel = Cancel::new();
    let states = |f: &dyn Fleet, t| states_at(f, t, &cancel).unwrap();
    assert_eq!(states(f, h), states(scratch, h));
    let before = states(f, h - 1);
    assert!(!before.is_empty() && before.iter().all(|s| s.active_calls.is_none()));
    let mut known = states(scratch, h - 1);
    for s in &mut known {
        s.active_calls = None;
    }
    assert_eq!(before, known);
    // incidents: from the horizon on as from scratch; before it, the calls are not known
    let got = detect(f, 0, Us::MAX, &IncidentOptions::default(), &cancel).unwrap();
    let want = detect(scratch, 0, Us::MAX, &IncidentOptions::default(), &cancel).unwrap();
    assert_eq!(got.len(), want.len());
    let (mut early, mut late) = (0, 0);
    for (g, mut w) in got.into_iter().zip(want) {
        if g.started_at < h {
            early += 1;
            assert_eq!(
                (&g.calls_active, &g.calls_ended),
                (&None, &None),
                "{}",
                g.id
            );
            (w.calls_active, w.calls_ended) = (None, None);
        } else {
            late += 1;
            assert!(g.calls_active.is_some(), "{}", g.id);
        }
        assert_eq!(format!("{g:?}"), format!("{w:?}"));
    }
    assert!(
        early > 0 && late > 0,
        "incidents on both sides: {early} {late}"
    );
    // SQL: the calls table refuses a question reaching before the horizon, saying so, and
    // answers one bounded to calls started from it
    let err = live_sql(view, "SELECT count(*) FROM calls").unwrap_err();
    assert!(err.contains("removed by retention"), "{err}");
    assert!(err.contains(&format_instant(h)), "{err}");
    let q = format!(
        "SELECT count(*) FROM calls WHERE started_at >= '{}'",
        format_instant(h)
    );
    let n: usize = live_sql(view, &q).unwrap()[0][0]
        .as_ref()
        .unwrap()
        .parse()
        .unwrap();
    let started: usize = scratch
        .calls()
        .map(|l| l.iter().filter(|c| c.start >= h).count())
        .sum();
    assert_eq!(n, started);
    let q = format!(
        "SELECT count(*), count(active_calls) FROM device_state_at(TIMESTAMP '{}')",
        format_instant(h - 1)
    );
    let row = &live_sql(view, &q).unwrap()[0];
    assert_ne!(row[0].as_deref(), Some("0"));
    assert_eq!(
        row[1].as_deref(),
        Some("0"),
        "active calls before the horizon: null"
    );
}

#[test]
fn retained_call_legs_answer_from_their_horizon_and_say_so_before_it() {
    let (events, _) = common::simulate("rolling-upgrade", 40, 7);
    let (dir, log) = common::log_with(&events, 2_000);
    log.roll_now().unwrap();
    let scratch = Derived::load(log.snapshot(), None, Default::default(), true).unwrap();
    let legs = complete_legs(&scratch);
    // horizons between incidents, at the end of a leg
    let incidents = detect(
        &scratch,
        0,
        Us::MAX,
        &IncidentOptions::default(),
        &Cancel::new(),
    )
    .unwrap();
    let (first, last) = (
        incidents[0].started_at,
        incidents.last().unwrap().started_at,
    );
    let mut ends: Vec<Us> = legs.iter().filter_map(|c| c.end).collect();
    ends.sort_unstable();
    let end_after = |t: Us| ends[ends.partition_point(|&e| e < t)];
    let h = end_after((first + last) / 2);
    let h2 = end_after((h + last) / 2);
    assert!(first < h && h < h2 && h2 < last);
    let gone = |h| legs.iter().filter(|c| removed_at(h, c)).count() as u64;
    assert!(gone(h) > 0 && gone(h2) > gone(h));

    let live = Live::start(&log, Default::default()).unwrap();
    common::caught_up(&live, log.version(), Duration::from_secs(60));
    let all = live.checkpoint().unwrap();
    assert_eq!(all.retention, None);
    assert_eq!(retention(dir.path()), None);
    let w = live.retain_legs_from(h).unwrap();
    let r = Some(LegsRetention {
        kept_from: h,
        removed: gone(h),
    });
    assert_eq!(w.retention, r);
    assert_eq!(w.legs + gone(h), all.legs);
    assert!(w.bytes < all.bytes);
    // what `log stats` reports
    assert_eq!(retention(dir.path()), r);
    check_retained(&retaining(&live, r), &scratch, h);

    // a restart reads the horizon back with the legs
    drop(live);
    let live = Live::start(&log, Default::default()).unwrap();
    let view = common::caught_up(&live, log.version(), Duration::from_secs(60));
    assert_eq!(view.legs_retention(), r);
    check_retained(&view, &scratch, h);

    // a checkpoint written later keeps the horizon; an earlier one asked changes nothing
    assert_eq!(live.checkpoint().unwrap().retention, r);
    assert_eq!(live.retain_legs_from(h - 1).unwrap().retention, r);
    // a later horizon counts only the legs it adds
    let r2 = Some(LegsRetention {
        kept_from: h2,
        removed: gone(h2),
    });
    assert_eq!(live.retain_legs_from(h2).unwrap().retention, r2);
    check_retained(&retaining(&live, r2), &scratch, h2);
    assert_eq!(retention(dir.path()), r2);
}
