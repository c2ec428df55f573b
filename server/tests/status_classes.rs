//! One test per HTTP status class of the error mapping (server/src/error.rs), each brought
//! about by a real cause: bad input 400, auth 401, unknown 404, body too large 413, over a
//! limit 422, the log refusing writes 503 (a really full file system), a failing read 500.

use std::time::Duration;

use callstate_server::ServerConfig;

mod common;

use callstate_testkit::tmpfs::tmpfs_or_skip;
use common::server::{Server, get, ndjson, oversized_post_status, post, post_all};

fn day() -> (Vec<callstate_schemas::Event>, callstate_sim::Truth) {
    common::simulate("node-failover", 40, 5)
}

#[test]
fn bad_input_is_400_naming_the_parameter() {
    let s = Server::start(ServerConfig::default());
    let a = get(&s.url("/api/v1/sla?from=yesterday&to=now"));
    assert_eq!(a.status, 400);
    assert!(
        a.json()["error"].as_str().unwrap().starts_with("from:"),
        "{}",
        a.text()
    );
    let a = post(&s.url("/api/v1/events"), "application/json", b"[{", None);
    assert_eq!(a.status, 400, "{}", a.text());
    let a = post(
        &s.url("/api/v1/query"),
        "text/plain",
        b"SELECT * FROM sla(1, 2, 'building')",
        None,
    );
    assert_eq!(a.status, 400, "{}", a.text());
    assert!(a.json()["error"].as_str().unwrap().contains("group_by"));
}

#[test]
fn a_missing_token_is_401() {
    let s = Server::start(ServerConfig {
        token: Some("t0ken".into()),
        ..ServerConfig::default()
    });
    let (events, _) = day();
    let a = post(
        &s.url("/api/v1/events"),
        "application/x-ndjson",
        &ndjson(&events[..5]),
        None,
    );
    assert_eq!(a.status, 401);
    let a = post(
        &s.url("/api/v1/events"),
        "application/x-ndjson",
        &ndjson(&events[..5]),
        Some("wrong"),
    );
    assert_eq!(a.status, 401);
}

#[test]
fn unknown_things_are_404() {
    let s = Server::start(ServerConfig::default());
    let (events, _) = day();
    post_all(&s, &events, 5_000, None);
    for path in [
        "/api/v1/devices/NOPE/state",
        "/api/v1/incidents/CL1%2Fnode%2Fnope%2F2026-01-01T00:00:00.000000Z",
        "/api/v1/nothing",
    ] {
        let a = get(&s.url(path));
        assert_eq!(a.status, 404, "{path}: {}", a.text());
    }
}

#[test]
fn a_body_over_the_limit_is_413_and_stores_nothing() {
    let s = Server::start(ServerConfig {
        max_body_bytes: 10_000,
        ..ServerConfig::default()
    });
    assert_eq!(oversized_post_status(&s, 10_001, ""), 413);
    let a = post(
        &s.url("/api/v1/query"),
        "text/plain",
        b"SELECT count(*) AS n FROM events",
        None,
    );
    assert_eq!(a.json()[0]["n"], 0);
}

#[test]
fn over_a_limit_is_422() {
    let s = Server::start(ServerConfig {
        sql_timeout: Duration::from_millis(1),
        ..ServerConfig::default()
    });
    let (events, _) = day();
    post_all(&s, &events, 5_000, None);
    let a = post(
        &s.url("/api/v1/query"),
        "text/plain",
        b"SELECT sum(a.seq * b.seq) FROM events a, events b",
        None,
    );
    assert_eq!(a.status, 422, "{}", a.text());
    assert!(a.json()["error"].as_str().unwrap().contains("time limit"));
}

#[test]
fn a_full_disk_is_503_with_retry_after_and_reads_go_on_then_it_recovers() {
    let Some(fs) = tmpfs_or_skip(8 << 20, "a_full_disk_is_503") else {
        return;
    };
    let s = Server::start_in(&fs.path().join("data"), 1_000_000, ServerConfig::default());
    let (events, _) = day();
    let (first, rest) = events.split_at(2_000);
    post_all(&s, first, 1_000, None);
    let filler = fs.fill();
    // a write that needs new pages on a full file system
    let a = post(
        &s.url("/api/v1/events"),
        "application/x-ndjson",
        &ndjson(&rest[..500]),
        None,
    );
    assert_eq!(a.status, 503, "{}", a.text());
    assert!(a.retry_after.is_some(), "503 carries Retry-After");
    assert!(
        a.json()["error"].as_str().unwrap().contains("disk is full"),
        "{}",
        a.text()
    );
    let r = get(&s.url("/readyz"));
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(get(&s.url("/healthz")).status, 200);
    // reads go on, and nothing acknowledged was lost
    let q = post(
        &s.url("/api/v1/query"),
        "text/plain",
        b"SELECT count(*) AS n FROM events",
        None,
    );
    assert_eq!(q.status, 200, "{}", q.text());
    let stored = q.json()[0]["n"].as_u64().unwrap();
    // space again: the log takes writes without a restart (it re-checks at most once a second)
    std::fs::remove_file(filler).unwrap();
    let freed = std::time::Instant::now();
    std::thread::sleep(Duration::from_millis(1_100));
    assert_eq!(get(&s.url("/readyz")).status, 200);
    let a = post(
        &s.url("/api/v1/events"),
        "application/x-ndjson",
        &ndjson(&rest[..500]),
        None,
    );
    assert_eq!(a.status, 200, "{}", a.text());
    let q = post(
        &s.url("/api/v1/query"),
        "text/plain",
        b"SELECT count(*) AS n FROM events",
        None,
    );
    let accepted = a.json()["accepted"].as_u64().unwrap();
    assert_eq!(q.json()[0]["n"].as_u64().unwrap(), stored + accepted);
    eprintln!(
        "reliability: disk full -> POST 503 with Retry-After, /readyz 503, reads 200, {stored} \
         acknowledged events kept; writes accepted again {:?} after space returned, no restart",
        freed.elapsed()
    );
}

#[test]
fn a_failing_read_is_500() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_in(dir.path(), 2_000, ServerConfig::default());
    let (events, _) = day();
    post_all(&s, &events[..6_000], 1_000, None);
    // a segment vanishes under the server: reading it is a server failure, not bad input
    let seg = std::fs::read_dir(dir.path().join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| !p.to_string_lossy().contains("digest"))
        .expect("a segment");
    std::fs::remove_file(seg).unwrap();
    let a = post(
        &s.url("/api/v1/query"),
        "text/plain",
        b"SELECT sum(seq) AS s FROM events",
        None,
    );
    assert_eq!(a.status, 500, "{}", a.text());
}
