//! `callstate sql` and `callstate state` through the binary, over a real log, against the
//! simulator's truth.

use std::process::{Command, Output};

use serde_json::Value;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_callstate"))
        .args(args)
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn sql(data: &str, q: &str) -> Value {
    json(&run(&["sql", q, "--data", data, "--format", "json"]))
}

/// A log under `tmp` of the simulated scenario `args` (its name first, then flags): its path.
fn simulated(tmp: &tempfile::TempDir, args: &[&str]) -> String {
    let d = tmp.path().join("d").to_str().unwrap().to_string();
    let out = run(&[&["simulate", "--scenario"], args, &["--data", &d]].concat());
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    d
}

#[test]
fn sql_and_state_answer_from_segments_and_tail_as_the_truth_says() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |n: &str| tmp.path().join(n).to_str().unwrap().to_string();
    let sim = run(&[
        "simulate",
        "--scenario",
        "node-failover",
        "--devices",
        "120",
        "--seed",
        "4",
        "--out",
        &p("e.ndjson"),
        "--truth",
        &p("t.json"),
    ]);
    assert!(sim.status.success());
    let truth: Value = serde_json::from_slice(&std::fs::read(p("t.json")).unwrap()).unwrap();
    // small segments: the answer needs both the Parquet segments and the WAL tail
    let ing = run(&[
        "ingest",
        "file",
        &p("e.ndjson"),
        "--data",
        &p("d"),
        "--segment-rows",
        "5000",
    ]);
    assert!(ing.status.success());
    let stats: Value =
        serde_json::from_slice(&run(&["log", "stats", "--data", &p("d")]).stdout).unwrap();
    assert!(
        stats["segments"].as_u64().unwrap() > 1 && stats["tail_events"].as_u64().unwrap() > 0,
        "{stats}"
    );

    let n = sql(&p("d"), "SELECT count(*) AS n FROM events");
    assert_eq!(n[0]["n"], stats["events"]);
    let per_kind = sql(
        &p("d"),
        "SELECT kind, count(*) AS n FROM events GROUP BY kind",
    );
    for row in per_kind.as_array().unwrap() {
        assert_eq!(stats["per_kind"][row["kind"].as_str().unwrap()], row["n"]);
    }

    // the state of every device at a few instants, via SQL over device_intervals
    for at in [
        "2026-11-24T09:59:00Z",
        "2026-11-24T10:00:30Z",
        "2026-11-24T10:25:00Z",
        "2026-11-24T18:00:00Z",
    ] {
        let rows = json(&run(&[
            "state",
            "--at",
            at,
            "--data",
            &p("d"),
            "--format",
            "json",
        ]));
        let rows = rows.as_array().unwrap();
        assert_eq!(
            rows.len(),
            truth["device_info"].as_object().unwrap().len(),
            "{at}"
        );
        for r in rows {
            let d = r["device"].as_str().unwrap();
            let iv = truth["devices"][d].as_array().unwrap();
            let want = iv
                .iter()
                .find(|i| i["from"].as_str().unwrap() <= at && at < i["to"].as_str().unwrap())
                .unwrap();
            assert_eq!(r["state"], want["state"], "{d} at {at}");
            assert_eq!(
                r.get("node").cloned().unwrap_or(Value::Null),
                want["node"],
                "{d} at {at}"
            );
            assert_eq!(r["home_node"], truth["device_info"][d]["home"], "{d}");
        }
    }

    // failovers and re-homes, by SQL
    let moves = sql(
        &p("d"),
        "SELECT movement, count(*) AS n FROM device_intervals WHERE movement IS NOT NULL GROUP BY movement ORDER BY movement",
    );
    assert_eq!(
        moves[0]["n"].as_u64().unwrap() as usize,
        truth["failovers"].as_array().unwrap().len()
    );
    assert_eq!(
        moves[1]["n"].as_u64().unwrap() as usize,
        truth["rehomes"].as_array().unwrap().len()
    );

    // a just-acknowledged event is visible at once (no roll in between)
    let one = tmp.path().join("one.ndjson");
    std::fs::write(&one, r#"{"source":"late-bridge","seq":1,"time":"2026-11-24T23:00:00Z","cluster":"CL1","kind":"device_out_of_service","device":"SEP000100000001","cause":"admin"}"#).unwrap();
    assert!(
        run(&["ingest", "file", one.to_str().unwrap(), "--data", &p("d")])
            .status
            .success()
    );
    let n2 = sql(&p("d"), "SELECT count(*) AS n FROM events");
    assert_eq!(n2[0]["n"].as_u64(), stats["events"].as_u64().map(|x| x + 1));
    let st = json(&run(&[
        "state",
        "--at",
        "2026-11-24T23:00:01Z",
        "--device",
        "SEP000100000001",
        "--data",
        &p("d"),
        "--format",
        "json",
    ]));
    assert_eq!(st[0]["state"], "out_of_service");
    assert_eq!(st[0]["cause"], "admin");
}

#[test]
fn bad_queries_and_unknown_devices_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let d = &simulated(&tmp, &["quiet-day", "--devices", "20", "--duration", "1h"]);
    let out = run(&["sql", "SELEC 1", "--data", d]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SELEC"));
    let out = run(&["sql", "SELECT nope FROM events", "--data", d]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
    let out = run(&[
        "state",
        "--at",
        "2026-11-24T00:30:00Z",
        "--device",
        "SEP-NOT-THERE",
        "--data",
        d,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not in the log"));
    let out = run(&["state", "--at", "yesterday", "--data", d]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));
    // before its first event a device is unknown
    let dev = sql(d, "SELECT min(device) AS d FROM device_intervals");
    let dev = dev[0]["d"].as_str().unwrap();
    let out = run(&[
        "state",
        "--at",
        "2026-11-23T23:00:00Z",
        "--device",
        dev,
        "--data",
        d,
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("unknown"));
}

#[test]
fn availability_sla_and_incidents_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |n: &str| tmp.path().join(n).to_str().unwrap().to_string();
    assert!(
        run(&[
            "simulate",
            "--scenario",
            "demo",
            "--devices",
            "200",
            "--seed",
            "9",
            "--data",
            &p("d"),
            "--truth",
            &p("t.json")
        ])
        .status
        .success()
    );
    let truth: Value = serde_json::from_slice(&std::fs::read(p("t.json")).unwrap()).unwrap();
    let day = [
        "--from",
        "2026-11-24T00:00:00Z",
        "--to",
        "1795564800000",
        "--data",
    ];

    let incidents = json(&run(&[
        &["incidents"],
        &day[..],
        &[&p("d"), "--format", "json"],
    ]
    .concat()));
    let want: Vec<&Value> = truth["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["devices"].as_array().unwrap().len() >= 5)
        .collect();
    assert_eq!(incidents.as_array().unwrap().len(), want.len());
    for (got, want) in incidents.as_array().unwrap().iter().zip(want) {
        assert_eq!(
            got["devices_affected"].as_u64().unwrap() as usize,
            want["devices"].as_array().unwrap().len()
        );
        assert_eq!(got["target"], want["target"]);
    }

    // per device type, seconds add up to the window for every device
    let av = json(&run(&[
        &["availability"],
        &day[..],
        &[&p("d"), "--group-by", "device_type", "--format", "json"],
    ]
    .concat()));
    let mut devices = 0;
    for g in av.as_array().unwrap() {
        let n = g["devices"].as_f64().unwrap();
        devices += n as usize;
        let total: f64 = [
            "in_service_s",
            "out_of_service_s",
            "unknown_s",
            "excluded_s",
        ]
        .iter()
        .map(|k| g[*k].as_f64().unwrap())
        .sum();
        assert!((total - n * 86_400.0).abs() < 1e-3, "{g}");
    }
    assert_eq!(devices, truth["device_info"].as_object().unwrap().len());

    // SLA with a targets file and monthly calendar windows in a time zone
    std::fs::write(
        p("sla.toml"),
        "default = 0.99\n[targets.cluster]\nCL1 = 0.9999999\n",
    )
    .unwrap();
    let sla = json(&run(&[
        &["sla"],
        &day[..],
        &[
            &p("d"),
            "--group-by",
            "cluster",
            "--period",
            "day",
            "--tz",
            "Asia/Kolkata",
            "--targets",
            &p("sla.toml"),
            "--format",
            "json",
        ],
    ]
    .concat()));
    let rows = sla.as_array().unwrap();
    assert_eq!(rows.len(), 2, "the UTC day spans two Kolkata days");
    assert_eq!(rows[0]["window_end"], "2026-11-24T18:30:00.000000Z");
    assert!(rows.iter().all(|r| r["target"] == 0.9999999));
    // the failovers of the day (all before 18:30 UTC) breach a 99.99999% target ...
    assert_eq!(rows[0]["met"], false, "{}", rows[0]);
    assert!(rows[0]["budget_remaining_s"].as_f64().unwrap() < 0.0);
    // ... and the evening, without outage, meets it
    assert_eq!(rows[1]["met"], true, "{}", rows[1]);
    assert_eq!(rows[1]["outages"], 0);
    assert_eq!(rows[1]["availability"], 1.0);
    let table = run(&[&["sla"], &day[..], &[&p("d"), "--group-by", "node"]].concat());
    assert!(String::from_utf8_lossy(&table.stdout).contains("budget_remaining_s"));
    let bad = run(&[&["sla"], &day[..], &[&p("d"), "--group-by", "building"]].concat());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected device, device_pool"));
}

/// A Parquet answer's batches, read back from the bytes `--format parquet` wrote.
fn parquet_batches(out: &Output) -> Vec<arrow::array::RecordBatch> {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parquet_reader(&out.stdout)
        .build()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn parquet_reader(
    bytes: &[u8],
) -> parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder<std::fs::File> {
    use std::io::Write;
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(bytes).unwrap();
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap()
}

fn csv_of(batches: &[arrow::array::RecordBatch]) -> String {
    let mut w = arrow::csv::WriterBuilder::new()
        .with_header(true)
        .build(Vec::new());
    for b in batches {
        w.write(b).unwrap();
    }
    String::from_utf8(w.into_inner()).unwrap()
}

#[test]
fn answers_as_parquet_hold_the_rows_of_the_text_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let d = &simulated(&tmp, &["node-failover", "--devices", "60", "--seed", "3"]);
    let text = |args: &[&str], format: &str| {
        let out = run(&[args, &["--data", d, "--format", format]].concat());
        assert!(
            out.status.success(),
            "stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let parquet = |args: &[&str]| {
        parquet_batches(&run(&[args, &["--data", d, "--format", "parquet"]].concat()))
    };

    // the derived intervals, every column and row, as the CSV answer has them
    let q = [
        "sql",
        "SELECT * FROM device_intervals ORDER BY device, valid_from, known_from, valid_to, state",
    ];
    let got = parquet(&q);
    let rows: usize = got.iter().map(|b| b.num_rows()).sum();
    assert!(rows > 60, "{rows} intervals");
    assert_eq!(csv_of(&got), text(&q, "csv"));
    assert!(got[0].schema().field_with_name("state").is_ok());

    // no row: the answer's columns all the same (Parquet's schema, CSV's header, JSON `[]`)
    let none_q = [
        "sql",
        "SELECT device, state FROM device_intervals WHERE device = 'none'",
    ];
    let none = run(&[&none_q[..], &["--data", d, "--format", "parquet"]].concat());
    assert!(none.status.success());
    let none = parquet_reader(&none.stdout);
    let names: Vec<&str> = none
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, ["device", "state"]);
    let rows: usize = none.build().unwrap().map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 0);
    assert_eq!(text(&none_q, "csv"), "device,state\n");
    assert_eq!(text(&none_q, "json"), "[]\n");

    // the reporting commands too
    let sla = [
        "sla",
        "--from",
        "2026-11-24T00:00:00Z",
        "--to",
        "2026-11-25T00:00:00Z",
        "--group-by",
        "device_pool",
    ];
    let got = parquet(&sla);
    assert!(got.iter().map(|b| b.num_rows()).sum::<usize>() > 0);
    assert_eq!(csv_of(&got), text(&sla, "csv"));
    // CSV of every column of the events, the list of a pool's nodes as text
    let events = text(&["sql", "SELECT * FROM events ORDER BY ingest_seq"], "csv");
    let n = sql(d, "SELECT count(*) AS n FROM events")[0]["n"]
        .as_u64()
        .unwrap();
    assert_eq!(events.lines().count() as u64, n + 1);
    let lists = text(
        &["sql", "SELECT nodes FROM events WHERE nodes IS NOT NULL"],
        "csv",
    );
    let line = lists.lines().nth(1).unwrap();
    assert!(line.starts_with("\"[") && line.ends_with("]\""), "{line}");
    let state = ["state", "--at", "2026-11-24T10:30:00Z"];
    assert_eq!(csv_of(&parquet(&state)), text(&state, "csv"));
}
