//! `availability(from, to [, group_by [, known_at]])` rows.

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};

use super::{f64s, schema, strs, times, ts, u64s};
use crate::model::sla::GroupAvailability;

/// Schema of availability rows.
pub fn schema_of() -> SchemaRef {
    let f = DataType::Float64;
    schema(&[
        ("window_start", ts()),
        ("window_end", ts()),
        ("group_key", DataType::Utf8),
        ("devices", DataType::UInt64),
        ("in_service_s", f.clone()),
        ("out_of_service_s", f.clone()),
        ("unknown_s", f.clone()),
        ("excluded_s", f.clone()),
        ("outages", DataType::UInt64),
        ("longest_outage_s", f.clone()),
        ("outage_total_s", f.clone()),
        ("availability", f),
    ])
}

/// Availability rows as a batch.
pub fn batch(rows: &[GroupAvailability]) -> RecordBatch {
    let f = |g: fn(&GroupAvailability) -> f64| f64s(rows.iter().map(|r| Some(g(r))));
    RecordBatch::try_new(
        schema_of(),
        vec![
            times(rows.iter().map(|r| Some(r.window_start))),
            times(rows.iter().map(|r| Some(r.window_end))),
            strs(rows.iter().map(|r| Some(r.group_key.as_str()))),
            u64s(rows.iter().map(|r| Some(r.devices))),
            f(|r| r.seconds.in_service_s),
            f(|r| r.seconds.out_of_service_s),
            f(|r| r.seconds.unknown_s),
            f(|r| r.seconds.excluded_s),
            u64s(rows.iter().map(|r| Some(r.seconds.outages))),
            f(|r| r.seconds.longest_outage_s),
            f(|r| r.seconds.outage_total_s),
            f64s(rows.iter().map(|r| r.availability)),
        ],
    )
    .expect("columns match the schema")
}
