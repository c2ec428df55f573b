//! A DataFusion `SessionContext` over a log snapshot: the `events` table (committed Parquet
//! segments plus the not-yet-rolled tail, so a just-acknowledged event is visible), and the
//! derived tables and table functions of [`context_with`].

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, ListBuilder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use callstate_ingest::Snapshot;
use callstate_schemas::events_schema;

use crate::functions::{
    AvailabilityFn, DeviceIntervalsAt, DeviceStateAt, Shared, SlaFn, calls_table, incidents_table,
};
use crate::intervals::ServiceInterval;
use crate::lazy::{LazyShared, LazyTable};
use crate::rows::{LogRows, Us};
use crate::sla::Targets;

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Schema of `device_intervals`.
pub fn intervals_schema() -> SchemaRef {
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
        Field::new("valid_from", ts_type(), false),
        Field::new("valid_to", ts_type(), true),
        s("source", false),
        Field::new("known_from", ts_type(), false),
    ]))
}

/// `device_intervals` rows as a record batch.
pub fn intervals_batch(intervals: &[ServiceInterval]) -> RecordBatch {
    let n = intervals.len();
    let mut strs: Vec<StringBuilder> = (0..11)
        .map(|_| StringBuilder::with_capacity(n, n * 12))
        .collect();
    let mut home = BooleanBuilder::with_capacity(n);
    let ts = || TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let (mut from, mut to, mut known) = (ts(), ts(), ts());
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
    RecordBatch::try_new(intervals_schema(), cols).expect("columns match the schema")
}

fn windows_batch(rows: &LogRows) -> Result<RecordBatch> {
    let mut cols: Vec<StringBuilder> = (0..4).map(|_| StringBuilder::new()).collect();
    let ts = || TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let (mut start, mut end, mut announced) = (ts(), ts(), ts());
    let mut seen = std::collections::HashSet::new();
    for w in &rows.windows {
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
        Field::new("window_start", ts_type(), false),
        Field::new("window_end", ts_type(), false),
        Field::new("announced", ts_type(), false),
    ]));
    let mut c: Vec<ArrayRef> = cols
        .into_iter()
        .map(|mut b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    c.push(Arc::new(start.finish()));
    c.push(Arc::new(end.finish()));
    c.push(Arc::new(announced.finish()));
    Ok(RecordBatch::try_new(schema, c)?)
}

fn pools_batch(rows: &LogRows) -> Result<RecordBatch> {
    let mut pool = StringBuilder::new();
    let mut home = StringBuilder::new();
    let mut nodes = ListBuilder::new(StringBuilder::new());
    let mut from = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut configs: Vec<_> = rows.pool_configs.iter().collect();
    configs.sort_by(|a, b| {
        (&a.device_pool, a.time, a.ingest_seq).cmp(&(&b.device_pool, b.time, b.ingest_seq))
    });
    configs.dedup_by(|b, a| a.device_pool == b.device_pool && a.nodes == b.nodes);
    for c in configs {
        pool.append_value(&c.device_pool);
        home.append_option(c.nodes.first().map(|n| &**n));
        for n in &c.nodes {
            nodes.values().append_value(n);
        }
        nodes.append(true);
        from.append_value(c.time);
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("device_pool", DataType::Utf8, false),
        Field::new("home_node", DataType::Utf8, true),
        Field::new(
            "nodes",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            false,
        ),
        Field::new("valid_from", ts_type(), false),
    ]));
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(pool.finish()),
            Arc::new(home.finish()),
            Arc::new(nodes.finish()),
            Arc::new(from.finish()),
        ],
    )?)
}

fn ext(e: std::io::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

fn mem(schema: SchemaRef, batch: RecordBatch) -> Result<Arc<MemTable>> {
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

/// Registers every table and table function of a snapshot in a new context, with the default
/// SLA targets. See [`context_with`].
pub async fn context(snap: &Snapshot, known_at: Option<Us>) -> Result<SessionContext> {
    context_with(snap, known_at, Targets::default()).await
}

/// Registers every table and table function of a snapshot in a new context.
///
/// Tables: `events`, `device_intervals`, `calls`, `transfers`, `incidents`,
/// `maintenance_windows`, `device_pools`. Functions: `device_state_at(ts [, known_at])`,
/// `device_intervals_at(known_at)`,
/// `availability(from, to [, group_by])`, `sla(from, to [, group_by])`. `known_at` limits the
/// derived tables to what was ingested by then (the `events` table is always complete: filter
/// it on `ingest_time`).
pub async fn context_with(
    snap: &Snapshot,
    known_at: Option<Us>,
    targets: Targets,
) -> Result<SessionContext> {
    let shared = Arc::new(LazyShared::new(snap.clone(), known_at, targets));
    context_for(shared, None).await
}

/// Like [`context_with`], over an existing (possibly already derived) [`LazyShared`], with an
/// optional limit in bytes on the memory query operators (sorts, joins, aggregates) may use
/// (with a limit, nothing spills to disk).
pub async fn context_for(
    shared: Arc<LazyShared>,
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
    let snap = shared.snapshot();
    // events = committed segments ∪ unrolled tail
    let tail = Arc::new(MemTable::try_new(
        events_schema(),
        vec![snap.batches.clone()],
    )?);
    if snap.segments.is_empty() {
        ctx.register_table("events", tail)?;
    } else {
        let urls = snap
            .segments
            .iter()
            .map(|s| {
                let path = snap.segment_path(s);
                let path = std::fs::canonicalize(&path)
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                ListingTableUrl::parse(path.to_string_lossy())
            })
            .collect::<Result<Vec<_>>>()?;
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(events_schema());
        ctx.register_table("events_segments", Arc::new(ListingTable::try_new(config)?))?;
        ctx.register_table("events_tail", tail)?;
        ctx.sql("CREATE VIEW events AS SELECT * FROM events_segments UNION ALL SELECT * FROM events_tail")
            .await?;
    }
    ctx.sql(
        "CREATE VIEW transfers AS SELECT time, cluster, device, call_id, consult_call_id, \
         transferred_to, source, ingest_time FROM events WHERE kind = 'transfer_completed'",
    )
    .await?;
    let empty = LogRows::default();
    let lazy = |schema: SchemaRef, build: fn(&Shared) -> Result<Arc<MemTable>>| {
        Arc::new(LazyTable::new(schema, shared.clone(), build))
    };
    ctx.register_table(
        "device_intervals",
        lazy(intervals_schema(), |s| {
            mem(intervals_schema(), intervals_batch(&s.intervals))
        }),
    )?;
    ctx.register_table(
        "maintenance_windows",
        lazy(windows_batch(&empty)?.schema(), |s| {
            let w = windows_batch(&s.rows)?;
            mem(w.schema(), w)
        }),
    )?;
    ctx.register_table(
        "device_pools",
        lazy(pools_batch(&empty)?.schema(), |s| {
            let p = pools_batch(&s.rows)?;
            mem(p.schema(), p)
        }),
    )?;
    ctx.register_table(
        "calls",
        lazy(calls_table(&[])?.schema(), |s| {
            calls_table(s.calls().map_err(ext)?)
        }),
    )?;
    ctx.register_table(
        "incidents",
        lazy(incidents_table(&[], &empty, &[])?.schema(), |s| {
            incidents_table(&s.intervals, &s.rows, s.calls().map_err(ext)?)
        }),
    )?;
    ctx.register_udtf("device_state_at", Arc::new(DeviceStateAt(shared.clone())));
    ctx.register_udtf(
        "device_intervals_at",
        Arc::new(DeviceIntervalsAt(shared.clone())),
    );
    ctx.register_udtf("availability", Arc::new(AvailabilityFn(shared.clone())));
    ctx.register_udtf("sla", Arc::new(SlaFn(shared)));
    Ok(ctx)
}
