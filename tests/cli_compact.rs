//! `callstate log compact` and crashes during a compaction: the process aborted right after
//! writing the merged segment (before its commit), right after the commit (before the small
//! files are removed), and SIGKILLed at a spread of instants; each time the log reopens with
//! exactly the events it had, each once, and the segments directory holds exactly what the
//! manifest names.
//!
//! Also the other maintenance commands: `log checkpoint`, and retention of raw events
//! (`log retire`, a crash right after its commit, `serve --retain-raw-days`).

mod common;

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use callstate_log::layout::segments_dir;
use callstate_log::{Log, LogOptions, Snapshot};
use common::{Proc, Server, bin, get, succeed};

/// A log of `segments` small segments (final rolls of short ingest runs).
fn small_segments(dir: &Path, segments: usize) {
    let events = callstate_sim::synthetic::events(
        segments as u64 * 400,
        60,
        "2026-11-24T08:00:00Z".parse().unwrap(),
    );
    let log = Log::open(dir, LogOptions::default()).unwrap();
    for chunk in events.chunks(400) {
        log.append(chunk).unwrap();
        log.roll_now().unwrap();
    }
}

/// Every event (by ingest order, as text), opening the log as a restart would.
fn reopened(dir: &Path) -> (Vec<String>, usize) {
    let log = Log::open(dir, LogOptions::default()).unwrap();
    let snap = log.snapshot();
    let mut v = snap.stored_events().unwrap();
    v.sort_by_key(|e| e.ingest_seq);
    let files: BTreeSet<String> = std::fs::read_dir(segments_dir(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(files, named(&snap), "only the files the manifest names");
    (
        v.iter().map(|e| format!("{e:?}")).collect(),
        snap.segments.len(),
    )
}

fn named(snap: &Snapshot) -> BTreeSet<String> {
    snap.segments
        .iter()
        .flat_map(|s| s.files().map(str::to_string))
        .chain(snap.base.iter().flat_map(|b| b.files().map(str::to_string)))
        .collect()
}

fn compact(dir: &Path) -> std::process::Command {
    let mut c = bin();
    c.args(["log", "compact", "--data"]).arg(dir);
    c
}

#[test]
fn a_crash_at_any_step_of_a_compaction_loses_nothing() {
    let template = tempfile::tempdir().unwrap();
    small_segments(template.path(), 30);
    let (want, n) = reopened(template.path());
    assert_eq!((want.len(), n), (12_000, 30));
    let fresh = |name: &str| {
        let d = template.path().parent().unwrap().join(format!(
            "{}-{name}",
            template.path().file_name().unwrap().to_string_lossy()
        ));
        let _ = std::fs::remove_dir_all(&d);
        let status = std::process::Command::new("cp")
            .arg("-r")
            .arg(template.path())
            .arg(&d)
            .status()
            .unwrap();
        assert!(status.success());
        let _ = std::fs::remove_file(d.join("LOCK"));
        d
    };

    // aborted at each step: the merged segment written, not committed; committed, small
    // files still there
    for (point, segments_after) in [("compact-written", 30), ("compact-committed", 1)] {
        let d = fresh(point);
        let out = compact(&d)
            .env("CALLSTATE_FAILPOINT", point)
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(6),
            "{point}: aborted ({})",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(reopened(&d), (want.clone(), segments_after), "{point}");
        // and the compaction goes through after the restart
        succeed(&mut compact(&d));
        assert_eq!(reopened(&d), (want.clone(), 1), "{point}, then compacted");
        std::fs::remove_dir_all(&d).unwrap();
    }

    // SIGKILLed at a spread of instants of a whole run
    let mut outcomes = BTreeSet::new();
    for k in 0..8u64 {
        let d = fresh(&format!("kill-{k}"));
        let mut p = Proc(compact(&d).spawn().unwrap());
        std::thread::sleep(Duration::from_millis(40 + 60 * k));
        let _ = p.0.kill(); // SIGKILL (harmless if it ended already)
        let _ = p.0.wait();
        let (got, segments) = reopened(&d);
        assert_eq!(got, want, "killed after {} ms", 40 + 60 * k);
        outcomes.insert(segments);
        std::fs::remove_dir_all(&d).unwrap();
    }
    eprintln!("segments after the kills: {outcomes:?}");

    // a whole run: one segment, the stats say so
    let d = fresh("whole");
    let out = succeed(&mut compact(&d));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["compactions"][0]["merged"].as_array().unwrap().len(), 30);
    assert_eq!(v["compactions"][0]["events"], 12_000);
    assert_eq!(v["stats"]["segments"], 1);
    assert_eq!(v["stats"]["events"], 12_000);
    assert_eq!(reopened(&d), (want, 1));
    std::fs::remove_dir_all(&d).unwrap();
}

/// `callstate log checkpoint` writes the checkpoint of the call legs: every leg the log
/// holds is in it, and the next start reads the legs from it; the service file is written
/// beside it, and `log stats` reports both files' sizes.
#[test]
fn log_checkpoint_writes_the_legs_and_the_next_start_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    small_segments(dir.path(), 6);
    let checkpoint = || -> serde_json::Value {
        let mut c = bin();
        c.args(["log", "checkpoint", "--data"]).arg(dir.path());
        serde_json::from_slice(&succeed(&mut c).stdout).unwrap()
    };
    let first = checkpoint();
    assert_eq!(first["legs_from"], serde_json::Value::Null, "{first}");
    let mut sql = bin();
    sql.args([
        "sql",
        "SELECT count(*) AS n FROM calls",
        "--format",
        "json",
        "--data",
    ])
    .arg(dir.path());
    let calls: serde_json::Value = serde_json::from_slice(&succeed(&mut sql).stdout).unwrap();
    let legs = first["legs"].as_u64().unwrap() + first["loose_legs"].as_u64().unwrap();
    assert!(legs > 100, "{first}");
    assert_eq!(calls[0]["n"].as_u64(), Some(legs));
    let size = |f: &str| std::fs::metadata(dir.path().join(f)).unwrap().len();
    assert_eq!(first["bytes"].as_u64(), Some(size("derived/legs.bin")));
    assert_eq!(
        first["service_file_bytes"].as_u64(),
        Some(size("derived/service.bin"))
    );
    // `log stats` reports both files
    let mut stats = bin();
    stats.args(["log", "stats", "--data"]).arg(dir.path());
    let stats: serde_json::Value = serde_json::from_slice(&succeed(&mut stats).stdout).unwrap();
    assert_eq!(stats["legs_checkpoint_bytes"], first["bytes"], "{stats}");
    assert_eq!(stats["service_file_bytes"], first["service_file_bytes"]);
    let second = checkpoint();
    assert_eq!(second["legs_from"], first["version"], "{second}");
    assert_eq!(
        (&second["legs"], &second["loose_legs"]),
        (&first["legs"], &first["loose_legs"])
    );
    // `bytes` (and `log stats`) count every piece of it: the files on disk
    let bytes = &second["bytes"];
    assert!(
        second["written_bytes"].as_u64() <= bytes.as_u64(),
        "{second}"
    );
    let legs_files: u64 = std::fs::read_dir(dir.path().join("derived"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with("legs."))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert_eq!(bytes.as_u64(), Some(legs_files), "{second}");
    let mut stats = bin();
    stats.args(["log", "stats", "--data"]).arg(dir.path());
    let stats: serde_json::Value = serde_json::from_slice(&succeed(&mut stats).stdout).unwrap();
    assert_eq!(&stats["legs_checkpoint_bytes"], bytes, "{stats}");
}

fn retire(dir: &Path, before: &str) -> std::process::Command {
    let mut c = bin();
    c.args(["log", "retire", "--before", before, "--data"])
        .arg(dir);
    c
}

/// `callstate log retire`: the segments wholly before the horizon lose their files (the
/// legs' checkpoint written first), `log stats` reports what went; aborted right after the
/// commit, the next open removes the files and the log holds the rest of the events.
#[test]
fn log_retire_removes_old_raw_events_and_a_crash_after_its_commit_loses_nothing_else() {
    let template = tempfile::tempdir().unwrap();
    small_segments(template.path(), 10);
    // the synthetic events are 1 ms apart: the first 4 segments end before 1.6 s
    let before = "2026-11-24T08:00:01.600Z";
    let (all, _) = reopened(template.path());
    for crash in [false, true] {
        let d = copy_of(template.path());
        if crash {
            let out = retire(d.path(), before)
                .env("CALLSTATE_FAILPOINT", "retire-committed")
                .output()
                .unwrap();
            assert_eq!(out.status.signal(), Some(6), "aborted");
        } else {
            let out = succeed(&mut retire(d.path(), before));
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v["retired"]["segments"].as_array().unwrap().len(), 4, "{v}");
            assert_eq!(v["retired"]["events"], 1_600);
            assert_eq!(v["stats"]["retired_events"], 1_600);
            assert_eq!(v["stats"]["events"], 2_400);
            assert!(d.path().join("derived/legs.bin").exists());
        }
        // reopened: the segments directory holds what the manifest keeps, the rest intact
        let (held, segments) = reopened(d.path());
        assert_eq!(
            (held.as_slice(), segments),
            (&all[1_600..], 10),
            "crash: {crash}"
        );
        let mut stats = bin();
        stats.args(["log", "stats", "--data"]).arg(d.path());
        let v: serde_json::Value = serde_json::from_slice(&succeed(&mut stats).stdout).unwrap();
        assert_eq!(
            (&v["retired_segments"], &v["retired_events"], &v["segments"]),
            (
                &serde_json::json!(4),
                &serde_json::json!(1_600),
                &serde_json::json!(6)
            ),
            "{v}"
        );
        assert_eq!(v["retired_max_time"], "2026-11-24T08:00:01.599000Z", "{v}");
    }
}

/// A retention `flag` without the background pass (which applies it) is refused at start,
/// naming its `setting` and `compact_every_s`.
fn refused_without_compaction(dir: &Path, flag: &str, setting: &str) {
    let out = bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--compact-every-s", "0"])
        .args([flag, "1", "--data"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(setting) && err.contains("compact_every_s"),
        "{err}"
    );
}

/// A copy of the log in `dir` (its lock file left behind), as another process finds it.
fn copy_of(dir: &Path) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .args(["-rT"])
        .arg(dir)
        .arg(d.path())
        .status()
        .unwrap();
    assert!(status.success());
    let _ = std::fs::remove_file(d.path().join("LOCK"));
    d
}

/// A server over `dir` whose compaction pass runs every second with the retention `flag`
/// of one day.
fn serving_retained(dir: &Path, flag: &str) -> Server {
    let mut cmd = bin();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--compact-every-s", "1"])
        .args([flag, "1", "--data"])
        .arg(dir);
    Server::start(cmd)
}

/// A SQL question to `server`: its status and body.
fn query(server: &Server, q: &str) -> (u16, String) {
    let mut r = common::agent()
        .post(&format!("{}/api/v1/query", server.url))
        .header("Content-Type", "text/plain")
        .send(q)
        .unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

/// The refusal (422) of `q` by `server`, waiting for the server to take in the retention
/// that makes it refused.
fn refused_once_taken_in(server: &Server, q: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, text) = query(server, q);
        if status != 200 {
            assert_eq!(status, 422, "{text}");
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still answered: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `callstate log stats` of `dir`.
fn log_stats(dir: &Path) -> serde_json::Value {
    let mut c = bin();
    c.args(["log", "stats", "--data"]).arg(dir);
    serde_json::from_slice(&succeed(&mut c).stdout).unwrap()
}

/// `callstate serve --retain-raw-days`: with each compaction pass, the segments older than
/// that (events of 2026-11-24, days before the test runs) whose legs the checkpoint on disk
/// holds lose their raw events; the server's `events` table then says so.
#[test]
fn serve_retires_old_raw_events_as_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    small_segments(dir.path(), 6);
    let mut c = bin();
    c.args(["log", "checkpoint", "--data"]).arg(dir.path());
    succeed(&mut c);
    let stats = || -> serde_json::Value {
        let mut c = bin();
        c.args(["log", "stats", "--data"]).arg(dir.path());
        serde_json::from_slice(&succeed(&mut c).stdout).unwrap()
    };
    assert_eq!(stats()["retired_segments"], 0);
    refused_without_compaction(dir.path(), "--retain-raw-days", "retain_raw_days");
    let mut cmd = bin();
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--compact-every-s",
        "1",
        "--retain-raw-days",
        "1",
        "--data",
    ])
    .arg(dir.path());
    let server = Server::start(cmd);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    // (the small segments are merged first, then retired)
    while stats()["retired_events"] != 2_400 {
        assert!(
            std::time::Instant::now() < deadline,
            "not retired: {}",
            stats()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(stats()["segments"], 0);
    let (status, text) = query(&server, "SELECT count(*) AS n FROM events");
    assert!((400..500).contains(&status), "{status}: {text}");
    assert!(text.contains("removed by retention"), "{text}");
    assert!(server.stop().success());
}

/// A log of a simulated day (2026-11-24) of 40 devices per cluster with a node failover:
/// call legs on every device.
fn simulated(dir: &Path) {
    simulated_in(dir, usize::MAX);
}

/// [`simulated`] in segments of `rows` events each.
fn simulated_in(dir: &Path, rows: usize) {
    let mut sc = callstate_sim::Scenario::load("node-failover").unwrap();
    sc.topology.devices = 40;
    let (events, _) = callstate_sim::collect(&sc, 3).unwrap();
    let log = Log::open(dir, LogOptions::default()).unwrap();
    for chunk in events.chunks(rows) {
        log.append(chunk).unwrap();
        log.roll_now().unwrap();
    }
}

/// `callstate log retire --legs-before`: a checkpoint of the legs without those that started
/// and ended before the horizon; the output and `log stats` say how many went and from when
/// the legs are kept. Without either horizon the command is refused.
#[test]
fn log_retire_removes_old_call_legs_and_stats_report_them() {
    let dir = tempfile::tempdir().unwrap();
    simulated(dir.path());
    let out = bin()
        .args(["log", "retire", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--before") && err.contains("--legs-before"),
        "{err}"
    );
    let mut c = bin();
    c.args(["log", "checkpoint", "--data"]).arg(dir.path());
    let all: serde_json::Value = serde_json::from_slice(&succeed(&mut c).stdout).unwrap();
    let stats = || -> serde_json::Value {
        let mut c = bin();
        c.args(["log", "stats", "--data"]).arg(dir.path());
        serde_json::from_slice(&succeed(&mut c).stdout).unwrap()
    };
    let v = stats();
    assert_eq!(
        (&v["retired_legs"], &v["legs_kept_from"]),
        (&0.into(), &serde_json::Value::Null),
        "{v}"
    );
    // the simulated day's noon
    let h = "2026-11-24T12:00:00.000000Z";
    let mut c = bin();
    c.args(["log", "retire", "--legs-before", h, "--data"])
        .arg(dir.path());
    let v: serde_json::Value = serde_json::from_slice(&succeed(&mut c).stdout).unwrap();
    let removed = v["legs_retention"]["removed"].as_u64().unwrap();
    assert_eq!(v["legs_retention"]["kept_from"], h, "{v}");
    assert!(removed > 0, "{v}");
    // what the step wrote, and the checkpoint's bytes after it
    let written = v["legs_retention"]["written_bytes"].as_u64().unwrap();
    assert!(written > 0, "{v}");
    assert!(
        written <= v["legs_retention"]["bytes"].as_u64().unwrap(),
        "{v}"
    );
    assert_eq!(
        v["legs_retention"]["bytes"], v["stats"]["legs_checkpoint_bytes"],
        "{v}"
    );
    assert!(v.get("retired").is_none(), "raw events untouched: {v}");
    assert_eq!(v["stats"]["retired_legs"], removed, "{v}");
    assert_eq!(v["stats"]["retired_events"], 0, "{v}");
    let v = stats();
    assert_eq!(
        (&v["retired_legs"], &v["legs_kept_from"]),
        (&removed.into(), &h.into()),
        "{v}"
    );
    // the next checkpoint holds the rest
    let mut c = bin();
    c.args(["log", "checkpoint", "--data"]).arg(dir.path());
    let now: serde_json::Value = serde_json::from_slice(&succeed(&mut c).stdout).unwrap();
    let legs =
        |v: &serde_json::Value| v["legs"].as_u64().unwrap() + v["loose_legs"].as_u64().unwrap();
    assert_eq!(legs(&now) + removed, legs(&all), "{now} {all}");
}

/// `callstate serve --retain-legs-days`: with each compaction pass, the legs before the UTC
/// midnight that many days back (all of them: a simulated 2026-11-24) are removed; the server
/// then refuses a calls question reaching before it and gives device states' calls as null.
#[test]
fn serve_removes_old_call_legs_as_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    simulated(dir.path());
    refused_without_compaction(dir.path(), "--retain-legs-days", "retain_legs_days");
    let server = serving_retained(dir.path(), "--retain-legs-days");
    let sql = |q: &str| query(&server, q);
    let (status, text) = sql("SELECT count(*) AS n FROM calls");
    assert_eq!(status, 200, "{text}");
    assert!(!text.contains("\"n\":0"), "legs before the pass: {text}");
    let stats = || log_stats(dir.path());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while stats()["retired_legs"] == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "not removed: {}",
            stats()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let v = stats();
    let day = chrono::Utc::now().date_naive() - chrono::Days::new(1);
    let kept_from = format!("{day}T00:00:00.000000Z");
    assert_eq!(v["legs_kept_from"], kept_from.as_str(), "{v}");
    // the server answers from the horizon once it took the checkpoint in
    let text = refused_once_taken_in(&server, "SELECT count(*) AS n FROM calls");
    assert!(
        text.contains("removed by retention") && text.contains(&kept_from),
        "{text}"
    );
    let (status, text) = sql(&format!(
        "SELECT count(*) AS n FROM calls WHERE started_at >= '{kept_from}'"
    ));
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"n\":0"), "{text}");
    let (status, text) = sql("SELECT count(*) AS n, count(active_calls) AS c \
         FROM device_state_at(TIMESTAMP '2026-11-24T12:00:00Z')");
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("\"c\":0") && !text.contains("\"n\":0"),
        "{text}"
    );
    assert!(server.stop().success());
}

fn state_at(dir: &Path, at: &str) -> std::process::Output {
    bin()
        .args(["state", "--at", at, "--data"])
        .arg(dir)
        .output()
        .unwrap()
}

/// `callstate sla` over the simulated day (by device, JSON) from `from`: its output, or its
/// error.
fn sla_of(dir: &Path, from: &str) -> Result<Vec<u8>, String> {
    sla_with(dir, from, &[])
}

/// [`sla_of`] with more arguments.
fn sla_with(dir: &Path, from: &str, more: &[&str]) -> Result<Vec<u8>, String> {
    let out = bin()
        .args(["sla", "--from", from, "--to", "2026-11-25T00:00:00Z"])
        .args(more)
        .args([
            "--group-by",
            "device",
            "--period",
            "day",
            "--format",
            "json",
            "--data",
        ])
        .arg(dir)
        .output()
        .unwrap();
    match out.status.success() {
        true => Ok(out.stdout),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

/// `callstate log retire --intervals-before`: the digests of the segments wholly before the
/// horizon are folded into the log's base; `log stats` says from when the service history is
/// kept and what was folded; every device's state from the horizon on is as before, one
/// before it is refused naming the horizon. Aborted after writing the base (before its
/// commit), the log is as it was; aborted right after the commit, as after the fold; each
/// time the segments directory holds exactly what the manifest names. The hourly rollups
/// before the horizon are kept: the day's SLA by device is the same, to the byte, but for a
/// window inside an hour before the horizon (refused); `--rollups-before` removes those
/// before it (a window reaching there then refused, one after it the same).
#[test]
fn log_retire_folds_old_service_history_and_a_crash_at_its_steps_loses_nothing() {
    let template = tempfile::tempdir().unwrap();
    simulated_in(template.path(), 2_000);
    // the simulated day (2026-11-24)'s noon, and instants after it, failover included
    let h = "2026-11-24T12:00:00.000000Z";
    let later = [
        "2026-11-24T12:00:00Z",
        "2026-11-24T14:30:00.5Z",
        "2026-11-24T20:00:00Z",
        "2026-11-25T00:00:00Z",
    ];
    let states = |dir: &Path| -> Vec<Vec<u8>> {
        later
            .iter()
            .map(|at| succeed(bin().args(["state", "--at", at, "--data"]).arg(dir)).stdout)
            .collect()
    };
    let want = states(template.path());
    assert!(want.iter().all(|s| s.len() > 1_000));
    let day = "2026-11-24T00:00:00Z";
    let sla_day = sla_of(template.path(), day).unwrap();
    assert!(sla_day.len() > 1_000);
    for crash in [None, Some("fold-written"), Some("fold-committed")] {
        let d = copy_of(template.path());
        let mut c = bin();
        c.args(["log", "retire", "--intervals-before", h, "--data"])
            .arg(d.path());
        match crash {
            Some(point) => {
                let out = c.env("CALLSTATE_FAILPOINT", point).output().unwrap();
                assert_eq!(out.status.signal(), Some(6), "aborted at {point}");
            }
            None => {
                let v: serde_json::Value = serde_json::from_slice(&succeed(&mut c).stdout).unwrap();
                let f = &v["intervals_retention"];
                assert!(f["segments"].as_array().unwrap().len() > 1, "{v}");
                assert_eq!(v["stats"]["folded_events"], f["events"], "{v}");
                assert_eq!(v["stats"]["intervals_kept_from"], h, "{v}");
                let f = &v["stats"]["frozen_rollups"];
                assert!(
                    f["kept_from"].is_null() && f["bytes"].as_u64() > Some(100),
                    "{f}"
                );
            }
        }
        let (_, segments) = reopened(d.path());
        let v: serde_json::Value = serde_json::from_slice(
            &succeed(bin().args(["log", "stats", "--data"]).arg(d.path())).stdout,
        )
        .unwrap();
        let folded = crash != Some("fold-written");
        assert_eq!(
            v["intervals_kept_from"],
            if folded {
                serde_json::json!(h)
            } else {
                serde_json::Value::Null
            },
            "{crash:?}: {v}"
        );
        assert_eq!(v["folded_segments"].as_u64().unwrap() > 0, folded, "{v}");
        assert_eq!(v["retired_events"], 0, "raw events untouched: {v}");
        assert!(segments > 1);
        assert_eq!(states(d.path()), want, "{crash:?}");
        assert!(
            sla_of(d.path(), day).unwrap() == sla_day,
            "{crash:?}: the day's SLA"
        );
        let before = state_at(d.path(), "2026-11-24T11:59:59.999999Z");
        let err = String::from_utf8_lossy(&before.stderr);
        if folded {
            assert!(!before.status.success());
            assert!(err.contains("kept from") && err.contains(h), "{err}");
        } else {
            assert!(before.status.success(), "{err}");
        }
        if crash.is_none() {
            let e = sla_of(d.path(), "2026-11-24T00:00:01Z").unwrap_err();
            assert!(e.contains("whole UTC hours"), "{e}");
            // --edges hours: the edge moved to the next hour, answered as asked from there
            let moved = sla_with(d.path(), "2026-11-24T00:00:01Z", &["--edges", "hours"]);
            assert_eq!(moved, sla_of(d.path(), "2026-11-24T01:00:00Z"));
            assert!(moved.is_ok());
            // retention of rollups: later than the intervals' horizon refused
            let out = bin()
                .args([
                    "log",
                    "retire",
                    "--rollups-before",
                    "2026-11-24T13:00:00Z",
                    "--data",
                ])
                .arg(d.path())
                .output()
                .unwrap();
            let e = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && e.contains("at least as long"),
                "{e}"
            );
            let six = "2026-11-24T06:00:00Z";
            succeed(
                bin()
                    .args(["log", "retire", "--rollups-before", six, "--data"])
                    .arg(d.path()),
            );
            let e = sla_of(d.path(), day).unwrap_err();
            assert!(
                e.contains("retention of rollups") && e.contains("06:00"),
                "{e}"
            );
            let f = &log_stats(d.path())["frozen_rollups"];
            assert_eq!(f["kept_from"], "2026-11-24T06:00:00.000000Z", "{f}");
            assert_eq!(f["until"], h, "{f}");
            assert_eq!(f["devices"], 40, "{f}");
            assert!(sla_of(d.path(), six).unwrap() == sla_of(template.path(), six).unwrap());
            assert_eq!(states(d.path()), want, "rollups trimmed");
        }
    }
}

/// `callstate serve --retain-intervals-days`: with each compaction pass, the service history
/// before the UTC midnight that many days back (all of a simulated 2026-11-24) is folded; the
/// server then refuses questions reaching before it (SQL, HTTP), but for SLA over whole hours
/// (from the hourly rollups kept), and answers the fleet's state now for every device.
#[test]
fn serve_folds_old_service_history_as_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    simulated_in(dir.path(), 2_000);
    refused_without_compaction(
        dir.path(),
        "--retain-intervals-days",
        "retain_intervals_days",
    );
    // the month's SLA by pool before any fold (as JSON rows)
    let out = succeed(
        bin()
            .args([
                "sla",
                "--from",
                "2026-11-01T00:00:00Z",
                "--to",
                "2026-12-01T00:00:00Z",
            ])
            .args(["--format", "json", "--data"])
            .arg(dir.path()),
    );
    let sla_before: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // rollups are built from intervals: kept at least as long, and only with them
    for (args, why) in [
        (
            &["--retain-intervals-days", "2", "--retain-rollups-days", "1"][..],
            "at least as long",
        ),
        (
            &["--retain-rollups-days", "30"][..],
            "needs retain_intervals_days",
        ),
    ] {
        let out = bin()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .arg("--data")
            .arg(dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(why),
            "{args:?}: {err}"
        );
    }
    let server = serving_retained(dir.path(), "--retain-intervals-days");
    let sql = |q: &str| query(&server, q);
    let now = "SELECT count(*) AS n FROM device_state_at(now())";
    let (status, devices) = sql(now);
    assert_eq!(status, 200, "{devices}");
    let stats = || log_stats(dir.path());
    let day = chrono::Utc::now().date_naive() - chrono::Days::new(1);
    let kept_from = format!("{day}T00:00:00.000000Z");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while stats()["intervals_kept_from"] != kept_from.as_str() {
        assert!(
            std::time::Instant::now() < deadline,
            "not folded: {}",
            stats()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(stats()["folded_segments"].as_u64().unwrap() > 0);
    // the server took the fold in: questions before the horizon are refused
    let text = refused_once_taken_in(&server, "SELECT count(*) AS n FROM device_intervals");
    assert!(
        text.contains(&kept_from) && text.contains("valid_from >="),
        "{text}"
    );
    let (status, text) = sql(&format!(
        "SELECT count(*) AS n FROM device_intervals WHERE valid_from >= '{kept_from}'"
    ));
    assert_eq!(status, 200, "{text}");
    let (status, text) =
        sql("SELECT count(*) AS n FROM device_state_at(TIMESTAMP '2026-11-24T12:00:00Z')");
    assert_eq!(status, 422, "{text}");
    assert!(text.contains(&kept_from), "{text}");
    let sla_json = |q: &str| get(&format!("{}/api/v1/sla?{q}", server.url));
    let (status, text) = sla_json("from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z");
    assert_eq!(status, 200, "answered from the hourly rollups: {text}");
    let rows: serde_json::Value = serde_json::from_str(&text).unwrap();
    let pools = |v: &serde_json::Value| -> Vec<(String, f64)> {
        let mut out: Vec<(String, f64)> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let a = r["availability"].as_f64().unwrap_or(-1.0);
                (r["group_key"].as_str().unwrap().to_string(), a)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    };
    assert_eq!(pools(&rows), pools(&sla_before), "the month's SLA by pool");
    // a window edge inside an hour before the horizon is refused, naming it
    let (status, text) = sla_json("from=2026-11-24T00:30:00Z&to=2026-12-01T00:00:00Z");
    assert_eq!(status, 422, "{text}");
    assert!(
        text.contains(&kept_from) && text.contains("whole UTC hours"),
        "{text}"
    );
    assert!(text.contains("edges=hours"), "the remedy named: {text}");
    // edges=hours moves such an edge inward to the hour: the rows say the window answered,
    // the same as asked from the hour; a window inside one hour is refused
    let (status, moved) =
        sla_json("from=2026-11-24T00:30:00Z&to=2026-11-24T23:59:00Z&edges=hours&group_by=device");
    assert_eq!(status, 200, "{moved}");
    let (status, asked) =
        sla_json("from=2026-11-24T01:00:00Z&to=2026-11-24T23:00:00Z&group_by=device");
    assert_eq!(status, 200, "{asked}");
    let moved: serde_json::Value = serde_json::from_str(&moved).unwrap();
    assert_eq!(
        moved,
        serde_json::from_str::<serde_json::Value>(&asked).unwrap()
    );
    assert_eq!(moved[0]["window_start"], "2026-11-24T01:00:00Z");
    assert_eq!(moved[0]["window_end"], "2026-11-24T23:00:00Z");
    let (status, text) = sla_json("from=2026-11-24T00:10:00Z&to=2026-11-24T00:50:00Z&edges=hours");
    assert_eq!(status, 422, "{text}");
    assert!(text.contains("inside one hour"), "{text}");
    // the SQL functions take edges too (their last argument)
    let rows = |q: &str| {
        let (status, text) = sql(q);
        assert_eq!(status, 200, "{q}: {text}");
        text
    };
    let edged = "SELECT window_start, group_key, availability FROM sla('2026-11-24T00:30:00Z', \
                 '2026-11-24T23:59:00Z', 'device', NULL, NULL, NULL, 'hours') ORDER BY 2";
    let from_hours = "SELECT window_start, group_key, availability FROM \
                      sla('2026-11-24T01:00:00Z', '2026-11-24T23:00:00Z', 'device') ORDER BY 2";
    assert_eq!(rows(edged), rows(from_hours));
    assert!(
        rows(edged).contains("2026-11-24T01:00:00"),
        "{}",
        rows(edged)
    );
    let (status, text) = sql(&edged.replace("'hours'", "'exact'"));
    assert_eq!(status, 422, "{text}");
    let availability = |from: &str, to: &str, edges: &str| {
        rows(&format!(
            "SELECT window_start, group_key, availability FROM availability('{from}', '{to}', \
             'cluster'{edges}) ORDER BY 2"
        ))
    };
    assert_eq!(
        availability(
            "2026-11-24T00:30:00Z",
            "2026-11-24T23:59:00Z",
            ", NULL, 'hours'"
        ),
        availability("2026-11-24T01:00:00Z", "2026-11-24T23:00:00Z", "")
    );
    // burn rates over a window reaching before the horizon: from the hour after its start
    let (status, text) = get(&format!(
        "{}/api/v1/slo/burn?window=30d&scope=cluster",
        server.url
    ));
    assert_eq!(status, 200, "{text}");
    let burn: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(burn[0]["availability"].as_f64().is_some(), "{burn}");
    let (status, text) = sla_json("from=2026-11-24T00:10:00Z&to=now&edges=minutes");
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("edges"), "{text}");
    assert_eq!(
        sql(now),
        (200, devices),
        "every device still has its state now"
    );
    // the index of the frozen hours is part of what the live state holds
    let (_, metrics) = get(&format!("{}/metrics", server.url));
    let frozen: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("callstate_live_state_bytes{part=\"frozen_rollups\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no frozen_rollups part: {metrics}"));
    assert!(frozen > 40.0 * 50.0, "{frozen}");
    assert!(server.stop().success());
}

/// The SLI counters of `/metrics` (seconds per state of every device since its first event,
/// per pool, node and cluster) over a log folded by retention of intervals count the hours
/// kept before the horizon: in service, out of service and excluded as over the whole log
/// (unknown from each device's first hour rather than its first event).
#[test]
fn sli_counters_count_the_hours_kept_before_a_fold() {
    let dir = tempfile::tempdir().unwrap();
    simulated_in(dir.path(), 2_000);
    let now = callstate_schemas::parse_instant("2026-11-26T00:00:00Z").unwrap();
    let totals = |dir: &Path| {
        let d = callstate_query::Derived::load(
            Snapshot::load(dir).unwrap(),
            None,
            Default::default(),
            false,
        )
        .unwrap();
        let t = callstate_report::slo::sli::totals(&d, now, &callstate_query::Cancel::new());
        let t = t.unwrap();
        t.into_iter()
            .map(|t| (t.scope, t.group, t.seconds))
            .collect::<Vec<_>>()
    };
    let want = totals(dir.path());
    assert!(want.len() > 3, "{want:?}");
    succeed(
        bin()
            .args([
                "log",
                "retire",
                "--intervals-before",
                "2026-11-24T12:00:00Z",
            ])
            .arg("--data")
            .arg(dir.path()),
    );
    let got = totals(dir.path());
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((g.0, &g.1), (w.0, &w.1));
        for k in [0, 1, 3] {
            assert_eq!(g.2[k], w.2[k], "{g:?} against {w:?}");
        }
        assert!(
            g.2[2] >= w.2[2] && g.2[2] - w.2[2] < 3_600.0 * 40.0,
            "{g:?} {w:?}"
        );
    }
}
