//! The service file (`<log>/derived/service.bin` and the older pieces it builds on), written
//! with every checkpoint of the legs: a start reads the service events, intervals and hourly rollup of each device whose
//! derivation comes out as the file holds them in place, none of their bytes on its heap, and
//! answers every question as the derivation from scratch does; a device changed since (a
//! later or a late event) holds its own again, a maintenance window announced since builds
//! the rollups it may touch again, and a file of another log or a damaged one only leaves
//! more devices holding their own. A checkpoint writes only the devices changed since into a
//! new head, the rest kept in the pieces they are in.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};

use callstate_log::Log;
use callstate_query::live::service_chain::{self, ServiceChain};
use callstate_query::live::service_file::{FILE, ServiceFile};
use callstate_query::model::fleet::Fleet;
use callstate_query::{Derived, Live, View};
use callstate_schemas::{Body, Cause, Event, Scope};

mod common;

/// A failover day of 40 devices a cluster, with calls, run with `seed`.
fn day(seed: u64) -> Vec<Event> {
    common::simulate("node-failover", 40, seed).0
}

/// The first event's time, µs.
fn start_of(events: &[Event]) -> i64 {
    events
        .iter()
        .map(|e| e.time)
        .min()
        .unwrap()
        .timestamp_micros()
}

/// The live state of `log`, started afresh and caught up.
fn started(log: &Log) -> (Live, std::sync::Arc<View>) {
    let live = Live::start(log, Default::default()).unwrap();
    let view = common::caught_up(&live, log.version(), Duration::from_secs(60));
    assert_eq!(view.version, log.version());
    (live, view)
}

/// `view`'s answers are those of the derivation of `log` from scratch.
fn answers_as_the_log_does(log: &Log, view: &View, start: i64) {
    let scratch = Derived::load(log.snapshot(), None, Default::default(), true).unwrap();
    let (a, b) = (
        common::fleet_questions(view, start),
        common::fleet_questions(&scratch, start),
    );
    if let Some(k) = a.iter().zip(&b).position(|(x, y)| x != y) {
        panic!(
            "first difference at {k}:\n live:    {}\n scratch: {}",
            a[k], b[k]
        );
    }
    assert_eq!(a.len(), b.len());
}

/// Devices of `view` with service events.
fn devices(view: &View) -> usize {
    Fleet::devices(view).count()
}

/// A `device_out_of_service` event of `like`'s device at `at`, numbered after every event.
fn late_outage(like: &Event, at: DateTime<Utc>) -> Event {
    let mut e = like.clone();
    e.seq += 1_000_000;
    e.time = at;
    let Body::DeviceInService { device, node, .. } = &like.body else {
        panic!("an in-service event")
    };
    e.body = Body::DeviceOutOfService {
        device: device.clone(),
        cause: Cause::Other("late".into()),
        node: Some(node.clone()),
    };
    e
}

#[test]
fn a_start_reads_the_devices_unchanged_since_from_the_service_file() {
    let events = day(7);
    let start = start_of(&events);
    // before the failover, then from its first outage on
    let half = events
        .iter()
        .position(|e| matches!(e.body, Body::DeviceOutOfService { .. }))
        .unwrap();
    let (dir, log) = common::log_with(&events[..half], 1_000);
    let (live, before) = started(&log);
    assert_eq!(before.devices_reading_service_file(), 0, "no file yet");
    // a start that found none writes it in the background, every device's rollup built to
    // be written; the applier then reads them from the file (in its next round)
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let written = loop {
        let v = live.view();
        if v.rollups_reading_service_file() > 0 {
            break v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the file was not taken"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(written.rollups_reading_service_file(), devices(&written));
    // a checkpoint of the same version leaves that file as it is (not written twice)
    let inode = || {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(dir.path().join(FILE)).unwrap().ino()
    };
    let first = inode();
    live.checkpoint().unwrap();
    assert_eq!(
        inode(),
        first,
        "the same version's file is not written again"
    );
    drop(live);

    let (live, view) = started(&log);
    let n = devices(&view);
    assert!(n > 0);
    assert_eq!(
        view.devices_reading_service_file(),
        n,
        "every device unchanged"
    );
    assert_eq!(view.rollups_reading_service_file(), n, "rollups read too");
    let (heap, read) = (before.memory(), view.memory());
    assert!(
        read.service_events < heap.service_events && read.intervals < heap.intervals,
        "their bytes off the heap: {heap:?} then {read:?}"
    );
    answers_as_the_log_does(&log, &view, start);
    // the questions used the file's rollups (none built on the heap)
    assert_eq!(view.rollups_reading_service_file(), n);
    let after_questions = view.memory();
    assert!(
        after_questions.rollups < heap.rollups,
        "their runs off the heap: {heap:?} then {after_questions:?}"
    );

    // the rest of the day: devices with new events hold their own again
    for chunk in events[half..].chunks(4_096) {
        log.append(chunk).unwrap();
    }
    log.wait_idle().unwrap();
    let view = common::caught_up(&live, log.version(), Duration::from_secs(60));
    answers_as_the_log_does(&log, &view, start);
    let changed: std::collections::HashSet<&str> = events[half..]
        .iter()
        .filter(|e| {
            let b = &e.body;
            matches!(
                b,
                Body::DeviceInService { .. } | Body::DeviceOutOfService { .. }
            )
        })
        .filter_map(|e| e.body.device())
        .collect();
    let still = view.devices_reading_service_file();
    assert!(!changed.is_empty());
    assert!(
        still + changed.len() <= devices(&view),
        "{still} and {changed:?}"
    );

    // a late event: its device derived again, in order
    let mid = events[..half].iter().map(|e| e.time).nth(half / 2).unwrap();
    let like = events[..half]
        .iter()
        .find(|e| matches!(e.body, Body::DeviceInService { .. }))
        .expect("an in-service event");
    log.append(&[late_outage(like, mid)]).unwrap();
    log.wait_idle().unwrap();
    let view = common::caught_up(&live, log.version(), Duration::from_secs(60));
    answers_as_the_log_does(&log, &view, start);
    assert!(view.devices_reading_service_file() <= still);

    // a checkpoint now writes the file again: a start reads every device from it
    let before_checkpoint = inode();
    live.checkpoint().unwrap();
    assert_ne!(
        inode(),
        before_checkpoint,
        "a later version's file is written"
    );
    drop(live);
    let (live, view) = started(&log);
    assert_eq!(view.devices_reading_service_file(), devices(&view));
    assert_eq!(view.rollups_reading_service_file(), devices(&view));
    answers_as_the_log_does(&log, &view, start);

    // a maintenance window announced for a pool: the rollups of its devices (those whose
    // intervals mention it) were built without it and are built again, the rest still read
    let (pool, pooled) = a_pool(&view);
    let mut window = like.clone();
    window.seq += 2_000_000;
    window.body = Body::MaintenanceWindow {
        scope: Scope::DevicePool,
        target: pool.clone(),
        start: DateTime::from_timestamp_micros(start + 7_200_000_000).unwrap(),
        end: DateTime::from_timestamp_micros(start + 5 * 3_600_000_000 + 1).unwrap(),
        reason: "patching".into(),
    };
    log.append(&[window]).unwrap();
    log.wait_idle().unwrap();
    let view = common::caught_up(&live, log.version(), Duration::from_secs(60));
    answers_as_the_log_does(&log, &view, start);
    assert_eq!(
        view.rollups_reading_service_file(),
        devices(&view) - pooled,
        "{pool}: {pooled} devices"
    );
}

/// A device pool of `view`'s devices, and how many devices' intervals mention it.
fn a_pool(view: &View) -> (String, usize) {
    let mut pools: std::collections::BTreeMap<String, usize> = Default::default();
    for d in Fleet::devices(view) {
        let mut mine: Vec<String> = d
            .all()
            .iter()
            .filter_map(|i| i.device_pool.map(|p| p.to_string()))
            .collect();
        mine.sort();
        mine.dedup();
        for p in mine {
            *pools.entry(p).or_default() += 1;
        }
    }
    let (pool, n) = pools.into_iter().next().expect("a device pool");
    assert!(n > 0);
    (pool, n)
}

/// `log`'s service file damaged at byte `at` (counted from the end when negative).
fn damage(dir: &Path, at: i64) {
    let path = dir.join(FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let k = if at < 0 { bytes.len() as i64 + at } else { at } as usize;
    bytes[k] ^= 0x5a;
    std::fs::write(&path, bytes).unwrap();
}

#[test]
fn a_service_file_of_another_log_or_a_damaged_one_is_not_trusted() {
    let other = day(8);
    let (other_dir, other_log) = common::log_with(&other, 1_000);
    started(&other_log).0.checkpoint().unwrap();

    let events = day(9);
    let start = start_of(&events);
    let (dir, log) = common::log_with(&events, 1_000);
    std::fs::create_dir_all(dir.path().join("derived")).unwrap();
    std::fs::copy(other_dir.path().join(FILE), dir.path().join(FILE)).unwrap();
    let (live, view) = started(&log);
    assert!(view.devices_reading_service_file() < devices(&view));
    answers_as_the_log_does(&log, &view, start);

    // its own file, a byte of a device's events changed: that device holds its own
    live.checkpoint().unwrap();
    drop(live);
    damage(dir.path(), 68);
    let (live, view) = started(&log);
    let n = devices(&view);
    assert_eq!(view.devices_reading_service_file(), n - 1);
    answers_as_the_log_does(&log, &view, start);

    // a byte of a device's rollup changed: its CRC refuses that rollup alone (built again
    // when asked), the device's events and intervals still read from the file
    live.checkpoint().unwrap();
    drop(live);
    let rollup_at = {
        let file = ServiceFile::open(dir.path()).unwrap().unwrap();
        file.entries()
            .map(Result::unwrap)
            .find_map(|e| e.rollup.filter(|r| !r.range.is_empty()))
            .expect("a rollup with runs")
            .range
            .start
    };
    damage(dir.path(), rollup_at as i64);
    let (live, view) = started(&log);
    assert_eq!(view.devices_reading_service_file(), n);
    assert_eq!(view.rollups_reading_service_file(), n - 1);
    answers_as_the_log_does(&log, &view, start);

    // a byte of the table changed: the checksum refuses the file
    live.checkpoint().unwrap();
    drop(live);
    damage(dir.path(), -3);
    let (_live, view) = started(&log);
    assert_eq!(view.devices_reading_service_file(), 0);
    answers_as_the_log_does(&log, &view, start);
}

/// The pieces of the service file beside the head under `dir`, by file name.
fn service_pieces(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("derived"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("service.") && n != "service.bin")
        .collect();
    names.sort();
    names
}

/// `live`'s view once the applier read every device from the service file just written.
fn reading_every_device(live: &Live) -> std::sync::Arc<View> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v = live.view();
        if v.devices_reading_service_file() == devices(&v) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {} devices read from the file",
            v.devices_reading_service_file(),
            devices(&v)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A late outage of the `k`-th device with an in-service event among `events`, in the middle
/// of them, numbered `n` among such.
fn late_outage_of(events: &[Event], k: usize, n: u64) -> Event {
    let mid = events.iter().map(|e| e.time).nth(events.len() / 2).unwrap();
    let mut seen = std::collections::HashSet::new();
    let like = events
        .iter()
        .filter(|e| matches!(e.body, Body::DeviceInService { .. }))
        .filter(|e| seen.insert(e.body.device().unwrap().to_string()))
        .nth(k)
        .expect("an in-service event");
    let mut e = late_outage(like, mid);
    e.seq += n * 10_000_000;
    e
}

#[test]
fn a_checkpoint_writes_only_the_devices_changed_since_the_rest_kept_in_their_pieces() {
    let events = day(11);
    let start = start_of(&events);
    let (dir, log) = common::log_with(&events, 1_000);
    // a start that found no file writes it whole in the background
    let (live, _) = started(&log);
    let view = reading_every_device(&live);
    let n = devices(&view);
    let whole = ServiceChain::open(dir.path()).unwrap().unwrap();
    // every device, those with calls only too
    let all = whole.head().devices;
    assert!(all as usize >= n);
    assert_eq!(whole.files().len(), 1);
    let whole_bytes = whole.head().file_bytes();
    drop(whole);
    assert!(service_pieces(dir.path()).is_empty());

    // a late event: its device alone is written, into a new head; the last head is kept as a
    // piece of the chain
    let late = |k, n| {
        log.append(&[late_outage_of(&events, k, n)]).unwrap();
        log.wait_idle().unwrap();
        common::caught_up(&live, log.version(), Duration::from_secs(60));
        let w = live.checkpoint().unwrap().service.expect("written");
        (w, reading_every_device(&live))
    };
    let (one, view) = late(0, 1);
    assert_eq!((one.devices, one.pieces), (1, 2), "{one:?}");
    assert!(one.written_bytes * 10 < whole_bytes, "{one:?}");
    assert_eq!(service_pieces(dir.path()).len(), 1);
    assert_eq!(one.bytes, service_chain::bytes_on_disk(dir.path()));
    answers_as_the_log_does(&log, &view, start);

    // another of the same device: nothing of the head is still read, so it goes; the first
    // piece is kept
    let (two, view) = late(0, 2);
    assert_eq!((two.devices, two.pieces), (1, 2), "{two:?}");
    assert_eq!(service_pieces(dir.path()).len(), 1, "the last head removed");
    answers_as_the_log_does(&log, &view, start);
    // one of another device: the small head is written again with it when what is still
    // read of it is at most twice what is written, else kept
    let (three, _) = late(1, 3);
    assert!(
        [(2, 2), (1, 3)].contains(&(three.devices, three.pieces)),
        "{three:?}"
    );
    drop(live);

    // a start reads every device from the chain, each from its newest entry
    let (live, view) = started(&log);
    assert_eq!(view.devices_reading_service_file(), n);
    assert_eq!(view.rollups_reading_service_file(), n);
    answers_as_the_log_does(&log, &view, start);
    let chain = ServiceChain::open(dir.path()).unwrap().unwrap();
    assert_eq!(chain.files().len(), three.pieces);
    assert_eq!(chain.head().devices, three.devices);
    let mut entries = 0u64;
    chain.each_entry(|_, _| entries += 1);
    assert_eq!(entries, all, "each device once");
    drop(chain);
    drop(live);

    // a piece left by a write cut short is removed; pieces listed but missing leave their
    // devices derived, answering the same, and the file is written again whole
    let stray = dir.path().join("derived/service.0123456789abcdef.bin");
    std::fs::write(&stray, b"cut short").unwrap();
    let (live, view) = started(&log);
    assert!(!stray.exists());
    assert_eq!(view.devices_reading_service_file(), n);
    drop(live);
    for piece in service_pieces(dir.path()) {
        std::fs::remove_file(dir.path().join("derived").join(piece)).unwrap();
    }
    let (live, view) = started(&log);
    assert!(view.devices_reading_service_file() <= three.devices as usize);
    answers_as_the_log_does(&log, &view, start);
    reading_every_device(&live);
    assert!(service_pieces(dir.path()).is_empty());
    let chain = ServiceChain::open(dir.path()).unwrap().unwrap();
    assert_eq!(chain.head().devices, all);
    drop(chain);
    drop(live);
    let (_live, view) = started(&log);
    assert_eq!(view.devices_reading_service_file(), n);
    answers_as_the_log_does(&log, &view, start);
}
