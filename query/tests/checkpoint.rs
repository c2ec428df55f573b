//! Checkpoints of the call legs (`<log>/derived/legs.bin`): a start from one answers every
//! call question as the derivation from scratch does, with the legs read back mapped and
//! only the later call events paired; a checkpoint of another log, a damaged one, or what
//! an interrupted write left, is not used, and the start derives the legs from the log.

use std::path::Path;
use std::time::{Duration, Instant};

use callstate_log::{Log, LogOptions};
use callstate_query::live::State;
use callstate_query::live::checkpoint::{FILE, Written, covered_through};
use callstate_query::model::fleet::Fleet;
use callstate_query::model::sla::{GroupBy, availability_over};
use callstate_query::{Cancel, Derived, Live, LiveOptions};
use callstate_schemas::{Body, Event};

mod common;

fn scratch(log: &Log) -> Vec<String> {
    common::call_questions(&Derived::load(log.snapshot(), None, Default::default(), true).unwrap())
}

/// The call questions of a live state started on `log`, and the version of the checkpoint
/// it read the legs from.
fn live_calls(log: &Log) -> (Vec<String>, Option<u64>) {
    let live = Live::start(log, Default::default()).unwrap();
    let view = common::caught_up(&live, log.version(), Duration::from_secs(60));
    (common::call_questions(&*view), live.legs_from())
}

/// A failover day with calls, in a log that rolls segments, in two parts.
fn day() -> (Vec<Event>, usize) {
    let (events, _) = common::simulate("node-failover", 40, 7);
    let half = events.len() / 2;
    (events, half)
}

fn open(dir: &Path) -> Log {
    Log::open(
        dir,
        LogOptions {
            segment_rows: 3_000,
        },
    )
    .unwrap()
}

/// Every `step`th call end of `events` (at most `n`) announced again 20 minutes later, as
/// new events (a bridge resending them).
fn ended_again(events: &[Event], step: usize, n: usize) -> Vec<Event> {
    events
        .iter()
        .filter(|e| matches!(e.body, Body::CallEnded { .. }))
        .step_by(step)
        .take(n)
        .enumerate()
        .map(|(k, e)| Event {
            seq: u64::MAX / 2 + k as u64,
            time: e.time + chrono::Duration::minutes(20),
            ..e.clone()
        })
        .collect()
}

/// A log in `dir` holding `events`, idle.
fn holding(dir: &Path, events: &[Event]) -> Log {
    let log = open(dir);
    for chunk in events.chunks(4_096) {
        log.append(chunk).unwrap();
    }
    log.wait_idle().unwrap();
    log
}

/// A log in `dir` holding `events`, and the checkpoint a start on it writes.
fn checkpointed(dir: &Path, events: &[Event]) -> (Log, Written) {
    let log = holding(dir, events);
    let written = Live::start(&log, Default::default())
        .unwrap()
        .checkpoint()
        .unwrap();
    (log, written)
}

#[test]
fn a_checkpoint_written_while_running_keeps_its_legs_mapped_and_answers_the_same() {
    let (events, half) = day();
    let dir = tempfile::tempdir().unwrap();
    let log = holding(dir.path(), &events[..half]);
    let live = Live::start(&log, Default::default()).unwrap();
    let view = common::caught_up(&live, log.version(), Duration::from_secs(60));
    assert_eq!(
        view.devices_with_mapped_legs(),
        0,
        "derived from the log: on the heap"
    );
    let before = common::call_questions(&*view);
    // what it holds on the heap: every part (rollups once a question, or the service file
    // written in the background after a start that found none, builds them)
    let heap = view.memory();
    assert!(
        heap.intervals > 0 && heap.service_events > 0 && heap.devices > 0,
        "{heap:?}"
    );
    assert!(heap.call_legs_packed > 100 * 48, "{heap:?}");
    availability_over(
        view.devices(),
        view.windows(),
        &[(0, 4_000_000_000_000_000)],
        GroupBy::DevicePool,
        &Cancel::new(),
    )
    .unwrap();
    assert!(view.memory().rollups > 0);
    let written = live.checkpoint().unwrap();
    assert!(written.devices > 10, "{written:?}");
    // the applier takes the mapped legs in its next round: every device, none changed since
    let deadline = Instant::now() + Duration::from_secs(30);
    let view = loop {
        let v = live.view();
        if v.devices_with_mapped_legs() > 0 {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "the checkpoint's legs were not taken"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(view.devices_with_mapped_legs() as u64, written.devices);
    assert_eq!(common::call_questions(&*view), before);
    // the legs left the heap: a mapped pack keeps one fence of 8 bytes a 64 legs there
    let mapped = view.memory();
    assert!(
        mapped.call_legs_packed * 20 < heap.call_legs_packed,
        "{mapped:?} after {heap:?}"
    );
    // (the service file written beside it moves the intervals' bytes off the heap too, once
    // the applier takes it in)
    assert!(mapped.intervals <= heap.intervals);
    // later events on top, some ending legs that are now mapped, others sent again
    for chunk in events[half..].chunks(4_096) {
        log.append(chunk).unwrap();
    }
    log.append(&events[half - 50..half + 50]).unwrap();
    log.wait_idle().unwrap();
    let view = common::caught_up(&live, log.version(), Duration::from_secs(60));
    assert_eq!(common::call_questions(&*view), scratch(&log));
}

#[test]
fn a_start_from_a_checkpoint_answers_as_the_log_does() {
    let (events, half) = day();
    let dir = tempfile::tempdir().unwrap();
    let (log, written) = checkpointed(dir.path(), &events[..half]);
    assert_eq!(written.version, log.version());
    assert!(written.legs > 100, "{written:?}");
    assert!(dir.path().join(FILE).exists());
    // the checkpoint alone
    assert_eq!(live_calls(&log), (scratch(&log), Some(written.version)));
    // the checkpoint and the call events after it, some of them ending legs it holds open,
    // others sent again (duplicates of stored events are dropped by the log)
    for chunk in events[half..].chunks(4_096) {
        log.append(chunk).unwrap();
    }
    log.append(&events[half - 50..half + 50]).unwrap();
    log.wait_idle().unwrap();
    // ends announced again, 20 minutes later, for legs the checkpoint holds complete: they
    // are taken out of its packs (a fleet snapshot must not count them from its hour index)
    let again = ended_again(&events[..half], 7, 40);
    assert_eq!(again.len(), 40);
    log.append(&again).unwrap();
    log.wait_idle().unwrap();
    let expected = scratch(&log);
    assert!(expected.len() > 1_000);
    assert_eq!(live_calls(&log), (expected.clone(), Some(written.version)));
    // a start from the checkpoint writes a second one, and a start reads that
    let live = Live::start(&log, Default::default()).unwrap();
    let again = live.checkpoint().unwrap();
    assert_eq!(again.version, log.version());
    assert!(again.legs > written.legs);
    drop(live);
    assert_eq!(live_calls(&log), (expected, Some(again.version)));
}

#[test]
fn a_checkpoint_of_another_log_is_not_used() {
    let (events, half) = day();
    // log A holds the first half; log B as many events, but of the second half
    let a_dir = tempfile::tempdir().unwrap();
    let (a, _) = checkpointed(a_dir.path(), &events[..half]);
    let b_dir = tempfile::tempdir().unwrap();
    let b = open(b_dir.path());
    b.append(&events[events.len() - half..]).unwrap();
    b.wait_idle().unwrap();
    assert_eq!(a.version(), b.version());
    std::fs::create_dir_all(b_dir.path().join(FILE).parent().unwrap()).unwrap();
    std::fs::copy(a_dir.path().join(FILE), b_dir.path().join(FILE)).unwrap();
    assert_ne!(scratch(&a), scratch(&b));
    assert_eq!(live_calls(&b), (scratch(&b), None));
    // nor does retention of raw events rely on it
    assert_eq!(covered_through(&a.snapshot()), Some(a.version()));
    assert_eq!(covered_through(&b.snapshot()), None);
}

#[test]
fn a_damaged_checkpoint_or_a_half_written_one_is_not_used() {
    let (events, half) = day();
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = checkpointed(dir.path(), &events[..half]);
    let path = dir.path().join(FILE);
    let good = std::fs::read(&path).unwrap();
    let expected = scratch(&log);
    // cut anywhere, or a byte changed in the header, the device table or the tail
    let len = good.len();
    let mut cases: Vec<Vec<u8>> = [0, 7, 64, 111, len / 3, len / 2, len - 200, len - 1]
        .into_iter()
        .map(|n| good[..n].to_vec())
        .collect();
    for at in [0, 8, 16, 32, 40, 48, 96, len - 300, len - 100, len - 2] {
        let mut bad = good.clone();
        bad[at] ^= 0x5a;
        cases.push(bad);
    }
    for (k, bytes) in cases.iter().enumerate() {
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(live_calls(&log), (expected.clone(), None), "case {k}");
        assert_eq!(covered_through(&log.snapshot()), None, "case {k}");
    }
    // a write interrupted: its pieces are removed at the next start, the last good
    // checkpoint stays in use
    std::fs::write(&path, &good).unwrap();
    let parent = path.parent().unwrap();
    for name in [
        "legs.bin.tmp-1",
        "legs.bin.tmp-1.index",
        "legs.bin.tmp-1.ids",
    ] {
        std::fs::write(parent.join(name), &good[..len / 2]).unwrap();
    }
    let version = log.version();
    log.append(&events[half..]).unwrap();
    log.wait_idle().unwrap();
    assert_eq!(live_calls(&log), (scratch(&log), Some(version)));
    let mut left: Vec<String> = std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    // (and the older pieces of the service file that its head lists)
    let dir = parent.parent().unwrap();
    let service = callstate_query::live::service_chain::ServiceChain::open(dir).unwrap();
    let listed: Vec<String> = service
        .iter()
        .flat_map(|c| c.head().pieces.iter().map(|p| p.file.clone()))
        .collect();
    left.retain(|n| !listed.contains(n));
    assert_eq!(left, ["legs.bin", "service.bin"]);
}

#[test]
fn a_start_without_a_checkpoint_that_spills_its_legs_answers_as_the_log_does() {
    let (events, _) = day();
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    for chunk in events.chunks(4_096) {
        log.append(chunk).unwrap();
    }
    // ends announced again, 20 minutes later, for legs complete long before: pairing takes
    // them out of the packs spilled meanwhile
    let again = ended_again(&events, 5, 60);
    log.append(&again).unwrap();
    log.wait_idle().unwrap();
    let expected = scratch(&log);
    assert!(expected.len() > 1_000);
    let derived = dir.path().join(FILE);
    let derived = derived.parent().unwrap();
    let left = || -> Vec<String> {
        std::fs::read_dir(derived)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.contains("spill"))
                    .collect()
            })
            .unwrap_or_default()
    };
    // spilling at every look (every 100 call events) against not at all
    let spilled = State::from_snapshot_spilling(log.snapshot(), Default::default(), 0, 100)
        .unwrap()
        .view();
    let heap = State::from_snapshot(log.snapshot(), Default::default())
        .unwrap()
        .view();
    assert_eq!(heap.devices_with_spilled_legs(), 0);
    assert!(spilled.devices_with_spilled_legs() > 10, "{spilled:?}");
    let (s, h) = (spilled.memory(), heap.memory());
    assert!(
        s.call_legs_packed * 2 < h.call_legs_packed,
        "packs on the heap: spilled {s:?}, not {h:?}"
    );
    assert_eq!(common::call_questions(&spilled), expected);
    assert!(
        left().is_empty(),
        "the spill files are unlinked once mapped: {:?}",
        left()
    );
    drop((spilled, heap));
    // a live state started so, then its checkpoint: taken in, every spilled leg in it
    let options = LiveOptions {
        spill_at: 0,
        check_every: 100,
        ..LiveOptions::default()
    };
    let live = Live::start_with(&log, Default::default(), options).unwrap();
    let view = common::caught_up(&live, log.version(), Duration::from_secs(60));
    assert!(view.devices_with_spilled_legs() > 10);
    assert_eq!(common::call_questions(&*view), expected);
    let written = live.checkpoint().unwrap();
    let began = Instant::now();
    while live.view().devices_with_spilled_legs() > 0 {
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "checkpoint not taken in"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(common::call_questions(&*live.view()), expected);
    drop((view, live));
    assert_eq!(live_calls(&log), (expected, Some(written.version)));
}

/// Waits until the checkpoint of the legs under `log` covers at least `version`.
fn covered(log: &Log, version: u64) -> u64 {
    let began = Instant::now();
    loop {
        if let Some(v) = covered_through(&log.snapshot()).filter(|v| *v >= version) {
            return v;
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "no checkpoint from version {version} on: {:?}",
            covered_through(&log.snapshot())
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The live state writes a checkpoint of the legs by itself once so many call events were
/// paired: at a start without one over a log holding more (while the start's service file is
/// written in the background: the checkpoint waits for it, it is not dropped), then again as
/// more come; a restart reads the last and answers as the log does.
#[test]
fn a_live_state_checkpoints_by_itself_every_so_many_call_events() {
    let (events, half) = day();
    let dir = tempfile::tempdir().unwrap();
    let log = holding(dir.path(), &events[..half]);
    let options = LiveOptions {
        checkpoint_every: 50,
        ..LiveOptions::default()
    };
    let live = Live::start_with(&log, Default::default(), options).unwrap();
    let first = covered(&log, log.version());
    assert!(dir.path().join(FILE).exists());
    for chunk in events[half..].chunks(500) {
        log.append(chunk).unwrap();
        common::caught_up(&live, log.version(), Duration::from_secs(60));
    }
    let second = covered(&log, first + 1);
    assert!(second > first && second <= log.version());
    drop(live);
    let (calls, from) = live_calls(&log);
    let last = covered_through(&log.snapshot());
    assert!(
        from == last && from >= Some(second),
        "{from:?} {last:?} {second}"
    );
    assert!(calls == scratch(&log), "a restart answers as the log does");
}

/// The pieces of the checkpoint on disk beside its head (`legs.<id>.bin`), by name.
fn pieces_on_disk(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir.join(FILE).parent().unwrap()) else {
        return Vec::new(); // none written yet
    };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("legs.") && n != "legs.bin" && !n.contains(".tmp-"))
        .collect();
    names.sort();
    names
}

/// The first call end of the device with the fewest call ends in `events` announced again
/// 20 minutes later.
fn quietest_end_again(events: &[Event]) -> Vec<Event> {
    let mut ends: std::collections::BTreeMap<&str, Vec<&Event>> = Default::default();
    for e in events {
        if let Body::CallEnded { device, .. } = &e.body {
            ends.entry(device.as_str()).or_default().push(e);
        }
    }
    let fewest = ends.values().min_by_key(|v| v.len()).unwrap();
    ended_again(&[fewest[0].clone()], 1, 1)
}

/// Waits until the live state took in the checkpoint of `version`.
fn taken_in(live: &Live, version: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while live.view().legs_taken_in() < Some(version) {
        assert!(
            Instant::now() < deadline,
            "checkpoint {version} not taken in"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A checkpoint written while events keep coming writes only the legs not held by the
/// older pieces it keeps (a few, each over twice the size of the next), so that the bytes
/// written over many checkpoints do not grow with the square of the history; a late event for
/// a leg of an old piece writes only its device's legs of that piece again; the pieces hold
/// every leg once, and a start from them answers as the log does. A piece damaged or
/// missing: the checkpoint is not used; one no head lists is removed.
#[test]
fn a_checkpoint_in_pieces_writes_only_what_changed_and_answers_as_the_log_does() {
    let (events, _) = day();
    let dir = tempfile::tempdir().unwrap();
    // 7 checkpoints of about equal parts: the last keeps two pieces
    let parts = 7;
    let part = events.len().div_ceil(parts);
    let log = holding(dir.path(), &events[..part]);
    let live = Live::start(&log, Default::default()).unwrap();
    common::caught_up(&live, log.version(), Duration::from_secs(60));
    let mut written: Vec<Written> = Vec::new();
    let checkpoint = |written: &mut Vec<Written>| {
        log.wait_idle().unwrap();
        common::caught_up(&live, log.version(), Duration::from_secs(60));
        let w = live.checkpoint().unwrap();
        taken_in(&live, w.version);
        // the files on disk are the head and the pieces it lists
        let on_disk = pieces_on_disk(dir.path());
        assert_eq!(on_disk.len() + 1, w.pieces, "{on_disk:?} {w:?}");
        assert!(w.written_bytes <= w.bytes);
        written.push(w);
        on_disk
    };
    for k in 0..parts {
        if k > 0 {
            log.append(&events[k * part..((k + 1) * part).min(events.len())])
                .unwrap();
        }
        checkpoint(&mut written);
        let w = written.last().unwrap();
        assert!(w.pieces <= 2 + (k + 1).ilog2() as usize, "{k}: {w:?}");
    }
    let last = written.last().unwrap().clone();
    assert!(last.pieces > 1, "{written:?}");
    // the packs' own structures counted on the heap (80 bytes each): one at least per device
    // with legs (one per piece holding some of its legs)
    let packs = live.view().memory().call_leg_packs;
    assert!(packs >= last.devices * 80, "{packs} for {last:?}");
    // what writing every leg at every checkpoint would have written, and what was
    let whole: u64 = written.iter().map(|w| w.bytes).sum();
    let wrote: u64 = written.iter().map(|w| w.written_bytes).sum();
    assert!(wrote * 10 < whole * 8, "{wrote} of {whole}");
    // an end announced again for a leg of the oldest piece (the first part's), of the device
    // with the fewest calls there: every piece stays where it is, only that device's legs
    // of the oldest are written again (superseded there)
    let before = pieces_on_disk(dir.path());
    log.append(&quietest_end_again(&events[..part])).unwrap();
    let after = checkpoint(&mut written);
    let revised = written.last().unwrap().clone();
    assert_eq!(revised.pieces, last.pieces + 1, "{revised:?}");
    assert!(
        before.iter().all(|p| after.contains(p)),
        "{before:?} {after:?}"
    );
    assert!(
        revised.written_bytes * 20 < last.bytes,
        "{revised:?} {last:?}"
    );
    drop(live);
    let expected = scratch(&log);
    assert_eq!(live_calls(&log), (expected.clone(), Some(revised.version)));
    // every leg once: as many as one checkpoint of the same log holds
    let fresh = tempfile::tempdir().unwrap();
    let mut all = events.clone();
    all.extend(quietest_end_again(&events[..part]));
    let (_, one) = checkpointed(fresh.path(), &all);
    assert_eq!((one.legs, one.loose), (revised.legs, revised.loose));
    assert_eq!(one.pieces, 1);

    // a piece no head lists (a write cut short after linking it) is removed at a start
    let stray = dir.path().join("derived/legs.0123456789abcdef.bin");
    std::fs::write(&stray, b"left").unwrap();
    assert_eq!(live_calls(&log), (expected.clone(), Some(revised.version)));
    assert!(!stray.exists());
    // a piece damaged, or missing: the legs are derived from the log
    let piece = dir.path().join("derived").join(&before[0]);
    let good = std::fs::read(&piece).unwrap();
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 2] ^= 0x5a;
    std::fs::write(&piece, &bad).unwrap();
    assert_eq!(live_calls(&log), (expected.clone(), None));
    std::fs::remove_file(&piece).unwrap();
    assert_eq!(live_calls(&log), (expected, None));
    // nor does retention of raw events rely on it
    assert_eq!(covered_through(&log.snapshot()), None);
}
