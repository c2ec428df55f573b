//! Annotation rows: `{time, time_end, kind, cluster, target, text}`.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::{strs, times, ts};
use crate::model::annotations::Annotation;

/// Schema of annotations.
pub fn schema_of() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("time", ts(), false),
        Field::new("time_end", ts(), false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("cluster", DataType::Utf8, false),
        Field::new("target", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
    ]))
}

/// Annotations as a batch.
pub fn batch(rows: &[Annotation]) -> RecordBatch {
    RecordBatch::try_new(
        schema_of(),
        vec![
            times(rows.iter().map(|a| Some(a.time))),
            times(rows.iter().map(|a| Some(a.time_end))),
            strs(rows.iter().map(|a| Some(a.kind.as_str()))),
            strs(rows.iter().map(|a| Some(a.cluster.as_str()))),
            strs(rows.iter().map(|a| Some(a.target.as_str()))),
            strs(rows.iter().map(|a| Some(a.text.as_str()))),
        ],
    )
    .expect("columns match the schema")
}
