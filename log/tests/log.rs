//! The embedded log on disk: durability, recovery and dedupe.

use std::fs;
use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, TimestampMicrosecondType, UInt64Type};
use callstate_log::segment::read_segment;
use callstate_log::{Log, LogOptions, LogStats, Outcome, Snapshot, wal};
use callstate_schemas::Event;
use callstate_sim::synthetic;
use chrono::{DateTime, Utc};

fn t0() -> DateTime<Utc> {
    "2026-11-24T08:00:00Z".parse().unwrap()
}

fn opts(segment_rows: usize) -> LogOptions {
    LogOptions { segment_rows }
}

/// The stored events in ingest order.
fn stored(dir: &Path) -> Vec<Event> {
    let mut s = Snapshot::load(dir).unwrap().stored_events().unwrap();
    s.sort_by_key(|e| e.ingest_seq);
    let seqs: Vec<u64> = s.iter().map(|e| e.ingest_seq).collect();
    let mut dedup = seqs.clone();
    dedup.dedup();
    assert_eq!(seqs, dedup, "ingest_seq must be unique");
    s.into_iter().map(|e| e.event).collect()
}

fn append_all(log: &Log, events: &[Event], batch: usize) {
    for chunk in events.chunks(batch) {
        let r = log.append(chunk).unwrap();
        assert_eq!(r.accepted, chunk.len());
    }
}

fn wal_files(dir: &Path) -> Vec<(u64, std::path::PathBuf)> {
    wal::list(&dir.join("wal")).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn reopen_keeps_every_event_once_and_redelivery_is_all_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let events = synthetic::events(5_000, 50, t0());
    {
        let log = Log::open(dir.path(), opts(1_000_000)).unwrap();
        append_all(&log, &events, 333);
    }
    assert_eq!(stored(dir.path()), events);
    let log = Log::open(dir.path(), opts(1_000_000)).unwrap();
    assert_eq!(log.distinct_keys(), events.len());
    let r = log.append(&events).unwrap();
    assert_eq!(
        (r.accepted, r.duplicates, r.conflicts),
        (0, events.len(), 0)
    );
    drop(log);
    assert_eq!(stored(dir.path()), events);
}

#[test]
fn duplicates_within_a_call_and_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), opts(100)).unwrap();
    let a = synthetic::event(0, 5, t0());
    let mut changed = a.clone();
    changed.cluster = "OTHER".into();
    let r = log
        .append(&[a.clone(), a.clone(), changed.clone()])
        .unwrap();
    assert_eq!(
        r.outcomes,
        vec![Outcome::Accepted(1), Outcome::Duplicate, Outcome::Conflict]
    );
    // the conflict is still a conflict after a restart and after the event is in a segment
    log.roll_now().unwrap();
    drop(log);
    let log = Log::open(dir.path(), opts(100)).unwrap();
    let r = log.append(&[changed, a.clone()]).unwrap();
    assert_eq!(r.outcomes, vec![Outcome::Conflict, Outcome::Duplicate]);
    drop(log);
    assert_eq!(stored(dir.path()), vec![a]);
}

#[test]
fn rolls_into_sorted_segments_and_replays_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let events = synthetic::events(3_500, 40, t0());
    {
        let log = Log::open(dir.path(), opts(1_000)).unwrap();
        append_all(&log, &events, 300);
        log.wait_idle().unwrap();
        let snap = log.snapshot();
        assert_eq!(snap.len(), 3_500);
        assert!(snap.segments.len() >= 3, "{} segments", snap.segments.len());
    }
    let snap = Snapshot::load(dir.path()).unwrap();
    let manifest = callstate_log::manifest::Manifest::load(dir.path()).unwrap();
    assert!(
        wal_files(dir.path())
            .iter()
            .all(|(n, _)| *n > manifest.wal_checkpoint)
    );
    for seg in &snap.segments {
        let batches = read_segment(&snap.segment_path(seg), None).unwrap();
        let b = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        assert_eq!(b.num_rows() as u64, seg.rows);
        let dev =
            arrow::compute::cast(b.column_by_name("device").unwrap(), &DataType::Utf8).unwrap();
        let dev = dev.as_string::<i32>();
        let time = b
            .column_by_name("time")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        for i in 1..b.num_rows() {
            let key = |i: usize| {
                (
                    dev.is_null(i),
                    dev.is_valid(i).then(|| dev.value(i)),
                    time.value(i),
                )
            };
            assert!(
                key(i - 1) <= key(i),
                "segment {} not sorted at row {i}",
                seg.file
            );
        }
    }
    assert_eq!(stored(dir.path()), events);
    let stats = LogStats::of(&snap).unwrap();
    assert_eq!(stats.events, 3_500);
    assert_eq!(stats.per_kind.values().sum::<u64>(), 3_500);
    assert_eq!(stats.per_kind["collector_heartbeat"], 500);
    // every kind counted (segments by dictionary key, the tail by text)
    let mut want = std::collections::BTreeMap::new();
    for e in &events {
        *want
            .entry(e.body.kind().as_str().to_string())
            .or_insert(0u64) += 1;
    }
    assert_eq!(stats.per_kind, want);
    assert_eq!(
        stats.min_time.as_deref(),
        Some("2026-11-24T08:00:00.000000Z")
    );
    assert_eq!(
        stats.max_time.as_deref(),
        Some("2026-11-24T08:00:03.499000Z")
    );
    // the dedupe index is rebuilt from segments and WAL
    let log = Log::open(dir.path(), opts(1_000)).unwrap();
    assert_eq!(log.append(&events).unwrap().duplicates, 3_500);
}

fn last_wal(dir: &Path) -> std::path::PathBuf {
    wal_files(dir).pop().unwrap().1
}

#[test]
fn a_torn_wal_tail_is_cut_and_every_acknowledged_record_survives() {
    let base = tempfile::tempdir().unwrap();
    let events = synthetic::events(30, 5, t0());
    let len_after_two;
    {
        let log = Log::open(base.path(), opts(1_000_000)).unwrap();
        append_all(&log, &events[..20], 10);
        len_after_two = fs::metadata(last_wal(base.path())).unwrap().len();
        append_all(&log, &events[20..], 10);
    }
    let full_len = fs::metadata(last_wal(base.path())).unwrap().len();
    // every cut inside the third record loses exactly that (unacknowledged) record
    let step = ((full_len - len_after_two) / 37).max(1);
    let mut cut = len_after_two;
    while cut < full_len {
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(base.path(), tmp.path());
        let f = fs::OpenOptions::new()
            .write(true)
            .open(last_wal(tmp.path()))
            .unwrap();
        f.set_len(cut).unwrap();
        drop(f);
        {
            let log = Log::open(tmp.path(), opts(1_000_000)).unwrap();
            assert_eq!(stored(tmp.path()), events[..20], "cut at {cut}");
            // the log goes on appending after the cut
            append_all(&log, &events[20..], 10);
        }
        assert_eq!(stored(tmp.path()), events, "cut at {cut}");
        cut += step;
    }
}

/// A log of two acknowledged WAL records (10 events each) whose last record has a flipped byte.
fn two_records_with_a_corrupt_last_one() -> (tempfile::TempDir, Vec<Event>) {
    let dir = tempfile::tempdir().unwrap();
    let events = synthetic::events(20, 5, t0());
    {
        let log = Log::open(dir.path(), opts(1_000_000)).unwrap();
        append_all(&log, &events, 10);
    }
    let path = last_wal(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0xff;
    fs::write(&path, &bytes).unwrap();
    (dir, events)
}

#[test]
fn a_corrupt_last_record_is_cut_off() {
    let (dir, events) = two_records_with_a_corrupt_last_one();
    let _log = Log::open(dir.path(), opts(1_000_000)).unwrap();
    assert_eq!(stored(dir.path()), events[..10]);
}

#[test]
fn corruption_in_an_older_wal_file_is_an_error_not_a_silent_loss() {
    let (dir, _) = two_records_with_a_corrupt_last_one();
    // a newer WAL file exists: the damaged one held acknowledged events
    wal::WalWriter::create(
        &dir.path()
            .join("wal")
            .join(callstate_log::layout::wal_file(99)),
    )
    .unwrap();
    let err = Log::open(dir.path(), opts(1_000_000))
        .err()
        .expect("must refuse");
    assert!(err.to_string().contains("corrupt"), "{err}");
}

#[test]
fn crash_before_the_manifest_commit_leaves_an_orphan_segment_that_is_removed() {
    // A roll wrote its segment but died before the manifest named it: build that state from
    // a log whose segment exists and a copy taken before the commit.
    let before = tempfile::tempdir().unwrap();
    let events = synthetic::events(1_000, 20, t0());
    {
        let log = Log::open(before.path(), opts(1_000_000)).unwrap();
        append_all(&log, &events, 100);
    }
    let after = tempfile::tempdir().unwrap();
    copy_dir(before.path(), after.path());
    {
        let log = Log::open(after.path(), opts(1_000_000)).unwrap();
        log.roll_now().unwrap();
    }
    // the segment and its digest
    let written: Vec<_> = fs::read_dir(after.path().join("segments"))
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    assert_eq!(written.len(), 2);
    for f in &written {
        fs::copy(f.path(), before.path().join("segments").join(f.file_name())).unwrap();
    }
    let log = Log::open(before.path(), opts(1_000_000)).unwrap();
    for f in &written {
        assert!(!before.path().join("segments").join(f.file_name()).exists());
    }
    assert_eq!(log.snapshot().len(), 1_000);
    drop(log);
    assert_eq!(stored(before.path()), events);
}

#[test]
fn crash_after_the_manifest_commit_does_not_replay_covered_wal_files() {
    let dir = tempfile::tempdir().unwrap();
    let events = synthetic::events(1_000, 20, t0());
    let log = Log::open(dir.path(), opts(1_000_000)).unwrap();
    append_all(&log, &events, 100);
    let (n, path) = wal_files(dir.path()).pop().unwrap();
    let saved = fs::read(&path).unwrap();
    log.roll_now().unwrap();
    drop(log);
    assert!(
        !path.exists(),
        "covered WAL file is deleted after the commit"
    );
    // the crash came before the delete: the covered file is still there
    fs::write(
        dir.path()
            .join("wal")
            .join(callstate_log::layout::wal_file(n)),
        saved,
    )
    .unwrap();
    let log = Log::open(dir.path(), opts(1_000_000)).unwrap();
    assert_eq!(log.snapshot().len(), 1_000);
    drop(log);
    assert_eq!(stored(dir.path()), events);
}

#[test]
fn a_second_writer_is_refused_but_readers_see_acknowledged_events() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), opts(1_000_000)).unwrap();
    let err = Log::open(dir.path(), opts(1_000_000))
        .err()
        .expect("locked");
    assert!(err.to_string().contains("in use"), "{err}");
    let events = synthetic::events(10, 5, t0());
    log.append(&events).unwrap();
    // acknowledged means visible to a reader in another handle, before any roll
    assert_eq!(Snapshot::load(dir.path()).unwrap().len(), 10);
    assert_eq!(log.snapshot().len(), 10);
}

#[test]
fn ingest_metadata_is_assigned_by_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), opts(1_000_000)).unwrap();
    let before = Utc::now();
    log.append(&synthetic::events(3, 5, t0())).unwrap();
    let after = Utc::now();
    log.append(&synthetic::events(6, 5, t0())[3..]).unwrap();
    let batches: Vec<RecordBatch> = log.snapshot().batches;
    let iseq: Vec<u64> = batches
        .iter()
        .flat_map(|b| {
            b.column_by_name("ingest_seq")
                .unwrap()
                .as_primitive::<UInt64Type>()
                .values()
                .to_vec()
        })
        .collect();
    assert_eq!(iseq, vec![1, 2, 3, 4, 5, 6]);
    let it = batches[0]
        .column_by_name("ingest_time")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    let t = DateTime::from_timestamp_micros(it.value(0)).unwrap();
    assert!(before.timestamp_micros() <= t.timestamp_micros() && t <= after);
    let it2 = batches[1]
        .column_by_name("ingest_time")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    assert!(
        it2.value(0) >= it.value(0),
        "ingest_time never goes backwards"
    );
}

#[test]
fn every_segment_has_a_digest_of_its_control_events_and_source_activity() {
    use callstate_log::digest::{HIGH_VOLUME_KINDS, SPAN_GAP_US};
    // Events of three bursts per source, with silences of 30 s, 89 s and 200 s between them
    // (only the last splits a span), delivered out of time order.
    let base = synthetic::events(3_000, 30, t0());
    let mut events = Vec::new();
    for (burst, offset_s) in [(0, 0i64), (1, 30), (2, 30 + 89 + 1), (3, 30 + 90 + 200 + 3)] {
        for e in &base[burst * 750..(burst + 1) * 750] {
            let mut e = e.clone();
            e.time += chrono::Duration::seconds(offset_s);
            events.push(e);
        }
    }
    events.reverse();
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), opts(700)).unwrap();
    append_all(&log, &events, 100);
    log.roll_now().unwrap();
    let snap = log.snapshot();
    assert!(snap.segments.len() >= 4);
    for seg in &snap.segments {
        let d = seg.digest.as_ref().expect("digest");
        let path = snap.dir.join("segments").join(&d.file);
        let all = read_segment(&snap.segment_path(seg), None).unwrap();
        let all = arrow::compute::concat_batches(&all[0].schema(), &all).unwrap();
        let control = read_segment(&path, None).unwrap();
        let control: usize = control.iter().map(|b| b.num_rows()).sum();
        let kind =
            arrow::compute::cast(all.column_by_name("kind").unwrap(), &DataType::Utf8).unwrap();
        let kind = kind.as_string::<i32>();
        let expected = kind
            .iter()
            .filter(|k| {
                let k = callstate_schemas::Kind::parse(k.unwrap()).unwrap();
                !HIGH_VOLUME_KINDS.contains(&k)
            })
            .count();
        assert!(expected > 0 && expected < all.num_rows());
        assert_eq!((control, d.rows as usize), (expected, expected));
        // every event time of a source is in exactly one of its spans; spans start and end
        // at event times and are more than the gap apart
        let src =
            arrow::compute::cast(all.column_by_name("source").unwrap(), &DataType::Utf8).unwrap();
        let src = src.as_string::<i32>();
        let time = all
            .column_by_name("time")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        let mut times: std::collections::BTreeMap<&str, Vec<i64>> = Default::default();
        for i in 0..all.num_rows() {
            times.entry(src.value(i)).or_default().push(time.value(i));
        }
        for (source, t) in &times {
            let spans: Vec<_> = d.spans.iter().filter(|s| s.source == *source).collect();
            for x in t {
                assert_eq!(
                    spans
                        .iter()
                        .filter(|s| s.start_us <= *x && *x <= s.end_us)
                        .count(),
                    1
                );
            }
            for s in &spans {
                assert!(t.contains(&s.start_us) && t.contains(&s.end_us));
            }
            for w in spans.windows(2) {
                assert!(w[1].start_us - w[0].end_us > SPAN_GAP_US);
            }
        }
        assert_eq!(
            d.spans
                .iter()
                .filter(|s| !times.contains_key(s.source.as_str()))
                .count(),
            0
        );
    }
    let spans: usize = snap
        .segments
        .iter()
        .map(|s| s.digest.as_ref().unwrap().spans.len())
        .sum();
    // the 200 s silence splits at least one segment's span, the 30 s and 90 s ones never
    assert!(spans > 2 * snap.segments.len(), "{spans} spans");
}

#[test]
fn positions_are_durable_with_their_events_through_reopen_and_roll() {
    let dir = tempfile::tempdir().unwrap();
    let events = synthetic::events(1_000, 20, t0());
    let at = |pairs: &[(&str, i64)]| -> callstate_log::Positions {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };
    {
        let log = Log::open(dir.path(), opts(600)).unwrap();
        log.append_at(&events[..400], Some(&at(&[("t/0", 400)])))
            .unwrap();
        // a batch of duplicates only still moves the position
        let r = log
            .append_at(&events[..10], Some(&at(&[("t/1", 10)])))
            .unwrap();
        assert_eq!(r.duplicates, 10);
        assert_eq!(log.positions(), at(&[("t/0", 400), ("t/1", 10)]));
    }
    // from the WAL
    {
        let log = Log::open(dir.path(), opts(600)).unwrap();
        assert_eq!(log.positions(), at(&[("t/0", 400), ("t/1", 10)]));
        // this append rolls a segment: the manifest takes the positions over
        log.append_at(&events[400..700], Some(&at(&[("t/0", 700)])))
            .unwrap();
        log.wait_idle().unwrap();
        assert!(dir.path().join("MANIFEST.json").exists());
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("MANIFEST.json")).unwrap()).unwrap();
    assert_eq!(manifest["positions"]["t/0"], 700);
    assert_eq!(manifest["positions"]["t/1"], 10);
    {
        let log = Log::open(dir.path(), opts(600)).unwrap();
        assert_eq!(log.positions(), at(&[("t/0", 700), ("t/1", 10)]));
        log.append_at(&events[700..], Some(&at(&[("t/1", 55)])))
            .unwrap();
    }
    let log = Log::open(dir.path(), opts(600)).unwrap();
    assert_eq!(log.positions(), at(&[("t/0", 700), ("t/1", 55)]));
    assert_eq!(stored(dir.path()), events);
}

#[test]
fn a_segment_of_several_row_groups_is_sorted_and_complete() {
    // More rows than a row group, appended in batches that each have their own
    // dictionaries: the roll gathers every column across batches and row groups.
    use callstate_log::segment::ROW_GROUP_ROWS;
    let dir = tempfile::tempdir().unwrap();
    let n = ROW_GROUP_ROWS + ROW_GROUP_ROWS / 2;
    let events = synthetic::events(n as u64, 700, t0());
    {
        let log = Log::open(dir.path(), opts(n)).unwrap();
        append_all(&log, &events, 10_000);
        log.wait_idle().unwrap();
        assert_eq!(log.snapshot().segments.len(), 1);
    }
    let snap = Snapshot::load(dir.path()).unwrap();
    let path = snap.segment_path(&snap.segments[0]);
    let meta = parquet::file::reader::FileReader::metadata(
        &parquet::file::serialized_reader::SerializedFileReader::new(
            fs::File::open(&path).unwrap(),
        )
        .unwrap(),
    )
    .clone();
    assert_eq!(meta.num_row_groups(), 2);
    let batches = read_segment(&path, None).unwrap();
    let b = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    let dev = arrow::compute::cast(b.column_by_name("device").unwrap(), &DataType::Utf8).unwrap();
    let dev = dev.as_string::<i32>();
    let time = b
        .column_by_name("time")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    let iseq = b
        .column_by_name("ingest_seq")
        .unwrap()
        .as_primitive::<UInt64Type>();
    let key = |i: usize| {
        (
            dev.is_null(i),
            dev.is_valid(i).then(|| dev.value(i)),
            time.value(i),
            iseq.value(i),
        )
    };
    for i in 1..b.num_rows() {
        assert!(key(i - 1) < key(i), "not sorted at row {i}");
    }
    assert_eq!(stored(dir.path()), events);
}

#[test]
fn segments_read_ahead_come_in_order_and_the_first_error_stops_the_reading() {
    use callstate_log::LogError;
    use callstate_log::segment::{Batches, read_segments_ahead};

    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path(), opts(500)).unwrap();
        append_all(&log, &synthetic::events(4_000, 40, t0()), 250);
        log.wait_idle().unwrap();
    }
    let snap = Snapshot::load(dir.path()).unwrap();
    assert!(snap.segments.len() >= 6, "{} segments", snap.segments.len());
    let paths: Vec<_> = snap.segments.iter().map(|s| snap.segment_path(s)).collect();
    // every segment's file, then batches held in memory (those of the first, again: tagged
    // as one more)
    let held = read_segment(&paths[0], None).unwrap();
    let parts = || -> Vec<(Batches, usize)> {
        let files = paths.iter().cloned().map(Batches::File).enumerate();
        let held = Batches::Held(held.clone());
        files
            .map(|(k, f)| (f, k))
            .chain([(held, paths.len())])
            .collect()
    };
    // what each batch is: its file's number, its rows, its first ingest_seq
    let what = |b: &RecordBatch, k: usize| {
        let seq = b.column_by_name("ingest_seq").unwrap();
        (k, b.num_rows(), seq.as_primitive::<UInt64Type>().value(0))
    };
    let mut want = Vec::new();
    for (k, path) in paths.iter().enumerate() {
        for b in read_segment(path, None).unwrap() {
            want.push(what(&b, k));
        }
    }
    want.extend(held.iter().map(|b| what(b, paths.len())));
    let read = |parts: Vec<(Batches, usize)>, stop_at: usize| {
        let mut got = Vec::new();
        let r = read_segments_ahead(
            parts,
            None,
            |b, &k| Ok::<_, LogError>(what(&b, k)),
            |w| {
                if got.len() == stop_at {
                    return Err(LogError::InvalidBatch("enough".into()));
                }
                got.push(w);
                Ok(())
            },
        );
        (got, r)
    };
    // in order, every batch, as read one file after the other, then those held
    let (got, r) = read(parts(), usize::MAX);
    r.unwrap();
    assert_eq!(got, want);
    // the caller's error stops it (the reading thread too: the call returns)
    let (got, r) = read(parts(), 3);
    assert_eq!(got, want[..3]);
    assert!(matches!(r, Err(LogError::InvalidBatch(m)) if m == "enough"));
    // a damaged file: the batches before it, then its error, naming it
    let damaged = dir.path().join("damaged.parquet");
    let bytes = fs::read(&paths[3]).unwrap();
    fs::write(&damaged, &bytes[..bytes.len() / 2]).unwrap();
    let mut with_damage = parts();
    with_damage[3].0 = Batches::File(damaged.clone());
    let (got, r) = read(with_damage, usize::MAX);
    let before = want.iter().filter(|w| w.0 < 3).count();
    assert_eq!(got, want[..before]);
    let e = r.unwrap_err().to_string();
    assert!(e.contains("damaged.parquet"), "{e}");
    // a file turned into an error by `map`: the same
    let mut got = Vec::new();
    let r = read_segments_ahead(
        parts(),
        None,
        |b, &k| match k {
            2 => Err(LogError::InvalidBatch(format!("file {k}"))),
            _ => Ok(what(&b, k)),
        },
        |w| {
            got.push(w);
            Ok::<_, LogError>(())
        },
    );
    assert_eq!(got, want[..want.iter().filter(|w| w.0 < 2).count()]);
    assert!(matches!(r, Err(LogError::InvalidBatch(m)) if m == "file 2"));
}
