//! A DataFusion `SessionContext` over a log version: registration of every table and table
//! function, nothing else.
//!
//! Tables: `events` (segments + unrolled tail), `transfers`, `device_intervals`, `calls`,
//! `incidents`, `maintenance_windows`, `device_pools`. Functions:
//! `device_state_at(ts [, known_at])`, `device_intervals_at(known_at)`,
//! `availability(from, to [, group_by [, known_at]])`,
//! `sla(from, to [, group_by [, period [, tz [, known_at]]]])`.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::error::Result;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use callstate_log::Snapshot;
use callstate_schemas::Us;

use crate::derived::{Derived, LazyDerived};
use crate::functions::availability::AvailabilityFn;
use crate::functions::device_intervals_at::DeviceIntervalsAt;
use crate::functions::device_state_at::DeviceStateAt;
use crate::functions::sla::SlaFn;
use crate::model::incidents::{IncidentOptions, detect};
use crate::model::rows::LogRows;
use crate::model::sla::Targets;
use crate::tables::lazy::LazyTable;
use crate::tables::{
    calls, device_intervals, device_pools, events, incidents, maintenance_windows,
};

/// A context over a snapshot with the default SLA targets. See [`context_for`].
pub async fn context(snap: &Snapshot, known_at: Option<Us>) -> Result<SessionContext> {
    context_with(snap, known_at, Targets::default()).await
}

/// A context over a snapshot; `known_at` limits the derived tables to what was ingested by
/// then (`events` is always complete: filter it on `ingest_time`).
pub async fn context_with(
    snap: &Snapshot,
    known_at: Option<Us>,
    targets: Targets,
) -> Result<SessionContext> {
    let derived = Arc::new(LazyDerived::new(snap.clone(), known_at, targets));
    context_for(derived, None).await
}

/// A context over a (possibly already derived) log version, with an optional limit in bytes
/// on the memory query operators (sorts, joins, aggregates) may use (with a limit, nothing
/// spills to disk).
pub async fn context_for(
    derived: Arc<LazyDerived>,
    memory_limit: Option<usize>,
) -> Result<SessionContext> {
    // PostgreSQL syntax: the generic dialect's trailing-comma rule reads `SELECT device, cluster`
    // as ending before the `CLUSTER` keyword, and `cluster` is a column here.
    let config = SessionConfig::new().set_str("datafusion.sql_parser.dialect", "PostgreSQL");
    let ctx = match memory_limit {
        None => SessionContext::new_with_config(config),
        Some(bytes) => SessionContext::new_with_config_rt(
            config,
            RuntimeEnvBuilder::new()
                .with_memory_limit(bytes, 1.0)
                // bounded means bounded: no spilling to temporary files either
                .with_disk_manager_builder(
                    DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
                )
                .build_arc()?,
        ),
    };
    events::register(&ctx, derived.snapshot()).await?;
    let empty = LogRows::default();
    let lazy = |schema: SchemaRef, build: fn(&Derived) -> crate::error::Result<RecordBatch>| {
        Arc::new(LazyTable::new(schema, derived.clone(), build))
    };
    ctx.register_table(
        "device_intervals",
        lazy(device_intervals::schema_of(), |d| {
            Ok(device_intervals::batch(&d.intervals))
        }),
    )?;
    ctx.register_table(
        "maintenance_windows",
        lazy(maintenance_windows::batch(&empty).schema(), |d| {
            Ok(maintenance_windows::batch(&d.rows))
        }),
    )?;
    ctx.register_table(
        "device_pools",
        lazy(device_pools::batch(&empty).schema(), |d| {
            Ok(device_pools::batch(&d.rows))
        }),
    )?;
    ctx.register_table(
        "calls",
        lazy(calls::schema_of(), |d| Ok(calls::batch(d.calls()?))),
    )?;
    ctx.register_table(
        "incidents",
        lazy(incidents::schema_of(), |d| {
            let found = detect(
                &d.intervals,
                &d.rows,
                d.calls()?,
                Us::MIN,
                Us::MAX,
                &IncidentOptions::default(),
            );
            Ok(incidents::batch(&found))
        }),
    )?;
    ctx.register_udtf("device_state_at", Arc::new(DeviceStateAt(derived.clone())));
    ctx.register_udtf(
        "device_intervals_at",
        Arc::new(DeviceIntervalsAt(derived.clone())),
    );
    ctx.register_udtf("availability", Arc::new(AvailabilityFn(derived.clone())));
    ctx.register_udtf("sla", Arc::new(SlaFn(derived)));
    Ok(ctx)
}
