//! End to end on a real Kafka-compatible broker (tansu, in-memory storage): the simulator's
//! day produced to the bridges' topic, the collector (killed with SIGKILL midway and restarted)
//! into the canonical topic, `serve` materializing it (and restarted), and the API's answers
//! against the simulator's truth. `.ci/run` installs tansu when it is missing.

use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use callstate_ingest::kafka::{KafkaConfig, read_to_end};
use callstate_schemas::Event;
use callstate_sim::Truth;
use common::{Proc, Server, agent, bin, mock_cucm, sql, succeed};
use rdkafka::Message;
use rdkafka::message::Headers;
use serde_json::Value;

/// The tansu binary: `CALLSTATE_TANSU`, else `tansu` on PATH or in cargo's bin directory.
fn tansu() -> PathBuf {
    if let Ok(p) = std::env::var("CALLSTATE_TANSU") {
        return p.into();
    }
    let mut dirs: Vec<PathBuf> =
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect();
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        dirs.push(Path::new(&home).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join("tansu"))
        .find(|p| p.is_file())
        .expect("tansu not found: run .ci/run (it installs it) or `cargo install tansu --features dynostore`")
}

/// Brokers and the librdkafka options every callstate process gets.
struct Kafka {
    brokers: String,
    options: Vec<&'static str>,
}

impl Kafka {
    /// `flag option` for each option.
    fn options(&self, flag: &'static str) -> Vec<&str> {
        self.options.iter().flat_map(|o| [flag, *o]).collect()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A tansu broker on a free port, with the topics created.
fn broker(topics: &[(&str, u32)]) -> (Proc, String) {
    let port = free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(tansu())
        .args([
            "broker",
            "--storage-engine",
            "memory://tansu/",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let proc = Proc(child);
    wait_for("tansu to listen", Duration::from_secs(30), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    for (t, n) in topics {
        let ok = Command::new(tansu())
            .args([
                "topic",
                "create",
                t,
                "--partitions",
                &n.to_string(),
                "--broker",
                &url,
            ])
            .status()
            .unwrap();
        assert!(ok.success(), "creating topic {t}");
    }
    (proc, format!("127.0.0.1:{port}"))
}

fn run_ok(args: &[&str]) -> String {
    String::from_utf8(succeed(bin().args(args)).stdout).unwrap()
}

/// `callstate serve` in Kafka mode.
fn serve(data: &Path, k: &Kafka) -> Server {
    let mut cmd = bin();
    cmd.args([
        "serve",
        "--data",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--kafka-brokers",
        k.brokers.as_str(),
        "--kafka-topic",
        "callstate.events",
        // a killed instance leaves the group quickly
        "--kafka-option",
        "session.timeout.ms=6000",
        "--kafka-option",
        "heartbeat.interval.ms=500",
    ])
    .args(k.options("--kafka-option"));
    Server::start(cmd)
}

fn collector(k: &Kafka) -> Proc {
    let brokers = k.brokers.as_str();
    Proc(
        bin()
            .args([
                "ingest",
                "kafka",
                "--brokers",
                brokers,
                "--topic",
                "raw",
                "--group",
                "collector",
                "--canonical-topic",
                "callstate.events",
                "--batch-max",
                "300",
                "-X",
                "session.timeout.ms=6000",
                "-X",
                "heartbeat.interval.ms=500",
            ])
            .args(k.options("-X"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    )
}

fn get(url: &str) -> Value {
    let mut r = agent().get(url).call().unwrap();
    assert_eq!(r.status().as_u16(), 200, "{url}");
    serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
}

/// (events, distinct (source, seq)) in the served log.
fn counts(url: &str) -> (u64, u64) {
    let v = sql(
        url,
        "SELECT count(*) AS n, count(DISTINCT source || '/' || CAST(seq AS VARCHAR)) AS k FROM events",
    );
    (v[0]["n"].as_u64().unwrap(), v[0]["k"].as_u64().unwrap())
}

fn produce(k: &Kafka, lines: &[&str], dir: &Path, name: &str) {
    let brokers = k.brokers.as_str();
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n")).unwrap();
    let mut args: Vec<&str> = vec![
        "kafka",
        "produce",
        "--brokers",
        brokers,
        "--topic",
        "raw",
        path.to_str().unwrap(),
    ];
    args.extend(k.options("-X"));
    let out = run_ok(&args);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["produced"], lines.len());
}

/// The fleet at instants across the day, against the truth.
fn check_state(url: &str, truth: &Truth) {
    let span = truth.end - truth.start;
    for k in 1..12 {
        let at = truth.start + span / 12 * k;
        let v = get(&format!("{url}/api/v1/state?at={}", at.timestamp_millis()));
        let rows = v["devices"].as_array().unwrap();
        assert_eq!(rows.len(), truth.device_info.len());
        for r in rows {
            let d = r["device"].as_str().unwrap();
            let (state, node) = truth.state_at(d, at);
            assert_eq!(r["state"], state, "{d} at {at}");
            assert_eq!(r["node"].as_str(), node, "{d} at {at}");
        }
    }
}

/// Stops a process: SIGKILL (`hard`, a crash) or SIGTERM (a clean stop), and waits.
fn stop(p: &mut Proc, hard: bool) {
    p.signal(if hard { "-KILL" } else { "-TERM" });
}

/// The simulator's day through `kafka produce` → `ingest kafka` (stopped mid-stream and
/// restarted) → the canonical topic → `serve` (stopped and restarted), checked against the
/// truth; `hard` stops with SIGKILL.
fn end_to_end(k: &Kafka, hard: bool) {
    let brokers = k.brokers.as_str();
    let tmp = tempfile::tempdir().unwrap();
    let events = tmp.path().join("events.ndjson");
    let truth_path = tmp.path().join("truth.json");
    run_ok(&[
        "simulate",
        "--scenario",
        "node-failover",
        "--seed",
        "3",
        "--devices",
        "200",
        "--out",
        events.to_str().unwrap(),
        "--truth",
        truth_path.to_str().unwrap(),
    ]);
    let truth: Truth =
        serde_json::from_str(&std::fs::read_to_string(&truth_path).unwrap()).unwrap();
    let text = std::fs::read_to_string(&events).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let distinct: BTreeSet<(String, u64)> = lines
        .iter()
        .map(|l| {
            let e = Event::from_json(l, chrono::Utc::now()).unwrap();
            (e.source, e.seq)
        })
        .collect();
    let n = distinct.len() as u64;

    let data = tmp.path().join("data");
    let mut server = serve(&data, k);
    let url = server.url.clone();
    let half = lines.len() / 2;
    produce(k, &lines[..half], tmp.path(), "first.ndjson");
    let mut c = collector(k);
    wait_for(
        "the first events to be queryable",
        Duration::from_secs(120),
        || counts(&url).0 > 0,
    );
    // stopped mid-stream: whatever it appended but did not commit is read again
    stop(&mut c, hard);
    let bad = [
        "{\"source\":\"b\",\"seq\":1",
        r#"{"source":"b","seq":2,"time":"2026-11-24T08:00:00Z","cluster":"CL1","kind":"warp_drive"}"#,
    ];
    let mut rest: Vec<&str> = lines[half..].to_vec();
    rest.extend(bad);
    produce(k, &rest, tmp.path(), "second.ndjson");
    let _c = collector(k);
    wait_for(
        "every event to be queryable",
        Duration::from_secs(240),
        || counts(&url).1 == n,
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(counts(&url), (n, n), "each event stored once");
    check_state(&url, &truth);

    // the rejects are in the dead-letter topic, with their reasons
    let dlq = read_to_end(&KafkaConfig::new(brokers.to_string()), "raw.dlq").unwrap();
    assert_eq!(dlq.len(), 2, "{dlq:?}");
    for m in &dlq {
        let reason = m
            .headers()
            .unwrap()
            .iter()
            .find(|h| h.key == "callstate-error")
            .and_then(|h| h.value);
        assert!(reason.is_some_and(|r| !r.is_empty()));
    }

    // an HTTP write goes through the canonical topic
    let posted = truth.start + (truth.end - truth.start) / 2;
    post_heartbeat(&url, 1, posted);
    wait_for("the posted event", Duration::from_secs(60), || {
        counts(&url).1 == n + 1
    });

    // stopped and restarted: nothing lost, nothing repeated, and it goes on materializing
    stop(&mut server.proc, hard);
    let server = serve(&data, k);
    let url = server.url.clone();
    assert_eq!(counts(&url), (n + 1, n + 1));
    post_heartbeat(&url, 2, posted);
    wait_for(
        "a write after the restart",
        Duration::from_secs(120),
        || counts(&url).1 == n + 2,
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(counts(&url), (n + 2, n + 2));
    check_state(&url, &truth);
}

const TOPICS: [(&str, u32); 4] = [
    ("raw", 3),
    ("raw.dlq", 1),
    ("callstate.events", 3),
    ("callstate.events.dlq", 1),
];

/// On tansu, a Kafka-compatible broker of its own implementation, with clean stops (tansu's
/// group coordinator does not hand a killed member's partitions on within a test's time).
#[test]
fn kafka_log_end_to_end_on_tansu_matches_the_truth() {
    let (_broker, brokers) = broker(&TOPICS);
    // tansu 0.6 skips or repeats records when a fetch starts inside a multi-record batch
    // (seen here: the same run loses ~2% with batching, none without); one record per batch
    // keeps this test about callstate.
    let k = Kafka {
        brokers,
        options: vec!["batch.num.messages=1"],
    };
    end_to_end(&k, false);
}

/// The same with crashes (SIGKILL) of the collector and of serve, on librdkafka's mock
/// cluster (its brokers listen on loopback, so the processes connect to it over TCP).
#[test]
fn kafka_log_end_to_end_with_crashes_matches_the_truth() {
    let mock = rdkafka::mocking::MockCluster::new(1).unwrap();
    for (t, n) in TOPICS {
        mock.create_topic(t, n as i32, 1).unwrap();
    }
    let k = Kafka {
        brokers: mock.bootstrap_servers(),
        options: Vec::new(),
    };
    end_to_end(&k, true);
}

fn post_heartbeat(url: &str, seq: u64, at: chrono::DateTime<chrono::Utc>) {
    let body = format!(
        r#"{{"source":"ops","seq":{seq},"time":"{}","cluster":"CL1","kind":"collector_heartbeat"}}"#,
        at.to_rfc3339()
    );
    let mut r = agent()
        .post(&format!("{url}/api/v1/events"))
        .header("Content-Type", "application/x-ndjson")
        .send(&body)
        .unwrap();
    let text = r.body_mut().read_to_string().unwrap();
    assert_eq!(r.status().as_u16(), 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["accepted"], 1, "{text}");
}

/// `callstate ingest risport --canonical-topic`: the poller's events go to the canonical topic
/// (librdkafka's mock cluster) instead of the embedded log.
#[test]
fn the_risport_poller_writes_to_the_canonical_topic() {
    let kafka = rdkafka::mocking::MockCluster::new(1).unwrap();
    kafka.create_topic("callstate.events", 2, 1).unwrap();
    let brokers = kafka.bootstrap_servers();
    let (_mock, m) = mock_cucm("60", "120");
    // six simulated minutes: every device has registered (phones take 15 s + ~15 s each)
    std::thread::sleep(Duration::from_secs(3));
    let dir = tempfile::tempdir().unwrap();
    succeed(
        bin()
            .args([
                "ingest",
                "risport",
                "--cucm",
                m["mock_cucm"].as_str().unwrap(),
            ])
            .args(["--cluster", "CL1", "--user", "callstate-ris", "--once"])
            .args([
                "--clock-speed",
                "120",
                "--clock-origin",
                m["clock_origin"].as_str().unwrap(),
            ])
            .args([
                "--canonical-topic",
                "callstate.events",
                "--brokers",
                &brokers,
            ])
            .args(["--state-dir", dir.path().to_str().unwrap()])
            .env("CALLSTATE_CUCM_PASSWORD", "s3cr3t-pw"),
    );
    let msgs = read_to_end(&KafkaConfig::new(brokers), "callstate.events").unwrap();
    let devices: BTreeSet<String> = msgs
        .iter()
        .filter_map(|msg| {
            let v: Value = serde_json::from_slice(msg.payload()?).ok()?;
            assert_eq!(v["source"], "risport:CL1");
            (v["kind"] == "device_in_service").then(|| v["device"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(devices.len(), 60);
    assert!(
        dir.path().join("risport-CL1.seq").is_file(),
        "the sequence is persisted"
    );
}
