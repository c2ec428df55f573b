//! `Log::fold` on its own: the rows the caller gives become the base, read first by
//! `read_digests` in place of the folded digests (whose files go); the segments stay, key runs
//! included (their events are still duplicates when sent again); the horizon only moves
//! forward; segments no longer there to fold, or not wholly before the horizon, are
//! refused; an empty base is kept like any; a reopen keeps exactly the files the manifest
//! names.

use std::collections::BTreeSet;
use std::time::Duration;

use callstate_log::layout::segments_dir;
use callstate_log::{Folded, Log, LogError, LogOptions, SourceSpan, foldable};
use callstate_schemas::EventBatchBuilder;
use callstate_sim::synthetic;

fn t0() -> chrono::DateTime<chrono::Utc> {
    "2026-11-24T08:00:00Z".parse().unwrap()
}

/// Files under `segments/`.
fn files(dir: &std::path::Path) -> BTreeSet<String> {
    std::fs::read_dir(segments_dir(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect()
}

/// The bytes kept with the base, checked against the length the manifest says.
fn kept_bytes(snap: &callstate_log::Snapshot) -> Option<Vec<u8>> {
    let (path, len) = snap.kept_file()?;
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(bytes.len() as u64, len);
    Some(bytes)
}

/// A fold at `horizon` of `segments` into an empty base, with no spans and nothing kept.
fn fold_empty(log: &Log, horizon: i64, segments: &[String]) -> Result<Folded, LogError> {
    let empty = EventBatchBuilder::with_capacity(0).finish();
    log.fold(
        horizon,
        segments,
        std::slice::from_ref(&empty),
        Vec::new(),
        None,
        Duration::ZERO,
    )
}

#[test]
fn a_fold_replaces_the_digests_before_its_horizon_by_the_base_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogOptions::default()).unwrap();
    // four segments of 400 events 1 ms apart
    let events = synthetic::events(1_600, 60, t0());
    for chunk in events.chunks(400) {
        log.append(chunk).unwrap();
        log.roll_now().unwrap();
    }
    let snap = log.snapshot();
    let horizon = snap.segments[1].max_time_us + 1;
    let before: Vec<String> = snap
        .segments
        .iter()
        .filter(|s| foldable(s, horizon))
        .map(|s| s.file.clone())
        .collect();
    assert_eq!(before.len(), 2);

    // a segment not wholly before the horizon is refused, and nothing changes
    let all: Vec<String> = snap.segments.iter().map(|s| s.file.clone()).collect();
    let err = fold_empty(&log, horizon, &all).unwrap_err();
    assert!(matches!(err, LogError::Stale(_)), "{err}");
    assert!(log.snapshot().base.is_none());

    // the base given: two of the events' rows and a span
    let (_, sub) = log.subscribe();
    let rows = callstate_log::events_batch(&events[..2]);
    let span = SourceSpan {
        source: events[0].source.clone(),
        start_us: 1,
        end_us: 2,
    };
    let folded = log
        .fold(
            horizon,
            &before,
            std::slice::from_ref(&rows),
            vec![span.clone()],
            Some(b"frozen hours"),
            Duration::ZERO,
        )
        .unwrap();
    assert_eq!(folded.segments, before);
    assert_eq!(folded.events, 800);
    assert!(matches!(
        sub.try_recv(),
        Some(callstate_log::Notice::Folded { .. })
    ));
    let snap = log.snapshot();
    let base = snap.base.clone().unwrap();
    assert_eq!(
        (
            base.horizon_us,
            base.segments,
            base.events,
            base.digest.rows
        ),
        (horizon, 2, 800, 2)
    );
    let view = snap.read_digests(None, None).unwrap();
    assert_eq!(view.base_batches, 1);
    assert_eq!(view.batches[0].num_rows(), 2);
    assert!(view.spans.contains(&span));
    // the folded digests' files went; the segments are still listed, keys included
    for s in &snap.segments {
        let folded = before.contains(&s.file);
        assert_eq!(s.folded, folded);
        assert!(s.keys.is_some());
        assert_eq!(s.digest.is_none(), folded);
    }
    // the caller's bytes kept beside it
    assert_eq!(kept_bytes(&snap).as_deref(), Some(&b"frozen hours"[..]));
    let kept_file = base.kept.clone().unwrap().file;
    let kept = files(dir.path());
    assert!(kept.contains(&base.digest.file));
    assert!(kept.contains(&kept_file));
    assert_eq!(
        kept.iter()
            .filter(|f| f.ends_with(".digest.parquet"))
            .count(),
        2
    );
    // their events sent again are still duplicates
    let again = log.append(&events[..400]).unwrap();
    assert_eq!(again.duplicates, 400, "{again:?}");

    // the horizon only moves forward
    let err = fold_empty(&log, horizon - 1, &[]).unwrap_err();
    assert!(matches!(err, LogError::Stale(_)), "{err}");
    // a later fold with an empty base replaces the one before
    let later = log.snapshot().segments[2].max_time_us + 1;
    let third = vec![log.snapshot().segments[2].file.clone()];
    fold_empty(&log, later, &third).unwrap();
    let base2 = log.snapshot().base.unwrap();
    assert_eq!(
        (base2.segments, base2.events, base2.digest.rows),
        (3, 1_200, 0)
    );
    // (a fold without kept bytes keeps none)
    assert_eq!(kept_bytes(&log.snapshot()), None);
    let view = log.snapshot().read_digests(None, None).unwrap();
    assert_eq!(
        view.batches[..view.base_batches]
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>(),
        0
    );
    drop(log);

    // reopened: the base kept, the one before gone, only what the manifest names
    let log = Log::open(dir.path(), LogOptions::default()).unwrap();
    let snap = log.snapshot();
    assert_eq!(snap.base.as_ref().unwrap(), &base2);
    let files = files(dir.path());
    assert!(files.contains(&base2.digest.file));
    assert!(!files.contains(&base.digest.file));
    assert!(!files.contains(&kept_file));
    assert_eq!(snap.segments.iter().filter(|s| s.folded).count(), 3);

    // a fold after the reopen writes its base under a new name: the one before is deleted,
    // not the new one
    let fourth = vec![snap.segments[3].file.clone()];
    let h4 = snap.segments[3].max_time_us + 1;
    log.fold(
        h4,
        &fourth,
        std::slice::from_ref(&rows),
        Vec::new(),
        Some(b"later hours"),
        Duration::ZERO,
    )
    .unwrap();
    let base4 = log.snapshot().base.unwrap();
    assert_ne!(base4.digest.file, base2.digest.file);
    let files = self::files(dir.path());
    assert!(files.contains(&base4.digest.file), "{files:?}");
    assert!(!files.contains(&base2.digest.file));
    assert_eq!(
        log.snapshot()
            .read_digests(None, None)
            .unwrap()
            .base_batches,
        1
    );
    assert_eq!(
        kept_bytes(&log.snapshot()).as_deref(),
        Some(&b"later hours"[..])
    );
    // and again after another reopen, of a manifest as a version before left it (the id
    // the fold took not recorded): the next id comes after every file's the manifest names
    drop(log);
    let mut m = callstate_log::manifest::Manifest::load(dir.path()).unwrap();
    m.next_segment_id = callstate_log::layout::file_id(&base4.digest.file).unwrap();
    m.store(dir.path()).unwrap();
    let log = Log::open(dir.path(), LogOptions::default()).unwrap();
    log.fold(
        h4,
        &[],
        std::slice::from_ref(&rows),
        Vec::new(),
        None,
        Duration::ZERO,
    )
    .unwrap();
    let base5 = log.snapshot().base.unwrap();
    assert_ne!(base5.digest.file, base4.digest.file);
    assert!(self::files(dir.path()).contains(&base5.digest.file));
    assert_eq!(
        log.snapshot()
            .read_digests(None, None)
            .unwrap()
            .base_batches,
        1
    );
}
