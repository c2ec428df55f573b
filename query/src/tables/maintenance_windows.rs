//! The `maintenance_windows` table: each announced window once.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::{DataType, Field, Schema};

use super::ts;
use crate::model::rows::MaintenanceRow;

/// Maintenance windows as a batch (each (scope, target, start, end) once).
pub fn batch(windows: &[MaintenanceRow]) -> RecordBatch {
    let mut cols: Vec<StringBuilder> = (0..4).map(|_| StringBuilder::new()).collect();
    let tsb = || TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let (mut start, mut end, mut announced) = (tsb(), tsb(), tsb());
    let mut seen = std::collections::HashSet::new();
    for w in windows {
        if !seen.insert((w.scope.clone(), w.target.clone(), w.start, w.end)) {
            continue;
        }
        for (b, v) in cols.iter_mut().zip([
            Some(&*w.cluster),
            Some(&*w.scope),
            Some(&*w.target),
            w.reason.as_deref(),
        ]) {
            b.append_option(v);
        }
        start.append_value(w.start);
        end.append_value(w.end);
        announced.append_value(w.time);
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("cluster", DataType::Utf8, false),
        Field::new("scope", DataType::Utf8, false),
        Field::new("target", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, true),
        Field::new("window_start", ts(), false),
        Field::new("window_end", ts(), false),
        Field::new("announced", ts(), false),
    ]));
    let mut c: Vec<ArrayRef> = cols
        .into_iter()
        .map(|mut b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    c.push(Arc::new(start.finish()));
    c.push(Arc::new(end.finish()));
    c.push(Arc::new(announced.finish()));
    RecordBatch::try_new(schema, c).expect("columns match the schema")
}
