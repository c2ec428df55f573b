//! Retention of raw events: once the segments wholly before a horizon lose their files, the
//! live state answers every service and call question as before (intervals from the digests,
//! legs from the checkpoint), after a restart too; the `events` table refuses a question
//! reaching into what was removed and says what was, and answers one bounded after it.

use std::time::Duration;

use callstate_log::Log;
use callstate_query::live::checkpoint::covered_through;
use callstate_query::model::fleet::Fleet;
use callstate_query::model::incidents::{IncidentOptions, detect};
use callstate_query::{Cancel, Live};
use callstate_schemas::Us;

mod common;

/// What the live state answers: every device's intervals, every call question, incidents.
fn answers(f: &dyn Fleet) -> Vec<String> {
    let mut out: Vec<String> = f
        .devices()
        .flat_map(|d| {
            d.intervals
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
