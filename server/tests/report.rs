//! The monthly SLA report (`GET /api/v1/reports/sla`): every figure on the page equals the
//! API's `sla` and `incidents` answers for the same window, and the page renders in a real
//! headless Chromium to PNG and A4 PDF without asking for anything outside the file.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callstate_server::ServerConfig;
use callstate_sim::Scenario;
use chrono::{DateTime, Utc};
use quick_xml::events::{BytesStart, Event};
use serde_json::Value;

mod common;

use common::server::{Server, get, post_all};

/// Two clusters from 31 October 18:00 UTC to 2 November 00:00 UTC: a node crash in
/// October (the previous month), a maintenance window with a node restart, a node crash and
/// a CTIManager failover in November.
const SCENARIO: &str = r#"
name = "report-month"
start = "2026-10-31T18:00:00Z"
duration = "30h"

[topology]
clusters = 2
devices = 160
pools = 4

[[faults]]
kind = "node_crash"
at = "2h"
node = "CL1-cucm2"
down_for = "15m"

[[faults]]
kind = "maintenance"
at = "10h"
duration = "40m"
scope = "node"
target = "CL2-cucm3"
restart = true
reason = "CHG0042 SU upgrade"

[[faults]]
kind = "node_crash"
at = "16h"
node = "CL1-cucm1"
down_for = "25m"

[[faults]]
kind = "ctimanager_crash"
at = "21h"
reconnect_after = "30s"
"#;

const MONTH: &str = "2026-11";
const TZ: &str = "Europe/Paris";
/// November in Paris, and October.
const FROM: &str = "2026-10-31T23:00:00Z";
const TO: &str = "2026-11-30T23:00:00Z";
const PREV_FROM: &str = "2026-09-30T22:00:00Z";

fn loaded() -> Server {
    let sc = Scenario::from_toml(SCENARIO).unwrap();
    let (events, _) = common::simulate_scenario(&sc, 11);
    let s = Server::start(ServerConfig::default());
    post_all(&s, &events, 5_000, None);
    s
}

fn report(s: &Server) -> String {
    let a = get(&s.url(&format!(
        "/api/v1/reports/sla?month={MONTH}&tz={}&group_by=device_pool",
        TZ.replace('/', "%2F")
    )));
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(
        a.content_type.starts_with("text/html"),
        "{}",
        a.content_type
    );
    a.text()
}

/// One table row of the page: what kind, its key, and its cells' exact values.
#[derive(Debug, Default, Clone)]
struct Row {
    kind: String,
    key: String,
    cells: BTreeMap<String, String>,
}

/// What a program reads off the page: per cluster section, its rows and its daily bars.
#[derive(Debug, Default)]
struct Page {
    sections: BTreeMap<String, Vec<Row>>,
    /// cluster → (group → [(day, value)]).
    bars: BTreeMap<String, BTreeMap<String, Vec<(String, String)>>>,
    overview: Vec<Row>,
    /// Elements that would load something (`script`, `link`, `img`, `iframe`, …).
    loaders: Vec<String>,
}

fn attr(e: &BytesStart, name: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == name.as_bytes())
        .map(|a| a.unescape_value().unwrap().into_owned())
}

/// Parses the page as XML (the report writes well-formed XHTML syntax: any slip fails here).
fn parse(html: &str) -> Page {
    let mut r = quick_xml::Reader::from_str(html);
    r.config_mut().check_end_names = true;
    let mut page = Page::default();
    let (mut cluster, mut figure) = (None::<String>, None::<String>);
    let mut row: Option<Row> = None;
    let mut in_cell: Option<(String, String)> = None;
    loop {
        let ev = r
            .read_event()
            .unwrap_or_else(|e| panic!("not well-formed at {}: {e}", r.buffer_position()));
        let (start, empty) = match &ev {
            Event::Start(e) => (Some(e.clone()), false),
            Event::Empty(e) => (Some(e.clone()), true),
            _ => (None, false),
        };
        if let Some(e) = start {
            let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
            for a in e.attributes().flatten() {
                let k = String::from_utf8_lossy(a.key.as_ref()).to_string();
                let v = a.unescape_value().unwrap().to_string();
                let external = v.contains("://") && k != "xmlns";
                if ["src", "href", "srcset", "data", "poster", "action"].contains(&k.as_str())
                    || external
                {
                    page.loaders.push(format!("<{name} {k}=\"{v}\">"));
                }
            }
            if [
                "script", "link", "img", "iframe", "object", "embed", "image", "use",
            ]
            .contains(&name.as_str())
            {
                page.loaders.push(format!("<{name}>"));
            }
            match name.as_str() {
                "section" => cluster = attr(&e, "data-cluster"),
                "figure" if !empty => figure = attr(&e, "data-group"),
                "tr" => {
                    let (kind, key) =
                        ["data-row", "data-incident", "data-device", "data-exclusion"]
                            .iter()
                            .find_map(|k| attr(&e, k).map(|v| (k.to_string(), v)))
                            .unwrap_or_default();
                    let kind = if kind == "data-row" {
                        attr(&e, "data-row").unwrap()
                    } else {
                        kind.trim_start_matches("data-").to_string()
                    };
                    let key = match kind.as_str() {
                        "summary" | "group" | "overview" => attr(&e, "data-group").unwrap(),
                        _ => key,
                    };
                    row = Some(Row {
                        kind,
                        key,
                        cells: BTreeMap::new(),
                    });
                }
                "td" => {
                    if let (Some(f), Some(v)) = (attr(&e, "data-field"), attr(&e, "data-v")) {
                        if empty {
                            row.as_mut().unwrap().cells.insert(f, v);
                        } else {
                            in_cell = Some((f, v));
                        }
                    }
                }
                "rect" => {
                    if let (Some(day), Some(v)) = (attr(&e, "data-day"), attr(&e, "data-v")) {
                        let c = cluster.clone().expect("bars inside a section");
                        let g = figure.clone().expect("bars inside a figure");
                        page.bars
                            .entry(c)
                            .or_default()
                            .entry(g)
                            .or_default()
                            .push((day, v));
                    }
                }
                _ => {}
            }
        }
        match ev {
            Event::End(e) => match e.name().as_ref() {
                b"td" => {
                    if let Some((f, v)) = in_cell.take() {
                        row.as_mut().unwrap().cells.insert(f, v);
                    }
                }
                b"tr" => {
                    let done = row.take().unwrap_or_default();
                    if done.kind.is_empty() {
                        continue;
                    }
                    match &cluster {
                        Some(c) => page.sections.entry(c.clone()).or_default().push(done),
                        None => page.overview.push(done),
                    }
                }
                b"figure" => figure = None,
                b"section" => cluster = None,
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    page
}

/// One answered row: its JSON, and each field's text as written (serde_json's default float
/// parsing is not correctly rounded; the exact comparisons parse the text with Rust's).
#[derive(Debug)]
struct Rec {
    v: Value,
    raw: BTreeMap<String, String>,
}

impl std::ops::Index<&str> for Rec {
    type Output = Value;
    fn index(&self, k: &str) -> &Value {
        &self.v[k]
    }
}

fn api(s: &Server, query: &str) -> Vec<Rec> {
    let a = get(&s.url(&format!("/api/v1/{query}")));
    assert_eq!(a.status, 200, "{query}: {}", a.text());
    let raw: Vec<BTreeMap<String, Box<serde_json::value::RawValue>>> =
        serde_json::from_slice(&a.body).unwrap();
    let v = a.json().as_array().unwrap().clone();
    v.into_iter()
        .zip(raw)
        .map(|(v, r)| Rec {
            v,
            raw: r
                .into_iter()
                .map(|(k, x)| (k, x.get().to_string()))
                .collect(),
        })
        .collect()
}

fn sla(s: &Server, from: &str, to: &str, rest: &str) -> Vec<Rec> {
    api(s, &format!("sla?from={from}&to={to}&{rest}"))
}

/// The page's exact value of a field equals the API's (numbers to the last bit, booleans,
/// nulls).
fn same(what: &str, page: &Row, field: &str, api: &Rec) {
    let got = page
        .cells
        .get(field)
        .unwrap_or_else(|| panic!("{what}: no {field} cell"));
    let raw = &api.raw[field];
    match &api[field] {
        Value::Null => assert_eq!(got, "", "{what} {field}"),
        Value::Bool(b) => assert_eq!(got, &b.to_string(), "{what} {field}"),
        Value::Number(_) => {
            let want: f64 = raw.parse().unwrap();
            let have: f64 = got
                .parse()
                .unwrap_or_else(|_| panic!("{what} {field}: {got}"));
            assert_eq!(have, want, "{what} {field}");
        }
        Value::String(s) => assert_eq!(got, s, "{what} {field}"),
        other => panic!("{what} {field}: {other}"),
    }
}

const SLA_FIELDS: [&str; 11] = [
    "devices",
    "availability",
    "target",
    "met",
    "budget_allowed_s",
    "budget_used_s",
    "budget_remaining_s",
    "outages",
    "mttr_s",
    "longest_outage_s",
    "excluded_s",
];

fn check_rows(what: &str, rows: &[&Row], answer: &[Rec]) {
    let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    let want: Vec<&str> = answer
        .iter()
        .map(|v| v["group_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, want, "{what}: the groups");
    for (r, v) in rows.iter().zip(answer) {
        for f in SLA_FIELDS {
            same(&format!("{what} {}", r.key), r, f, v);
        }
    }
}

fn local_day(rfc3339: &str) -> String {
    let t: DateTime<Utc> = rfc3339.parse().unwrap();
    let tz: chrono_tz::Tz = TZ.parse().unwrap();
    t.with_timezone(&tz).format("%Y-%m-%d").to_string()
}

fn change_pp(now: &Rec, before: Option<&Rec>) -> Value {
    match (
        now["availability"].as_f64(),
        before.and_then(|b| b["availability"].as_f64()),
    ) {
        (Some(a), Some(b)) => serde_json::json!((a - b) * 100.0),
        _ => Value::Null,
    }
}

#[test]
fn every_figure_on_the_report_equals_the_apis_answer() {
    let s = loaded();
    let html = report(&s);
    let page = parse(&html);
    assert!(
        page.loaders.is_empty(),
        "the page loads: {:?}",
        page.loaders
    );
    assert!(
        !html.contains("@import") && !html.contains("url("),
        "CSS loads something"
    );

    let clusters = sla(&s, FROM, TO, "group_by=cluster");
    let before = sla(&s, PREV_FROM, FROM, "group_by=cluster");
    assert_eq!(clusters.len(), 2, "{clusters:?}");
    let overview: Vec<&Row> = page.overview.iter().collect();
    check_rows("overview", &overview, &clusters);
    assert_eq!(page.sections.len(), 2);

    let daily = sla(
        &s,
        FROM,
        TO,
        &format!("group_by=cluster&period=day&tz={TZ}"),
    );
    let mut compared = BTreeMap::<&str, usize>::new();
    for c in &clusters {
        let name = c["group_key"].as_str().unwrap();
        let rows = &page.sections[name];
        let of = |kind: &str| rows.iter().filter(|r| r.kind == kind).collect::<Vec<_>>();

        // the cluster, and its change from October
        let summary = of("summary");
        check_rows(name, &summary, std::slice::from_ref(c));
        let prev = before.iter().find(|b| b["group_key"] == c["group_key"]);
        assert!(prev.is_some(), "{name} had October data");
        let change = change_pp(c, prev);
        let got: f64 = summary[0].cells["change_pp"].parse().unwrap();
        assert!(
            (got - change.as_f64().unwrap()).abs() < 1e-9,
            "{name} change"
        );

        // its device pools, with their own change from October
        let groups = sla(
            &s,
            FROM,
            TO,
            &format!("group_by=device_pool&cluster={name}"),
        );
        let prev_groups = sla(
            &s,
            PREV_FROM,
            FROM,
            &format!("group_by=device_pool&cluster={name}"),
        );
        check_rows(&format!("{name} pools"), &of("group"), &groups);
        for (r, g) in of("group").iter().zip(&groups) {
            let p = prev_groups
                .iter()
                .find(|b| b["group_key"] == g["group_key"]);
            match change_pp(g, p) {
                Value::Null => assert_eq!(r.cells["change_pp"], ""),
                v => {
                    let got: f64 = r.cells["change_pp"].parse().unwrap();
                    assert!((got - v.as_f64().unwrap()).abs() < 1e-9, "{} change", r.key);
                }
            }
        }

        // its daily bars: one per day with measured time, each the API's daily figure
        let bars = &page.bars[name][name];
        let want: Vec<(String, String)> = daily
            .iter()
            .filter(|d| d["group_key"] == c["group_key"] && !d["availability"].is_null())
            .map(|d| {
                (
                    local_day(d["window_start"].as_str().unwrap()),
                    d.raw["availability"].parse::<f64>().unwrap().to_string(),
                )
            })
            .collect();
        let got: Vec<(String, String)> = bars
            .iter()
            .map(|(d, v)| (d.clone(), v.parse::<f64>().unwrap().to_string()))
            .collect();
        assert_eq!(got, want, "{name} daily bars");
        assert_eq!(got.len(), 2, "1 and 2 November (Paris) hold data");
        for g in &groups {
            let key = g["group_key"].as_str().unwrap();
            assert!(
                page.bars[name].contains_key(key),
                "{name}: no chart for {key}"
            );
        }

        // its incidents
        let incidents: Vec<Rec> = api(&s, &format!("incidents?from={FROM}&to={TO}"))
            .into_iter()
            .filter(|i| i["cluster"] == c["group_key"])
            .collect();
        let shown = of("incident");
        assert_eq!(shown.len(), incidents.len(), "{name} incidents");
        for (r, i) in shown.iter().zip(&incidents) {
            assert_eq!(r.key, i["id"].as_str().unwrap());
            for f in [
                "started_at",
                "scope",
                "target",
                "cause",
                "devices_affected",
                "recovery_50_s",
                "recovery_90_s",
                "recovery_100_s",
                "failovers",
                "rehomes",
                "calls_active",
            ] {
                same(&format!("{name} incident {}", r.key), r, f, i);
            }
        }
        *compared.entry("incidents").or_default() += incidents.len();

        // its worst devices: the API's per-device rows, lowest availability first
        let mut devices: Vec<Rec> = sla(&s, FROM, TO, &format!("group_by=device&cluster={name}"))
            .into_iter()
            .filter(|d| d["availability"].as_f64().is_some_and(|a| a < 1.0))
            .collect();
        devices.sort_by(|a, b| {
            let (x, y) = (a["availability"].as_f64(), b["availability"].as_f64());
            x.partial_cmp(&y)
                .unwrap()
                .then(
                    b["budget_used_s"]
                        .as_f64()
                        .unwrap()
                        .total_cmp(&a["budget_used_s"].as_f64().unwrap()),
                )
                .then(a["group_key"].as_str().cmp(&b["group_key"].as_str()))
        });
        devices.truncate(10);
        let worst = of("device");
        assert_eq!(worst.len(), devices.len(), "{name} worst devices");
        for (r, d) in worst.iter().zip(&devices) {
            assert_eq!(r.key, d["group_key"].as_str().unwrap());
            for f in [
                "availability",
                "budget_used_s",
                "outages",
                "longest_outage_s",
                "unknown_s",
            ] {
                same(&format!("{name} worst {}", r.key), r, f, d);
            }
        }
        *compared.entry("worst").or_default() += worst.len();

        // the audit trail: the only window of the month excluded what the API excluded
        let excl = of("exclusion");
        let total: f64 = excl
            .iter()
            .map(|r| r.cells["excluded_s"].parse::<f64>().unwrap())
            .sum();
        assert!(
            (total - c["excluded_s"].as_f64().unwrap()).abs() < 1e-6,
            "{name} excluded"
        );
        for r in &excl {
            assert_eq!(r.cells["reason"], "CHG0042 SU upgrade");
            assert_eq!(r.cells["scope"], "node");
        }
        *compared.entry("exclusions").or_default() += excl.len();
    }
    // the scenario's November shows all three kinds of rows
    assert!(compared["incidents"] >= 2, "{compared:?}");
    assert_eq!(compared["exclusions"], 1, "{compared:?}");
    assert!(compared["worst"] >= 10, "{compared:?}");
}

#[test]
fn bad_report_parameters_are_named() {
    let s = Server::start(ServerConfig::default());
    for (q, field) in [
        ("month=2026-13", "month"),
        ("month=2026-11&tz=Mars%2FOlympus", "tz"),
        ("month=2026-11&group_by=building", "group_by"),
    ] {
        let a = get(&s.url(&format!("/api/v1/reports/sla?{q}")));
        assert_eq!(a.status, 400, "{q}");
        assert!(a.text().contains(field), "{q}: {}", a.text());
    }
}

/// Debian's Chromium.
fn chromium() -> Option<PathBuf> {
    callstate_testkit::tools::tool_or_skip(
        &["chromium", "chromium-browser", "google-chrome"],
        "Debian: apt-get install chromium",
    )
}

/// A proxy that records every request line sent to it and answers 404: with Chromium's
/// proxy set to it (loopback included), any fetch a page makes shows here.
fn recording_proxy() -> (String, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            // a connection closed before any request (Chromium opens spare ones to its proxy
            // ahead of need) fetched nothing
            if !line.trim().is_empty() {
                log.lock().unwrap().push(line.trim().to_string());
            }
            let mut c = c;
            let _ = c.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (addr, seen)
}

/// Chromium itself, whatever the page, opens connections to Google hosts at start (sign-in,
/// search preconnect, network time) that no flag of Debian's build turns off. These, and
/// whatever hosts the same Chromium contacts for an empty page (a newer build may add some),
/// are its own; every other request counts as the page's.
const CHROMIUM_OWN: [&str; 3] = [
    "accounts.google.com",
    "www.google.com",
    "clients2.google.com",
];

/// The host a proxied request line asks for (`CONNECT host:443 …`, `GET http://host/… …`).
fn host(line: &str) -> String {
    let target = line.split_whitespace().nth(1).unwrap_or_default();
    let rest = target.split_once("://").map_or(target, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    authority
        .rsplit_once(':')
        .map_or(authority, |(h, _)| h)
        .to_string()
}

/// The recorded requests that are not Chromium's own (`baseline`: hosts seen for an empty page).
fn page_requests(seen: &[String], baseline: &[String]) -> Vec<String> {
    seen.iter()
        .filter(|l| {
            let h = host(l);
            !CHROMIUM_OWN.contains(&h.as_str()) && !baseline.contains(&h)
        })
        .cloned()
        .collect()
}

/// Runs Chromium headless on `page` with `what` (`--screenshot=…`, `--print-to-pdf=…`),
/// every request going through `proxy`; bounded to 90 s.
fn render(chrome: &Path, page: &Path, proxy: &str, what: &[String], profile: &Path) {
    let mut child = Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            &format!("--user-data-dir={}", profile.display()),
            &format!("--proxy-server=http://{proxy}"),
            "--proxy-bypass-list=<-loopback>",
            "--disable-features=NetworkTimeServiceQuerying,PreconnectToSearch,NetworkPrediction",
            "--dns-prefetch-disable",
        ])
        .args(what)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium {what:?}: {status}");
            return;
        }
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("chromium {what:?} did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Pages of a PDF and their media boxes (Chromium writes page objects uncompressed).
fn pdf_pages(pdf: &[u8]) -> Vec<(f64, f64)> {
    let text = String::from_utf8_lossy(pdf);
    let mut out = Vec::new();
    let mut rest = &text[..];
    while let Some(i) = rest.find("/Type /Page") {
        rest = &rest[i + "/Type /Page".len()..];
        if rest.starts_with('s') {
            continue;
        }
        let obj_end = rest.find("endobj").unwrap_or(rest.len());
        let obj = &rest[..obj_end];
        let bx = obj.find("/MediaBox [").map(|k| {
            let inner = &obj[k + 11..];
            let inner = &inner[..inner.find(']').unwrap()];
            let v: Vec<f64> = inner
                .split_whitespace()
                .map(|x| x.parse().unwrap())
                .collect();
            (v[2] - v[0], v[3] - v[1])
        });
        out.push(bx.expect("a page with its MediaBox"));
    }
    out
}

#[test]
fn the_report_renders_in_chromium_to_png_and_a4_pdf_using_only_the_file() {
    assert_eq!(
        host("CONNECT fonts.googleapis.com:443 HTTP/1.1"),
        "fonts.googleapis.com"
    );
    assert_eq!(host("GET http://cdn.example/x.js HTTP/1.1"), "cdn.example");
    let Some(chrome) = chromium() else { return };
    let s = loaded();
    let html = report(&s);
    let clusters = parse(&html).sections.len();
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    std::fs::write(&page, &html).unwrap();
    let (proxy, seen) = recording_proxy();

    let png = dir.path().join("report.png");
    let pdf = dir.path().join("report.pdf");
    let profile = dir.path().join("profile");
    // what this Chromium contacts on its own: an empty page rendered the same way
    let blank = dir.path().join("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><html><body></body></html>").unwrap();
    let blank_png = dir.path().join("blank.png");
    let shot = [format!("--screenshot={}", blank_png.display())];
    render(&chrome, &blank, &proxy, &shot, &profile);
    let baseline: Vec<String> = seen.lock().unwrap().drain(..).map(|l| host(&l)).collect();
    render(
        &chrome,
        &page,
        &proxy,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1200,1600".into(),
        ],
        &profile,
    );
    render(
        &chrome,
        &page,
        &proxy,
        &[
            format!("--print-to-pdf={}", pdf.display()),
            "--no-pdf-header-footer".into(),
        ],
        &profile,
    );

    let png = std::fs::read(&png).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), (1200, 1600));
    assert!(
        png.len() > 30_000,
        "a blank screenshot is small: {} bytes",
        png.len()
    );

    let pdf = std::fs::read(&pdf).unwrap();
    assert!(pdf.starts_with(b"%PDF-"), "a PDF");
    let pages = pdf_pages(&pdf);
    // the cover, then each cluster from a new page; a cluster takes one to a few pages
    assert!(
        pages.len() > clusters && pages.len() <= 1 + 4 * clusters,
        "{} pages for {clusters} clusters",
        pages.len()
    );
    for (w, h) in &pages {
        assert!(
            (w - 595.3).abs() < 1.5 && (h - 841.9).abs() < 1.5,
            "not A4: {w} × {h}"
        );
    }
    let fetched = page_requests(&seen.lock().unwrap(), &baseline);
    assert!(fetched.is_empty(), "the report fetched: {fetched:?}");

    // the proxy does see what a page fetches: the same run on a page with one image
    let leaky = dir.path().join("leaky.html");
    std::fs::write(
        &leaky,
        html.replacen(
            "<body>",
            "<body><img src=\"http://report-assets.invalid/logo.png\"/>",
            1,
        ),
    )
    .unwrap();
    let shot = dir.path().join("leaky.png");
    render(
        &chrome,
        &leaky,
        &proxy,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=800,600".into(),
        ],
        &profile,
    );
    let seen = page_requests(&seen.lock().unwrap(), &baseline);
    assert!(
        seen.iter()
            .any(|l| l.contains("report-assets.invalid/logo.png")),
        "the proxy saw no request: {seen:?}"
    );
}
