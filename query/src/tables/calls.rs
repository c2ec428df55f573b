//! The `calls` table: one row per call leg on a device.

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};

use super::{f64s, schema, strs, times, ts};
use crate::model::rows::CallRow;

/// Schema of `calls`.
pub fn schema_of() -> SchemaRef {
    let s = DataType::Utf8;
    schema(&[
        ("call_id", s.clone()),
        ("device", s.clone()),
        ("started_at", ts()),
        ("ended_at", ts()),
        ("end_cause", s),
        ("duration_s", DataType::Float64),
    ])
}

/// Call legs as a batch.
pub fn batch(calls: &[CallRow]) -> RecordBatch {
    RecordBatch::try_new(
        schema_of(),
        vec![
            strs(calls.iter().map(|c| Some(&*c.call_id))),
            strs(calls.iter().map(|c| Some(&*c.device))),
            times(calls.iter().map(|c| Some(c.start))),
            times(calls.iter().map(|c| c.end)),
            strs(calls.iter().map(|c| c.end_cause.as_deref())),
            f64s(
                calls
                    .iter()
                    .map(|c| c.end.map(|e| (e - c.start) as f64 / 1e6)),
            ),
        ],
    )
    .expect("columns match the schema")
}
