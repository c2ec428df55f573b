//! The v1 contract: the Rust validator and the checked-in JSON Schema agree, for every kind
//! and field, on what is accepted and rejected; errors name the field; events round-trip
//! through JSON and Arrow.

use callstate_schemas::json_schema::schema_files;
use callstate_schemas::spec::{ENVELOPE, FieldSpec, FieldType, KINDS, KindSpec};
use callstate_schemas::{Event, EventBatchBuilder, decode_batch, events_schema};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use std::path::PathBuf;

fn now() -> DateTime<Utc> {
    "2026-11-24T12:00:00Z".parse().unwrap()
}

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("json")
}

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(schema_dir().join("event.v1.schema.json")).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

fn sample(f: &FieldSpec) -> Value {
    match (f.name, f.ty) {
        ("start", _) => json!("2026-11-24T01:00:00Z"),
        ("end", _) => json!("2026-11-24T03:30:00.5+02:00"),
        ("time", _) => json!("2026-11-24T10:00:00.123456+01:00"),
        ("seq", _) => json!(42),
        (_, FieldType::Str) => json!(format!("x-{}", f.name)),
        (_, FieldType::U64) => json!(7),
        (_, FieldType::Time) => json!("2026-11-24T10:00:00Z"),
        (_, FieldType::Bool) => json!(true),
        (_, FieldType::StrList) => json!(["cucm-pub", "cucm-sub1"]),
        (_, FieldType::Enum(v)) | (_, FieldType::OpenEnum(v)) => json!(v[0]),
    }
}

fn wrong_type(f: &FieldSpec) -> Value {
    match f.ty {
        FieldType::U64 => json!("42"),
        FieldType::Bool => json!("yes"),
        FieldType::StrList => json!("cucm-pub"),
        _ => json!(42),
    }
}

/// A full event of `kind` with every field (optional ones too).
fn full(k: &KindSpec) -> Map<String, Value> {
    let mut m = Map::new();
    for f in ENVELOPE {
        m.insert(f.name.into(), sample(f));
    }
    m.insert("kind".into(), json!(k.kind.as_str()));
    for f in k.fields {
        m.insert(f.name.into(), sample(f));
    }
    m
}

fn rust_accepts(m: &Map<String, Value>) -> Result<Event, callstate_schemas::ValidationError> {
    Event::from_json(&serde_json::to_string(m).unwrap(), now())
}

fn all_fields(k: &KindSpec) -> Vec<&'static FieldSpec> {
    ENVELOPE.iter().chain(k.fields).collect()
}

#[test]
fn checked_in_schema_files_match_the_model() {
    for (name, text) in schema_files() {
        let path = schema_dir().join(name);
        if std::env::var_os("CALLSTATE_UPDATE_SCHEMAS").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run with CALLSTATE_UPDATE_SCHEMAS=1",
                path.display()
            )
        });
        assert_eq!(
            on_disk, text,
            "{name} is stale: run with CALLSTATE_UPDATE_SCHEMAS=1"
        );
    }
}

#[test]
fn every_kind_full_event_is_accepted_by_both_and_round_trips() {
    let v = validator();
    for k in KINDS {
        let m = full(k);
        let e = rust_accepts(&m).unwrap_or_else(|err| panic!("{}: {err}", k.kind));
        assert_eq!(e.kind(), k.kind);
        assert!(
            e.extra.is_none(),
            "{}: no field should fall into extra",
            k.kind
        );
        assert!(v.is_valid(&Value::Object(m.clone())), "{}", k.kind);
        // JSON round trip: re-serialized event parses to the same event, and carries every field.
        let json = e.to_json();
        let again = Event::from_json(&json, now()).unwrap();
        assert_eq!(again, e);
        let back: Map<String, Value> = serde_json::from_str(&json).unwrap();
        let mut keys: Vec<_> = back.keys().cloned().collect();
        let mut want: Vec<_> = m.keys().cloned().collect();
        keys.sort();
        want.sort();
        assert_eq!(keys, want, "{}", k.kind);
    }
}

#[test]
fn missing_required_fields_are_rejected_by_both_naming_the_field() {
    let v = validator();
    for k in KINDS {
        for f in all_fields(k) {
            let mut m = full(k);
            m.remove(f.name);
            let rust = rust_accepts(&m);
            let schema_ok = v.is_valid(&Value::Object(m.clone()));
            if f.required {
                let err = rust.expect_err(&format!("{} without {}", k.kind, f.name));
                assert_eq!(err.field.as_deref(), Some(f.name), "{err}");
                assert!(!schema_ok, "schema accepted {} without {}", k.kind, f.name);
                // null counts as absent
                m.insert(f.name.into(), Value::Null);
                assert_eq!(rust_accepts(&m).unwrap_err().field.as_deref(), Some(f.name));
                assert!(!v.is_valid(&Value::Object(m)));
            } else {
                rust.unwrap_or_else(|e| panic!("{} without {}: {e}", k.kind, f.name));
                assert!(schema_ok);
                m.insert(f.name.into(), Value::Null);
                rust_accepts(&m).unwrap();
                assert!(v.is_valid(&Value::Object(m)));
            }
        }
    }
}

#[test]
fn wrong_types_and_values_are_rejected_by_both_naming_the_field() {
    let v = validator();
    for k in KINDS {
        for f in all_fields(k) {
            let mut bad_values = vec![wrong_type(f)];
            match f.ty {
                FieldType::Str | FieldType::OpenEnum(_) => bad_values.push(json!("  ")),
                FieldType::Enum(_) => bad_values.push(json!("no_such_value")),
                FieldType::Time => bad_values.push(json!("2026-11-24 10:00")),
                FieldType::U64 => bad_values.extend([json!(-1), json!(1.5)]),
                FieldType::StrList => bad_values.extend([json!([]), json!(["a", 3])]),
                FieldType::Bool => {}
            }
            if f.name == "kind" {
                bad_values = vec![json!(42), json!("no_such_kind")];
            }
            for bad in bad_values {
                let mut m = full(k);
                m.insert(f.name.into(), bad.clone());
                let err = rust_accepts(&m).expect_err(&format!("{}.{} = {bad}", k.kind, f.name));
                assert_eq!(
                    err.field.as_deref().map(|s| s.split('[').next().unwrap()),
                    Some(f.name),
                    "{err}"
                );
                assert!(
                    !v.is_valid(&Value::Object(m)),
                    "schema accepted {}.{} = {bad}",
                    k.kind,
                    f.name
                );
            }
        }
    }
}

#[test]
fn unknown_fields_and_other_kinds_fields_are_kept_in_extra() {
    let v = validator();
    let mut m = full(
        KINDS
            .iter()
            .find(|k| k.kind.as_str() == "node_down")
            .unwrap(),
    );
    m.insert("zeta".into(), json!({"b": 1, "a": [1, 2]}));
    m.insert("device".into(), json!("SEP001122334455"));
    let e = rust_accepts(&m).unwrap();
    assert_eq!(
        e.extra.as_deref(),
        Some(r#"{"device":"SEP001122334455","zeta":{"a":[1,2],"b":1}}"#)
    );
    assert!(v.is_valid(&Value::Object(m)));
    // extra survives serialization
    let back: Value = serde_json::from_str(&e.to_json()).unwrap();
    assert_eq!(back["zeta"]["a"], json!([1, 2]));
}

#[test]
fn whole_line_errors() {
    for (text, want) in [
        ("{\"source\":", "invalid JSON"),
        ("[1,2]", "expected a JSON object"),
        ("42", "expected a JSON object"),
        ("not json", "invalid JSON"),
    ] {
        let err = Event::from_json(text, now()).unwrap_err();
        assert!(err.field.is_none());
        assert!(err.reason.contains(want), "{text}: {err}");
    }
    let dup = r#"{"source":"b","seq":1,"seq":2,"time":"2026-11-24T10:00:00Z","cluster":"c","kind":"collector_heartbeat"}"#;
    assert_eq!(
        Event::from_json(dup, now()).unwrap_err().field.as_deref(),
        Some("seq")
    );
}

#[test]
fn time_rules() {
    let line = |t: &str| {
        format!(
            r#"{{"source":"b","seq":1,"time":"{t}","cluster":"c","kind":"collector_heartbeat"}}"#
        )
    };
    // offset normalized to UTC, microseconds kept, nanoseconds truncated
    let e = Event::from_json(&line("2026-11-24T11:00:00.123456789+01:00"), now()).unwrap();
    assert_eq!(
        callstate_schemas::format_time(&e.time),
        "2026-11-24T10:00:00.123456Z"
    );
    // the same instant written with another offset is the same content
    let e2 = Event::from_json(&line("2026-11-24T10:00:00.123456Z"), now()).unwrap();
    assert_eq!(e.content_hash(), e2.content_hash());
    // 23 h ahead is fine, 25 h ahead is rejected
    Event::from_json(&line("2026-11-25T11:00:00Z"), now()).unwrap();
    let err = Event::from_json(&line("2026-11-25T13:00:00Z"), now()).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("time"));
    assert!(err.reason.contains("future"), "{err}");
    for bad in ["2026-11-24T10:00:00", "yesterday", "2026-13-01T00:00:00Z"] {
        let err = Event::from_json(&line(bad), now()).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("time"), "{bad}: {err}");
    }
}

#[test]
fn maintenance_window_end_must_follow_start() {
    let k = KINDS
        .iter()
        .find(|k| k.kind.as_str() == "maintenance_window")
        .unwrap();
    let mut m = full(k);
    m.insert("end".into(), m["start"].clone());
    assert_eq!(rust_accepts(&m).unwrap_err().field.as_deref(), Some("end"));
}

#[test]
fn content_hash_tells_duplicates_from_conflicts() {
    let k = KINDS
        .iter()
        .find(|k| k.kind.as_str() == "device_in_service")
        .unwrap();
    let m = full(k);
    let mut reordered: Vec<(String, Value)> = m.clone().into_iter().collect();
    reordered.reverse();
    let text: String = format!(
        "{{{}}}",
        reordered
            .iter()
            .map(|(k, v)| format!("{}:{}", json!(k), v))
            .collect::<Vec<_>>()
            .join(" , ")
    );
    let a = rust_accepts(&m).unwrap();
    let b = Event::from_json(&text, now()).unwrap();
    assert_eq!(a.content_hash(), b.content_hash());
    for field in ["node", "device_pool", "source", "cluster", "time"] {
        let mut changed = m.clone();
        let v = if field == "time" {
            json!("2026-11-24T10:00:01Z")
        } else {
            json!("other")
        };
        changed.insert(field.into(), v);
        assert_ne!(
            rust_accepts(&changed).unwrap().content_hash(),
            a.content_hash(),
            "{field}"
        );
    }
    let mut with_extra = m.clone();
    with_extra.insert("note".into(), json!("x"));
    assert_ne!(
        rust_accepts(&with_extra).unwrap().content_hash(),
        a.content_hash()
    );
}

#[test]
fn every_kind_round_trips_through_arrow() {
    let t0: DateTime<Utc> = "2026-11-24T12:00:00Z".parse().unwrap();
    let mut events = Vec::new();
    for k in KINDS {
        events.push(rust_accepts(&full(k)).unwrap());
        // and a minimal one, with only the required fields, plus an unknown field
        let mut m = full(k);
        for f in k.fields.iter().filter(|f| !f.required) {
            m.remove(f.name);
        }
        m.insert("vendor".into(), json!({"x": 1}));
        events.push(rust_accepts(&m).unwrap());
    }
    let mut b = EventBatchBuilder::with_capacity(4);
    for (n, e) in events.iter().enumerate() {
        b.append(e, 100 + n as u64, t0, e.content_hash());
    }
    let batch = b.finish();
    assert_eq!(batch.schema(), events_schema());
    assert_eq!(batch.num_rows(), events.len());
    let back = decode_batch(&batch).unwrap();
    for (n, (s, e)) in back.iter().zip(&events).enumerate() {
        assert_eq!(&s.event, e);
        assert_eq!(s.ingest_seq, 100 + n as u64);
        assert_eq!(s.ingest_time, t0);
        assert_eq!(s.content_hash, e.content_hash());
    }
}

#[test]
fn fast_time_format_matches_chrono() {
    let mut t: DateTime<Utc> = "1999-12-31T23:59:59.999999Z".parse().unwrap();
    for i in 0..5_000i64 {
        t += chrono::Duration::microseconds(i * 7_919_813_377 + 1);
        assert_eq!(
            callstate_schemas::format_time(&t),
            t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        );
    }
}

/// The content hash is stored with every event, so its definition must never drift: XXH3-64
/// of the tagged stream documented on `EventView::content_hash`, fed here piece by piece to a
/// streaming hasher (an implementation independent of the one-shot buffer the code uses).
fn streamed_hash(e: &Event) -> u64 {
    use callstate_schemas::event::FieldValue;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut put = |tag: u8, bytes: &[u8]| {
        h.update(&[tag]);
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    put(0, e.source.as_bytes());
    put(1, &e.seq.to_le_bytes());
    put(2, &e.time.timestamp_micros().to_le_bytes());
    put(3, e.cluster.as_bytes());
    let f = e.body.fields();
    put(4, f.kind.as_str().as_bytes());
    f.for_each_value(|i, _, v| match v {
        FieldValue::Str(s) => put(16 + i as u8, s.as_bytes()),
        FieldValue::Bool(b) => put(16 + i as u8, &[b as u8]),
        FieldValue::Time(t) => put(16 + i as u8, &t.timestamp_micros().to_le_bytes()),
        FieldValue::List(l) => {
            put(16 + i as u8, &(l.len() as u64).to_le_bytes());
            for s in l {
                put(15, s.as_bytes());
            }
        }
    });
    if let Some(extra) = &e.extra {
        put(5, extra.as_bytes());
    }
    h.digest()
}

#[test]
fn content_hash_definition_is_stable() {
    for k in KINDS {
        let mut m = full(k);
        m.insert("vendor_note".into(), json!({"a": [1, 2]}));
        let e = rust_accepts(&m).unwrap();
        assert_eq!(e.content_hash(), streamed_hash(&e), "kind {}", k.kind);
        let text = Value::Object(m).to_string();
        let parsed = callstate_schemas::ParsedEvent::parse(&text, now()).unwrap();
        assert_eq!(parsed.view().content_hash(), streamed_hash(&e));
        assert_eq!(parsed.into_event(), e);
    }
}

#[test]
fn flat_scanner_and_serde_agree_on_every_shape() {
    // Lines the flat scanner takes, and lines it leaves to serde_json: both must give the
    // same event or the same error.
    let base = r#""source":"b","seq":7,"time":"2026-11-24T10:00:00Z","cluster":"C","kind":"device_state","device":"SEP1","state":"idle""#;
    let lines = [
        format!("{{{base}}}"),
        format!(
            " \t{{ {base} , \"x\" : [ \"a\" , \"b\" ] , \"y\":[] , \"z\":true,\"w\":false,\"v\":null,\"n\":0 }}\r"
        ),
        format!("{{{base},\"esc\":\"a\\\"b\\u00e9\"}}"),
        format!("{{{base},\"num\":-1.5e3}}"),
        format!("{{{base},\"nested\":{{\"a\":1}}}}"),
        format!("{{{base},\"lead\":01}}"),
        format!("{{{base},\"ctl\":\"a\tb\"}}"),
        format!("{{{base}}} x"),
        format!("{{{base},}}"),
        format!("{{{base},\"t\":tru}}"),
        "{\"source\":\"b\",\"seq\":\"7\"}".to_string(),
        "[1]".to_string(),
        "{}".to_string(),
    ];
    for line in &lines {
        let ours = Event::from_json(line, now());
        // serde_json's own reading of the line, validated the same way
        match serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|v| v.as_object().cloned())
        {
            None => assert!(ours.is_err(), "{line}: accepted what serde_json rejects"),
            Some(m) => assert_eq!(ours, rust_accepts(&m), "{line}"),
        }
    }
}
