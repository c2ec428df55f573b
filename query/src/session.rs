//! A DataFusion `SessionContext` over a [`Source`](crate::source::Source): registration of
//! every table and table function, nothing else.
//!
//! Tables: `events` (segments + unrolled tail), `transfers`, `device_intervals`, `calls`,
//! `incidents`, `maintenance_windows`, `device_pools`. Functions:
//! `device_state_at(ts [, known_at])`, `device_intervals_at(known_at)`,
//! `availability(from, to [, group_by [, known_at]])`,
//! `sla(from, to [, group_by [, period [, tz [, known_at]]]])`.

use std::sync::Arc;

use datafusion::error::Result;
use datafusion::prelude::{SessionConfig, SessionContext};

use callstate_log::Snapshot;
use callstate_schemas::Us;

use crate::derived::LazyDerived;
use crate::functions::availability::AvailabilityFn;
use crate::functions::device_intervals_at::DeviceIntervalsAt;
use crate::functions::device_state_at::DeviceStateAt;
use crate::functions::sla::SlaFn;
use crate::model::sla::Targets;
use crate::source::SharedSource;
use crate::tables::events;
use crate::tables::provider::{DerivedTable, What};

/// A context over a snapshot derived from scratch, with the default SLA targets; with
/// `known_at`, the derived tables hold what was known then.
pub async fn context(snap: &Snapshot, known_at: Option<Us>) -> Result<SessionContext> {
    context_with(snap, known_at, Targets::default()).await
}

/// A context over a snapshot derived from scratch (see [`context`]).
pub async fn context_with(
    snap: &Snapshot,
    known_at: Option<Us>,
    targets: Targets,
) -> Result<SessionContext> {
    let source: SharedSource = Arc::new(LazyDerived::new(snap.clone(), None, targets));
    context_for(source, known_at).await
}

/// A context over `source`; with `known_at`, the derived tables hold what was known then
/// (`events` is always complete: filter it on `ingest_time`). Nothing is derived here: the
/// derived tables compute when a query executes.
pub async fn context_for(source: SharedSource, known_at: Option<Us>) -> Result<SessionContext> {
    // PostgreSQL syntax: the generic dialect's trailing-comma rule reads `SELECT device, cluster`
    // as ending before the `CLUSTER` keyword, and `cluster` is a column here.
    let config = SessionConfig::new().set_str("datafusion.sql_parser.dialect", "PostgreSQL");
    let ctx = SessionContext::new_with_config(config);
    events::register(&ctx, source.snapshot()).await?;
    for (name, what) in [
        ("device_intervals", What::Intervals),
        ("maintenance_windows", What::Windows),
        ("device_pools", What::Pools),
        ("calls", What::Calls),
        ("incidents", What::Incidents),
    ] {
        ctx.register_table(
            name,
            Arc::new(DerivedTable::new(source.clone(), known_at, what)),
        )?;
    }
    ctx.register_udtf("device_state_at", Arc::new(DeviceStateAt(source.clone())));
    ctx.register_udtf(
        "device_intervals_at",
        Arc::new(DeviceIntervalsAt(source.clone())),
    );
    ctx.register_udtf("availability", Arc::new(AvailabilityFn(source.clone())));
    ctx.register_udtf("sla", Arc::new(SlaFn(source)));
    Ok(ctx)
}
