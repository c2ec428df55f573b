//! One file per table: its Arrow schema and the builder of its batches from model rows
//! (column by column, with Arrow builders), plus the providers that expose them to SQL.
//! The HTTP answers in CSV, Arrow and row-JSON form are these same batches.

pub mod annotations;
pub mod availability;
pub mod calls;
pub mod device_intervals;
pub mod device_pools;
pub mod device_state;
pub mod events;
pub mod incidents;
pub mod maintenance_windows;
pub mod provider;
pub mod selection;
pub mod series;
pub mod sla;

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, StringArray, TimestampMicrosecondArray, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use callstate_schemas::Us;

/// The type of every time column: microseconds, UTC.
pub fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// A schema of nullable columns.
pub(crate) fn schema(fields: &[(&str, DataType)]) -> SchemaRef {
    Arc::new(Schema::new(
        fields
            .iter()
            .map(|(n, t)| Field::new(*n, t.clone(), true))
            .collect::<Vec<_>>(),
    ))
}

/// A text column.
pub(crate) fn strs<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(values.collect::<StringArray>())
}

/// A time column.
pub(crate) fn times(values: impl Iterator<Item = Option<Us>>) -> ArrayRef {
    Arc::new(
        values
            .collect::<TimestampMicrosecondArray>()
            .with_timezone("UTC"),
    )
}

/// A float column.
pub(crate) fn f64s(values: impl Iterator<Item = Option<f64>>) -> ArrayRef {
    Arc::new(values.collect::<Float64Array>())
}

/// An unsigned integer column.
pub(crate) fn u64s(values: impl Iterator<Item = Option<u64>>) -> ArrayRef {
    Arc::new(values.collect::<UInt64Array>())
}

/// A boolean column.
pub(crate) fn bools(values: impl Iterator<Item = Option<bool>>) -> ArrayRef {
    Arc::new(values.collect::<BooleanArray>())
}
