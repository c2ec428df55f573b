//! Compaction: small segments merged into one hold exactly the same events, digests and
//! activity; appends, rolls and readers go on meanwhile; subscribers are told; readers that
//! took a snapshot before keep reading it; and the log reopens to the same events.
//! (A crash at each step of a compaction: tests/cli_compact.rs, with the real binary.)

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use callstate_log::digest::SPAN_GAP_US;
use callstate_log::layout::segments_dir;
use callstate_log::{CompactOptions, Log, LogOptions, Notice, Outcome, Snapshot};
use callstate_schemas::StoredEvent;
use callstate_sim::synthetic;

fn t0() -> chrono::DateTime<chrono::Utc> {
    "2026-11-24T08:00:00Z".parse().unwrap()
}

/// Every stored event, by ingest order, as comparable text.
fn stored(snap: &Snapshot) -> Vec<String> {
    let mut v: Vec<StoredEvent> = snap.stored_events().unwrap();
    v.sort_by_key(|e| e.ingest_seq);
    v.iter().map(|e| format!("{e:?}")).collect()
}

/// The activity the digests give (what derivations read instead of every heartbeat): each
/// source's spans joined across segments where the gap allows, as derivations join them.
fn activity(snap: &Snapshot) -> Vec<String> {
    let d = snap.read_activity(i64::MAX).unwrap();
    let mut spans: Vec<(String, i64, i64)> = d
        .spans
        .iter()
        .map(|s| (s.source.clone(), s.start_us, s.end_us))
        .collect();
    spans.sort();
    let mut joined: Vec<(String, i64, i64)> = Vec::new();
    for (src, a, b) in spans {
        match joined.last_mut() {
            Some(l) if l.0 == src && a - l.2 <= SPAN_GAP_US => l.2 = l.2.max(b),
            _ => joined.push((src, a, b)),
        }
    }
    let mut out: Vec<String> = joined.iter().map(|s| format!("{s:?}")).collect();
    out.push(format!("digested {}", d.digested_rows));
    out
}

/// Files in the segments directory.
fn files(dir: &std::path::Path) -> BTreeSet<String> {
    std::fs::read_dir(segments_dir(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect()
}

/// The files the manifest names.
fn named(snap: &Snapshot) -> BTreeSet<String> {
    snap.segments
        .iter()
        .flat_map(|s| s.files().map(str::to_string))
        .collect()
}

fn opts(grace: Duration) -> CompactOptions {
    CompactOptions {
        small_rows: 1_000,
        max_rows: 2_500,
        grace,
    }
}

#[test]
fn merged_segments_hold_the_same_events_and_old_snapshots_keep_reading() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(
        dir.path(),
        LogOptions {
            segment_rows: 2_000,
        },
    )
    .unwrap();
    let events = synthetic::events(6_500, 40, t0());
    // twelve small segments (final rolls, as short ingest runs leave them), then a big one
    for chunk in events[..3_600].chunks(300) {
        log.append(chunk).unwrap();
        log.roll_now().unwrap();
    }
    log.append(&events[3_600..6_000]).unwrap();
    log.wait_idle().unwrap();
    let before = log.snapshot();
    assert_eq!(before.segments.len(), 13, "{:?}", before.segments.len());
    let (want, want_activity) = (stored(&before), activity(&before));
    let (_, sub) = log.subscribe();

    let done = log.compact_all(&opts(Duration::from_secs(3600))).unwrap();
    // 300-event segments merge eight at a time at most (2,500 events)
    assert_eq!(
        done.iter().map(|c| c.merged.len()).collect::<Vec<_>>(),
        vec![8, 4]
    );
    let after = log.snapshot();
    assert_eq!(after.segments.len(), 3);
    assert_eq!(stored(&after), want, "the same events, each once");
    assert_eq!(activity(&after), want_activity, "the same activity");
    assert_eq!(after.segments[0].rows, 2_400);
    assert_eq!(after.segments[0].min_ingest_seq, 1);
    assert_eq!(after.segments[1].max_ingest_seq, 3_600);
    // subscribers are told, in order
    let notices: Vec<(Vec<String>, String)> = sub
        .drain()
        .into_iter()
        .map(|n| match n {
            Notice::Compacted { merged, into } => (merged, into.file),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(notices.len(), 2);
    assert_eq!(notices[0].0, done[0].merged);
    assert_eq!(notices[1].1, done[1].into);
    // the snapshot taken before still reads: its files stay for the grace period
    assert_eq!(stored(&before), want);
    assert_eq!(log.obsolete_files(), 24);
    // with no grace left they go; the directory holds exactly what the manifest names
    assert_eq!(log.compact(&opts(Duration::ZERO)).unwrap(), None);
    assert_eq!(log.obsolete_files(), 0);
    assert_eq!(files(dir.path()), named(&after));

    // reopened: the same events; old events are still known (dedupe), ids do not collide
    drop(log);
    let log = Log::open(
        dir.path(),
        LogOptions {
            segment_rows: 2_000,
        },
    )
    .unwrap();
    assert_eq!(stored(&log.snapshot()), want);
    let again = log.append(&events[..10]).unwrap();
    assert!(again.outcomes.iter().all(|o| *o == Outcome::Duplicate));
    log.append(&events[6_000..]).unwrap();
    log.roll_now().unwrap();
    let snap = log.snapshot();
    assert_eq!(snap.len(), 6_500);
    let names: BTreeSet<&str> = snap.segments.iter().map(|s| s.file.as_str()).collect();
    assert_eq!(
        names.len(),
        snap.segments.len(),
        "every segment its own file"
    );
}

#[test]
fn appends_and_rolls_go_on_while_segments_are_merged() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path(), LogOptions { segment_rows: 400 }).unwrap());
    let events = synthetic::events(8_000, 50, t0());
    let (first, rest) = events.split_at(2_000);
    for chunk in first.chunks(150) {
        log.append(chunk).unwrap();
        log.roll_now().unwrap();
    }
    let o = CompactOptions {
        small_rows: 200,
        max_rows: 600,
        grace: Duration::ZERO,
    };
    let merged = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            for chunk in rest.chunks(37) {
                let r = log.append(chunk).unwrap();
                assert_eq!(r.accepted, chunk.len());
            }
        });
        let mut merged = 0;
        while !writer.is_finished() {
            merged += log.compact_all(&o).unwrap().len();
            std::thread::sleep(Duration::from_millis(5));
        }
        writer.join().unwrap();
        merged
    });
    log.wait_idle().unwrap();
    assert!(merged > 0, "something was merged");
    let snap = log.snapshot();
    let mut seqs: Vec<u64> = snap
        .stored_events()
        .unwrap()
        .iter()
        .map(|e| e.ingest_seq)
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=8_000).collect::<Vec<_>>(), "every event, once");
    // segments stay in ingest order, disjoint
    for w in snap.segments.windows(2) {
        assert!(w[0].max_ingest_seq < w[1].min_ingest_seq, "{w:?}");
    }
    assert_eq!(files(dir.path()), named(&snap));
}
