//! The `incidents` table and incident lists: one row per incident, lists as counts.

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};

use super::{f64s, schema, strs, times, ts, u64s};
use crate::model::incidents::Incident;

/// Schema of incident rows.
pub fn schema_of() -> SchemaRef {
    let (s, f, u) = (DataType::Utf8, DataType::Float64, DataType::UInt64);
    schema(&[
        ("id", s.clone()),
        ("cluster", s.clone()),
        ("scope", s.clone()),
        ("target", s.clone()),
        ("cause", s),
        ("started_at", ts()),
        ("ended_at", ts()),
        ("devices_affected", u.clone()),
        ("recovery_50_s", f.clone()),
        ("recovery_90_s", f.clone()),
        ("recovery_100_s", f.clone()),
        ("failovers", u.clone()),
        ("rehomes", u.clone()),
        ("rehome_lag_max_s", f),
        ("calls_active", u),
    ])
}

/// Incidents as a batch.
pub fn batch(found: &[Incident]) -> RecordBatch {
    let s = |g: fn(&Incident) -> &str| strs(found.iter().map(|i| Some(g(i))));
    let n = |g: fn(&Incident) -> usize| u64s(found.iter().map(|i| Some(g(i) as u64)));
    let f = |g: fn(&Incident) -> Option<f64>| f64s(found.iter().map(g));
    RecordBatch::try_new(
        schema_of(),
        vec![
            s(|i| &i.id),
            s(|i| &i.cluster),
            s(|i| &i.scope),
            s(|i| &i.target),
            s(|i| &i.cause),
            times(found.iter().map(|i| Some(i.started_at))),
            times(found.iter().map(|i| i.ended_at)),
            n(|i| i.devices_affected),
            f(|i| i.recovery_50_s),
            f(|i| i.recovery_90_s),
            f(|i| i.recovery_100_s),
            n(|i| i.failovers.len()),
            n(|i| i.rehomes.len()),
            f(|i| i.rehome_lag_max_s),
            u64s(found.iter().map(|i| i.calls_active.map(|n| n as u64))),
        ],
    )
    .expect("columns match the schema")
}
