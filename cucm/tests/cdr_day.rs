//! End to end: the CDR files of a simulated day with a node failover, a CTIManager failover
//! and a site outage (one file per node per minute, transfers as their three records) → the
//! directory collector (complete files only; a restart and a file taken twice on the way) →
//! real log → calls and transfers against the simulator's truth.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use callstate_cucm::cdr::{CdrCollector, CdrConfig};
use callstate_log::{Log, LogOptions};
use callstate_mockcucm::cdr::{TRUNK, cause_value, write};
use callstate_schemas::{Body, Event};
use callstate_sim::Scenario;

mod common;

#[test]
fn a_day_of_cdr_files_gives_every_call_and_transfer_of_the_truth() {
    let sc = Scenario::from_toml(common::DAY).unwrap();
    let (events, truth) = callstate_sim::collect(&sc, 21).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cdr_dir = dir.path().join("billing");
    let written = write(&events, &cdr_dir).unwrap();
    assert!(written.files.len() > 100, "{} files", written.files.len());
    let log = Arc::new(Log::open(dir.path().join("data"), LogOptions::default()).unwrap());
    let mut cfg = CdrConfig::new("CL1", cdr_dir.clone(), &dir.path().join("collectors"));
    cfg.settle = Duration::from_millis(100);

    // a file still being uploaded (a temporary name) and a media-quality file are left alone
    std::fs::write(cdr_dir.join(".cdr_CL1_01_202611240000_1.part"), "partial").unwrap();
    std::fs::write(
        cdr_dir.join("cmr_CL1_01_202611240000_7"),
        "\"cdrRecordType\"\n",
    )
    .unwrap();
    let half = written.files.len() / 2;
    let later: Vec<_> = written.files[half..]
        .iter()
        .map(|p| (p.clone(), std::fs::read(p).unwrap()))
        .collect();
    for (p, _) in &later {
        std::fs::remove_file(p).unwrap();
    }
    let mut c = CdrCollector::new(cfg.clone(), log.clone()).unwrap();
    // first scan: sizes noted, nothing is complete yet
    assert_eq!(c.scan(false).unwrap(), 0);
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(
        c.scan(false).unwrap(),
        half + 1,
        "every file but the partial one, the cmr one skipped"
    );
    let first = c.status().lock().unwrap().clone();
    assert_eq!((first.files as usize, first.cmr_files), (half, 1));
    drop(c);
    // a crash after appending the last file but before remembering it
    let state = std::fs::read_to_string(&cfg.state_file).unwrap();
    let mut lines: Vec<&str> = state.lines().collect();
    lines.pop();
    std::fs::write(&cfg.state_file, lines.join("\n") + "\n").unwrap();
    // the rest of the day arrives; a restarted collector takes it
    for (p, bytes) in &later {
        std::fs::write(p, bytes).unwrap();
    }
    let mut c = CdrCollector::new(cfg.clone(), log.clone()).unwrap();
    assert_eq!(c.scan(true).unwrap(), written.files.len() - half + 1);
    let status = c.status().lock().unwrap().clone();
    eprintln!("cdr: {}", serde_json::to_string(&status).unwrap());
    assert_eq!(status.rejected_rows, 0);
    assert_eq!(status.bad_files, 0);
    log.wait_idle().unwrap();

    let stored: Vec<Event> = log
        .snapshot()
        .stored_events()
        .unwrap()
        .into_iter()
        .map(|s| s.event)
        .collect();
    // calls: every leg that ended in the day, on its device, with its cause, exactly once
    let mut got: BTreeMap<(String, String), usize> = BTreeMap::new();
    for e in &stored {
        if let Body::CallEnded { device, cause, .. } = &e.body
            && device != TRUNK
        {
            *got.entry((device.clone(), cause.as_str().to_string()))
                .or_default() += 1;
        }
    }
    let mut want: BTreeMap<(String, String), usize> = BTreeMap::new();
    for call in &truth.calls {
        if let (Some(_), Some(cause)) = (call.end, &call.cause) {
            let name = callstate_cucm::cdr::codes::cause_name(cause_value(cause));
            *want.entry((call.device.clone(), name)).or_default() += 1;
        }
    }
    let per_cause = |m: &BTreeMap<(String, String), usize>| {
        let mut c: BTreeMap<String, usize> = BTreeMap::new();
        for ((_, cause), n) in m {
            *c.entry(cause.clone()).or_default() += n;
        }
        c
    };
    eprintln!("calls per cause: {:?}", per_cause(&got));
    assert_eq!(per_cause(&got), per_cause(&want));
    assert_eq!(got, want, "per device and cause");
    // transfers: every one of the truth, once, by its controller at its time (CDR times are
    // whole seconds, a teardown's rounded up)
    let transfers: Vec<(String, i64)> = stored
        .iter()
        .filter_map(|e| match &e.body {
            Body::TransferCompleted { device, .. } => Some((device.clone(), e.time.timestamp())),
            _ => None,
        })
        .collect();
    let truth_transfers: Vec<(String, i64)> = events
        .iter()
        .filter_map(|e| match &e.body {
            Body::TransferCompleted { device, .. } => Some((device.clone(), e.time.timestamp())),
            _ => None,
        })
        .collect();
    assert!(truth_transfers.len() >= 20, "{}", truth_transfers.len());
    assert_eq!(transfers.len(), truth_transfers.len(), "each transfer once");
    for (device, at) in &truth_transfers {
        assert!(
            transfers
                .iter()
                .any(|(d, t)| d == device && (0..=1).contains(&(t - at))),
            "transfer by {device} at {at} not found"
        );
    }
}

/// Incident reports count the calls hit from CDR-fed calls as from bridge-fed ones: the
/// simulator's service events plus the CDR collector's calls (instead of the bridge's) give
/// each incident's calls active and how they ended.
#[test]
fn incident_calls_from_cdr_fed_calls_match_the_truth() {
    use callstate_query::model::incidents::{IncidentOptions, detect};
    let sc = Scenario::from_toml(common::DAY).unwrap();
    let (events, truth) = callstate_sim::collect(&sc, 22).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cdr_dir = dir.path().join("billing");
    write(&events, &cdr_dir).unwrap();
    let log = Arc::new(Log::open(dir.path().join("data"), LogOptions::default()).unwrap());
    // the bridge's events without its calls
    let service: Vec<Event> = events
        .iter()
        .filter(|e| {
            !matches!(
                e.body,
                Body::CallStarted { .. }
                    | Body::CallState { .. }
                    | Body::CallEnded { .. }
                    | Body::TransferCompleted { .. }
            )
        })
        .cloned()
        .collect();
    for chunk in service.chunks(4096) {
        log.append(chunk).unwrap();
    }
    let cfg = CdrConfig::new("CL1", cdr_dir, &dir.path().join("collectors"));
    CdrCollector::new(cfg, log.clone())
        .unwrap()
        .scan(true)
        .unwrap();
    log.wait_idle().unwrap();
    let derived =
        callstate_query::Derived::load(log.snapshot(), None, Default::default(), true).unwrap();
    let (from, to) = (truth.start.timestamp_micros(), truth.end.timestamp_micros());
    let found = detect(
        &derived,
        from,
        to,
        &IncidentOptions::default(),
        &callstate_query::Cancel::new(),
    )
    .unwrap();
    let mut checked = 0;
    for want in truth
        .incidents
        .iter()
        .filter(|i| i.devices.len() >= 5 && i.calls_active > 0)
    {
        let start = want.start.unwrap().timestamp_micros();
        // a site's outage is one incident per node it hits
        let got: Vec<_> = found
            .iter()
            .filter(|f| {
                f.started_at == start
                    || (want.scope == "site" && (f.started_at - start).abs() <= 60_000_000)
            })
            .collect();
        assert!(!got.is_empty(), "{}: found", want.id);
        let active: usize = got
            .iter()
            .map(|f| f.calls_active.expect("no retention: calls known"))
            .sum();
        // CDR times are whole seconds: a call within a second of the outage may count on
        // either side of it
        let diff = active.abs_diff(want.calls_active);
        assert!(
            diff * 20 <= want.calls_active.max(20),
            "{}: calls active {active} from CDRs, truth {}",
            want.id,
            want.calls_active
        );
        let dropped_cause = callstate_cucm::cdr::codes::cause_name(cause_value(&want.cause));
        let dropped: usize = got
            .iter()
            .map(|f| {
                let ended = f.calls_ended.as_ref().expect("no retention: calls known");
                ended.get(&dropped_cause).copied().unwrap_or(0)
            })
            .sum();
        let diff = dropped.abs_diff(want.calls_dropped);
        assert!(
            diff * 20 <= want.calls_dropped.max(20),
            "{}: dropped {dropped} ({dropped_cause}) from CDRs, truth {}",
            want.id,
            want.calls_dropped
        );
        eprintln!(
            "{}: calls active {active} (truth {}), dropped {dropped} (truth {})",
            want.id, want.calls_active, want.calls_dropped
        );
        checked += 1;
    }
    assert!(
        checked >= 3,
        "the node, CTIManager and site incidents: {checked}"
    );
}
