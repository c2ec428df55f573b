//! A full disk, on a real (small) file system: appends and rolls that hit ENOSPC leave the log
//! consistent, it refuses appends while reads go on, and it resumes by itself (the failed roll
//! retried) once there is space, with every acknowledged event kept exactly once.

use std::time::Duration;

use callstate_log::{Log, LogOptions, Snapshot};
use callstate_sim::synthetic;
use callstate_testkit::tmpfs::tmpfs_or_skip;

fn t0() -> chrono::DateTime<chrono::Utc> {
    "2026-11-24T08:00:00Z".parse().unwrap()
}

#[test]
fn a_roll_that_hits_a_full_disk_is_retried_when_space_returns() {
    let Some(fs) = tmpfs_or_skip(16 << 20, "a_roll_that_hits_a_full_disk") else {
        return;
    };
    let dir = fs.path().join("data");
    let events = synthetic::events(6_000, 40, t0());
    let log = Log::open(
        &dir,
        LogOptions {
            segment_rows: 5_000,
        },
    )
    .unwrap();
    for chunk in events[..4_990].chunks(500) {
        log.append(chunk).unwrap();
    }
    // a full disk but for a little room: small WAL records fit, a segment does not
    let filler = fs.fill();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len.saturating_sub(96 * 1024)).unwrap();
    drop(f);
    // this append is durable, and brings the tail to the segment size: the roll fails
    let r = log.append(&events[4_990..5_010]).unwrap();
    assert_eq!(r.accepted, 20);
    let e = log.wait_idle().unwrap_err();
    assert!(e.is_refusal() && e.is_disk_full(), "{e}");
    // refused while full; every acknowledged event still readable
    let e = log.append(&events[5_010..5_020]).unwrap_err();
    assert!(e.is_disk_full(), "{e}");
    assert_eq!(log.snapshot().len(), 5_010);
    assert_eq!(Snapshot::load(&dir).unwrap().len(), 5_010);
    assert!(log.failure().is_some());
    // space again: it resumes by itself and the roll is retried
    std::fs::remove_file(&filler).unwrap();
    std::thread::sleep(Duration::from_millis(1_100));
    assert_eq!(log.failure(), None);
    log.wait_idle().unwrap();
    assert_eq!(
        log.snapshot().segments.len(),
        1,
        "the retried roll committed its segment"
    );
    log.append(&events[5_010..]).unwrap();
    log.wait_idle().unwrap();
    drop(log);
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let log = Log::open(
        &dir,
        LogOptions {
            segment_rows: 5_000,
        },
    )
    .unwrap();
    let mut stored: Vec<_> = log
        .snapshot()
        .stored_events()
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(stored.len(), events.len());
    let key = |e: &callstate_schemas::Event| (e.source.clone(), e.seq);
    stored.sort_by_key(key);
    let mut want = events.clone();
    want.sort_by_key(key);
    assert_eq!(stored, want);
}

#[test]
fn an_append_that_hits_a_full_disk_is_taken_back_whole() {
    let Some(fs) = tmpfs_or_skip(8 << 20, "an_append_that_hits_a_full_disk") else {
        return;
    };
    let dir = fs.path().join("data");
    let events = synthetic::events(3_000, 30, t0());
    let log = Log::open(
        &dir,
        LogOptions {
            segment_rows: 1_000_000,
        },
    )
    .unwrap();
    log.append(&events[..1_000]).unwrap();
    let filler = fs.fill();
    let e = log.append(&events[1_000..2_000]).unwrap_err();
    assert!(e.is_disk_full(), "{e}");
    std::fs::remove_file(&filler).unwrap();
    std::thread::sleep(Duration::from_millis(1_100));
    // the refused events were never stored: they are new, not duplicates, when sent again
    let r = log.append(&events[1_000..]).unwrap();
    assert_eq!((r.accepted, r.duplicates), (2_000, 0));
    drop(log);
    let log = Log::open(
        &dir,
        LogOptions {
            segment_rows: 1_000_000,
        },
    )
    .unwrap();
    assert_eq!(log.snapshot().len(), 3_000);
    assert_eq!(log.distinct_keys(), 3_000);
}
