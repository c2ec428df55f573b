//! `callstate slo`: the generated Prometheus rules pass `promtool check rules` and unit tests
//! (`promtool test rules`) with series that must and must not fire, a maintenance window among
//! them; OpenSLO targets give the same rules as the TOML they mean; and a real Prometheus
//! scraping `callstate serve` records the same availability as the API over the same window.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Proc, Server, agent, bin, succeed};
use serde_json::Value;

/// A program of Debian's `prometheus` package (promtool, prometheus).
fn tool(name: &str) -> Option<PathBuf> {
    callstate_testkit::tools::tool_or_skip(&[name], "Debian: apt-get install prometheus")
}

fn run_ok(cmd: &mut Command) -> String {
    let out = succeed(cmd);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn rules(dir: &Path, targets: &Path, extra: &[&str]) -> PathBuf {
    let out = dir.join(format!(
        "{}.rules.yml",
        targets.file_stem().unwrap().to_string_lossy()
    ));
    run_ok(
        bin()
            .args(["slo", "rules", "--targets"])
            .arg(targets)
            .args(extra)
            .arg("--out")
            .arg(&out),
    );
    out
}

const TARGETS: &str = "default = 0.999\n[targets.device_pool]\nDP-HQ = 0.9995\n";

/// The same targets as OpenSLO documents.
const OPENSLO: &str = r#"apiVersion: openslo/v1
kind: SLO
metadata:
  name: fleet
  labels:
    callstate/scope: default
spec:
  service: cucm
  indicatorRef: device-availability
  budgetingMethod: Occurrences
  timeWindow:
    - duration: 30d
      isRolling: true
  objectives:
    - target: 0.999
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: hq
  labels:
    callstate/scope: device_pool
    callstate/group: DP-HQ
spec:
  service: cucm
  indicatorRef: device-availability
  budgetingMethod: Occurrences
  timeWindow:
    - duration: 30d
      isRolling: true
  objectives:
    - targetPercent: 99.95
"#;

const FAST: &str = "Objective {T} % over 30d: out-of-service device-time spends the error budget faster than it can last: above 14.4× over 1h and 5m, or 6× over 6h and 30m. Maintenance windows are excluded.";
const SLOW: &str = "Objective {T} % over 30d: out-of-service device-time spends the error budget faster than it can last: above 3× over 1d and 2h, or 1× over 3d and 6h. Maintenance windows are excluded.";

fn alert(name: &str, group: &str, objective: &str, target: &str) -> String {
    let text = if name.ends_with("Fast") { FAST } else { SLOW };
    let severity = if name.ends_with("Fast") {
        "page"
    } else {
        "ticket"
    };
    format!(
        r#"          - exp_labels:
              severity: {severity}
              objective: "{objective}"
              slo_target: "{target}"
              scope: device_pool
              group: {group}
            exp_annotations:
              summary: "device_pool {group} is burning its availability error budget"
              description: "{}"
"#,
        text.replace(
            "{T}",
            &format!("{}", target.parse::<f64>().unwrap() * 100.0)
        )
    )
}

/// Series (one sample a minute for two hours; the outage and the maintenance start at 60m):
/// DP-A loses half its devices (page and ticket fire, default objective 99.9 %); DP-HQ loses
/// 1 % (fires only because its own objective is 99.95 %: 1 % never burns 99.9 % at 14.4× in
/// an hour); DP-B stays healthy; DP-C's devices are all out of service but inside a
/// maintenance window, so their time is excluded and nothing fires.
fn unit_tests(rules: &Path) -> String {
    let series = |group: &str, state: &str, values: &str| {
        format!(
            "      - series: 'callstate_sli_device_seconds_total{{scope=\"device_pool\",group=\"{group}\",state=\"{state}\"}}'\n        values: '{values}'\n"
        )
    };
    let mut input = String::new();
    for (g, inn, out, excl) in [
        (
            "DP-A",
            "0+6000x59 360000+3000x60",
            "0x59 0+3000x60",
            "0x120",
        ),
        ("DP-HQ", "0+6000x59 360000+5940x60", "0x59 0+60x60", "0x120"),
        ("DP-B", "0+6000x120", "0x120", "0x120"),
        ("DP-C", "0+6000x59 360000x60", "0x120", "0x59 0+6000x60"),
    ] {
        input += &series(g, "in_service", inn);
        input += &series(g, "out_of_service", out);
        input += &series(g, "excluded", excl);
    }
    let firing = [
        ("DP-A", "device_pool", "0.999"),
        ("DP-HQ", "device_pool:DP-HQ", "0.9995"),
    ];
    let mut alerts = String::new();
    for name in [
        "CallstateErrorBudgetBurnFast",
        "CallstateErrorBudgetBurnSlow",
    ] {
        // before the outage nothing fires
        alerts +=
            &format!("      - eval_time: 55m\n        alertname: {name}\n        exp_alerts: []\n");
        alerts +=
            &format!("      - eval_time: 100m\n        alertname: {name}\n        exp_alerts:\n");
        for (g, o, t) in firing {
            alerts += &alert(name, g, o, t);
        }
    }
    format!(
        r#"rule_files:
  - {rules}
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
{input}    alert_rule_test:
{alerts}    promql_expr_test:
      - expr: callstate:sli_error_ratio:rate5m{{group="DP-A"}}
        eval_time: 100m
        exp_samples:
          - labels: 'callstate:sli_error_ratio:rate5m{{scope="device_pool",group="DP-A"}}'
            value: 0.5
      # in maintenance nothing is counted: the ratio is no number, no comparison holds, so
      # no alert can fire
      - expr: callstate:sli_error_ratio:rate5m{{group="DP-C"}} >= 0
        eval_time: 100m
        exp_samples: []
      - expr: callstate:sli_error_ratio:rate5m{{group="DP-C"}} >= 0
        eval_time: 55m
        exp_samples:
          - labels: 'callstate:sli_error_ratio:rate5m{{scope="device_pool",group="DP-C"}}'
            value: 0
"#,
        rules = rules.display()
    )
}

#[test]
fn generated_rules_pass_promtool_check_and_unit_tests() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let toml = tmp.path().join("targets.toml");
    std::fs::write(&toml, TARGETS).unwrap();
    let from_toml = rules(tmp.path(), &toml, &[]);
    let checked = run_ok(
        Command::new(&promtool)
            .arg("check")
            .arg("rules")
            .arg(&from_toml),
    );
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tests = tmp.path().join("tests.yml");
    std::fs::write(&tests, unit_tests(&from_toml)).unwrap();
    run_ok(Command::new(&promtool).arg("test").arg("rules").arg(&tests));

    // the unit tests can fail: with the override left out, DP-HQ no longer fires
    let plain = tmp.path().join("plain.toml");
    std::fs::write(&plain, "default = 0.999\n").unwrap();
    let plain_rules = rules(tmp.path(), &plain, &[]);
    let wrong = tmp.path().join("wrong.yml");
    std::fs::write(&wrong, unit_tests(&plain_rules)).unwrap();
    let out = Command::new(&promtool)
        .arg("test")
        .arg("rules")
        .arg(&wrong)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "promtool passed rules without DP-HQ's objective"
    );

    // OpenSLO documents meaning the same targets give the same rules
    let yaml = tmp.path().join("slos.yaml");
    std::fs::write(&yaml, OPENSLO).unwrap();
    let from_yaml = rules(tmp.path(), &yaml, &[]);
    assert_eq!(
        std::fs::read_to_string(&from_yaml).unwrap(),
        std::fs::read_to_string(&from_toml).unwrap()
    );
}

#[test]
fn bad_targets_are_refused_naming_the_document_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let yaml = tmp.path().join("slos.yaml");
    std::fs::write(
        &yaml,
        OPENSLO.replace("targetPercent: 99.95", "targetPercent: 199.5"),
    )
    .unwrap();
    let out = bin()
        .args(["slo", "rules", "--targets"])
        .arg(&yaml)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("document 2 (hq): spec.objectives[0].target: 1.995 is not between 0 and 1"),
        "{err}"
    );
}

/// Free loopback port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn post(url: &str, lines: &[String]) {
    let mut r = agent()
        .post(&format!("{url}/api/v1/events"))
        .header("Content-Type", "application/x-ndjson")
        .send(lines.join("\n"))
        .unwrap();
    let body = r.body_mut().read_to_string().unwrap();
    assert_eq!(r.status().as_u16(), 200, "{body}");
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

struct Feed {
    seq: u64,
}

impl Feed {
    fn event(&mut self, kind: &str, rest: &str) -> String {
        self.seq += 1;
        format!(
            r#"{{"source":"live-bridge","seq":{},"time":"{}","cluster":"CL9","kind":"{kind}"{rest}}}"#,
            self.seq,
            now_rfc3339()
        )
    }
    fn device(&mut self, n: usize, up: bool) -> String {
        let dev = format!(r#","device":"SEP9000000000{n:02}","node":"CL9-cucm1""#);
        if up {
            self.event(
                "device_in_service",
                &format!(r#"{dev},"device_type":"phone","device_pool":"CL9-DP-1","ctimanager":"CL9-cucm1""#),
            )
        } else {
            self.event(
                "device_out_of_service",
                &format!(r#"{dev},"cause":"node_failure""#),
            )
        }
    }
}

fn prom_query(prom: &str, q: &str, at: f64) -> Value {
    let mut r = agent()
        .get(&format!("{prom}/api/v1/query"))
        .query("query", q)
        .query("time", format!("{at:.3}"))
        .call()
        .unwrap();
    let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(v["status"], "success", "{q}: {v}");
    v["data"]["result"].clone()
}

#[test]
fn a_real_prometheus_scrape_records_the_apis_availability() {
    let Some(prometheus) = tool("prometheus") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let serve = Server::start({
        let mut c = bin();
        c.args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data);
        c
    });
    // ten phones in service; the SLO period is one minute so the test sees whole windows
    let mut feed = Feed { seq: 0 };
    let mut first = vec![feed.event("provider_in_service", r#","ctimanager":"CL9-cucm1""#)];
    first.extend((0..10).map(|n| feed.device(n, true)));
    post(&serve.url, &first);

    let rules_file = rules(
        tmp.path(),
        &{
            let t = tmp.path().join("t.toml");
            std::fs::write(&t, "default = 0.99\n").unwrap();
            t
        },
        &["--period", "1m"],
    );
    let port = free_port();
    let target = serve.url.trim_start_matches("http://");
    let config = tmp.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: callstate\n    static_configs:\n      - targets: ['{target}']\n",
            rules_file.display()
        ),
    )
    .unwrap();
    let _prom = Proc(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                tmp.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let prom = format!("http://127.0.0.1:{port}");

    // 15 s in, three phones go out of service; 40 s in, one comes back; heartbeats keep
    // the source from falling silent
    let start = Instant::now();
    let mut step = 0;
    while start.elapsed() < Duration::from_secs(80) {
        let s = start.elapsed().as_secs();
        if step == 0 && s >= 15 {
            post(
                &serve.url,
                &(0..3).map(|n| feed.device(n, false)).collect::<Vec<_>>(),
            );
            step = 1;
        } else if step == 1 && s >= 40 {
            post(&serve.url, &[feed.device(0, true)]);
            step = 2;
        }
        if s.is_multiple_of(20) {
            post(&serve.url, &[feed.event("collector_heartbeat", "")]);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(step, 2);

    let at = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let got = prom_query(
        &prom,
        "callstate:sli_availability:ratio_rate1m{scope=\"cluster\"}",
        at,
    );
    let series = got.as_array().unwrap();
    assert_eq!(series.len(), 1, "{got}");
    assert_eq!(series[0]["metric"]["group"], "CL9");
    // the recording evaluated at `t` covers [t - 1m, t)
    let t = series[0]["value"][0].as_f64().unwrap();
    let prom_availability: f64 = series[0]["value"][1].as_str().unwrap().parse().unwrap();
    let ms = |x: f64| ((x * 1000.0).round() as i64).to_string();
    let mut r = agent()
        .get(&format!(
            "{}/api/v1/sla?from={}&to={}&group_by=cluster",
            serve.url,
            ms(t - 60.0),
            ms(t)
        ))
        .call()
        .unwrap();
    let api: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    let api_availability = api[0]["availability"].as_f64().unwrap();
    // three of ten out for 25 s, two for the rest: well below 1
    assert!(api_availability < 0.9, "{api}");
    // one scrape (1 s of 60) either side is the resolution of the recording
    assert!(
        (prom_availability - api_availability).abs() < 0.01,
        "Prometheus {prom_availability} vs API {api_availability} over [{}, {t})",
        t - 60.0
    );
    // the counters never reset across scrapes
    let resets = prom_query(
        &prom,
        "sum(resets(callstate_sli_device_seconds_total[2m]))",
        at,
    );
    assert_eq!(resets[0]["value"][1], "0", "{resets}");
    // and the burn rate the API answers for the same window is the recording's error ratio
    // over the budget
    let mut r = agent()
        .get(&format!(
            "{}/api/v1/slo/burn?window=1m&scope=cluster&at={}",
            serve.url,
            ms(t)
        ))
        .call()
        .unwrap();
    let burn: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    let b = burn[0]["burn_rate"].as_f64().unwrap();
    let budget = 1.0 - burn[0]["target"].as_f64().unwrap();
    assert!(
        (b - (1.0 - api_availability) / budget).abs() < 1e-6,
        "{burn}"
    );
    eprintln!(
        "availability over [{}, {t}): Prometheus {prom_availability}, API {api_availability}",
        t - 60.0
    );
    assert!(serve.stop().success());
}

/// The page without its "Generated …" instant.
fn undated(html: &str) -> String {
    let i = html.find(" Generated ").expect("a generation time");
    let j = i + html[i..].find(" UTC.").unwrap();
    format!("{}{}", &html[..i], &html[j..])
}

#[test]
fn the_report_command_writes_the_page_the_server_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    succeed(
        bin()
            .args([
                "simulate",
                "--scenario",
                "demo",
                "--devices",
                "300",
                "--data",
            ])
            .arg(&data),
    );
    let out = tmp.path().join("report.html");
    let args = [
        "--month",
        "2026-11",
        "--tz",
        "America/New_York",
        "--group-by",
        "node",
    ];
    let r = succeed(
        bin()
            .arg("report")
            .args(args)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(&out),
    );
    assert!(String::from_utf8_lossy(&r.stderr).contains("1 cluster(s) written"));
    let file = std::fs::read_to_string(&out).unwrap();
    assert!(file.contains("<section class=\"cluster\" data-cluster=\"CL1\">"));
    assert!(
        file.contains("CHG0042 CUCM SU upgrade"),
        "the maintenance window's reason"
    );

    let serve = Server::start({
        let mut c = bin();
        c.args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data);
        c
    });
    let mut a = agent()
        .get(&format!(
            "{}/api/v1/reports/sla?month=2026-11&tz=America%2FNew_York&group_by=node",
            serve.url
        ))
        .call()
        .unwrap();
    assert_eq!(a.status().as_u16(), 200);
    let page = a
        .body_mut()
        .with_config()
        .limit(1 << 26)
        .read_to_string()
        .unwrap();
    assert_eq!(undated(&page), undated(&file));
    assert!(serve.stop().success());

    // bad arguments are named
    let e = bin()
        .args([
            "report", "--month", "2026-11", "--period", "week", "--out", "-", "--data",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).contains("--period"));
}
