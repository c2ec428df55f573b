//! State series rows: `{time, group_key, devices}`.

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;

use super::{strs, times, ts, u64s};
use crate::model::series::SeriesPoint;

/// Schema of series points.
pub fn schema_of() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("time", ts(), false),
        Field::new("group_key", DataType::Utf8, false),
        Field::new("devices", DataType::UInt64, false),
    ]))
}

/// Series points as a batch.
pub fn batch(points: &[SeriesPoint]) -> RecordBatch {
    RecordBatch::try_new(
        schema_of(),
        vec![
            times(points.iter().map(|p| Some(p.time))),
            strs(points.iter().map(|p| Some(p.group_key.as_str()))),
            u64s(points.iter().map(|p| Some(p.devices))),
        ],
    )
    .expect("columns match the schema")
}
