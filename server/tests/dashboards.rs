//! Contract test of the Grafana dashboards (`dashboards/`): every panel query, annotation
//! query and template-variable query runs against a live API server loaded with the
//! node-failover scenario, with Grafana's variables substituted as Grafana would (time range in
//! epoch ms, `$__interval`, query variables set to their first value); each answer must be
//! well formed, non-empty and carry the columns the panel declares, with the declared types
//! (each column non-null in at least one row).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use callstate_server::ServerConfig;
use chrono::{DateTime, Utc};
use serde_json::Value;

mod common;

use common::server::{Server, get, post_all};

const DATASOURCE: &str = "yesoreyeram-infinity-datasource";

fn dashboards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards")
}

fn dashboards() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dashboards_dir().join("callstate")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            out.push((p.file_name().unwrap().to_string_lossy().into_owned(), v));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Grafana's variable syntaxes: `$name`, `${name}`, `${name:format}`.
fn substitute(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, format, len) = if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').expect("unclosed ${");
            let inner = &body[..end];
            let (n, f) = inner
                .split_once(':')
                .map_or((inner, None), |(n, f)| (n, Some(f)));
            (n.to_string(), f.map(str::to_string), end + 2)
        } else {
            let n: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let l = n.len();
            (n, None, l)
        };
        let value = vars
            .get(&name)
            .unwrap_or_else(|| panic!("unknown variable `{name}` in `{text}`"));
        match format.as_deref() {
            None | Some("raw") | Some("text") => out.push_str(value),
            Some("percentencode") => out.push_str(&percent(value)),
            Some(f) => panic!("variable format `{f}` not handled"),
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Runs an Infinity query (`type: json`, `source: url`); returns its rows.
fn run(s: &Server, q: &Value, vars: &BTreeMap<String, String>, what: &str) -> Vec<Value> {
    assert_eq!(q["type"], "json", "{what}: type");
    assert_eq!(q["source"], "url", "{what}: source");
    assert_eq!(
        q["parser"], "backend",
        "{what}: the backend parser (alerting needs it)"
    );
    let opts = &q["url_options"];
    assert!(
        opts["method"].is_null() || opts["method"] == "GET",
        "{what}: method"
    );
    let mut url = substitute(q["url"].as_str().unwrap(), vars);
    assert!(url.starts_with("/api/v1/"), "{what}: {url}");
    let params: Vec<String> = opts["params"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .map(|p| {
            let v = substitute(p["value"].as_str().unwrap(), vars);
            format!("{}={}", p["key"].as_str().unwrap(), percent(&v))
        })
        .collect();
    if !params.is_empty() {
        url = format!("{url}?{}", params.join("&"));
    }
    let a = get(&s.url(&url));
    assert_eq!(a.status, 200, "{what}: GET {url}: {}", a.text());
    let body = a.json();
    let root = q["root_selector"].as_str().unwrap_or("");
    let selected = if root.is_empty() {
        body
    } else {
        root.split('.')
            .fold(body, |v, k| v.get(k).cloned().unwrap_or(Value::Null))
    };
    let rows = match selected {
        Value::Array(a) => a,
        Value::Object(_) => vec![selected],
        other => panic!("{what}: GET {url}: root `{root}` is {other}"),
    };
    assert!(!rows.is_empty(), "{what}: GET {url}: no rows");
    for c in q["columns"].as_array().unwrap() {
        let sel = c["selector"].as_str().unwrap();
        let ty = c["type"].as_str().unwrap();
        let mut non_null = 0;
        for r in &rows {
            // a key left out is a null to Grafana (events carry only their kind's fields)
            let v = r.get(sel).unwrap_or(&Value::Null);
            let ok = match (ty, v) {
                (_, Value::Null) => true,
                ("string", Value::String(_)) => true,
                ("number", Value::Number(_)) => true,
                ("boolean", Value::Bool(_)) => true,
                ("timestamp", Value::String(t)) => DateTime::parse_from_rfc3339(t).is_ok(),
                _ => false,
            };
            assert!(ok, "{what}: GET {url}: `{sel}` = {v} is not a {ty}");
            non_null += usize::from(!v.is_null());
        }
        assert!(
            non_null > 0,
            "{what}: GET {url}: `{sel}` is null in every row"
        );
    }
    rows
}

/// The first value a query variable offers (Grafana's default selection).
fn first_value(s: &Server, v: &Value, vars: &BTreeMap<String, String>) -> String {
    let name = v["name"].as_str().unwrap();
    let q = &v["query"]["infinityQuery"];
    let rows = run(s, q, vars, &format!("variable {name}"));
    let col = q["columns"][0]["selector"].as_str().unwrap();
    let mut values: Vec<String> = rows
        .iter()
        .filter_map(|r| r[col].as_str().map(str::to_string))
        .collect();
    if v["sort"].as_u64().unwrap_or(0) == 1 {
        values.sort();
    }
    values.into_iter().next().expect("a value")
}

fn ms(t: DateTime<Utc>) -> String {
    t.timestamp_millis().to_string()
}

#[test]
fn every_panel_query_answers_with_its_columns() {
    let (events, truth) = common::simulate("node-failover", 120, 5);
    let s = Server::start(ServerConfig::default());
    post_all(&s, &events, 5_000, None);
    // "as of" an instant where, by the truth, devices are both out of service and failed
    // over (in service away from home): every fleet panel has rows then
    let start = truth.start;
    let asof = (0..86_400)
        .map(|k| start + chrono::Duration::seconds(k))
        .find(|t| {
            let mut oos = 0;
            let mut away = 0;
            for (d, info) in &truth.device_info {
                match truth.state_at(d, *t) {
                    ("out_of_service", _) => oos += 1,
                    ("in_service", Some(n)) if n != info.home => away += 1,
                    _ => {}
                }
            }
            oos > 0 && away > 0
        })
        .expect("an instant with devices out of service and failed over");

    let mut checked = 0;
    for (file, d) in dashboards() {
        assert!(
            d["schemaVersion"].as_u64().unwrap() >= 39,
            "{file}: schemaVersion"
        );
        assert!(d["uid"].as_str().is_some_and(|u| !u.is_empty()), "{file}");
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        vars.insert("__from".into(), ms(truth.start));
        vars.insert("__to".into(), ms(truth.end));
        vars.insert("__interval".into(), "5m".into());
        // template variables in order: later ones may use earlier ones
        for v in d["templating"]["list"].as_array().unwrap() {
            let name = v["name"].as_str().unwrap().to_string();
            let value = match v["type"].as_str().unwrap() {
                "query" => {
                    assert_eq!(v["datasource"]["type"], DATASOURCE, "{file}: {name}");
                    first_value(&s, v, &vars)
                }
                "custom" => v["query"]
                    .as_str()
                    .unwrap()
                    .split(',')
                    .next()
                    .unwrap()
                    .trim()
                    .to_string(),
                "textbox" if name == "asof" => asof.to_rfc3339(),
                "textbox" => v["query"].as_str().unwrap().to_string(),
                t => panic!("{file}: variable type {t}"),
            };
            checked += 1;
            vars.insert(name, value);
        }
        for a in d["annotations"]["list"].as_array().unwrap() {
            if a["builtIn"].as_u64() == Some(1) {
                continue;
            }
            assert_eq!(a["datasource"]["type"], DATASOURCE, "{file}: annotation");
            let rows = run(&s, &a["target"], &vars, &format!("{file}: annotation"));
            for m in ["time", "timeEnd", "text"] {
                let field = a["mappings"][m]["value"].as_str().unwrap();
                assert!(rows[0].get(field).is_some(), "{file}: annotation {m}");
            }
            checked += 1;
        }
        for p in d["panels"].as_array().unwrap() {
            let title = p["title"].as_str().unwrap();
            assert_eq!(p["datasource"]["uid"], "callstate", "{file}: {title}");
            let targets = p["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{file}: {title}: no query");
            for q in targets {
                assert_eq!(q["datasource"]["type"], DATASOURCE, "{file}: {title}");
                run(&s, q, &vars, &format!("{file}: {title}"));
                checked += 1;
            }
        }
    }
    assert!(checked >= 25, "only {checked} queries checked");
}

/// The provisioning files point Grafana at the dashboards and at the datasource uid they use.
#[test]
fn provisioning_matches_the_dashboards() {
    let dir = dashboards_dir().join("provisioning");
    let ds = std::fs::read_to_string(dir.join("datasources/callstate.yaml")).unwrap();
    assert!(ds.contains("uid: callstate"));
    assert!(ds.contains(&format!("type: {DATASOURCE}")));
    let prov = std::fs::read_to_string(dir.join("dashboards/callstate.yaml")).unwrap();
    let path = prov
        .lines()
        .find_map(|l| l.trim().strip_prefix("path: "))
        .unwrap();
    // docker-compose mounts dashboards/callstate there
    let compose = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker-compose.yml"),
    )
    .unwrap();
    assert!(
        compose.contains(&format!("./dashboards/callstate:{path}")),
        "docker-compose.yml mounts the dashboards at {path}"
    );
    assert!(compose.contains("./dashboards/provisioning:/etc/grafana/provisioning"));
    let uids: Vec<String> = dashboards()
        .iter()
        .map(|(_, d)| d["uid"].as_str().unwrap().to_string())
        .collect();
    let mut unique = uids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), uids.len(), "dashboard uids are unique");
    assert_eq!(uids.len(), 5);
}

/// The Grafana alert rules (dashboards/provisioning/alerting) are what `callstate slo
/// grafana-alerts` writes, their expressions name only their own queries, and every query
/// answers a live server with the columns it declares.
#[test]
fn alert_provisioning_is_current_and_its_queries_answer() {
    let path = dashboards_dir().join("provisioning/alerting/callstate-slo.yaml");
    let committed = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        committed,
        callstate_report::slo::grafana::to_yaml(),
        "{} is stale: run `callstate slo grafana-alerts --out {}`",
        path.display(),
        path.display()
    );
    // devices reporting now: the burn over the last windows has measured time
    let s = Server::start(ServerConfig::default());
    let now = Utc::now();
    let mut events = Vec::new();
    for (k, d) in ["SEP0000000A0001", "SEP0000000A0002", "SEP0000000A0003"]
        .iter()
        .enumerate()
    {
        events.push(serde_json::json!({
            "source": "alert-test", "seq": k + 1, "cluster": "CL1", "kind": "device_in_service",
            "time": (now - chrono::Duration::seconds(30)).to_rfc3339(),
            "device": d, "device_type": "phone", "node": "CL1-cucm1",
            "device_pool": "CL1-DP-S1-01", "ctimanager": "CL1-cucm1"
        }));
    }
    let body: Vec<u8> = events
        .iter()
        .flat_map(|e| format!("{e}\n").into_bytes())
        .collect();
    let a = common::server::post(
        &s.url("/api/v1/events"),
        "application/x-ndjson",
        &body,
        None,
    );
    assert_eq!(a.status, 200, "{}", a.text());
    let doc = callstate_report::slo::grafana::provisioning();
    let vars = BTreeMap::new();
    let mut queries = 0;
    for group in doc["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let title = rule["title"].as_str().unwrap();
            let data = rule["data"].as_array().unwrap();
            let refs: Vec<&str> = data.iter().map(|d| d["refId"].as_str().unwrap()).collect();
            assert!(
                refs.contains(&rule["condition"].as_str().unwrap()),
                "{title}"
            );
            for d in data {
                if d["datasourceUid"] == "__expr__" {
                    let expr = d["model"]["expression"].as_str().unwrap();
                    for word in expr.split(|c: char| !(c.is_alphanumeric() || c == '$')) {
                        if let Some(r) = word.strip_prefix('$') {
                            assert!(refs.contains(&r), "{title}: ${r} is no query");
                        }
                    }
                    continue;
                }
                assert_eq!(d["datasourceUid"], "callstate", "{title}");
                let rows = run(&s, &d["model"], &vars, title);
                assert!(
                    rows.iter().all(|r| r["burn_rate"] == 0.0),
                    "{title}: {rows:?}"
                );
                queries += 1;
            }
        }
    }
    assert_eq!(
        queries,
        3 * 2 * 4,
        "three scopes, two severities, two pairs of windows"
    );
}
