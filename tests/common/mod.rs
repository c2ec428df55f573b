//! What the process tests share: the binary, child processes that never outlive a test, a
//! server started on a free port, and an HTTP agent.

// Each test binary uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// `callstate`.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_callstate"))
}

/// Fails the test, with the process's stderr, unless it exited successfully.
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `cmd` to its end and fails the test, with its stderr, unless it succeeded.
pub fn succeed(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A child process, killed when dropped (a failed test leaves nothing behind).
pub struct Proc(pub Child);

impl Proc {
    /// Sends `signal` (`-TERM`, `-KILL`, ...) and waits for the exit; a process still
    /// running a minute later is killed and fails the test (a shutdown must not hang).
    pub fn signal(&mut self, signal: &str) -> ExitStatus {
        let pid = self.0.id().to_string();
        assert!(
            Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success()
        );
        let start = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > Duration::from_secs(60) {
                let _ = self.0.kill();
                let _ = self.0.wait();
                panic!("the process did not exit within 60 s of {signal}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running server and the address it listens on.
pub struct Server {
    /// The process.
    pub proc: Proc,
    /// `http://host:port`.
    pub url: String,
}

impl Server {
    /// Starts `cmd` and waits for its "http://…" line on stdout (stdout is drained after).
    pub fn start(mut cmd: Command) -> Server {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("the process ended before listening")
                .unwrap();
            if let Some(i) = line.find("http://") {
                break line[i..].split_whitespace().next().unwrap().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Server {
            proc: Proc(child),
            url,
        }
    }

    /// SIGTERM, and the exit status.
    pub fn stop(mut self) -> ExitStatus {
        self.proc.signal("-TERM")
    }
}

/// An HTTP agent that returns error statuses as responses.
pub fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    )
}

/// `GET url`: its status and body.
pub fn get(url: &str) -> (u16, String) {
    let mut r = agent().get(url).call().unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

/// The rows of a SQL query over `POST /api/v1/query` (JSON).
pub fn sql(url: &str, query: &str) -> serde_json::Value {
    let mut r = agent()
        .post(&format!("{url}/api/v1/query"))
        .header("Content-Type", "text/plain")
        .send(query)
        .unwrap();
    let text = r.body_mut().read_to_string().unwrap();
    assert_eq!(r.status().as_u16(), 200, "{query}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// `callstate simulate --serve-cucm` (node-failover, `devices`, `speed`), password
/// `s3cr3t-pw`; its first stdout line (JSON) says where and how.
pub fn mock_cucm(devices: &str, speed: &str) -> (Proc, serde_json::Value) {
    let mut child = bin()
        .args([
            "simulate",
            "--scenario",
            "node-failover",
            "--devices",
            devices,
        ])
        .args(["--serve-cucm", "127.0.0.1:0", "--speed", speed])
        .env("CALLSTATE_CUCM_PASSWORD", "s3cr3t-pw")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("the mock printed its address").unwrap();
    std::thread::spawn(move || for _ in lines {});
    (Proc(child), serde_json::from_str(&first).unwrap())
}
