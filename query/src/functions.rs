//! SQL table functions and derived tables:
//! `device_state_at(ts [, known_at])`, `availability(from, to [, group_by])`,
//! `sla(from, to [, group_by [, period [, tz]]])`, and the `calls` and `incidents` tables.
//!
//! Arguments may be timestamps (`TIMESTAMP '2026-11-24T10:00:00Z'`), RFC 3339 strings, or
//! epoch milliseconds (Grafana's `${__from}`).

use std::sync::{Arc, OnceLock};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::ColumnarValue;
use serde::Serialize;

use callstate_ingest::Snapshot;

use crate::incidents::{IncidentOptions, detect};
use crate::intervals::{ServiceInterval, derive};
use crate::lazy::LazyShared;
use crate::rows::{CallRow, LogRows, Us};
use crate::sla::{GroupBy, Period, SlaRow, Targets, availability, calendar_windows, parse_tz, sla};

/// What the functions answer from: the snapshot and, derived once, its intervals.
#[derive(Debug)]
pub struct Shared {
    /// The log snapshot.
    pub snap: Snapshot,
    /// `known_at` the rows were read with.
    pub known_at: Option<Us>,
    /// Rows (without call legs: see [`Shared::calls`]).
    pub rows: LogRows,
    /// Intervals derived from `rows`.
    pub intervals: Vec<ServiceInterval>,
    /// SLA targets.
    pub targets: Targets,
    calls: OnceLock<Vec<CallRow>>,
}

impl Shared {
    /// Loads and derives (call legs are read on first use).
    pub fn new(snap: Snapshot, known_at: Option<Us>, targets: Targets) -> std::io::Result<Shared> {
        let rows = LogRows::load_with(&snap, known_at, false)?;
        let intervals = derive(&rows);
        Ok(Shared {
            snap,
            known_at,
            rows,
            intervals,
            targets,
            calls: OnceLock::new(),
        })
    }

    /// A device's intervals (in time order; empty for a device the log does not know).
    pub fn device(&self, device: &str) -> &[ServiceInterval] {
        device_slice(&self.intervals, device, |i| &i.device)
    }

    /// A device's call legs (by start), read on first use.
    pub fn device_calls(&self, device: &str) -> std::io::Result<&[CallRow]> {
        Ok(device_slice(self.calls()?, device, |c| &c.device))
    }

    /// Call legs (by device, then start), read on first use.
    pub fn calls(&self) -> std::io::Result<&[CallRow]> {
        if let Some(c) = self.calls.get() {
            return Ok(c);
        }
        let c = LogRows::load_calls(&self.snap, self.known_at)?;
        Ok(self.calls.get_or_init(|| c))
    }
}

/// The run of `device` in rows sorted by device.
fn device_slice<'a, T>(rows: &'a [T], device: &str, key: impl Fn(&T) -> &Arc<str>) -> &'a [T] {
    let a = rows.partition_point(|r| &**key(r) < device);
    let b = a + rows[a..].partition_point(|r| &**key(r) == device);
    &rows[a..b]
}

fn ext(e: std::io::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn schema(fields: &[(&str, DataType)]) -> SchemaRef {
    Arc::new(Schema::new(
        fields
            .iter()
            .map(|(n, t)| Field::new(*n, t.clone(), true))
            .collect::<Vec<_>>(),
    ))
}

/// Rows (serializable; times as RFC 3339 strings) as a batch of the given schema.
pub fn batch<T: Serialize>(schema: SchemaRef, rows: &[T]) -> Result<RecordBatch> {
    let mut decoder = arrow::json::ReaderBuilder::new(schema.clone()).build_decoder()?;
    decoder.serialize(rows)?;
    Ok(decoder
        .flush()?
        .unwrap_or_else(|| RecordBatch::new_empty(schema)))
}

/// Rows as a table of the given schema.
pub fn table<T: Serialize>(schema: SchemaRef, rows: &[T]) -> Result<Arc<MemTable>> {
    let b = batch(schema.clone(), rows)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![b]])?))
}

fn fmt(t: Us) -> String {
    chrono::DateTime::from_timestamp_micros(t)
        .map_or_else(String::new, |t| callstate_schemas::format_time(&t))
}

fn err(msg: impl Into<String>) -> DataFusionError {
    DataFusionError::Plan(msg.into())
}

/// Evaluates a constant argument.
fn scalar(args: &TableFunctionArgs, i: usize) -> Result<Option<ScalarValue>> {
    let Some(expr) = args.exprs().get(i) else {
        return Ok(None);
    };
    let phys = args
        .session()
        .create_physical_expr(expr.clone(), &DFSchema::empty())?;
    let one = RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(1)),
    )?;
    Ok(Some(match phys.evaluate(&one)? {
        ColumnarValue::Scalar(s) => s,
        ColumnarValue::Array(a) => ScalarValue::try_from_array(&a, 0)?,
    }))
}

/// An instant argument; `None` when absent or NULL.
fn instant(args: &TableFunctionArgs, i: usize, name: &str) -> Result<Option<Us>> {
    let Some(v) = scalar(args, i)? else {
        return Ok(None);
    };
    let bad = || {
        err(format!(
            "{name}: expected a timestamp, an RFC 3339 string or epoch milliseconds, got {v}"
        ))
    };
    Ok(match &v {
        v if v.is_null() => None,
        ScalarValue::TimestampMicrosecond(Some(x), _) => Some(*x),
        ScalarValue::TimestampNanosecond(Some(x), _) => Some(x.div_euclid(1000)),
        ScalarValue::TimestampMillisecond(Some(x), _) => Some(x * 1000),
        ScalarValue::TimestampSecond(Some(x), _) => Some(x * 1_000_000),
        ScalarValue::Int64(Some(x)) => Some(x * 1000),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => {
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                Some(s.parse::<i64>().map_err(|_| bad())? * 1000)
            } else {
                Some(
                    callstate_schemas::parse_time(s)
                        .map_err(|e| err(format!("{name}: {e}")))?
                        .timestamp_micros(),
                )
            }
        }
        _ => return Err(bad()),
    })
}

fn required(args: &TableFunctionArgs, i: usize, name: &str) -> Result<Us> {
    instant(args, i, name)?.ok_or_else(|| err(format!("{name} is required")))
}

fn group_by(args: &TableFunctionArgs, i: usize, default: GroupBy) -> Result<GroupBy> {
    match scalar(args, i)? {
        None => Ok(default),
        Some(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)),
        ) => s.parse().map_err(err),
        Some(v) => Err(err(format!("group_by: expected a string, got {v}"))),
    }
}

/// One row of `device_state_at` (design.md §5 device state).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StateRow {
    /// Device.
    pub device: String,
    /// The instant asked about.
    pub at: String,
    /// `in_service`, `out_of_service`, `unknown`.
    pub state: &'static str,
    /// Node handling it.
    pub node: Option<String>,
    /// Home node.
    pub home_node: Option<String>,
    /// node == home.
    pub on_home_node: Option<bool>,
    /// Since when it is in this state.
    pub since: Option<String>,
    /// Device type.
    pub device_type: Option<String>,
    /// Device pool.
    pub device_pool: Option<String>,
    /// Cluster.
    pub cluster: String,
    /// Node it was last in service on.
    pub last_node: Option<String>,
    /// Cause of an outage.
    pub cause: Option<String>,
    /// Call legs active on the device at that instant.
    pub active_calls: u64,
}

/// Schema of [`StateRow`].
pub fn state_schema() -> SchemaRef {
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
        ("cause", s.clone()),
        ("active_calls", DataType::UInt64),
    ])
}

/// Every device's state at `t` (devices known to the log; `unknown` where no state holds).
/// `intervals` as [`derive`] gives them, `calls` sorted by device.
pub fn states_at(intervals: &[ServiceInterval], calls: &[CallRow], t: Us) -> Vec<StateRow> {
    let mut out = Vec::new();
    let mut rest = intervals;
    let mut calls = calls;
    while let Some(first) = rest.first() {
        let iv = device_slice(rest, &first.device, |i| &i.device);
        rest = &rest[iv.len()..];
        let a = calls.partition_point(|c| *c.device < *first.device);
        let dc = device_slice(&calls[a..], &first.device, |c| &c.device);
        calls = &calls[a + dc.len()..];
        out.push(state_row(iv, dc, t));
    }
    out
}

/// One device's state at `t` from its intervals (non-empty) and call legs.
pub fn state_row(iv: &[ServiceInterval], calls: &[CallRow], t: Us) -> StateRow {
    // the last interval starting by t (else the first): the device's attributes; its state
    // if it still holds at t
    let last = &iv[iv.partition_point(|i| i.valid_from <= t).saturating_sub(1)];
    let cur = Some(last).filter(|i| i.contains(t));
    let o = |v: &Option<Arc<str>>| v.as_deref().map(str::to_string);
    StateRow {
        device: last.device.to_string(),
        at: fmt(t),
        state: cur.map_or("unknown", |i| i.state.as_str()),
        node: cur.and_then(|i| o(&i.node)),
        home_node: o(&last.home_node),
        on_home_node: cur.and_then(ServiceInterval::on_home_node),
        since: cur.map(|i| fmt(i.valid_from)),
        device_type: o(&last.device_type),
        device_pool: o(&last.device_pool),
        cluster: last.cluster.to_string(),
        last_node: cur.and_then(|i| o(&i.last_node)),
        cause: cur.and_then(|i| o(&i.cause)),
        active_calls: calls
            .iter()
            .filter(|c| c.start <= t && c.end.is_none_or(|e| e > t))
            .count() as u64,
    }
}

/// `device_state_at(ts [, known_at])`.
#[derive(Debug)]
pub struct DeviceStateAt(pub Arc<LazyShared>);

impl TableFunctionImpl for DeviceStateAt {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let t = required(&args, 0, "ts")?;
        let s = self.0.get_known_at(instant(&args, 1, "known_at")?)?;
        let rows = states_at(&s.intervals, s.calls().map_err(ext)?, t);
        Ok(table(state_schema(), &rows)?)
    }
}

/// `device_intervals_at(known_at)`: the `device_intervals` table as it was known at `known_at`
/// (only events ingested by then count).
#[derive(Debug)]
pub struct DeviceIntervalsAt(pub Arc<LazyShared>);

impl TableFunctionImpl for DeviceIntervalsAt {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let k = required(&args, 0, "known_at")?;
        let s = self.0.get_known_at(Some(k))?;
        let schema = crate::session::intervals_schema();
        Ok(Arc::new(MemTable::try_new(
            schema,
            vec![vec![crate::session::intervals_batch(&s.intervals)]],
        )?))
    }
}

fn window_fields() -> Vec<(&'static str, DataType)> {
    vec![
        ("from", ts()),
        ("to", ts()),
        ("group", DataType::Utf8),
        ("devices", DataType::UInt64),
    ]
}

/// Schema of `availability(...)` rows.
pub fn availability_schema() -> SchemaRef {
    let mut f = window_fields();
    for n in [
        "in_service_s",
        "out_of_service_s",
        "unknown_s",
        "excluded_s",
    ] {
        f.push((n, DataType::Float64));
    }
    f.push(("outages", DataType::UInt64));
    f.push(("longest_outage_s", DataType::Float64));
    f.push(("outage_total_s", DataType::Float64));
    f.push(("availability", DataType::Float64));
    schema(&f)
}

/// Schema of `sla(...)` rows.
pub fn sla_schema() -> SchemaRef {
    let mut f = window_fields();
    f.push(("availability", DataType::Float64));
    f.push(("target", DataType::Float64));
    f.push(("met", DataType::Boolean));
    for n in ["budget_allowed_s", "budget_used_s", "budget_remaining_s"] {
        f.push((n, DataType::Float64));
    }
    f.push(("outages", DataType::UInt64));
    for n in [
        "mttr_s",
        "longest_outage_s",
        "in_service_s",
        "unknown_s",
        "excluded_s",
    ] {
        f.push((n, DataType::Float64));
    }
    schema(&f)
}

/// `availability(from, to [, group_by [, known_at]])`, default group_by `device`.
#[derive(Debug)]
pub struct AvailabilityFn(pub Arc<LazyShared>);

impl TableFunctionImpl for AvailabilityFn {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let (from, to) = (required(&args, 0, "from")?, required(&args, 1, "to")?);
        let by = group_by(&args, 2, GroupBy::Device)?;
        let s = self.0.get_known_at(instant(&args, 3, "known_at")?)?;
        Ok(table(
            availability_schema(),
            &availability(&s.intervals, &s.rows.windows, from, to, by),
        )?)
    }
}

/// `sla(from, to [, group_by [, period [, tz [, known_at]]]])`: default group_by `device_pool`; with a
/// period (`day`, `week`, `month`), one row per group and calendar period in `tz` (default UTC).
#[derive(Debug)]
pub struct SlaFn(pub Arc<LazyShared>);

impl TableFunctionImpl for SlaFn {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let (from, to) = (required(&args, 0, "from")?, required(&args, 1, "to")?);
        let by = group_by(&args, 2, GroupBy::DevicePool)?;
        let period = text(&args, 3, "period")?;
        let tz = text(&args, 4, "tz")?;
        let s = self.0.get_known_at(instant(&args, 5, "known_at")?)?;
        let rows = sla_rows(
            &s.intervals,
            &s,
            from,
            to,
            by,
            period.as_deref(),
            tz.as_deref(),
        )
        .map_err(err)?;
        Ok(table(sla_schema(), &rows)?)
    }
}

/// SLA rows for [from, to) or, with a period (`day`, `week`, `month`), for each calendar
/// period in `tz` (default UTC).
/// `intervals`: all or some devices' intervals (whole devices, as [`derive`] groups them).
pub fn sla_rows(
    intervals: &[ServiceInterval],
    s: &Shared,
    from: Us,
    to: Us,
    by: GroupBy,
    period: Option<&str>,
    tz: Option<&str>,
) -> std::result::Result<Vec<SlaRow>, String> {
    let windows = match period {
        None => vec![(from, to)],
        Some(p) => {
            let period: Period = p.parse()?;
            calendar_windows(from, to, period, parse_tz(tz.unwrap_or("UTC"))?)
        }
    };
    let mut rows = Vec::new();
    for (a, b) in windows {
        rows.extend(sla(intervals, &s.rows.windows, a, b, by, &s.targets));
    }
    Ok(rows)
}

/// A string argument; `None` when absent or NULL.
fn text(args: &TableFunctionArgs, i: usize, name: &str) -> Result<Option<String>> {
    match scalar(args, i)? {
        None => Ok(None),
        Some(v) if v.is_null() => Ok(None),
        Some(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)),
        ) => Ok(Some(s)),
        Some(v) => Err(err(format!("{name}: expected a string, got {v}"))),
    }
}

#[derive(Serialize)]
struct CallOut<'a> {
    call_id: &'a str,
    device: &'a str,
    start: String,
    end: Option<String>,
    end_cause: Option<&'a str>,
    duration_s: Option<f64>,
}

/// The `calls` table: one row per call leg on a device.
pub fn calls_table(calls: &[CallRow]) -> Result<Arc<MemTable>> {
    let s = DataType::Utf8;
    let sch = schema(&[
        ("call_id", s.clone()),
        ("device", s.clone()),
        ("start", ts()),
        ("end", ts()),
        ("end_cause", s),
        ("duration_s", DataType::Float64),
    ]);
    let out: Vec<CallOut<'_>> = calls
        .iter()
        .map(|c| CallOut {
            call_id: &c.call_id,
            device: &c.device,
            start: fmt(c.start),
            end: c.end.map(fmt),
            end_cause: c.end_cause.as_deref(),
            duration_s: c.end.map(|e| (e - c.start) as f64 / 1e6),
        })
        .collect();
    table(sch, &out)
}

#[derive(Serialize)]
struct IncidentOut<'a> {
    id: &'a str,
    cluster: &'a str,
    scope: &'a str,
    target: &'a str,
    cause: &'a str,
    start: &'a str,
    end: Option<&'a str>,
    devices_affected: usize,
    recovery_50_s: Option<f64>,
    recovery_90_s: Option<f64>,
    recovery_100_s: Option<f64>,
    failovers: usize,
    rehomes: usize,
    rehome_lag_max_s: Option<f64>,
    calls_active: usize,
}

/// The `incidents` table: every incident in the log (design.md §4 defaults).
pub fn incidents_table(
    intervals: &[ServiceInterval],
    rows: &LogRows,
    calls: &[CallRow],
) -> Result<Arc<MemTable>> {
    let found = detect(
        intervals,
        rows,
        calls,
        Us::MIN,
        Us::MAX,
        &IncidentOptions::default(),
    );
    let b = incidents_batch(&found)?;
    Ok(Arc::new(MemTable::try_new(b.schema(), vec![vec![b]])?))
}

/// Incidents as a flat batch (lists replaced by counts).
pub fn incidents_batch(found: &[crate::incidents::Incident]) -> Result<RecordBatch> {
    let s = DataType::Utf8;
    let f = DataType::Float64;
    let u = DataType::UInt64;
    let sch = schema(&[
        ("id", s.clone()),
        ("cluster", s.clone()),
        ("scope", s.clone()),
        ("target", s.clone()),
        ("cause", s),
        ("start", ts()),
        ("end", ts()),
        ("devices_affected", u.clone()),
        ("recovery_50_s", f.clone()),
        ("recovery_90_s", f.clone()),
        ("recovery_100_s", f),
        ("failovers", u.clone()),
        ("rehomes", u.clone()),
        ("rehome_lag_max_s", DataType::Float64),
        ("calls_active", u),
    ]);
    let out: Vec<IncidentOut<'_>> = found
        .iter()
        .map(|i| IncidentOut {
            id: &i.id,
            cluster: &i.cluster,
            scope: &i.scope,
            target: &i.target,
            cause: &i.cause,
            start: &i.start,
            end: i.end.as_deref(),
            devices_affected: i.devices_affected,
            recovery_50_s: i.recovery_50_s,
            recovery_90_s: i.recovery_90_s,
            recovery_100_s: i.recovery_100_s,
            failovers: i.failovers.len(),
            rehomes: i.rehomes.len(),
            rehome_lag_max_s: i.rehome_lag_max_s,
            calls_active: i.calls_active,
        })
        .collect();
    batch(sch, &out)
}
