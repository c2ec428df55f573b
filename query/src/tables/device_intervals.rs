//! The `device_intervals` table: every device's service-state intervals.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::ts;
use crate::model::intervals::ServiceInterval;

/// Schema of `device_intervals`.
pub fn schema_of() -> SchemaRef {
    let s = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
    Arc::new(Schema::new(vec![
        s("device", false),
        s("cluster", false),
        s("device_type", true),
        s("device_pool", true),
        s("state", false),
        s("node", true),
        s("last_node", true),
        s("home_node", true),
        Field::new("on_home_node", DataType::Boolean, true),
        s("cause", true),
        s("movement", true),
        Field::new("valid_from", ts(), false),
        Field::new("valid_to", ts(), true),
        s("source", false),
        Field::new("known_from", ts(), false),
    ]))
}

/// `device_intervals` rows as a record batch.
pub fn batch(intervals: &[ServiceInterval]) -> RecordBatch {
    let n = intervals.len();
    let mut strs: Vec<StringBuilder> = (0..11)
        .map(|_| StringBuilder::with_capacity(n, n * 12))
        .collect();
    let mut home = BooleanBuilder::with_capacity(n);
    let tsb = || TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let (mut from, mut to, mut known) = (tsb(), tsb(), tsb());
    for i in intervals {
        let vals: [Option<&str>; 11] = [
            Some(&i.device),
            Some(&i.cluster),
            i.device_type.as_deref(),
            i.device_pool.as_deref(),
            Some(i.state.as_str()),
            i.node.as_deref(),
            i.last_node.as_deref(),
            i.home_node.as_deref(),
            i.cause.as_deref(),
            i.movement.map(|m| m.as_str()),
            Some(&i.source),
        ];
        for (b, v) in strs.iter_mut().zip(vals) {
            b.append_option(v);
        }
        home.append_option(i.on_home_node());
        from.append_value(i.valid_from);
        to.append_option(i.valid_to);
        known.append_value(i.known_from);
    }
    let mut s = strs
        .into_iter()
        .map(|mut b| Arc::new(b.finish()) as ArrayRef);
    let mut cols: Vec<ArrayRef> = (0..8).map(|_| s.next().expect("8 columns")).collect();
    cols.push(Arc::new(home.finish()));
    cols.push(s.next().expect("cause"));
    cols.push(s.next().expect("movement"));
    cols.push(Arc::new(from.finish()));
    cols.push(Arc::new(to.finish()));
    cols.push(s.next().expect("source"));
    cols.push(Arc::new(known.finish()));
    RecordBatch::try_new(schema_of(), cols).expect("columns match the schema")
}
