//! `callstate serve` and `callstate demo` as processes: settings from file and environment,
//! graceful shutdown on SIGTERM with everything acknowledged kept, restart with all data.

mod common;

use common::{Server, agent, bin, get, sql};
use serde_json::Value;

/// Starts `callstate args…` with `env` and waits until it listens.
fn start(args: &[&str], env: &[(&str, &str)]) -> Server {
    let mut cmd = bin();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Server::start(cmd)
}

fn post(url: &str, body: &str, token: Option<&str>) -> (u16, String) {
    let mut req = agent()
        .post(url)
        .header("Content-Type", "application/x-ndjson");
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let mut r = req.send(body).unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

fn count(url: &str) -> u64 {
    sql(url, "SELECT count(*) AS n FROM events")[0]["n"]
        .as_u64()
        .unwrap()
}

#[test]
fn serve_takes_settings_from_file_and_environment_and_restarts_with_all_data() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = tmp.path().join("callstate.toml");
    // the file names the data directory and a token; the environment picks the address
    std::fs::write(
        &config,
        format!(
            "data = {:?}\ntoken = \"from-file\"\nsegment_rows = 700\nlisten = \"127.0.0.1:1\"\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let sim = bin()
        .args([
            "simulate",
            "--scenario",
            "quiet-day",
            "--devices",
            "20",
            "--seed",
            "3",
            "--out",
            "-",
        ])
        .output()
        .unwrap();
    assert!(sim.status.success());
    let lines: Vec<String> = String::from_utf8(sim.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let env = [("CALLSTATE_LISTEN", "127.0.0.1:0")];
    let cfg = config.to_str().unwrap();

    let p = start(&["serve", "--config", cfg], &env);
    let ingest = format!("{}/api/v1/events", p.url);
    let (half, rest) = lines.split_at(lines.len() / 2);
    assert_eq!(post(&ingest, &half.join("\n"), None).0, 401);
    let (status, body) = post(&ingest, &half.join("\n"), Some("from-file"));
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let first = v["accepted"].as_u64().unwrap();
    assert_eq!(count(&p.url), first);
    assert_eq!(get(&format!("{}/readyz", p.url)).0, 200);
    assert!(p.stop().success(), "SIGTERM is a clean stop");
    assert!(data.join("MANIFEST.json").exists() || data.join("wal").exists());

    // a flag wins over the file: another token
    let p = start(&["serve", "--config", cfg, "--token", "from-flag"], &env);
    assert_eq!(
        count(&p.url),
        first,
        "everything acknowledged survived the restart"
    );
    let ingest = format!("{}/api/v1/events", p.url);
    assert_eq!(post(&ingest, &rest.join("\n"), Some("from-file")).0, 401);
    let (status, body) = post(&ingest, &lines.join("\n"), Some("from-flag"));
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    // the stream itself re-delivers some events: count its distinct (source, seq)
    let distinct: std::collections::BTreeSet<(String, u64)> = lines
        .iter()
        .map(|l| {
            let e: Value = serde_json::from_str(l).unwrap();
            (
                e["source"].as_str().unwrap().to_string(),
                e["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    let total = first + v["accepted"].as_u64().unwrap();
    assert_eq!(total, distinct.len() as u64);
    assert_eq!(
        v["duplicates"].as_u64().unwrap() + v["accepted"].as_u64().unwrap(),
        lines.len() as u64
    );
    assert!(p.stop().success());

    let p = start(&["serve", "--config", cfg], &env);
    assert_eq!(count(&p.url), total);
    assert!(p.stop().success());

    // a bad setting is an error naming it
    let out = bin()
        .args([
            "serve",
            "--config",
            cfg,
            "--read-auth",
            "token",
            "--token",
            "",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("read_auth"));
}

/// The server runs without transparent huge pages (src/main.rs, `tune_allocator`): the
/// kernel says so of the process, where it reports it.
#[test]
fn serve_runs_without_transparent_huge_pages() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = start(
        &[
            "serve",
            "--data",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.proc.0.id())).unwrap();
    match status.lines().find_map(|l| l.strip_prefix("THP_enabled:")) {
        Some(v) => assert_eq!(v.trim(), "0", "{status}"),
        None => eprintln!("this kernel does not report THP_enabled: not checked"),
    }
}

#[test]
fn static_demo_ingests_then_serves_the_api() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("demo");
    let p = start(
        &[
            "demo",
            "--static",
            "--data",
            data.to_str().unwrap(),
            "--devices",
            "200",
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    let (status, body) = get(&format!(
        "{}/api/v1/incidents?from=2026-11-24T00:00:00Z&to=2026-11-25T00:00:00Z",
        p.url
    ));
    assert_eq!(status, 200);
    let incidents: Value = serde_json::from_str(&body).unwrap();
    let causes: Vec<&str> = incidents
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["cause"].as_str().unwrap())
        .collect();
    assert!(causes.contains(&"node_failure"), "{causes:?}");
    assert!(causes.contains(&"ctimanager_failure"), "{causes:?}");
    let (status, body) = get(&format!("{}/api/v1/state?at=2026-11-24T12:00:00Z", p.url));
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["devices"].as_array().unwrap().len(), 200);
    assert!(p.stop().success());
}

#[test]
fn live_demo_backfills_today_then_shows_a_failover_as_it_happens() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("demo");
    let started = chrono::Utc::now();
    // 60 simulated seconds a second; the node crashes 2 s (2 simulated minutes) from now
    let p = start(
        &[
            "demo",
            "--data",
            data.to_str().unwrap(),
            "--devices",
            "120",
            "--listen",
            "127.0.0.1:0",
            "--speed",
            "60",
            "--fault-in",
            "2s",
        ],
        &[],
    );
    let midnight = started.format("%Y-%m-%dT00:00:00Z").to_string();
    // the backfill: today so far is there, up to about now
    let events =
        |url: &str| sql(url, "SELECT count(*) AS n, max(time) AS last FROM events")[0].clone();
    let first = events(&p.url);
    assert!(first["n"].as_u64().unwrap() > 0, "{first}");
    // live: events keep arriving, and the crash shows up as an incident while it happens
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let found = loop {
        let (status, body) = get(&format!("{}/api/v1/incidents?from={midnight}", p.url));
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let live = v.as_array().unwrap().iter().find(|i| {
            i["target"] == "CL1-cucm2"
                && i["cause"] == "node_failure"
                && chrono::DateTime::parse_from_rfc3339(i["started_at"].as_str().unwrap()).unwrap()
                    > started
        });
        if let Some(i) = live {
            break i.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no live failover of CL1-cucm2 after 90 s: {v}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    assert!(found["devices_affected"].as_u64().unwrap() > 0, "{found}");
    let later = events(&p.url);
    assert!(
        later["n"].as_u64() > first["n"].as_u64(),
        "{first} then {later}"
    );
    assert!(p.stop().success());
}

#[test]
fn sigterm_ends_serve_within_its_bound_whatever_runs_and_keeps_every_ack() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let args = [
        "serve",
        "--data",
        d,
        "--listen",
        "127.0.0.1:0",
        "--sql-timeout-s",
        "600",
    ];
    let s = start(&args, &[]);
    let out = bin()
        .args([
            "simulate",
            "--scenario",
            "node-failover",
            "--devices",
            "80",
            "--out",
            "-",
        ])
        .output()
        .unwrap();
    let body = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = body.lines().collect();
    let mut acked = 0;
    for chunk in lines.chunks(5_000) {
        let (status, answer) = post(&format!("{}/api/v1/events", s.url), &chunk.join("\n"), None);
        assert_eq!(status, 200, "{answer}");
        acked += serde_json::from_str::<Value>(&answer).unwrap()["accepted"]
            .as_u64()
            .unwrap();
    }
    // the heaviest query there is, running when the signal comes
    let url = s.url.clone();
    let heavy = std::thread::spawn(move || {
        agent()
            .post(&format!("{url}/api/v1/query"))
            .header("Content-Type", "text/plain")
            .send("SELECT count(*) FROM events a, events b WHERE a.seq + b.seq = -1")
            .map(|r| r.status().as_u16())
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    let t = std::time::Instant::now();
    let status = s.stop();
    let took = t.elapsed();
    eprintln!("reliability: serve stopped {took:?} after SIGTERM with a cross join running");
    assert!(status.success(), "{status:?}");
    assert!(
        took < std::time::Duration::from_secs(10),
        "stopping took {took:?}"
    );
    let _ = heavy.join();
    // nothing acknowledged was lost
    let s = start(&args, &[]);
    assert_eq!(count(&s.url), acked);
    s.stop();
}
