//! `callstate ingest file` and `callstate log stats`, driven through the real binary.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use callstate_log::Snapshot;
use callstate_schemas::Event;
use callstate_sim::synthetic;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_callstate"))
}

fn t0() -> DateTime<Utc> {
    "2026-11-24T08:00:00Z".parse().unwrap()
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

/// `callstate ingest file INPUT --data DATA EXTRA...`.
fn ingest(input: &Path, data: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "ingest",
        "file",
        input.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(&args)
}

fn summary(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {stdout:?} stderr {:?}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn stored_events(dir: &Path) -> Vec<Event> {
    let mut s = Snapshot::load(dir).unwrap().stored_events().unwrap();
    s.sort_by_key(|e| e.ingest_seq);
    s.into_iter().map(|e| e.event).collect()
}

fn rejects(path: &str) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// An expected reject: line, field, a fragment of the reason.
type ExpectedReject = (u64, Option<&'static str>, &'static str);

/// A file with valid events and one line of every malformed class; returns the bytes, the
/// valid events and the expected rejects as (line, field, reason fragment).
fn mixed_input() -> (Vec<u8>, Vec<Event>, Vec<ExpectedReject>) {
    let good = synthetic::events(20, 5, t0());
    let mut lines: Vec<Vec<u8>> = good.iter().map(|e| e.to_json().into_bytes()).collect();
    let base = json!({"source": "bridge-x", "seq": 1, "time": "2026-11-24T09:00:00Z",
        "cluster": "CL1", "kind": "device_in_service", "device": "SEPBAD",
        "device_type": "phone", "node": "cucm-pub"});
    let with = |k: &str, v: Value| {
        let mut m = base.clone();
        m[k] = v;
        serde_json::to_vec(&m).unwrap()
    };
    let without = |k: &str| {
        let mut m = base.clone();
        m.as_object_mut().unwrap().remove(k);
        serde_json::to_vec(&m).unwrap()
    };
    let future = (Utc::now() + Duration::hours(30)).to_rfc3339();
    // over 1 MiB
    let oversized = serde_json::to_vec(&with("note", json!("x".repeat(1 << 20)))).unwrap();
    let bad: Vec<(Vec<u8>, Option<&'static str>, &'static str)> = vec![
        (
            b"{\"source\": \"bridge-x\", \"seq\": ".to_vec(),
            None,
            "invalid JSON",
        ),
        (without("device"), Some("device"), "missing"),
        (
            with("kind", json!("device_teleported")),
            Some("kind"),
            "unknown kind",
        ),
        (
            with("seq", json!("seven")),
            Some("seq"),
            "expected a non-negative integer",
        ),
        (
            with("time", json!("24/11/2026 09:00")),
            Some("time"),
            "RFC 3339",
        ),
        (with("time", json!(future)), Some("time"), "future"),
        (oversized, None, "longer than"),
        (
            b"{\"source\": \"b\xff\xfe\"}".to_vec(),
            None,
            "invalid UTF-8",
        ),
        (
            with("device_type", json!("fax")),
            Some("device_type"),
            "expected one of",
        ),
    ];
    let mut expected = Vec::new();
    // interleave: a bad line after every other good line, with blank lines in between
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut bad_iter = bad.into_iter();
    for (i, l) in lines.drain(..).enumerate() {
        out.push(l);
        if i % 2 == 1 {
            if let Some((b, field, why)) = bad_iter.next() {
                out.push(b);
                expected.push((out.len() as u64, field, why));
            } else {
                out.push(b"   ".to_vec());
            }
        }
    }
    out.push(Vec::new());
    let mut bytes = out.join(&b"\n"[..]);
    bytes.push(b'\n');
    (bytes, good, expected)
}

fn check_mixed(
    dir: &Path,
    out: &Output,
    good: &[Event],
    expected: &[ExpectedReject],
    duplicates: u64,
) {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = summary(out);
    assert_eq!(s["accepted"], good.len());
    assert_eq!(s["duplicates"], duplicates);
    assert_eq!(s["rejected"], expected.len());
    assert!(s["empty_lines"].as_u64().unwrap() >= 2, "{s}");
    let rj = rejects(s["rejects_file"].as_str().unwrap());
    assert_eq!(rj.len(), expected.len());
    for (r, (line, field, why)) in rj.iter().zip(expected) {
        assert_eq!(r["line"], *line, "{r}");
        assert_eq!(r["field"].as_str(), *field, "{r}");
        assert!(
            r["error"].as_str().unwrap().contains(why),
            "line {line}: {r}"
        );
        assert!(!r["input"].as_str().unwrap().is_empty());
    }
    assert_eq!(stored_events(dir), good);
}

#[test]
fn every_malformed_class_is_rejected_with_line_field_and_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let (bytes, good, expected) = mixed_input();
    let input = tmp.path().join("mixed.ndjson");
    std::fs::write(&input, &bytes).unwrap();
    let data = tmp.path().join("data");
    let out = ingest(&input, &data, &[]);
    check_mixed(&data, &out, &good, &expected, 0);
    // the oversized line's reject keeps only its start
    let s = summary(&out);
    let big = rejects(s["rejects_file"].as_str().unwrap())
        .into_iter()
        .find(|r| r["error"].as_str().unwrap().contains("longer than"))
        .unwrap();
    assert!(big["input"].as_str().unwrap().len() < 1024);

    // ingesting again: every valid event is a duplicate, and a new rejects file is written
    let again = ingest(&input, &data, &[]);
    let s2 = summary(&again);
    assert_eq!(
        (s2["accepted"].as_u64(), s2["duplicates"].as_u64()),
        (Some(0), Some(good.len() as u64))
    );
    assert_ne!(s2["rejects_file"], s["rejects_file"]);
    assert_eq!(
        rejects(s["rejects_file"].as_str().unwrap()).len(),
        expected.len()
    );
}

#[test]
fn many_small_blocks_on_many_parsers_keep_input_order_lines_and_conflicts() {
    // 3-line blocks on 4 parser threads finish out of order; what is stored, and every
    // reject's line, must be as if the file were read line by line.
    let tmp = tempfile::tempdir().unwrap();
    let (mut bytes, good, mut expected) = mixed_input();
    // a conflict in a later block: the first good event's key with other content
    let mut changed = good[0].clone();
    changed.cluster = "CL-OTHER".into();
    let conflict_line = changed.to_json();
    let line_no = bytes.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    bytes.extend_from_slice(conflict_line.as_bytes());
    bytes.push(b'\n');
    // and a re-delivery of an event in the same run: a duplicate, not a conflict
    bytes.extend_from_slice(good[3].to_json().as_bytes());
    bytes.push(b'\n');
    expected.push((line_no, Some("seq"), "conflict"));
    let input = tmp.path().join("mixed.ndjson");
    std::fs::write(&input, &bytes).unwrap();
    let data = tmp.path().join("data");
    let out = ingest(&input, &data, &["--batch-lines", "3", "--parsers", "4"]);
    let s = summary(&out);
    let rj = rejects(s["rejects_file"].as_str().unwrap());
    let last = rj.last().unwrap();
    assert_eq!(
        last["input"], conflict_line,
        "the reject keeps the line as read"
    );
    assert!(last["error"].as_str().unwrap().contains(&good[0].source));
    check_mixed(&data, &out, &good, &expected, 1);
}

#[test]
fn gzip_crlf_and_stdin_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let (bytes, good, expected) = mixed_input();
    // gzip, detected from its magic bytes whatever the file name
    let gz = tmp.path().join("events.data");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&bytes).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    let data = tmp.path().join("gz");
    let out = ingest(&gz, &data, &[]);
    check_mixed(&data, &out, &good, &expected, 0);

    // stdin, CRLF line ends, no newline after the last line
    let crlf: Vec<u8> = String::from_utf8_lossy(&bytes)
        .replace('\n', "\r\n")
        .trim_end()
        .into();
    let data = tmp.path().join("stdin");
    let mut child = bin()
        .args(["ingest", "file", "-", "--data", data.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // the invalid UTF-8 line was made lossy above; it is still rejected, as bad JSON/fields
    child.stdin.take().unwrap().write_all(&crlf).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let s = summary(&out);
    assert_eq!(s["accepted"], good.len());
    assert_eq!(s["rejected"], expected.len());
    assert_eq!(stored_events(&data), good);
}

#[test]
fn exits_non_zero_only_on_io_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ingest(Path::new("/nonexistent/events.ndjson"), tmp.path(), &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open"));
    // a data directory that cannot be created
    let file = tmp.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let input = tmp.path().join("in.ndjson");
    std::fs::write(&input, "not json at all\n").unwrap();
    let out = ingest(&input, &file.join("d"), &[]);
    assert!(!out.status.success());
    // a truncated gzip stream is an input I/O failure; what came before it is kept
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    synthetic::write_ndjson(&mut enc, 2_000, 10, t0()).unwrap();
    let gz = enc.finish().unwrap();
    let cut = tmp.path().join("cut.gz");
    std::fs::write(&cut, &gz[..gz.len() / 2]).unwrap();
    let data = tmp.path().join("cutdata");
    let out = ingest(&cut, &data, &["--batch-lines", "100"]);
    assert!(!out.status.success());
    let s = summary(&out);
    let kept = stored_events(&data);
    assert_eq!(kept.len() as u64, s["accepted"].as_u64().unwrap());
    assert_eq!(kept, synthetic::events(kept.len() as u64, 10, t0()));
    // only rejects: exit 0
    let only_bad = ingest(&input, &tmp.path().join("d2"), &[]);
    assert!(only_bad.status.success());
    assert_eq!(summary(&only_bad)["rejected"], 1);
}

#[test]
fn one_million_events_and_log_stats_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("1m.ndjson");
    let n = 1_000_000u64;
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
        synthetic::write_ndjson(&mut w, n, 5_000, t0()).unwrap();
    }
    let data = tmp.path().join("data");
    let out = ingest(&input, &data, &["--segment-rows", "300000"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = summary(&out);
    assert_eq!(s["accepted"], n);
    assert_eq!(s["rejected"], 0);
    let stats = run(&["log", "stats", "--data", data.to_str().unwrap()]);
    assert!(stats.status.success());
    let st: Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(st["events"], n);
    assert_eq!(
        st["per_kind"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>(),
        n
    );
    assert!(st["segments"].as_u64().unwrap() >= 3, "{st}");
    assert_eq!(st["min_time"], "2026-11-24T08:00:00.000000Z");
    let last = synthetic::event(n - 1, 5_000, t0());
    assert_eq!(
        st["max_time"].as_str(),
        Some(callstate_schemas::format_time(&last.time).as_str())
    );
}

/// Kills an ingest child with SIGKILL mid-stream, several times, restarting each time with the
/// whole stream: every acknowledged event is present exactly once after each kill, and the
/// final log holds the stream exactly once.
#[test]
fn sigkill_mid_stream_loses_nothing_acknowledged_and_applies_nothing_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let n = 40_000u64;
    let stream = synthetic::events(n, 300, t0());
    let mut bytes = Vec::new();
    synthetic::write_ndjson(&mut bytes, n, 300, t0()).unwrap();
    let bytes = std::sync::Arc::new(bytes);

    for kill_after in [3_000u64, 11_000, 26_000, 37_000, u64::MAX] {
        let mut child = bin()
            .args([
                "ingest",
                "file",
                "-",
                "--data",
                data.to_str().unwrap(),
                "--print-acks",
                "--batch-lines",
                "700",
                "--segment-rows",
                "2500",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let b = bytes.clone();
        let writer = std::thread::spawn(move || {
            for chunk in b.chunks(64 * 1024) {
                if stdin.write_all(chunk).is_err() {
                    return;
                }
            }
        });
        let mut acked = 0u64;
        let mut killed = false;
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
            if let Some(t) = v["acked_through_line"].as_u64() {
                acked = t;
                if t >= kill_after {
                    child.kill().unwrap(); // SIGKILL
                    killed = true;
                    break;
                }
            }
        }
        let status = child.wait().unwrap();
        writer.join().unwrap();
        let stored = stored_events(&data);
        let mut keys: Vec<(String, u64)> =
            stored.iter().map(|e| (e.source.clone(), e.seq)).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), stored.len(), "an event was applied twice");
        // every acknowledged line is stored, and everything stored came from the stream
        let stored_set: std::collections::HashSet<String> =
            stored.iter().map(Event::to_json).collect();
        for (i, e) in stream[..acked as usize].iter().enumerate() {
            assert!(
                stored_set.contains(&e.to_json()),
                "acknowledged line {} is missing",
                i + 1
            );
        }
        let in_stream: std::collections::HashSet<_> = stream.iter().map(|e| e.to_json()).collect();
        assert!(stored_set.iter().all(|e| in_stream.contains(e)));
        if kill_after != u64::MAX {
            assert!(killed && acked < n, "the child was not killed mid-stream");
        }
        assert!(
            stored.len() as u64 >= acked,
            "acked {acked}, stored {}",
            stored.len()
        );
        if !killed {
            assert!(status.success());
            assert_eq!(stored.len() as u64, n);
            let mut sorted = stored.clone();
            sorted.sort_by_key(|e| e.time);
            assert_eq!(sorted, stream);
        }
    }
}
