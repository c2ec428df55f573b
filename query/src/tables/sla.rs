//! `sla(from, to [, group_by [, period [, tz [, known_at]]]])` rows.

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};

use super::{bools, f64s, schema, strs, times, ts, u64s};
use crate::model::sla::SlaRow;

/// Schema of SLA rows.
pub fn schema_of() -> SchemaRef {
    let f = DataType::Float64;
    schema(&[
        ("window_start", ts()),
        ("window_end", ts()),
        ("group_key", DataType::Utf8),
        ("devices", DataType::UInt64),
        ("availability", f.clone()),
        ("target", f.clone()),
        ("met", DataType::Boolean),
        ("budget_allowed_s", f.clone()),
        ("budget_used_s", f.clone()),
        ("budget_remaining_s", f.clone()),
        ("outages", DataType::UInt64),
        ("mttr_s", f.clone()),
        ("longest_outage_s", f.clone()),
        ("in_service_s", f.clone()),
        ("unknown_s", f.clone()),
        ("excluded_s", f),
    ])
}

/// SLA rows as a batch.
pub fn batch(rows: &[SlaRow]) -> RecordBatch {
    let f = |g: fn(&SlaRow) -> f64| f64s(rows.iter().map(|r| Some(g(r))));
    RecordBatch::try_new(
        schema_of(),
        vec![
            times(rows.iter().map(|r| Some(r.window_start))),
            times(rows.iter().map(|r| Some(r.window_end))),
            strs(rows.iter().map(|r| Some(r.group_key.as_str()))),
            u64s(rows.iter().map(|r| Some(r.devices))),
            f64s(rows.iter().map(|r| r.availability)),
            f(|r| r.target),
            bools(rows.iter().map(|r| r.met)),
            f(|r| r.budget_allowed_s),
            f(|r| r.budget_used_s),
            f(|r| r.budget_remaining_s),
            u64s(rows.iter().map(|r| Some(r.outages))),
            f64s(rows.iter().map(|r| r.mttr_s)),
            f(|r| r.longest_outage_s),
            f(|r| r.in_service_s),
            f(|r| r.unknown_s),
            f(|r| r.excluded_s),
        ],
    )
    .expect("columns match the schema")
}
