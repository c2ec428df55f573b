//! Hostile reads against a real server (docs/reliability.md): the heaviest query cannot stall
//! the others, every read is bounded in time, memory and answer size, work stops when its
//! time is up or its client leaves, and heavy requests beyond the concurrency limits get 503.
//!
//! Times are measured, not asserted against tight bounds: a check that could only fail on a
//! slow machine proves nothing. The bounds below are generous enough to hold on any machine
//! and tight enough to fail where work runs on (the pre-fix behaviour: minutes, or never).

use std::io::Write;
use std::time::{Duration, Instant};

use callstate_server::ServerConfig;
use callstate_testkit::cpu::cpu_over;

mod common;

use common::server::{Server, agent, answer, get, post, post_all};

/// The tests of this file measure the process's CPU: they run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn loaded(config: ServerConfig) -> (Server, callstate_sim::Truth) {
    let (events, truth) = common::simulate("node-failover", 120, 3);
    let s = Server::start(config);
    post_all(&s, &events, 4_000, None);
    (s, truth)
}

fn sql(s: &Server, q: &str) -> common::server::Answer {
    post(&s.url("/api/v1/query"), "text/plain", q.as_bytes(), None)
}

/// Starts `q` on its own thread; returns its answer when it comes.
fn sql_in_background(s: &Server, q: &str) -> std::thread::JoinHandle<common::server::Answer> {
    let (url, q) = (s.url("/api/v1/query"), q.to_string());
    std::thread::spawn(move || post(&url, "text/plain", q.as_bytes(), None))
}

const CROSS_JOIN: &str = "SELECT count(*) FROM events a, events b WHERE a.seq + b.seq = -1";

/// The slowest of `n` answers to `path` (each must be 200), while something else runs.
fn slowest(s: &Server, path: &str, n: usize) -> Duration {
    let mut worst = Duration::ZERO;
    for _ in 0..n {
        let t = Instant::now();
        let a = answer(
            agent()
                .get(&s.url(path))
                .config()
                .timeout_global(Some(Duration::from_secs(10)))
                .build()
                .call(),
        );
        assert_eq!(a.status, 200, "{path}: {}", a.text());
        worst = worst.max(t.elapsed());
    }
    worst
}

#[test]
fn the_heaviest_query_does_not_stall_health_metrics_or_device_state_and_stops_at_its_limit() {
    let _serial = serial();
    let (s, truth) = loaded(ServerConfig {
        sql_timeout: Duration::from_secs(3),
        ..ServerConfig::default()
    });
    let device = truth.device_info.keys().next().unwrap().clone();
    let started = Instant::now();
    let heavy = sql_in_background(&s, CROSS_JOIN);
    std::thread::sleep(Duration::from_millis(300));
    let mut worst = Duration::ZERO;
    for path in [
        "/healthz".to_string(),
        "/readyz".into(),
        "/metrics".into(),
        format!("/api/v1/devices/{device}/state"),
    ] {
        worst = worst.max(slowest(&s, &path, 5));
    }
    eprintln!("reliability: slowest light answer during the cross join: {worst:?}");
    assert!(
        worst < Duration::from_secs(2),
        "light answers took {worst:?}"
    );
    let a = heavy.join().unwrap();
    let took = started.elapsed();
    assert_eq!(a.status, 422, "{}", a.text());
    assert!(
        a.json()["error"]
            .as_str()
            .unwrap()
            .contains("sql_timeout_s"),
        "{}",
        a.text()
    );
    eprintln!("reliability: cross join answered 422 after {took:?} (limit 3 s)");
    assert!(
        took < Duration::from_secs(15),
        "the time limit fired after {took:?}"
    );
    // its work stopped: the process is idle again
    std::thread::sleep(Duration::from_secs(1));
    let busy = cpu_over(Duration::from_secs(1));
    eprintln!("reliability: CPU after the cross join's answer: {busy:.2} s per s");
    assert!(
        busy < 0.5,
        "still busy after the answer: {busy} CPU s per s"
    );
}

#[test]
fn function_results_and_answers_are_bounded() {
    let _serial = serial();
    let (s, _) = loaded(ServerConfig {
        sql_memory_bytes: 64 << 20,
        max_result_rows: 1_000,
        max_result_bytes: 1 << 20,
        sql_timeout: Duration::from_secs(10),
        ..ServerConfig::default()
    });
    for (q, setting) in [
        ("SELECT repeat('x', 2000000000)", "sql_memory_mb"),
        (
            "SELECT length(repeat(device, 100000000)) FROM events",
            "sql_memory_mb",
        ),
        ("SELECT lpad('x', 2000000000)", "sql_memory_mb"),
        ("SELECT cardinality(range(1, 10000000000))", "sql_memory_mb"),
        (
            "SELECT array_agg(e.device) FROM events e, events f LIMIT 1",
            "sql_memory_mb",
        ),
        ("SELECT * FROM events", "max_result_rows"),
        (
            "SELECT string_agg(device, ',') FROM events, (SELECT 1 FROM events LIMIT 200)",
            "sql_memory_mb",
        ),
        (
            "SELECT repeat(device, 200) FROM events LIMIT 900",
            "max_result_bytes",
        ),
    ] {
        let t = Instant::now();
        let a = sql(&s, q);
        assert_eq!(a.status, 422, "{q}: {}", a.text());
        let msg = a.json()["error"].as_str().unwrap().to_string();
        eprintln!("reliability: {q} -> 422 after {:?}: {msg}", t.elapsed());
        // aggregates over a cross join may reach the time limit before the memory limit
        let named = msg.contains(setting)
            || (setting == "sql_memory_mb"
                && (msg.contains("memory") || msg.contains("sql_timeout_s")));
        assert!(named, "{q}: {msg}");
    }
    // a query within the limits answers
    let a = sql(&s, "SELECT count(*) AS n FROM events");
    assert_eq!(a.status, 200, "{}", a.text());
}

#[test]
fn endless_queries_end_at_the_time_limit_and_leave_the_cpu_idle() {
    let _serial = serial();
    let (s, _) = loaded(ServerConfig {
        sql_timeout: Duration::from_secs(2),
        ..ServerConfig::default()
    });
    for q in [
        "SELECT count(*) FROM generate_series(1, 100000000000)",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
    ] {
        let t = Instant::now();
        let a = sql(&s, q);
        let took = t.elapsed();
        assert_eq!(a.status, 422, "{q}: {}", a.text());
        std::thread::sleep(Duration::from_secs(1));
        let busy = cpu_over(Duration::from_secs(1));
        eprintln!(
            "reliability: {q} -> 422 after {took:?} (limit 2 s); CPU after: {busy:.2} s per s"
        );
        assert!(
            busy < 0.5,
            "{q}: still busy after its answer: {busy} CPU s per s"
        );
    }
}

#[test]
fn a_client_that_leaves_stops_its_query() {
    let _serial = serial();
    let (s, _) = loaded(ServerConfig {
        sql_timeout: Duration::from_secs(600),
        ..ServerConfig::default()
    });
    let mut c = std::net::TcpStream::connect(s.addr).unwrap();
    write!(
        c,
        "POST /api/v1/query HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{CROSS_JOIN}",
        CROSS_JOIN.len()
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let working = cpu_over(Duration::from_millis(500));
    assert!(
        working > 0.3,
        "the query should be running: {working} CPU s per s"
    );
    drop(c);
    std::thread::sleep(Duration::from_secs(1));
    let busy = cpu_over(Duration::from_secs(1));
    eprintln!("reliability: CPU 1 s after the client left: {busy:.2} s per s");
    assert!(
        busy < 0.5,
        "the query went on after its client left: {busy} CPU s per s"
    );
}

#[test]
fn heavy_requests_beyond_the_limits_get_503_while_light_ones_are_answered() {
    let (s, truth) = loaded(ServerConfig {
        max_concurrent_queries: 1,
        sql_timeout: Duration::from_secs(20),
        ..ServerConfig::default()
    });
    let device = truth.device_info.keys().next().unwrap().clone();
    let heavy = sql_in_background(&s, CROSS_JOIN);
    std::thread::sleep(Duration::from_millis(300));
    let a = get(&s.url("/api/v1/state"));
    assert_eq!(a.status, 503, "{}", a.text());
    assert!(a.retry_after.is_some());
    eprintln!(
        "reliability: fleet state beside a running cross join (1 place) -> 503, Retry-After {:?}",
        a.retry_after
    );
    assert!(
        a.json()["error"]
            .as_str()
            .unwrap()
            .contains("max_concurrent_queries")
    );
    for path in [
        "/healthz".to_string(),
        format!("/api/v1/devices/{device}/state"),
    ] {
        assert_eq!(get(&s.url(&path)).status, 200, "{path}");
    }
    drop(s); // stops the server: the cross join is cut off by the shutdown grace
    let _ = heavy.join();
}

#[test]
fn one_client_cannot_take_every_place() {
    let _serial = serial();
    let (s, _) = loaded(ServerConfig {
        max_concurrent_queries: 8,
        max_concurrent_per_client: 2,
        sql_timeout: Duration::from_secs(20),
        ..ServerConfig::default()
    });
    let a = sql_in_background(&s, CROSS_JOIN);
    let b = sql_in_background(&s, CROSS_JOIN);
    std::thread::sleep(Duration::from_millis(300));
    let c = sql(&s, "SELECT 1");
    assert_eq!(c.status, 503, "{}", c.text());
    assert!(
        c.json()["error"]
            .as_str()
            .unwrap()
            .contains("max_concurrent_per_client")
    );
    drop(s);
    let _ = (a.join(), b.join());
}

#[test]
fn every_read_has_a_time_limit() {
    let _serial = serial();
    let (s, _) = loaded(ServerConfig {
        read_timeout: Duration::from_nanos(1),
        ..ServerConfig::default()
    });
    for path in [
        "/api/v1/state",
        "/api/v1/incidents",
        "/api/v1/sla?from=2026-11-24T00:00:00Z&to=2026-11-25T00:00:00Z",
    ] {
        let a = get(&s.url(path));
        assert_eq!(a.status, 422, "{path}: {}", a.text());
        let msg = a.json()["error"].as_str().unwrap().to_string();
        assert!(msg.contains("read_timeout_s"), "{msg}");
        eprintln!("reliability: {path} with a 1 ns read limit -> 422: {msg}");
    }
}

#[test]
fn a_client_trickling_its_request_head_loses_the_connection() {
    let s = Server::start(ServerConfig {
        header_timeout: Duration::from_secs(1),
        ..ServerConfig::default()
    });
    let mut slow = std::net::TcpStream::connect(s.addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let t = Instant::now();
    // half a request head, then nothing more
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut buf = [0u8; 256];
    let closed = loop {
        match std::io::Read::read(&mut slow, &mut buf) {
            Ok(0) => break true,
            // hyper may answer the timeout (408) before closing; read on to the close
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    let took = t.elapsed();
    eprintln!(
        "reliability: a request head trickled and stopped: connection closed after {took:?} (limit 1 s)"
    );
    assert!(closed, "the connection was still open after {took:?}");
    // others are served meanwhile and after
    assert_eq!(get(&s.url("/healthz")).status, 200);
}
