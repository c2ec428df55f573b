//! Every command ends quietly on a closed pipe (`callstate log stats | head -3`): exit 0,
//! nothing on stderr, no panic. And `--help` says what the defaults really are.

use std::process::Stdio;

mod common;

use common::{bin, succeed};

/// Runs `callstate args` with stdout a pipe whose reading end is already closed: any write
/// fails with EPIPE. Returns (exit code, stderr).
fn into_closed_pipe(args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = bin()
        .args(args)
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_command_ends_quietly_on_a_closed_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("d");
    let d = d.to_str().unwrap();
    succeed(bin().args([
        "simulate",
        "--scenario",
        "node-failover",
        "--devices",
        "30",
        "--data",
        d,
    ]));
    let day = [
        "--from",
        "2026-11-24T00:00:00Z",
        "--to",
        "2026-11-25T00:00:00Z",
    ];
    let commands: Vec<Vec<&str>> = vec![
        vec!["log", "stats", "--data", d],
        vec!["schema"],
        vec!["sql", "SELECT * FROM events LIMIT 500", "--data", d],
        vec!["state", "--at", "2026-11-24T12:00:00Z", "--data", d],
        [&["sla"][..], &day, &["--data", d]].concat(),
        [
            &["availability"][..],
            &day,
            &["--data", d, "--format", "json"],
        ]
        .concat(),
        [&["incidents"][..], &day, &["--data", d, "--format", "csv"]].concat(),
        vec![
            "simulate",
            "--scenario",
            "quiet-day",
            "--devices",
            "10",
            "--out",
            "-",
        ],
        vec!["--help"],
        vec!["serve", "--help"],
    ];
    for args in commands {
        let (code, stderr) = into_closed_pipe(&args);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked")
                && !stderr.contains("Broken pipe")
                && !stderr.contains("error"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn help_states_the_real_defaults() {
    let out = bin().args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let default = callstate_log::DEFAULT_SEGMENT_ROWS.to_string();
    let line = help
        .lines()
        .skip_while(|l| !l.contains("--segment-rows"))
        .take(3)
        .collect::<String>();
    assert!(line.contains(&format!("[default: {default}]")), "{line}");
}
