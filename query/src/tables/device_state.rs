//! `device_state_at(ts [, known_at])` rows: every device's state at an instant.

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};

use super::{bools, schema, strs, times, ts, u64s};
use crate::model::state::DeviceState;

/// Schema of device states.
pub fn schema_of() -> SchemaRef {
    let s = DataType::Utf8;
    schema(&[
        ("device", s.clone()),
        ("at", ts()),
        ("state", s.clone()),
        ("node", s.clone()),
        ("home_node", s.clone()),
        ("on_home_node", DataType::Boolean),
        ("since", ts()),
        ("device_type", s.clone()),
        ("device_pool", s.clone()),
        ("cluster", s.clone()),
        ("last_node", s.clone()),
        ("cause", s),
        ("active_calls", DataType::UInt64),
    ])
}

/// Device states as a batch.
pub fn batch(rows: &[DeviceState]) -> RecordBatch {
    let s = |f: fn(&DeviceState) -> Option<&str>| strs(rows.iter().map(f));
    RecordBatch::try_new(
        schema_of(),
        vec![
            s(|r| Some(&r.device)),
            times(rows.iter().map(|r| Some(r.at))),
            s(|r| Some(r.state.as_str())),
            s(|r| r.node.as_deref()),
            s(|r| r.home_node.as_deref()),
            bools(rows.iter().map(|r| r.on_home_node)),
            times(rows.iter().map(|r| r.since)),
            s(|r| r.device_type.as_deref()),
            s(|r| r.device_pool.as_deref()),
            s(|r| Some(&r.cluster)),
            s(|r| r.last_node.as_deref()),
            s(|r| r.cause.as_deref()),
            u64s(rows.iter().map(|r| r.active_calls)),
        ],
    )
    .expect("columns match the schema")
}
