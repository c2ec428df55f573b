//! End to end: a simulated day with a node failover, a CTIManager failover and a site outage,
//! rendered as the cluster's remote-syslog stream (lenient variants, truncated lines,
//! duplicate frames, OS lines) → the receiver over TCP and UDP → real log → device
//! availability and moves against the simulator's truth.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use callstate_cucm::VirtualClock;
use callstate_cucm::syslog::{SyslogConfig, SyslogReceiver, SyslogStatus};
use callstate_log::{Log, LogOptions};
use callstate_mockcucm::APP_USER;
use callstate_mockcucm::alarms::{AlarmLine, AlarmOptions, at, render};
use callstate_query::{LogRows, derive, device_seconds};
use callstate_schemas::{Event, Movement, ServiceState};
use callstate_sim::{Scenario, Truth};

mod common;

fn simulate(toml: &str, seed: u64) -> (Vec<Event>, Truth) {
    callstate_sim::collect(&Scenario::from_toml(toml).unwrap(), seed).unwrap()
}

struct Run {
    log: Arc<Log>,
    status: SyslogStatus,
    dir: tempfile::TempDir,
}

/// Sends `lines` to a receiver listening on `proto`, moving the virtual clock to each line's
/// time first (as if the day happened now), then to `end`.
fn receive(
    proto: &str,
    lines: &[AlarmLine],
    start: chrono::DateTime<chrono::Utc>,
    end: chrono::DateTime<chrono::Utc>,
) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path().join("data"), LogOptions::default()).unwrap());
    let clock = Arc::new(VirtualClock::new(start));
    let mut cfg = SyslogConfig::new(
        "CL1",
        vec![format!("{proto}://127.0.0.1:0")],
        &dir.path().join("collectors"),
    );
    cfg.cti_users = vec![APP_USER.to_string()];
    let rx = SyslogReceiver::start(cfg, clock.clone(), log.clone()).unwrap();
    let addr = rx.bound()[0].split_once("://").unwrap().1.to_string();
    let mut tcp = (proto == "tcp").then(|| std::net::TcpStream::connect(&addr).unwrap());
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for (i, (t, line)) in lines.iter().enumerate() {
        clock.advance_to(at(*t));
        match tcp.as_mut() {
            // octet-counted framing, with some frames newline framed on the same connection
            Some(s) if i % 7 == 0 => s.write_all(format!("{line}\n").as_bytes()).unwrap(),
            Some(s) => s
                .write_all(format!("{} {line}", line.len()).as_bytes())
                .unwrap(),
            None => {
                udp.send_to(line.as_bytes(), &addr).unwrap();
                if i % 200 == 0 {
                    // a paced sender: loopback UDP under a debug build drops bursts otherwise
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
    }
    if let Some(s) = tcp.as_mut() {
        s.flush().unwrap();
    }
    clock.advance_to(end);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while rx.status().messages < lines.len() as u64 {
        assert!(
            std::time::Instant::now() < deadline,
            "received {} of {}",
            rx.status().messages,
            lines.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(tcp);
    // one more moment for the heartbeats up to the end
    std::thread::sleep(Duration::from_millis(300));
    let status = rx.stop().unwrap();
    log.wait_idle().unwrap();
    Run { log, status, dir }
}

/// Per device, out-of-service seconds equal to the truth, but for what syslog cannot see: the
/// outages of devices on a crashed node (it sends nothing), and CTI-only outages of phones
/// (their registration does not change).
fn check_against_truth(run: &Run, truth: &Truth, min_seen: usize) {
    let rows = LogRows::load(&run.log.snapshot(), None).unwrap();
    let intervals = derive(&rows);
    let from = truth.start + chrono::Duration::minutes(10);
    let (f, t) = (from.timestamp_micros(), truth.end.timestamp_micros());
    let mut must_see = 0;
    for (name, info) in &truth.device_info {
        let mine: Vec<_> = intervals
            .iter()
            .filter(|i| &*i.device == name.as_str())
            .cloned()
            .collect();
        let got = device_seconds(&mine, f, t, &[]);
        let want = truth.seconds(name, from, truth.end);
        let want_out = want.get("out_of_service").copied().unwrap_or(0.0);
        assert_eq!(
            got.unknown_s, 0.0,
            "{name}: never unknown while the receiver is bound"
        );
        let mut may_miss = 0.0;
        let mut n = 0.0;
        for iv in truth.devices.get(name).into_iter().flatten() {
            if iv.state != "out_of_service" || iv.to <= from {
                continue;
            }
            n += 1.0;
            let dur = (iv.to.min(truth.end) - iv.from.max(from))
                .num_microseconds()
                .unwrap() as f64
                / 1e6;
            let cause = iv.cause.as_deref().unwrap_or("");
            let cti_only = cause == "ctimanager_failure"
                && !matches!(info.device_type.as_str(), "cti_port" | "cti_route_point");
            if cause == "node_failure" || cti_only {
                may_miss += dur;
            } else {
                must_see += 1;
            }
        }
        // CiscoLog stamps are to the millisecond
        let slack = 0.002 * n + 1e-6;
        assert!(
            got.out_of_service_s <= want_out + slack
                && got.out_of_service_s >= want_out - may_miss - slack,
            "{name}: {} s out of service from syslog, truth {want_out} s (may miss {may_miss} s)",
            got.out_of_service_s
        );
    }
    assert!(must_see >= min_seen, "{must_see} outages syslog must see");
    // every failover and re-home is in the log at its time (to the millisecond)
    for (moves, kind) in [
        (&truth.failovers, Movement::Failover),
        (&truth.rehomes, Movement::Rehome),
    ] {
        assert!(!moves.is_empty());
        for m in moves.iter() {
            let at = m.at.timestamp_micros();
            assert!(
                intervals.iter().any(|i| &*i.device == m.device.as_str()
                    && i.state == ServiceState::InService
                    && i.node.as_deref() == Some(m.to.as_str())
                    && (i.valid_from - at).abs() <= 1_000),
                "{kind:?} of {} to {} at {}",
                m.device,
                m.to,
                m.at
            );
        }
    }
}

#[test]
fn a_day_of_alarms_over_tcp_matches_the_truth() {
    let (events, truth) = simulate(common::DAY, 11);
    let lines = render(&events, &AlarmOptions::default());
    let run = receive("tcp", &lines, truth.start, truth.end);
    let s = &run.status;
    eprintln!("syslog: {}", serde_json::to_string(s).unwrap());
    assert_eq!(s.messages, lines.len() as u64);
    assert_eq!(s.malformed, 0);
    assert_eq!(s.rejected, 0);
    assert!(s.duplicates > 0 && s.not_alarms > 0 && !s.ignored.is_empty());
    assert_eq!(s.sequence_gaps, 0, "nothing lost over TCP");
    assert_eq!(s.cluster_id_mismatches, 0);
    check_against_truth(&run, &truth, 20);
    // node events: the crash and the return
    let rows = LogRows::load(&run.log.snapshot(), None).unwrap();
    let kinds: Vec<_> = rows
        .node_events
        .iter()
        .map(|e| (e.kind, e.target.to_string()))
        .collect();
    assert!(
        kinds.contains(&(callstate_schemas::Kind::NodeDown, "CL1-cucm1".into())),
        "{kinds:?}"
    );
    assert!(kinds.contains(&(callstate_schemas::Kind::NodeUp, "CL1-cucm1".into())));
    assert!(
        kinds
            .iter()
            .any(|(k, _)| *k == callstate_schemas::Kind::ProviderOutOfService)
    );
    // what had no v1 meaning is in the raw side file, with its reason
    let raw =
        std::fs::read_to_string(run.dir.path().join("collectors/syslog-CL1.raw.ndjson")).unwrap();
    assert!(raw.contains("not a CiscoLog alarm") && raw.contains("no v1 meaning"));
}

#[test]
fn an_hour_of_alarms_over_udp_matches_the_truth() {
    let (events, truth) = simulate(common::HOUR, 4);
    let lines = render(&events, &AlarmOptions::default());
    let run = receive("udp", &lines, truth.start, truth.end);
    assert_eq!(run.status.messages, lines.len() as u64, "{:?}", run.status);
    assert!(run.status.udp_buffer_bytes > 0);
    check_against_truth(&run, &truth, 1);
}

/// A newline-framed TCP line longer than any message (2 MiB, no newline) is cut at 1 MiB,
/// passed on as a line (kept raw with its reason), and its connection closed; the receiver
/// goes on taking other connections.
#[test]
fn an_endless_tcp_line_is_cut_and_the_receiver_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path().join("data"), LogOptions::default()).unwrap());
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-02T12:00:00Z")
        .unwrap()
        .to_utc();
    let clock = Arc::new(VirtualClock::new(start));
    let cfg = SyslogConfig::new(
        "CL1",
        vec!["tcp://127.0.0.1:0".into()],
        &dir.path().join("collectors"),
    );
    let rx = SyslogReceiver::start(cfg, clock, log.clone()).unwrap();
    let addr = rx.bound()[0].split_once("://").unwrap().1.to_string();
    let mut hostile = std::net::TcpStream::connect(&addr).unwrap();
    let big = format!("<190>1: ucm-a1: {}", "x".repeat(2 << 20));
    // the receiver closes the connection after 1 MiB: the rest may not be taken
    let _ = hostile.write_all(big.as_bytes());
    drop(hostile);
    let mut good = std::net::TcpStream::connect(&addr).unwrap();
    good.write_all(b"<190>8810: ucm-a3: Nov 02 2026 09:14:09.004 UTC :  %UC_CALLMANAGER-6-EndPointRegistered: %[DeviceName=SEP1][DeviceType=592][NodeID=ucm-a3]: Endpoint registered.\n").unwrap();
    drop(good);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while rx.status().messages < 2 {
        assert!(std::time::Instant::now() < deadline, "{:?}", rx.status());
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = rx.stop().unwrap();
    assert_eq!(s.messages, 2, "{s:?}");
    assert_eq!(s.not_alarms, 1);
    log.wait_idle().unwrap();
    let rows = LogRows::load(&log.snapshot(), None).unwrap();
    assert_eq!(rows.service.len(), 1, "the good alarm is an event");
    let raw = std::fs::read_to_string(dir.path().join("collectors/syslog-CL1.raw.ndjson")).unwrap();
    assert!(
        raw.len() > 1 << 20 && raw.len() < (1 << 20) + 4096,
        "the cut line is kept raw: {} bytes",
        raw.len()
    );
}
