//! The HTTP API driven over real HTTP: a server on a loopback port over a log on disk, fed by
//! `POST /api/v1/events` with a simulated stream, answers checked against the simulator's truth.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use callstate_schemas::Event;
use callstate_server::{ReadAuth, ServerConfig};
use callstate_sim::Truth;
use serde_json::Value;

mod common;

use common::server::{
    Server, agent, answer, get, get_with, ndjson, oversized_post_status, post, post_all,
};

fn rfc(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn distinct(truth: &Truth) -> u64 {
    truth.stream.distinct
}

/// One server with the node-failover day, for the read endpoints.
fn loaded() -> (Server, Vec<Event>, Truth) {
    let (events, truth) = common::simulate("node-failover", 120, 3);
    let s = Server::start(ServerConfig::default());
    let (acc, dup) = post_all(&s, &events, 4_000, None);
    assert_eq!(acc, distinct(&truth));
    assert_eq!(acc + dup, events.len() as u64);
    (s, events, truth)
}

#[test]
fn state_endpoints_match_the_truth() {
    let (s, events, truth) = loaded();
    let devices: Vec<&String> = truth.device_info.keys().collect();
    let span = truth.end - truth.start;
    for k in 1..24 {
        let at = truth.start + span / 24 * k + chrono::Duration::milliseconds(137 * k as i64);
        // fleet snapshot: every device, counts per state
        let a = get(&s.url(&format!("/api/v1/state?at={}", rfc(at))));
        assert_eq!(a.status, 200, "{}", a.text());
        let v = a.json();
        let rows = v["devices"].as_array().unwrap();
        assert_eq!(rows.len(), devices.len());
        let mut want: BTreeMap<String, u64> = BTreeMap::new();
        for r in rows {
            let d = r["device"].as_str().unwrap();
            let (state, node) = truth.state_at(d, at);
            assert_eq!(r["state"], state, "{d} at {at}");
            assert_eq!(r["node"].as_str(), node, "{d} at {at}");
            *want.entry(state.to_string()).or_default() += 1;
        }
        for (state, n) in &want {
            assert_eq!(v["counts"][state].as_u64(), Some(*n), "{state} at {at}");
        }
        // one device, as epoch milliseconds
        let d = devices[k as usize % devices.len()];
        let a = get(&s.url(&format!(
            "/api/v1/devices/{d}/state?at={}",
            at.timestamp_millis()
        )));
        assert_eq!(a.status, 200);
        let ms = chrono::DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap();
        assert_eq!(a.json()["state"], truth.state_at(d, ms).0);
    }

    // filters and formats
    let inc = truth
        .incidents
        .iter()
        .find(|i| i.cause == "node_failure")
        .unwrap();
    let at = rfc(inc.start.unwrap() + chrono::Duration::seconds(5));
    let out = get(&s.url(&format!("/api/v1/state?at={at}&state=out_of_service")));
    let v = out.json();
    let rows = v["devices"].as_array().unwrap();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r["state"] == "out_of_service"));
    assert_eq!(
        v["counts"]["out_of_service"].as_u64(),
        Some(rows.len() as u64)
    );
    assert_eq!(v["counts"]["in_service"].as_u64(), Some(0));
    let pool = rows[0]["device_pool"].as_str().unwrap();
    let by_pool = get(&s.url(&format!("/api/v1/state?at={at}&device_pool={pool}"))).json();
    assert!(
        by_pool["devices"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["device_pool"] == pool)
    );
    let csv = get(&s.url(&format!(
        "/api/v1/state?at={at}&state=out_of_service&format=csv"
    )));
    assert!(csv.content_type.starts_with("text/csv"));
    let text = csv.text();
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("device,at,state,node,home_node")
    );
    assert_eq!(lines.count(), rows.len());
    let arrow = get_with(
        &s.url(&format!("/api/v1/state?at={at}&state=out_of_service")),
        ("Accept", "application/vnd.apache.arrow.stream"),
    );
    assert_eq!(arrow.content_type, "application/vnd.apache.arrow.stream");
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(arrow.body), None).unwrap();
    let n: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(n, rows.len());
    // Parquet, asked either way: the CSV answer's rows and columns
    let state_url = format!("/api/v1/state?at={at}&state=out_of_service");
    for parquet in [
        get(&s.url(&format!("{state_url}&format=parquet"))),
        get_with(
            &s.url(&state_url),
            ("Accept", "application/vnd.apache.parquet"),
        ),
    ] {
        assert_eq!(parquet.content_type, "application/vnd.apache.parquet");
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&parquet.body).unwrap();
        let batches: Vec<_> =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
        let mut again = Vec::new();
        {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut again);
            for b in &batches {
                w.write(b).unwrap();
            }
        }
        assert_eq!(String::from_utf8(again).unwrap(), text);
    }
    // CSV of a list column (as `events.nodes`): the list as text, a null as nothing
    let lists = post(
        &s.url("/api/v1/query"),
        "application/json",
        concat!(
            r#"{"format": "csv", "sql": "SELECT make_array('CUCM-A', 'CUCM-B') AS nodes, 1 AS n"#,
            r#" UNION ALL SELECT NULL, 2 ORDER BY n"}"#
        )
        .as_bytes(),
        None,
    );
    assert_eq!(lists.status, 200, "{}", lists.text());
    assert_eq!(lists.text(), "nodes,n\n\"[CUCM-A, CUCM-B]\",1\n,2\n");

    // timeline: the device's events in the window, and intervals covering it
    let d = &inc.devices[0];
    let (from, to) = (
        inc.start.unwrap() - chrono::Duration::minutes(5),
        inc.start.unwrap() + chrono::Duration::hours(2),
    );
    let a = get(&s.url(&format!(
        "/api/v1/devices/{d}/timeline?from={}&to={}",
        rfc(from),
        rfc(to)
    )));
    assert_eq!(a.status, 200, "{}", a.text());
    let v = a.json();
    let want: BTreeSet<(String, u64)> = events
        .iter()
        .filter(|e| e.body.device() == Some(d.as_str()) && e.time >= from && e.time < to)
        .map(|e| (e.source.clone(), e.seq))
        .collect();
    let got: Vec<(String, u64)> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["source"].as_str().unwrap().into(),
                e["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got.len(), want.len(), "each event once");
    assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), want);
    let intervals = v["intervals"].as_array().unwrap();
    assert!(intervals.iter().any(|i| i["movement"] == "failover"));
    assert!(intervals.iter().any(|i| i["movement"] == "rehome"));
    for i in intervals {
        let f = callstate_schemas::parse_time(i["valid_from"].as_str().unwrap()).unwrap();
        let mid = f + chrono::Duration::milliseconds(1);
        if mid < to {
            assert_eq!(i["state"], truth.state_at(d, mid).0, "{i}");
        }
    }
}

#[test]
fn availability_sla_and_incidents_match_the_truth() {
    let (s, _, truth) = loaded();
    let (from, to) = (truth.start, truth.end);
    let a = get(&s.url(&format!(
        "/api/v1/availability?from={}&to={}&group_by=device_pool",
        rfc(from),
        rfc(to)
    )));
    assert_eq!(a.status, 200, "{}", a.text());
    let mut want: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (d, info) in &truth.device_info {
        let sec = truth.seconds(d, from, to);
        let e = want.entry(info.device_pool.clone()).or_default();
        e.0 += sec.get("in_service").copied().unwrap_or(0.0);
        e.1 += sec.get("out_of_service").copied().unwrap_or(0.0);
    }
    let rows = a.json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), want.len());
    for r in rows {
        let (i, o) = want[r["group_key"].as_str().unwrap()];
        assert!(
            (r["in_service_s"].as_f64().unwrap() - i).abs() < 1e-3,
            "{r}"
        );
        assert!(
            (r["out_of_service_s"].as_f64().unwrap() - o).abs() < 1e-3,
            "{r}"
        );
        assert!((r["availability"].as_f64().unwrap() - i / (i + o)).abs() < 1e-9);
    }

    // SLA per calendar day in a zone: the UTC day spans two Berlin days
    let a = get(&s.url(&format!(
        "/api/v1/sla?from={}&to={}&group_by=node&period=day&tz=Europe/Berlin",
        from.timestamp_millis(),
        to.timestamp_millis()
    )));
    assert_eq!(a.status, 200, "{}", a.text());
    let rows = a.json();
    let rows = rows.as_array().unwrap();
    let windows: BTreeSet<&str> = rows
        .iter()
        .map(|r| r["window_start"].as_str().unwrap())
        .collect();
    assert_eq!(windows.len(), 2, "{windows:?}");
    for r in rows {
        assert_eq!(r["target"].as_f64(), Some(0.999));
        let allowed = r["budget_allowed_s"].as_f64().unwrap();
        let used = r["budget_used_s"].as_f64().unwrap();
        assert!((r["budget_remaining_s"].as_f64().unwrap() - (allowed - used)).abs() < 1e-6);
    }

    // incidents: the injected node failure, listed and in full
    let a = get(&s.url(&format!(
        "/api/v1/incidents?from={}&to={}",
        rfc(from),
        rfc(to)
    )));
    assert_eq!(a.status, 200);
    let list = a.json();
    let list = list.as_array().unwrap();
    let injected: Vec<_> = truth
        .incidents
        .iter()
        .filter(|i| i.cause == "node_failure")
        .collect();
    assert_eq!(injected.len(), 1);
    let found: Vec<&Value> = list
        .iter()
        .filter(|i| i["cause"] == "node_failure")
        .collect();
    assert_eq!(found.len(), 1, "{list:?}");
    let id = found[0]["id"].as_str().unwrap();
    let encoded = id.replace('/', "%2F").replace(':', "%3A");
    let a = get(&s.url(&format!("/api/v1/incidents/{encoded}")));
    assert_eq!(a.status, 200, "{}", a.text());
    let inc = a.json();
    let got: BTreeSet<&str> = inc["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    let want: BTreeSet<&str> = injected[0].devices.iter().map(String::as_str).collect();
    assert_eq!(got, want);
    assert_eq!(inc["target"], injected[0].target);
    assert_eq!(
        inc["failovers"].as_array().unwrap().len(),
        injected[0].failovers.len()
    );
    assert_eq!(
        get(&s.url("/api/v1/incidents/CL1%2Fnode%2Fnope")).status,
        404
    );
}

#[test]
fn sql_metrics_health_and_openapi() {
    let (s, events, truth) = loaded();
    let q = |sql: &str| {
        post(
            &s.url("/api/v1/query"),
            "application/json",
            serde_json::json!({ "sql": sql }).to_string().as_bytes(),
            None,
        )
    };
    let a = q("SELECT count(*) AS n FROM events");
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()[0]["n"].as_u64(), Some(distinct(&truth)));
    let a = post(
        &s.url("/api/v1/query"),
        "text/plain",
        b"SELECT state, count(*) AS n FROM device_state_at(TIMESTAMP '2026-11-24T12:00:00Z') GROUP BY state",
        None,
    );
    assert_eq!(a.status, 200, "{}", a.text());
    let n: u64 = a
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["n"].as_u64().unwrap())
        .sum();
    assert_eq!(n, truth.device_info.len() as u64);
    // bad SQL and anything that is not a read: 400 with DataFusion's message
    for (sql, needle) in [
        ("SELEC 1", "SELEC"),
        ("SELECT nope FROM events", "nope"),
        ("DROP VIEW events", "DDL"),
        ("CREATE TABLE t AS SELECT 1", "DDL"),
        ("INSERT INTO events_tail SELECT * FROM events_tail", "DML"),
        ("COPY (SELECT 1) TO '/tmp/callstate-x.csv'", "COPY"),
        ("SET datafusion.execution.batch_size = 1", "Statement"),
        ("SELECT * FROM '/etc/passwd'", "passwd"),
    ] {
        let a = q(sql);
        assert_eq!(a.status, 400, "{sql}: {}", a.text());
        assert!(
            a.json()["error"].as_str().unwrap().contains(needle),
            "{sql}: {}",
            a.text()
        );
    }
    assert!(!std::path::Path::new("/tmp/callstate-x.csv").exists());
    assert_eq!(
        post(&s.url("/api/v1/query"), "application/json", b"{", None).status,
        400
    );

    // metrics: counters by kind agree with the stream, devices by state with the fleet
    let a = get(&s.url("/metrics"));
    assert_eq!(a.status, 200);
    let text = a.text();
    let metric = |line_start: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .unwrap_or_else(|| panic!("{line_start} missing in\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let distinct_kinds: BTreeMap<&str, u64> = {
        let mut seen = BTreeSet::new();
        let mut m = BTreeMap::new();
        for e in &events {
            if seen.insert((e.source.clone(), e.seq)) {
                *m.entry(e.kind().as_str()).or_default() += 1;
            }
        }
        m
    };
    for (kind, n) in &distinct_kinds {
        assert_eq!(
            metric(&format!(
                "callstate_events_ingested_total{{kind=\"{kind}\"}}"
            )),
            *n as f64
        );
    }
    let devices: f64 = ["in_service", "out_of_service", "unknown"]
        .iter()
        .map(|st| metric(&format!("callstate_devices{{state=\"{st}\"}}")))
        .sum();
    assert_eq!(devices, truth.device_info.len() as f64);
    // what the live state holds: intervals and service events of every device, some legs
    for part in [
        "devices",
        "service_events",
        "intervals",
        "call_legs_packed",
        "call_leg_packs",
    ] {
        let bytes = metric(&format!("callstate_live_state_bytes{{part=\"{part}\"}}"));
        assert!(bytes > 0.0, "{part}: {bytes}");
    }
    assert!(text.contains("callstate_http_request_duration_seconds_bucket{"));
    assert!(text.contains("route=\"/api/v1/query\""));

    assert_eq!(get(&s.url("/healthz")).status, 200);
    assert_eq!(get(&s.url("/readyz")).status, 200);
    let doc = get(&s.url("/api/v1/openapi.json")).json();
    let paths: BTreeSet<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for p in [
        "/api/v1/events",
        "/api/v1/devices/{device}/state",
        "/api/v1/state",
        "/api/v1/devices/{device}/timeline",
        "/api/v1/availability",
        "/api/v1/sla",
        "/api/v1/incidents",
        "/api/v1/incidents/{id}",
        "/api/v1/query",
        "/metrics",
        "/healthz",
        "/readyz",
    ] {
        assert!(paths.contains(p), "{p} not in {paths:?}");
    }
    // every documented GET answers (not 404/405) with its documented parameters
    for p in &paths {
        if doc["paths"][p]["get"].is_object() && !p.contains('{') {
            let a = get(&s.url(&format!(
                "{p}?from=2026-11-24T00:00:00Z&to=2026-11-25T00:00:00Z"
            )));
            assert_eq!(a.status, 200, "{p}: {}", a.text());
        }
    }
}

#[test]
fn error_classes() {
    let (s, _, truth) = loaded();
    let d = truth.device_info.keys().next().unwrap();
    for (url, status, needle) in [
        (
            format!("/api/v1/devices/{d}/state?at=yesterday"),
            400,
            "at:",
        ),
        ("/api/v1/state?at=2026-13-40T00:00:00Z".into(), 400, "at:"),
        ("/api/v1/state?state=busy".into(), 400, "state:"),
        ("/api/v1/state?format=xml".into(), 400, "format:"),
        (
            "/api/v1/devices/NO-SUCH-DEVICE/state".into(),
            404,
            "NO-SUCH-DEVICE",
        ),
        (
            "/api/v1/devices/NO-SUCH-DEVICE/timeline".into(),
            404,
            "NO-SUCH-DEVICE",
        ),
        (
            "/api/v1/availability?to=2026-11-25T00:00:00Z".into(),
            400,
            "from is required",
        ),
        (
            "/api/v1/availability?from=2026-11-25T00:00:00Z&to=2026-11-24T00:00:00Z".into(),
            400,
            "before",
        ),
        (
            "/api/v1/availability?from=0&to=1&group_by=building".into(),
            400,
            "group_by",
        ),
        (
            "/api/v1/sla?from=0&to=1&period=fortnight".into(),
            400,
            "fortnight",
        ),
        (
            "/api/v1/sla?from=0&to=1&period=day&tz=Mars/Base".into(),
            400,
            "Mars",
        ),
        ("/api/v1/nothing".into(), 404, "no such endpoint"),
    ] {
        let a = get(&s.url(&url));
        assert_eq!(a.status, status, "{url}: {}", a.text());
        assert!(
            a.json()["error"].as_str().unwrap().contains(needle),
            "{url}: {}",
            a.text()
        );
    }
}

#[test]
fn ingest_answers_per_line_and_enforces_limits_and_tokens() {
    let config = ServerConfig {
        token: Some("s3cret".into()),
        read_auth: ReadAuth::Token,
        max_body_bytes: 64 * 1024,
        sql_timeout: Duration::from_millis(1),
        sql_memory_bytes: 256 * 1024,
        ..ServerConfig::default()
    };
    let s = Server::start(config);
    let url = s.url("/api/v1/events");
    let tok = Some("s3cret");
    let (events, _) = common::simulate("quiet-day", 10, 1);
    let good = |i: usize| events[i].to_json();

    // tokens: writes and (here) reads need it; health does not
    let body = ndjson(&events[..3]);
    let a = post(&url, "application/x-ndjson", &body, None);
    assert_eq!(a.status, 401);
    assert!(a.json()["error"].as_str().unwrap().contains("bearer"));
    assert_eq!(
        post(&url, "application/x-ndjson", &body, Some("wrong")).status,
        401
    );
    assert_eq!(get(&s.url("/api/v1/state")).status, 401);
    assert_eq!(get(&s.url("/metrics")).status, 401);
    assert_eq!(get(&s.url("/healthz")).status, 200);

    // NDJSON with bad lines: the good ones stored, each bad one named with line and field
    let body = format!(
        "{}\n\n{}\r\n{{\"kind\":\"device_in_service\"}}\nnot json\n{}\n",
        good(0),
        good(1),
        good(2).replace("\"time\":\"", "\"time\":\"x")
    );
    let a = post(&url, "application/x-ndjson", body.as_bytes(), tok);
    assert_eq!(a.status, 200, "{}", a.text());
    let v = a.json();
    assert_eq!(v["accepted"], 2);
    let rejected = v["rejected"].as_array().unwrap();
    assert_eq!(
        rejected
            .iter()
            .map(|r| r["line"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![4, 5, 6]
    );
    assert_eq!(rejected[2]["field"], "time");
    assert!(rejected[1]["error"].as_str().unwrap().contains("JSON"));

    // the same again: duplicates; a changed event with a stored (source, seq): rejected
    let a = post(
        &url,
        "application/x-ndjson",
        format!("{}\n", good(0)).as_bytes(),
        tok,
    );
    assert_eq!(
        (a.json()["accepted"].clone(), a.json()["duplicates"].clone()),
        (0.into(), 1.into())
    );
    let mut changed = events[1].clone();
    changed.cluster = "OTHER".into();
    let a = post(
        &url,
        "application/x-ndjson",
        ndjson(&[changed]).as_slice(),
        tok,
    );
    assert_eq!(a.status, 422, "every event rejected");
    assert_eq!(a.json()["rejected"][0]["field"], "seq");

    // one JSON object, a JSON array, gzip
    let a = post(&url, "application/json", good(3).as_bytes(), tok);
    assert_eq!(a.json()["accepted"], 1, "{}", a.text());
    let arr = format!("[{},{},{{\"kind\":1}}]", good(4), good(5));
    let a = post(&url, "application/json", arr.as_bytes(), tok);
    let v = a.json();
    assert_eq!(v["accepted"], 2);
    assert_eq!(v["rejected"][0]["line"], 3);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&ndjson(&events[6..10])).unwrap();
    let gz = gz.finish().unwrap();
    let a = answer(
        agent()
            .post(&url)
            .header("Content-Type", "application/x-ndjson")
            .header("Content-Encoding", "gzip")
            .header("Authorization", "Bearer s3cret")
            .send(&gz[..]),
    );
    assert_eq!(a.json()["accepted"], 4, "{}", a.text());

    // a body over the limit: 413, nothing stored
    let ingested = || -> f64 {
        let a = get_with(&s.url("/metrics"), ("Authorization", "Bearer s3cret"));
        a.text()
            .lines()
            .filter(|l| l.starts_with("callstate_events_ingested_total{"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    assert_eq!(ingested(), 9.0);
    let big = ndjson(&events[10..]);
    assert!(big.len() > 64 * 1024);
    assert_eq!(oversized_post_status(&s, big.len(), "s3cret"), 413);
    assert_eq!(ingested(), 9.0);
    for chunk in events[10..].chunks(50) {
        assert_eq!(
            post(&url, "application/x-ndjson", &ndjson(chunk), tok).status,
            200
        );
    }
    assert!(ingested() > 1000.0);
    // the 1 ms time limit: a heavy query is stopped with 422
    let a = post(
        &s.url("/api/v1/query"),
        "text/plain",
        // an aggregate statistics cannot answer: it has to run
        b"SELECT sum(a.seq * b.seq + c.seq) FROM events a, events b, events c",
        tok,
    );
    assert_eq!(a.status, 422, "{}", a.text());
    assert!(a.json()["error"].as_str().unwrap().contains("time limit"));
}

#[test]
fn memory_limit_stops_a_query_with_422() {
    let s = Server::start(ServerConfig {
        sql_memory_bytes: 64 * 1024,
        ..ServerConfig::default()
    });
    let (events, _) = common::simulate("quiet-day", 60, 2);
    post_all(&s, &events, 5_000, None);
    let a = post(
        &s.url("/api/v1/query"),
        "text/plain",
        b"SELECT * FROM events ORDER BY call_id, device, time",
        None,
    );
    assert_eq!(a.status, 422, "{}", a.text());
    assert!(a.json()["error"].as_str().unwrap().contains("memory"));
}

/// At least 100k events posted in batches by two writers while two readers query: every
/// event is stored once, every read succeeds, and the final answers count everything.
#[test]
fn load_ingest_while_querying_loses_nothing() {
    let (events, truth) = common::simulate("node-failover", 500, 11);
    assert!(events.len() >= 100_000, "{} events", events.len());
    let s = Arc::new(Server::start(ServerConfig::default()));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let s = s.clone();
            let done = done.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let a = if r == 0 {
                        get(&s.url("/api/v1/state?at=2026-11-24T10:00:05Z&format=csv"))
                    } else {
                        post(
                            &s.url("/api/v1/query"),
                            "text/plain",
                            b"SELECT kind, count(*) FROM events GROUP BY kind",
                            None,
                        )
                    };
                    assert_eq!(a.status, 200, "{}", a.text());
                    n += 1;
                }
                n
            })
        })
        .collect();
    let half = events.len() / 2;
    let writers: Vec<_> = [events[..half].to_vec(), events[half..].to_vec()]
        .into_iter()
        .map(|part| {
            let s = s.clone();
            std::thread::spawn(move || post_all(&s, &part, 2_000, None))
        })
        .collect();
    let (mut acc, mut dup) = (0, 0);
    for w in writers {
        let (a, d) = w.join().unwrap();
        acc += a;
        dup += d;
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads: u32 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(reads > 0);
    assert_eq!(acc, distinct(&truth));
    assert_eq!(acc + dup, events.len() as u64);
    let a = post(
        &s.url("/api/v1/query"),
        "text/plain",
        b"SELECT count(*) AS n, count(DISTINCT source || '/' || CAST(seq AS VARCHAR)) AS keys FROM events",
        None,
    );
    let v = a.json();
    assert_eq!(v[0]["n"].as_u64(), Some(distinct(&truth)));
    assert_eq!(v[0]["keys"].as_u64(), Some(distinct(&truth)));
    // and the state answers are those of the truth
    let at = truth.start + chrono::Duration::hours(10) + chrono::Duration::seconds(5);
    let v = get(&s.url(&format!("/api/v1/state?at={}", rfc(at)))).json();
    for r in v["devices"].as_array().unwrap() {
        let d = r["device"].as_str().unwrap();
        assert_eq!(r["state"], truth.state_at(d, at).0, "{d}");
    }
}

fn parse_t(v: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc)
}

/// Series rows `{time, group_key, devices}` as time → group → devices.
fn series(s: &Server, query: &str) -> BTreeMap<String, BTreeMap<String, u64>> {
    let a = get(&s.url(&format!("/api/v1/state/series?{query}")));
    assert_eq!(a.status, 200, "{query}: {}", a.text());
    let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for r in a.json().as_array().unwrap() {
        out.entry(rfc(parse_t(&r["time"]))).or_default().insert(
            r["group_key"].as_str().unwrap().into(),
            r["devices"].as_u64().unwrap(),
        );
    }
    out
}

/// What the dashboards read that the other endpoints do not: the state series (per state,
/// per node, for a home node, for an incident's devices), the annotations, failed-over
/// devices, one device's availability and the re-home lags, all against the truth.
#[test]
fn dashboard_endpoints_match_the_truth() {
    let (s, events, truth) = loaded();
    let (from, to) = (truth.start, truth.end);
    let step = chrono::Duration::minutes(10);
    let w = format!("from={}&to={}&step=10m", rfc(from), rfc(to));
    let steps: Vec<_> = (0..)
        .map(|k| from + step * k)
        .take_while(|t| *t < to)
        .collect();
    let count = |devices: &mut dyn Iterator<Item = &String>, t, by_node: bool| {
        let mut c: BTreeMap<String, u64> = BTreeMap::new();
        if !by_node {
            for st in ["in_service", "out_of_service", "unknown"] {
                c.insert(st.into(), 0);
            }
        }
        for d in devices {
            match (truth.state_at(d, t), by_node) {
                (("in_service", Some(n)), true) => *c.entry(n.to_string()).or_default() += 1,
                (_, true) => {}
                ((st, _), false) => *c.entry(st.to_string()).or_default() += 1,
            }
        }
        c
    };
    // per state, every device
    let got = series(&s, &w);
    assert_eq!(got.len(), steps.len());
    for t in &steps {
        assert_eq!(
            got[&rfc(*t)],
            count(&mut truth.devices.keys(), *t, false),
            "{t}"
        );
    }
    // per node: devices in service there (every node at every step, 0 included)
    let got = series(&s, &format!("{w}&group_by=node"));
    for t in &steps {
        let want = count(&mut truth.devices.keys(), *t, true);
        let have: BTreeMap<String, u64> = got[&rfc(*t)]
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        assert_eq!(have, want, "{t}");
    }
    // the devices homed on the failed node
    let inc = &truth.incidents[0];
    let homed: Vec<String> = truth
        .device_info
        .iter()
        .filter(|(_, i)| i.home == inc.target)
        .map(|(d, _)| d.clone())
        .collect();
    let got = series(&s, &format!("{w}&home_node={}", inc.target));
    for t in &steps {
        assert_eq!(got[&rfc(*t)], count(&mut homed.iter(), *t, false), "{t}");
    }
    // an incident's devices: its recovery curve
    let list = get(&s.url("/api/v1/incidents")).json();
    let id = list[0]["id"].as_str().unwrap();
    let enc: String = id
        .bytes()
        .map(|b| match b {
            b'/' | b':' | b'+' => format!("%{b:02X}"),
            _ => (b as char).to_string(),
        })
        .collect();
    let detail = get(&s.url(&format!("/api/v1/incidents/{enc}"))).json();
    let devices: Vec<String> = detail["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    let got = series(&s, &format!("{w}&incident={enc}"));
    for t in &steps {
        let c = &got[&rfc(*t)];
        assert_eq!(c.values().sum::<u64>(), devices.len() as u64);
        assert_eq!(*c, count(&mut devices.iter(), *t, false), "{t}");
    }
    // lags: failovers from the start, re-homes from the first re-home
    let start = parse_t(&detail["started_at"]);
    for f in detail["failovers"].as_array().unwrap() {
        let lag = (parse_t(&f["at"]) - start).num_microseconds().unwrap() as f64 / 1e6;
        assert!((f["lag_s"].as_f64().unwrap() - lag).abs() < 1e-6);
    }
    let rehomes = detail["rehomes"].as_array().unwrap();
    assert!(!rehomes.is_empty());
    let first = rehomes.iter().map(|r| parse_t(&r["at"])).min().unwrap();
    let mut max = 0.0f64;
    for r in rehomes {
        let lag = (parse_t(&r["at"]) - first).num_microseconds().unwrap() as f64 / 1e6;
        assert!((r["lag_s"].as_f64().unwrap() - lag).abs() < 1e-6);
        max = max.max(lag);
    }
    assert!((detail["rehome_lag_max_s"].as_f64().unwrap() - max).abs() < 1e-6);
    assert_eq!(list[0]["rehome_lag_max_s"], detail["rehome_lag_max_s"]);

    // failed over, not re-homed: in service away from home, by the truth, at each step
    for t in &steps {
        let want: BTreeSet<String> = truth
            .device_info
            .iter()
            .filter(
                |(d, i)| matches!(truth.state_at(d, *t), ("in_service", Some(n)) if n != i.home),
            )
            .map(|(d, _)| d.clone())
            .collect();
        let a = get(&s.url(&format!("/api/v1/state?at={}&on_home_node=false", rfc(*t)))).json();
        let have: BTreeSet<String> = a["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["device"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(have, want, "{t}");
    }
    assert!(homed.iter().any(|d| {
        steps
            .iter()
            .any(|t| matches!(truth.state_at(d, *t), ("in_service", Some(n)) if n != inc.target))
    }));

    // one device's availability = its row among all devices
    let d = &homed[0];
    let one = get(&s.url(&format!(
        "/api/v1/availability?from={}&to={}&device={d}",
        rfc(from),
        rfc(to)
    )))
    .json();
    let all = get(&s.url(&format!(
        "/api/v1/availability?from={}&to={}&group_by=device",
        rfc(from),
        rfc(to)
    )))
    .json();
    let row = all
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["group_key"] == d.as_str())
        .unwrap();
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert_eq!(&one[0], row);
    let pool = &truth.device_info[d].device_pool;
    let sla = get(&s.url(&format!(
        "/api/v1/sla?from={}&to={}&group_by=device&device_pool={pool}",
        rfc(from),
        rfc(to)
    )))
    .json();
    let want = truth
        .device_info
        .values()
        .filter(|i| i.device_pool == *pool)
        .count();
    assert_eq!(sla.as_array().unwrap().len(), want);

    // annotations: the node events of the stream, in time order
    let a = get(&s.url(&format!(
        "/api/v1/annotations?from={}&to={}",
        rfc(from),
        rfc(to)
    )));
    assert_eq!(a.status, 200, "{}", a.text());
    let rows = a.json();
    let mut want: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| {
            let v: Value = serde_json::from_str(&e.to_json()).unwrap();
            let k = v["kind"].as_str()?.to_string();
            ["node_down", "node_up"]
                .contains(&k.as_str())
                .then(|| (rfc(parse_t(&v["time"])), k))
        })
        .collect();
    want.sort();
    want.dedup();
    let have: Vec<(String, String)> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "node_down" || r["kind"] == "node_up")
        .map(|r| {
            assert_eq!(r["target"], inc.target.as_str());
            assert!(r["text"].as_str().unwrap().contains(&inc.target));
            (
                rfc(parse_t(&r["time"])),
                r["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(have, want);
    assert!(!want.is_empty());

    // bad series parameters
    for q in [
        format!("{w}&group_by=pool"),
        format!("from={}&to={}&step=0s", rfc(from), rfc(to)),
        format!("from={}&to={}&step=1s", rfc(from), rfc(to)),
        format!("from={}&to={}&step=5q", rfc(from), rfc(to)),
        format!("from={}&to={}", rfc(to), rfc(from)),
    ] {
        let a = get(&s.url(&format!("/api/v1/state/series?{q}")));
        assert_eq!(a.status, 400, "{q}: {}", a.text());
    }
    let a = get(&s.url(&format!("/api/v1/state/series?{w}&incident=nope")));
    assert_eq!(a.status, 404);
}

#[test]
fn a_post_answers_once_its_events_are_visible_or_once_durable_when_asked() {
    use callstate_schemas::Kind;
    let s = Server::start(ServerConfig::default());
    let (events, _) = common::simulate("node-failover", 20, 2);
    let (first, rest) = events.split_at(events.len() / 2);
    let registered = |evs: &[Event]| -> BTreeSet<String> {
        evs.iter()
            .filter(|e| e.kind() == Kind::DeviceInService)
            .filter_map(|e| e.body.device().map(str::to_string))
            .collect()
    };
    // by default the answer comes once the events are visible: the very next reads see them
    let a = post(
        &s.url("/api/v1/events"),
        "application/x-ndjson",
        &ndjson(first),
        None,
    );
    assert_eq!(a.status, 200, "{}", a.text());
    let seen = registered(first);
    assert!(!seen.is_empty());
    for d in &seen {
        let a = get(&s.url(&format!("/api/v1/devices/{d}/state")));
        assert_eq!(a.status, 200, "{d} right after the answer: {}", a.text());
    }
    // a wrong `wait` is a 400 naming it, and nothing of the body is stored
    let a = post(
        &s.url("/api/v1/events?wait=soon"),
        "application/x-ndjson",
        &ndjson(rest),
        None,
    );
    assert_eq!(a.status, 400, "{}", a.text());
    assert!(
        a.json()["error"].as_str().unwrap().starts_with("wait:"),
        "{}",
        a.text()
    );
    // `wait=durable`: stored (durable at the answer), visible soon after
    let a = post(
        &s.url("/api/v1/events?wait=durable"),
        "application/x-ndjson",
        &ndjson(rest),
        None,
    );
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["accepted"].as_u64().unwrap(), rest.len() as u64);
    // a device never seen before, registered by a durable-only post
    let model = first
        .iter()
        .find(|e| e.kind() == Kind::DeviceInService)
        .unwrap();
    let mut e: Value = serde_json::from_str(&model.to_json()).unwrap();
    e["device"] = "SEP-WAIT-DURABLE".into();
    e["seq"] = 9_000_000_000u64.into();
    let body = serde_json::to_vec(&e).unwrap();
    let a = post(
        &s.url("/api/v1/events?wait=durable"),
        "application/json",
        &body,
        None,
    );
    assert_eq!(a.json()["accepted"], 1, "{}", a.text());
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while get(&s.url("/api/v1/devices/SEP-WAIT-DURABLE/state")).status != 200 {
        assert!(std::time::Instant::now() < until, "never became visible");
        std::thread::sleep(Duration::from_millis(10));
    }
}
