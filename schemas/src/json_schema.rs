//! JSON Schema (draft 2020-12) of the v1 contract, generated from [`crate::spec`].
//!
//! The generated files are checked in under `schemas/json/` for bridge authors; a test keeps
//! them equal to what this module generates, and another checks that the schema and the Rust
//! validator accept and reject the same events.

use serde_json::{Map, Value, json};

use crate::spec::{ENVELOPE, FieldSpec, FieldType, KINDS};

/// File name of the single-event schema.
pub const EVENT_SCHEMA_FILE: &str = "event.v1.schema.json";
/// File name of the HTTP body schema (one event or an array of events).
pub const BATCH_SCHEMA_FILE: &str = "events.v1.schema.json";

const RFC3339: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$";

fn type_schema(f: &FieldSpec) -> Value {
    let non_empty = json!({"type": "string", "pattern": "\\S"});
    let mut s = match f.ty {
        FieldType::Str => non_empty,
        FieldType::U64 => json!({"type": "integer", "minimum": 0, "maximum": u64::MAX}),
        FieldType::Time => json!({"type": "string", "format": "date-time", "pattern": RFC3339}),
        FieldType::Bool => json!({"type": "boolean"}),
        FieldType::StrList => json!({"type": "array", "minItems": 1, "items": non_empty}),
        FieldType::Enum(values) => json!({"type": "string", "enum": values}),
        FieldType::OpenEnum(values) => json!({
            "type": "string", "pattern": "\\S", "examples": values,
        }),
    };
    let mut doc = f.doc.to_string();
    if let FieldType::OpenEnum(values) = f.ty {
        doc.push_str(&format!(
            "; well-known values: {}; any other value is kept verbatim",
            values.join(", ")
        ));
    }
    s["description"] = Value::String(doc);
    if f.required {
        s
    } else {
        json!({"description": s["description"].clone(), "anyOf": [s, {"type": "null"}]})
    }
}

fn properties(fields: &[FieldSpec]) -> Map<String, Value> {
    fields
        .iter()
        .map(|f| (f.name.to_string(), type_schema(f)))
        .collect()
}

fn required(fields: &[FieldSpec]) -> Vec<&'static str> {
    fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect()
}

/// The schema of one event.
pub fn event_schema() -> Value {
    let mut envelope = properties(ENVELOPE);
    envelope["kind"] = json!({
        "description": "the event kind",
        "enum": KINDS.iter().map(|k| k.kind.as_str()).collect::<Vec<_>>(),
    });
    let per_kind: Vec<Value> = KINDS
        .iter()
        .map(|k| {
            json!({
                "if": {"properties": {"kind": {"const": k.kind.as_str()}}, "required": ["kind"]},
                "then": {
                    "description": format!("{} ({})", k.kind.as_str(), k.origin),
                    "required": required(k.fields),
                    "properties": properties(k.fields),
                }
            })
        })
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:callstate:event:v1",
        "title": "callstate v1 event",
        "description": concat!(
            "One CUCM CTI event as a bridge writes it (one NDJSON line). ",
            "Unknown fields are allowed and kept. Not expressible here but enforced by the ",
            "collector: `time` at most 24 h in the future of ingest time; maintenance window ",
            "`end` after `start`; integers written without fraction or exponent; ",
            "no key repeated; null counts as absent."
        ),
        "type": "object",
        "required": required(ENVELOPE),
        "properties": envelope,
        "allOf": per_kind,
    })
}

/// The schema of an HTTP ingest body: one event, or an array of events.
pub fn batch_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:callstate:events:v1",
        "title": "callstate v1 events (HTTP body)",
        "description": "One event or an array of events; NDJSON bodies hold one event per line.",
        "$defs": {"event": event_schema()},
        "anyOf": [
            {"$ref": "#/$defs/event"},
            {"type": "array", "items": {"$ref": "#/$defs/event"}},
        ],
    })
}

/// Every schema file: (file name, pretty JSON text with a trailing newline).
pub fn schema_files() -> Vec<(&'static str, String)> {
    let pretty = |v: Value| serde_json::to_string_pretty(&v).expect("schema serializes") + "\n";
    vec![
        (EVENT_SCHEMA_FILE, pretty(event_schema())),
        (BATCH_SCHEMA_FILE, pretty(batch_schema())),
    ]
}
