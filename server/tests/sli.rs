//! The SLI counters of `/metrics` (`callstate_sli_device_seconds_total`): each equals the API's
//! device-seconds over the same span, and a late event that moves past seconds between states
//! shows in the gaining state at once while no counter ever goes down.

use std::collections::BTreeMap;

use callstate_server::ServerConfig;
use chrono::{DateTime, Utc};
use serde_json::Value;

mod common;

use common::server::{Server, get, post, post_all};

/// `{(scope, group, state) → value}` of one scrape.
fn scrape(s: &Server) -> BTreeMap<(String, String, String), f64> {
    let a = get(&s.url("/metrics"));
    assert_eq!(a.status, 200);
    let mut out = BTreeMap::new();
    for line in a.text().lines() {
        let Some(rest) = line.strip_prefix("callstate_sli_device_seconds_total{") else {
            continue;
        };
        let (labels, value) = rest.split_once("} ").unwrap();
        let l: BTreeMap<&str, &str> = labels
            .split("\",")
            .map(|kv| {
                let (k, v) = kv.split_once("=\"").unwrap();
                (k, v.trim_end_matches('"'))
            })
            .collect();
        out.insert(
            (l["scope"].into(), l["group"].into(), l["state"].into()),
            value.parse().unwrap(),
        );
    }
    assert!(!out.is_empty(), "no SLI counters in /metrics");
    out
}

fn availability(s: &Server, from: &str, to: DateTime<Utc>, by: &str) -> Vec<Value> {
    let a = get(&s.url(&format!(
        "/api/v1/availability?from={from}&to={}&group_by={by}",
        to.timestamp_millis()
    )));
    assert_eq!(a.status, 200, "{}", a.text());
    a.json().as_array().unwrap().clone()
}

#[test]
fn sli_counters_are_the_apis_device_seconds_and_never_go_down() {
    let (events, truth) = common::simulate("demo", 150, 3);
    let s = Server::start(ServerConfig::default());
    post_all(&s, &events, 5_000, None);
    let start = truth.start.timestamp_millis().to_string();

    // every device reports from the scenario's first minute: in and out of service and
    // excluded time (which the open silence after the run does not change) equal the API's
    // over [start, now) exactly, per pool, home node and cluster
    let before = scrape(&s);
    let now = Utc::now();
    let mut compared = 0;
    for by in ["device_pool", "node", "cluster"] {
        for g in availability(&s, &start, now, by) {
            let group = g["group_key"].as_str().unwrap();
            for (state, field) in [
                ("in_service", "in_service_s"),
                ("out_of_service", "out_of_service_s"),
                ("excluded", "excluded_s"),
            ] {
                let c = before[&(by.to_string(), group.to_string(), state.to_string())];
                let want = g[field].as_f64().unwrap();
                assert!(
                    (c - want).abs() <= 1e-6 * want.max(1.0),
                    "{by} {group} {state}: counter {c}, API {want}"
                );
                compared += 1;
            }
        }
    }
    assert!(compared > 30, "{compared}");
    let excluded: f64 = before
        .iter()
        .filter(|((scope, _, state), _)| scope == "cluster" && state == "excluded")
        .map(|(_, v)| v)
        .sum();
    assert!(excluded > 0.0, "the demo's maintenance window is excluded");

    // a late event of the bridge: one phone was out of service for ten minutes in the
    // afternoon
    let phone = events
        .iter()
        .find_map(|e| {
            let v = serde_json::to_value(e).unwrap();
            (v["kind"] == "device_in_service" && v["device_type"] == "phone").then(|| {
                (
                    v["device"].as_str().unwrap().to_string(),
                    v["device_pool"].clone(),
                )
            })
        })
        .unwrap();
    let at = |m: i64| (truth.start + chrono::Duration::minutes(m)).to_rfc3339();
    let late = format!(
        "{}\n{}\n",
        serde_json::json!({"source": "jtapi-bridge-cl1", "seq": 1_000_000_001u64, "time": at(16 * 60 + 50), "cluster": "CL1",
            "kind": "device_out_of_service", "device": phone.0, "node": "CL1-cucm2", "cause": "network"}),
        serde_json::json!({"source": "jtapi-bridge-cl1", "seq": 1_000_000_002u64, "time": at(17 * 60), "cluster": "CL1",
            "kind": "device_in_service", "device": phone.0, "device_type": "phone", "node": "CL1-cucm2",
            "device_pool": phone.1, "ctimanager": "CL1-cucm1"}),
    );
    let a = post(
        &s.url("/api/v1/events"),
        "application/x-ndjson",
        late.as_bytes(),
        None,
    );
    assert_eq!(a.status, 200, "{}", a.text());
    let after = scrape(&s);
    let key = |state: &str| ("cluster".to_string(), "CL1".to_string(), state.to_string());
    let moved = after[&key("out_of_service")] - before[&key("out_of_service")];
    assert!(
        (moved - 600.0).abs() < 1e-6,
        "out of service gained {moved} s, not 600"
    );
    // the API moved them out of in_service; the counter holds instead of going down
    let api_in = availability(&s, &start, Utc::now(), "cluster")[0]["in_service_s"]
        .as_f64()
        .unwrap();
    assert!(
        api_in < before[&key("in_service")],
        "the API's in-service time went down"
    );
    for (k, v) in &before {
        assert!(after[k] >= *v, "{k:?} went down: {v} → {}", after[k]);
    }
    assert_eq!(after[&key("in_service")], before[&key("in_service")]);
}
