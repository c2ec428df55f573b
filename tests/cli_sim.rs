//! `callstate simulate` and `callstate demo` through the real binary, into the real log.

use std::process::{Command, Output};

use serde_json::Value;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_callstate"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json_line(out: &Output) -> Value {
    serde_json::from_str(ok(out).lines().last().unwrap()).unwrap()
}

fn stats(dir: &str) -> Value {
    serde_json::from_str(&ok(&run(&["log", "stats", "--data", dir]))).unwrap()
}

#[test]
fn simulate_is_deterministic_and_its_stream_ingests_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |n: &str| tmp.path().join(n).to_str().unwrap().to_string();
    let sim = |out: &str, truth: &str| {
        run(&[
            "simulate",
            "--scenario",
            "chaos",
            "--devices",
            "120",
            "--duration",
            "6h",
            "--seed",
            "3",
            "--out",
            out,
            "--truth",
            truth,
        ])
    };
    let s1 = json_line(&sim(&p("a.ndjson"), &p("a.json")));
    json_line(&sim(&p("b.ndjson"), &p("b.json")));
    assert!(std::fs::read(p("a.ndjson")).unwrap() == std::fs::read(p("b.ndjson")).unwrap());
    assert!(std::fs::read(p("a.json")).unwrap() == std::fs::read(p("b.json")).unwrap());
    let truth: Value = serde_json::from_slice(&std::fs::read(p("a.json")).unwrap()).unwrap();
    let distinct = truth["stream"]["distinct"].as_u64().unwrap();
    let dups = truth["stream"]["duplicates"].as_u64().unwrap();
    assert!(dups > 0);
    assert_eq!(s1["events"].as_u64().unwrap(), distinct + dups);

    // the NDJSON validates against the contract and the log keeps each event once
    let ing = json_line(&run(&[
        "ingest",
        "file",
        &p("a.ndjson"),
        "--data",
        &p("d1"),
    ]));
    assert_eq!(ing["rejected"], 0);
    assert_eq!(ing["accepted"].as_u64(), Some(distinct));
    assert_eq!(ing["duplicates"].as_u64(), Some(dups));
    assert_eq!(stats(&p("d1"))["events"].as_u64(), Some(distinct));

    // --data appends straight into the log: same content
    let s2 = json_line(&run(&[
        "simulate",
        "--scenario",
        "chaos",
        "--devices",
        "120",
        "--duration",
        "6h",
        "--seed",
        "3",
        "--data",
        &p("d2"),
    ]));
    assert_eq!(s2["log_accepted"].as_u64(), Some(distinct));
    assert_eq!(stats(&p("d2"))["per_kind"], stats(&p("d1"))["per_kind"]);
}

#[test]
fn simulate_reports_bad_scenarios() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("bad.toml");
    std::fs::write(&f, "name = \"x\"\n[[faults]]\nkind = \"node_crash\"\nat = \"1h\"\nnode = \"nope\"\ndown_for = \"5m\"\n").unwrap();
    let out = run(&["simulate", "--scenario", f.to_str().unwrap(), "--out", "-"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("faults[0]") && err.contains("nope"), "{err}");
    let out = run(&["simulate", "--scenario", "no-such-scenario", "--out", "-"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("node-failover"),
        "lists the built-ins"
    );
}

#[test]
fn demo_builds_a_fresh_log_with_its_incidents() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let d = dir.to_str().unwrap();
    let text = ok(&run(&[
        "demo",
        "--data",
        d,
        "--devices",
        "250",
        "--no-serve",
    ]));
    assert!(text.contains("node_failure CL1-cucm1"), "{text}");
    assert!(text.contains("ctimanager_failure"), "{text}");
    assert!(text.contains("maintenance node CL1-cucm3"), "{text}");
    let truth: Value =
        serde_json::from_slice(&std::fs::read(dir.join("callstate-demo.truth.json")).unwrap())
            .unwrap();
    let distinct = truth["stream"]["distinct"].as_u64().unwrap();
    assert_eq!(stats(d)["events"].as_u64(), Some(distinct));
    // a second run starts afresh instead of doubling the log
    ok(&run(&[
        "demo",
        "--data",
        d,
        "--devices",
        "250",
        "--no-serve",
    ]));
    assert_eq!(stats(d)["events"].as_u64(), Some(distinct));
    // a directory that is not a demo's is left alone
    let other = tmp.path().join("precious");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("file"), b"keep").unwrap();
    let out = run(&["demo", "--data", other.to_str().unwrap(), "--no-serve"]);
    assert!(!out.status.success());
    assert!(other.join("file").exists());
}
