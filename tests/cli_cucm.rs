//! The CUCM collectors as a user runs them (docs/cucm.md): `simulate --serve-cucm` with
//! `ingest risport`, `simulate --syslog-to` with `ingest syslog`, `simulate --cdr-dir` with
//! `ingest cdr`, and the poller and the receiver inside `callstate serve`.

use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{Server, agent, assert_ok, bin, mock_cucm as mock, succeed};

#[test]
fn the_documented_poll_of_a_simulated_cluster_fills_the_log() {
    let (_mock, m) = mock("120", "60");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cr3t-pw\n").unwrap();
    let url = m["mock_cucm"].as_str().unwrap();
    let run = |extra: &[&str]| {
        bin()
            .args(["ingest", "risport", "--cucm", url, "--cluster", "CL1"])
            .args([
                "--user",
                "callstate-ris",
                "--password-file",
                pw.to_str().unwrap(),
            ])
            .args(["--cti-user", m["cti_user"].as_str().unwrap()])
            .args([
                "--clock-speed",
                "60",
                "--clock-origin",
                m["clock_origin"].as_str().unwrap(),
            ])
            .args(["--data", data.to_str().unwrap(), "--once"])
            .args(extra)
            .output()
            .unwrap()
    };
    // four simulated minutes: every device has registered
    std::thread::sleep(Duration::from_secs(4));
    let out = run(&[]);
    assert_ok(&out);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["watched"], 120);
    assert_eq!(status["known"], 120, "{status}");
    let stats = bin()
        .args(["log", "stats", "--data", data.to_str().unwrap()])
        .output()
        .unwrap();
    let stats: Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["per_kind"]["device_in_service"], 120, "{stats}");
    assert_eq!(stats["per_kind"]["provider_in_service"], 1, "{stats}");
    assert!(stats["per_kind"]["device_pool_config"].as_u64().unwrap() >= 1);
    assert!(stats["per_kind"]["collector_heartbeat"].as_u64().unwrap() >= 1);
    // a second run continues the sequence: nothing is a conflict, nothing is lost
    let again = run(&[]);
    assert_ok(&again);

    // a wrong password: a clear error naming the roles, the password never printed
    std::fs::write(&pw, "wrong-pw\n").unwrap();
    let bad = run(&[]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("authentication refused") && err.contains("roles"),
        "{err}"
    );
    assert!(
        !err.contains("wrong-pw") && !err.contains("s3cr3t-pw"),
        "{err}"
    );
    // no password at all
    let none = bin()
        .args([
            "ingest",
            "risport",
            "--cucm",
            url,
            "--cluster",
            "CL1",
            "--user",
            "u",
        ])
        .args(["--data", data.to_str().unwrap(), "--once"])
        .env_remove("CALLSTATE_CUCM_PASSWORD")
        .output()
        .unwrap();
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("--password-file"));
}

#[test]
fn serve_runs_the_pollers_of_its_settings_file() {
    let (_mock, m) = mock("80", "120");
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cr3t-pw").unwrap();
    let settings = dir.path().join("callstate.toml");
    std::fs::write(
        &settings,
        format!(
            r#"data = "{}"
listen = "127.0.0.1:0"

[[risport]]
cucm = ["{}"]
cluster = "CL1"
user = "callstate-ris"
password_file = "{}"
cti_users = ["{}"]
clock_speed = 120.0
clock_origin = "{}"
"#,
            dir.path().join("data").display(),
            m["mock_cucm"].as_str().unwrap(),
            pw.display(),
            m["cti_user"].as_str().unwrap(),
            m["clock_origin"].as_str().unwrap(),
        ),
    )
    .unwrap();
    let mut cmd = bin();
    cmd.args(["serve", "--config", settings.to_str().unwrap()]);
    let server = Server::start(cmd);
    let start = Instant::now();
    loop {
        let mut r = agent()
            .get(&format!("{}/api/v1/state", server.url))
            .call()
            .unwrap();
        let body: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        if body["counts"]["in_service"] == 80 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not polled: {}",
            body["counts"]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // the poller's status is in /metrics
    let metrics = metric_lines(&server.url, "callstate_risport_");
    let cycles = metrics
        .iter()
        .find(|l| l.starts_with("callstate_risport_cycles_total{cluster=\"CL1\"}"))
        .unwrap_or_else(|| panic!("{metrics:?}"));
    assert!(
        cycles.rsplit(' ').next().unwrap().parse::<f64>().unwrap() >= 1.0,
        "{cycles}"
    );
    assert_metric(
        &metrics,
        "callstate_risport_devices_known{cluster=\"CL1\"} 80",
    );
    assert!(server.stop().success());
}

/// `callstate simulate --syslog-to` into `callstate ingest syslog` (docs/cucm.md), and a
/// `[[syslog]]` receiver inside `serve`.
#[test]
fn simulated_alarms_reach_the_log_through_ingest_syslog_and_serve() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut rx = bin()
        .args([
            "ingest",
            "syslog",
            "--listen",
            "udp://127.0.0.1:0",
            "--listen",
            "tcp://127.0.0.1:0",
        ])
        .args([
            "--cluster",
            "CL1",
            "--cti-user",
            "jtapi-callstate",
            "--data",
            data.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(rx.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let listening: Value = serde_json::from_str(&first).unwrap();
    let tcp = listening["listening"][1].as_str().unwrap().to_string();
    assert!(tcp.starts_with("tcp://"), "{listening}");
    let sent = succeed(
        bin()
            .args([
                "simulate",
                "--scenario",
                "node-failover",
                "--devices",
                "60",
                "--duration",
                "12h",
            ])
            .args(["--syslog-to", &tcp, "--speed", "100000"]),
    );
    let sim: Value = serde_json::from_slice(&sent.stdout).unwrap();
    let lines = sim["lines"].as_u64().unwrap();
    let mut proc = common::Proc(rx);
    // the receiver takes what was sent, then stops on SIGTERM with its status
    std::thread::sleep(Duration::from_millis(500));
    assert!(proc.signal("-TERM").success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let status: Value = serde_json::from_str(rest.lines().last().unwrap()).unwrap();
    assert_eq!(status["messages"], lines, "{status}");
    assert_eq!(status["malformed"], 0);
    let stats = bin()
        .args(["log", "stats", "--data", data.to_str().unwrap()])
        .output()
        .unwrap();
    let stats: Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["per_kind"]["node_down"], 1, "{stats}");
    assert!(stats["per_kind"]["device_in_service"].as_u64().unwrap() >= 60);

    // inside serve
    let settings = dir.path().join("callstate.toml");
    std::fs::write(
        &settings,
        format!(
            "data = \"{}\"\nlisten = \"127.0.0.1:0\"\n\n[[syslog]]\nlisten = [\"udp://127.0.0.1:0\"]\ncluster = \"CL1\"\n",
            dir.path().join("data2").display()
        ),
    )
    .unwrap();
    let mut cmd = bin();
    cmd.args(["serve", "--config", settings.to_str().unwrap()]);
    let server = Server::start(cmd);
    // the receiver's first heartbeat shows it runs
    let start = Instant::now();
    loop {
        let rows = common::sql(
            &server.url,
            "SELECT count(*) > 0 AS seen FROM events WHERE kind = 'collector_heartbeat' AND source = 'syslog:CL1'",
        );
        if rows.to_string().contains("\"seen\":true") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{rows}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let metrics = metric_lines(&server.url, "callstate_syslog_");
    assert_metric(&metrics, "callstate_syslog_events_total{cluster=\"CL1\"}");
    assert_metric(
        &metrics,
        "callstate_syslog_udp_buffer_bytes{cluster=\"CL1\"}",
    );
    assert!(server.stop().success());
}

/// `callstate simulate --cdr-dir` then `callstate ingest cdr --once`: calls and transfers in
/// SQL, and a second run over the same files adds nothing.
#[test]
fn simulated_cdr_files_reach_the_calls_and_transfers_tables() {
    let dir = tempfile::tempdir().unwrap();
    let billing = dir.path().join("billing");
    let data = dir.path().join("data");
    let sim = succeed(
        bin()
            .args([
                "simulate",
                "--scenario",
                "quiet-day",
                "--devices",
                "80",
                "--duration",
                "4h",
            ])
            .args(["--cdr-dir", billing.to_str().unwrap()]),
    );
    let sim: Value = serde_json::from_slice(&sim.stdout).unwrap();
    let run = || {
        let out = succeed(
            bin()
                .args([
                    "ingest",
                    "cdr",
                    "--dir",
                    billing.to_str().unwrap(),
                    "--cluster",
                    "CL1",
                    "--once",
                ])
                .args(["--data", data.to_str().unwrap()]),
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let first = run();
    assert_eq!(first["files"], sim["cdr_files"], "{first}");
    assert_eq!(first["records"], sim["cdr_records"]);
    assert_eq!(first["rejected_rows"], 0);
    let count = |q: &str| {
        let out = succeed(bin().args([
            "sql",
            q,
            "--data",
            data.to_str().unwrap(),
            "--format",
            "json",
        ]));
        String::from_utf8(out.stdout).unwrap()
    };
    let calls = count("SELECT count(*) AS n FROM calls");
    assert!(!calls.contains("\"n\":0"), "{calls}");
    let before = count("SELECT count(*) AS n FROM events");
    // every file is remembered: a second run takes nothing
    let second = run();
    assert_eq!(second["files"], 0, "{second}");
    assert_eq!(count("SELECT count(*) AS n FROM events"), before);
}

/// The `/metrics` lines starting with `prefix`.
fn metric_lines(url: &str, prefix: &str) -> Vec<String> {
    let mut r = agent().get(&format!("{url}/metrics")).call().unwrap();
    let text = r.body_mut().read_to_string().unwrap();
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// Fails unless a line of `metrics` starts with `prefix`.
fn assert_metric(metrics: &[String], prefix: &str) {
    assert!(
        metrics.iter().any(|l| l.starts_with(prefix)),
        "no {prefix}: {metrics:?}"
    );
}
