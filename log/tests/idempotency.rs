//! The idempotency index keeps only a presence bit for the keys of segments: a restart
//! builds it from the manifest's key runs without reading the files, and a re-sent old
//! event is still told a duplicate or a conflict from the hash stored in its segment.

use std::path::Path;
use std::time::Duration;

use callstate_log::dedupe::{DENSE_ENOUGH, MAX_RUNS};
use callstate_log::manifest::Manifest;
use callstate_log::{CompactOptions, Log, LogOptions, Outcome, Snapshot};
use callstate_schemas::Event;
use callstate_sim::synthetic;
use chrono::{DateTime, Utc};

fn t0() -> DateTime<Utc> {
    "2026-11-24T08:00:00Z".parse().unwrap()
}

fn open(dir: &Path, segment_rows: usize) -> Log {
    Log::open(dir, LogOptions { segment_rows }).unwrap()
}

fn append_all(log: &Log, events: &[Event]) {
    for chunk in events.chunks(333) {
        assert_eq!(log.append(chunk).unwrap().accepted, chunk.len());
    }
}

/// `e` with other content under the same key.
fn changed(e: &Event) -> Event {
    let mut c = e.clone();
    c.cluster = "OTHER".into();
    c
}

fn stored_count(dir: &Path) -> usize {
    Snapshot::load(dir).unwrap().stored_events().unwrap().len()
}

/// Re-sends `old` (all stored): every one a duplicate, and each changed one a conflict.
fn assert_told_apart(log: &Log, old: &[Event]) {
    let r = log.append(old).unwrap();
    assert_eq!((r.accepted, r.duplicates, r.conflicts), (0, old.len(), 0));
    let picks: Vec<Event> = old.iter().step_by(97).map(changed).collect();
    let r = log.append(&picks).unwrap();
    assert_eq!((r.accepted, r.conflicts), (0, picks.len()));
}

#[test]
fn a_restart_lists_segment_keys_and_old_events_are_still_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let events = synthetic::events(6_000, 40, t0());
    let (old, new) = events.split_at(5_000);
    {
        let log = open(dir.path(), 1_000);
        append_all(&log, old);
        log.roll_now().unwrap();
        assert_eq!(log.recent_keys(), 0, "a roll moves its keys out of memory");
    }
    let m = Manifest::load(dir.path()).unwrap();
    assert!(m.segments.len() >= 3, "{} segments", m.segments.len());
    for s in &m.segments {
        let keys = s.keys.as_ref().expect("every segment lists its keys");
        let listed: u64 = keys
            .iter()
            .flat_map(|k| &k.runs)
            .map(|r| r[1] - r[0] + 1)
            .sum();
        assert_eq!(listed, s.rows, "{}: runs cover exactly its events", s.file);
    }

    let log = open(dir.path(), 1_000);
    assert_eq!((log.distinct_keys(), log.recent_keys()), (5_000, 0));
    // old, changed old and new in one call, a new one twice
    let r = log
        .append(&[
            old[10].clone(),
            changed(&old[4_000]),
            new[0].clone(),
            new[0].clone(),
            changed(&old[10]),
        ])
        .unwrap();
    assert_eq!(
        r.outcomes,
        vec![
            Outcome::Duplicate,
            Outcome::Conflict,
            Outcome::Accepted(5_001),
            Outcome::Duplicate,
            Outcome::Conflict
        ]
    );
    assert_eq!((r.duplicates, r.conflicts), (2, 2));
    assert_eq!((log.distinct_keys(), log.recent_keys()), (5_001, 1));
    assert_told_apart(&log, old);
    append_all(&log, &new[1..]);
    assert_told_apart(&log, &events);
    log.roll_now().unwrap();
    assert_eq!((log.distinct_keys(), log.recent_keys()), (6_000, 0));
    assert_told_apart(&log, &events);
    drop(log);
    assert_eq!(stored_count(dir.path()), 6_000);
}

#[test]
fn segments_written_before_key_runs_are_read_once_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let events = synthetic::events(3_000, 40, t0());
    {
        let log = open(dir.path(), 1_000);
        append_all(&log, &events);
        log.roll_now().unwrap();
    }
    // as an older version wrote it: no key runs
    let path = dir.path().join("MANIFEST.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for s in json["segments"].as_array_mut().unwrap() {
        s.as_object_mut().unwrap().remove("keys").unwrap();
    }
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    assert!(
        Manifest::load(dir.path())
            .unwrap()
            .segments
            .iter()
            .all(|s| s.keys.is_none())
    );

    let log = open(dir.path(), 1_000);
    assert_eq!((log.distinct_keys(), log.recent_keys()), (3_000, 0));
    assert!(
        Manifest::load(dir.path())
            .unwrap()
            .segments
            .iter()
            .all(|s| s.keys.is_some()),
        "the open listed them in the manifest"
    );
    assert_told_apart(&log, &events);
}

/// Events numbered with gaps: every source's every `step`th number.
fn scattered(n: u64, step: u64) -> Vec<Event> {
    let mut events = synthetic::events(n, 40, t0());
    for e in &mut events {
        e.seq *= step;
    }
    events
}

/// Rolls `events` into one segment too scattered to list; its keys held with their hashes
/// (`recent`) or settled, after the roll and after a restart; re-sent, told apart.
fn rolled_unlisted(events: &[Event], recent: usize) {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path(), 1_000_000);
        append_all(&log, events);
        log.roll_now().unwrap();
        assert_eq!(log.distinct_keys(), events.len());
        assert_eq!(log.recent_keys(), recent);
        assert_told_apart(&log, events);
    }
    let m = Manifest::load(dir.path()).unwrap();
    assert!(m.segments.iter().all(|s| s.keys.is_none()));
    let log = open(dir.path(), 1_000_000);
    assert_eq!(
        (log.distinct_keys(), log.recent_keys()),
        (events.len(), recent)
    );
    assert_told_apart(&log, events);
    drop(log);
    assert_eq!(stored_count(dir.path()), events.len());
}

#[test]
fn scattered_numbering_is_settled_unlisted_when_dense_and_compaction_into_it_still_resolves() {
    // too many runs for one segment's list, every other number: settled as bits all the same
    let events = scattered(2 * MAX_RUNS as u64 + 2, 2);
    rolled_unlisted(&events, 0);
    // sparser than one number in DENSE_ENOUGH: bits would take more than the hashes
    let events = scattered(2 * MAX_RUNS as u64 + 2, 2 * DENSE_ENOUGH as u64);
    rolled_unlisted(&events, events.len());

    // segments listed one by one, merged into one with too many runs to list
    let dir = tempfile::tempdir().unwrap();
    let events = scattered(3 * MAX_RUNS as u64, 2);
    let log = open(dir.path(), 1_000_000);
    for part in events.chunks(MAX_RUNS) {
        append_all(&log, part);
        log.roll_now().unwrap();
    }
    assert_eq!(log.recent_keys(), 0);
    let compacted = log
        .compact_all(&CompactOptions {
            small_rows: 1_000_000,
            max_rows: 1_000_000,
            grace: Duration::ZERO,
        })
        .unwrap();
    assert_eq!(compacted.len(), 1);
    let m = Manifest::load(dir.path()).unwrap();
    assert_eq!(m.segments.len(), 1);
    assert!(m.segments[0].keys.is_none());
    assert_eq!(
        log.recent_keys(),
        0,
        "the running log still holds them settled"
    );
    assert_told_apart(&log, &events);
    drop(log);
    let log = open(dir.path(), 1_000_000);
    assert_eq!((log.distinct_keys(), log.recent_keys()), (events.len(), 0));
    assert_told_apart(&log, &events);
    drop(log);
    assert_eq!(stored_count(dir.path()), events.len());
}
