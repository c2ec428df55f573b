//! The rows of the log the state engine needs, read from a snapshot (segments and the
//! unrolled tail), optionally limited to what was known at an ingest time.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, ListArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, TimestampMicrosecondType, UInt64Type};

use callstate_log::Snapshot;
use callstate_schemas::{Kind, SILENCE_US, Us};

use super::name::Name;
use crate::error::{QueryError, Result};

/// A `device_in_service` / `device_out_of_service` event.
#[derive(Debug, Clone)]
pub struct ServiceRow {
    /// Event time.
    pub time: Us,
    /// Position in ingest order (ties of `time`).
    pub ingest_seq: u64,
    /// When the log accepted it.
    pub ingest_time: Us,
    /// Reporting source.
    pub source: Name,
    /// Cluster.
    pub cluster: Name,
    /// Device.
    pub device: Name,
    /// In service (true) or out of service.
    pub in_service: bool,
    /// Node (in service: handling node; out of service: the node it was on, if given).
    pub node: Option<Name>,
    /// Device pool, when the event carries it.
    pub device_pool: Option<Name>,
    /// Device type, when the event carries it.
    pub device_type: Option<Name>,
    /// Cause (out of service).
    pub cause: Option<Name>,
}

/// A `device_pool_config` event.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Event time.
    pub time: Us,
    /// Ingest order.
    pub ingest_seq: u64,
    /// When the log accepted it.
    pub ingest_time: Us,
    /// Pool.
    pub device_pool: Arc<str>,
    /// CUCM group, primary first.
    pub nodes: Vec<Arc<str>>,
}

/// A `maintenance_window` event.
#[derive(Debug, Clone)]
pub struct MaintenanceRow {
    /// Event time (when it was announced).
    pub time: Us,
    /// When the log accepted it.
    pub ingest_time: Us,
    /// Cluster.
    pub cluster: Arc<str>,
    /// `cluster`, `node`, `device_pool` or `device`.
    pub scope: Arc<str>,
    /// Target name.
    pub target: Arc<str>,
    /// Window start.
    pub start: Us,
    /// Window end.
    pub end: Us,
    /// Reason.
    pub reason: Option<Arc<str>>,
}

/// A call leg on a device: `call_started` and, if seen, its `call_ended`.
#[derive(Debug, Clone)]
pub struct CallRow {
    /// Call id.
    pub call_id: Arc<str>,
    /// Device.
    pub device: Arc<str>,
    /// Start.
    pub start: Us,
    /// End, if ended.
    pub end: Option<Us>,
    /// How it ended.
    pub end_cause: Option<Arc<str>>,
}

/// A leg's (device, call id).
pub type LegKey = (Arc<str>, Arc<str>);

/// A call leg as paired so far: the earliest `call_started` and the latest `call_ended` of
/// one call id on one device (the rule is the same whatever order they arrive in).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Leg {
    /// Earliest start seen.
    pub start: Option<Us>,
    /// Latest end seen.
    pub end: Option<Us>,
    /// The cause of that end.
    pub end_cause: Option<Arc<str>>,
}

impl Leg {
    /// Adds a `call_started` (`started`) or a `call_ended` at `t`; `cause` gives the end's
    /// cause.
    pub fn add(&mut self, started: bool, t: Us, cause: impl FnOnce() -> Option<Arc<str>>) {
        if started {
            self.start = Some(self.start.map_or(t, |s| s.min(t)));
        } else if self.end.is_none_or(|e| t > e) {
            self.end = Some(t);
            self.end_cause = cause();
        }
    }

    /// Where the leg sorts: its start, or (seen only ending) its end.
    pub fn at(&self) -> Us {
        self.start.or(self.end).unwrap_or_default()
    }

    /// The leg as a row (a leg seen only ending starts and ends then).
    pub fn row(&self, call_id: Arc<str>, device: Arc<str>) -> CallRow {
        CallRow {
            call_id,
            device,
            start: self.at(),
            end: self.end,
            end_cause: self.end_cause.clone(),
        }
    }
}

/// A node or CTIManager event: `node_down`, `node_up`, `provider_out_of_service` or
/// `provider_in_service`.
#[derive(Debug, Clone)]
pub struct NodeEvent {
    /// Event time.
    pub time: Us,
    /// When the log accepted it.
    pub ingest_time: Us,
    /// Its kind (one of the four above).
    pub kind: Kind,
    /// Cluster.
    pub cluster: Arc<str>,
    /// The node, or the CTIManager the provider was on.
    pub target: Arc<str>,
    /// Cause, when given.
    pub cause: Option<Arc<str>>,
}

/// What the state engine reads from the log.
#[derive(Debug, Default)]
pub struct LogRows {
    /// Calls (legs per device), by device, then start.
    pub calls: Vec<CallRow>,
    /// Node and CTIManager (provider) events, by time.
    pub node_events: Vec<NodeEvent>,
    /// Service events.
    pub service: Vec<ServiceRow>,
    /// Pool configurations.
    pub pool_configs: Vec<PoolConfig>,
    /// Maintenance windows.
    pub windows: Vec<MaintenanceRow>,
    /// Activity spans of every source, by start, merged so that consecutive spans are more
    /// than 90 s apart (the silence rule's input).
    pub source_spans: SourceSpans,
    /// Event times read from full rows, per source (folded into `source_spans` by `load`).
    pub(crate) source_times: HashMap<Arc<str>, Vec<Us>>,
    /// Retention of intervals: history is kept from this instant (the log's base,
    /// [`Snapshot::base`]); the service events before it are the base's.
    pub horizon: Option<Us>,
    /// Service events before this instant are left out as read (those of batches other
    /// than the base's, when it has a horizon): the base stands for them.
    pub(crate) shadowed_before: Option<Us>,
    /// Service events left out so (the base had already been folded when they came).
    pub shadowed: u64,
}

/// Interns strings so that repeated names share one allocation (a fast hasher: this is
/// called for most string cells of the log).
#[derive(Default)]
pub(crate) struct Interner(
    hashbrown::HashMap<Box<str>, Arc<str>>,
    hashbrown::HashMap<Box<str>, Name>,
);

impl Interner {
    /// The [`Name`] of `s` (found here before the global table of names).
    pub(crate) fn name(&mut self, s: &str) -> Name {
        if let Some(n) = self.1.get(s) {
            return *n;
        }
        let n = Name::new(s);
        self.1.insert(s.into(), n);
        n
    }

    /// The shared copy of `s`.
    pub(crate) fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.0.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.0.insert(s.into(), a.clone());
        a
    }
}

pub(crate) const COLUMNS: &[&str] = &[
    "time",
    "kind",
    "cluster",
    "device",
    "device_type",
    "node",
    "device_pool",
    "cause",
    "nodes",
    "scope",
    "target",
    "window_start",
    "window_end",
    "reason",
    "source",
    "ingest_time",
    "ingest_seq",
    "ctimanager",
];

fn missing(name: &str) -> QueryError {
    QueryError::Data(format!("column {name} missing"))
}

/// A string column read as [`Name`]s. Segments and digests keep these columns
/// dictionary-encoded: each distinct value then becomes a name once per batch, not once a
/// row (a start reads 2.9 M service events of seven names each at a year).
struct NameCol<'a> {
    col: StrCol<'a>,
    /// Per dictionary value, its name once made.
    names: Vec<Option<Name>>,
}

impl<'a> NameCol<'a> {
    fn of(col: &'a arrow::array::ArrayRef) -> Result<NameCol<'a>> {
        let col = StrCol::of(col)?;
        let n = match &col {
            StrCol::Dict(_, values) => values.len(),
            StrCol::Plain(_) => 0,
        };
        Ok(NameCol {
            col,
            names: vec![None; n],
        })
    }

    /// The name of row `i`, if it has one.
    fn name(&mut self, i: usize, interner: &mut Interner) -> Option<Name> {
        match self.col {
            StrCol::Plain(_) => self.col.get(i).map(|s| interner.name(s)),
            StrCol::Dict(keys, values) => {
                let k = keys.is_valid(i).then(|| keys.value(i) as usize)?;
                Some(*self.names[k].get_or_insert_with(|| interner.name(values.value(k))))
            }
        }
    }

    /// The text of row `i`, if it has one.
    fn str(&self, i: usize) -> Option<&'a str> {
        self.col.get(i)
    }
}

impl LogRows {
    /// Reads a snapshot with its call legs; with `known_at`, only events ingested at or
    /// before it count.
    pub fn load(snap: &Snapshot, known_at: Option<Us>) -> Result<LogRows> {
        Self::load_with(snap, known_at, true)
    }

    /// Like [`LogRows::load`]; without `calls`, call legs are not read (availability, SLA and
    /// states without `active_calls` do not need them). Everything else comes from the
    /// segments' digests where they can answer.
    pub fn load_with(snap: &Snapshot, known_at: Option<Us>, calls: bool) -> Result<LogRows> {
        let mut rows = Self::read(snap, known_at, true)?;
        if calls {
            rows.calls = Self::load_calls(snap, known_at)?;
        }
        Ok(rows)
    }

    /// Like `load_with(snap, known_at, false)` but from every event, ignoring the digests:
    /// the reference the digests are checked against.
    pub fn load_without_digests(snap: &Snapshot, known_at: Option<Us>) -> Result<LogRows> {
        Self::read(snap, known_at, false)
    }

    /// Like `load_with(snap, None, false)`, but every service event is handed to `each` as
    /// it is read (in the segments' order, then the tail's), none kept in `service`: a
    /// caller keeping them in a smaller form does not hold them all as rows at once.
    pub fn load_handing_service(
        snap: &Snapshot,
        mut each: impl FnMut(ServiceRow),
    ) -> Result<LogRows> {
        Self::read_with(snap, None, true, Some(&mut each))
    }

    fn read(snap: &Snapshot, known_at: Option<Us>, digests: bool) -> Result<LogRows> {
        Self::read_with(snap, known_at, digests, None)
    }

    fn read_with(
        snap: &Snapshot,
        known_at: Option<Us>,
        digests: bool,
        mut each: Option<&mut dyn FnMut(ServiceRow)>,
    ) -> Result<LogRows> {
        let mut rows = LogRows::default();
        let mut names = Interner::default();
        // refused before anything is read
        if let Some(base) = &snap.base {
            if !digests {
                return Err(QueryError::Retired(format!(
                    "retention of intervals folded the history before {} into the log's \
                     base: the events cannot be read without it",
                    callstate_schemas::format_instant(base.horizon_us)
                )));
            }
            if let Some(k) = known_at.filter(|k| *k < base.max_ingest_time_us) {
                return Err(known_before_base(k, base));
            }
            rows.horizon = Some(base.horizon_us);
        }
        // each batch made rows on the thread that reads the next files meanwhile, and those
        // added here: the decoding, the rows' making and the caller's work on them overlap,
        // and the rows grow as the batches go, rather than all the rows next to all the
        // batches
        let horizon = rows.horizon;
        let mut reading = Interner::default();
        let part = move |b: RecordBatch, base: bool| -> Result<LogRows> {
            let mut part = LogRows {
                shadowed_before: horizon.filter(|_| !base),
                ..LogRows::default()
            };
            part.add_batch(&b, known_at, &mut reading)?;
            Ok(part)
        };
        let add = |part: LogRows| -> Result<()> {
            rows.take(part, each.as_deref_mut());
            Ok(())
        };
        let spans = if digests {
            snap.each_digest_batch(Some(COLUMNS), known_at, part, add)?
                .0
        } else {
            let mut part = part;
            snap.each_batch(Some(COLUMNS), move |b| part(b, false), add)?;
            Vec::new()
        };
        for s in spans {
            let src = names.get(&s.source);
            rows.source_spans
                .entry(src)
                .or_default()
                .push((s.start_us, s.end_us));
        }
        rows.fold_spans();
        rows.node_events.sort_by_key(|p| p.time);
        Ok(rows)
    }

    /// Adds `part`'s rows, read after its own; its service events handed to `each` if given
    /// (not kept).
    fn take<'f>(&mut self, part: LogRows, each: Option<&mut (dyn FnMut(ServiceRow) + 'f)>) {
        match each {
            Some(f) => part.service.into_iter().for_each(f),
            None => self.service.extend(part.service),
        }
        self.pool_configs.extend(part.pool_configs);
        self.windows.extend(part.windows);
        self.node_events.extend(part.node_events);
        for (source, times) in part.source_times {
            self.source_times.entry(source).or_default().extend(times);
        }
        self.shadowed += part.shadowed;
    }

    /// Folds the event times of full rows into the spans and merges each source's spans
    /// across gaps of at most 90 s.
    fn fold_spans(&mut self) {
        for (src, times) in std::mem::take(&mut self.source_times) {
            let v = self.source_spans.entry(src).or_default();
            v.extend(times.into_iter().map(|t| (t, t)));
        }
        for v in self.source_spans.values_mut() {
            merge_spans(v);
        }
    }

    /// Only the call legs of a snapshot (with `known_at`, as known then), reading just the
    /// columns they need: a `call_started` and, if seen, the `call_ended` of the same call id
    /// on the same device (a leg seen only ending starts and ends then).
    pub fn load_calls(snap: &Snapshot, known_at: Option<Us>) -> Result<Vec<CallRow>> {
        let mut calls: Vec<CallRow> = Self::load_legs(snap, known_at)?
            .into_iter()
            .map(|((device, id), leg)| leg.row(id, device))
            .collect();
        calls.sort_unstable_by(|a, b| {
            (&a.device, a.start, &a.call_id).cmp(&(&b.device, b.start, &b.call_id))
        });
        Ok(calls)
    }

    /// The call legs of a snapshot as paired, keyed by (device, call id), in no order. A
    /// snapshot some of whose raw events retention removed cannot give them all: an error
    /// says so.
    pub fn load_legs(snap: &Snapshot, known_at: Option<Us>) -> Result<Vec<(LegKey, Leg)>> {
        if let Some(r) = snap.retired() {
            return Err(QueryError::Retired(format!(
                "call legs cannot be derived from the raw events: retention removed those of \
                 {} segments (events up to {}); the live state of a running server \
                 (callstate serve) reads their legs from the checkpoint of the legs",
                r.segments,
                callstate_schemas::format_instant(r.max_time_us)
            )));
        }
        let columns = ["time", "kind", "device", "call_id", "cause", "ingest_time"];
        let batches = snap.read_batches(Some(&columns))?;
        let mut names = Interner::default();
        // keyed by (device, call id) borrowed from the batches
        let mut legs: hashbrown::HashMap<(&str, &str), Leg> = hashbrown::HashMap::new();
        for b in &batches {
            for_each_call_event(b, known_at, |e| {
                let leg = legs.entry((e.device, e.call_id)).or_default();
                leg.add(e.started, e.time, || e.cause.map(|c| names.get(c)));
            })?;
        }
        Ok(legs
            .into_iter()
            .map(|((dev, id), leg)| ((names.get(dev), Arc::from(id)), leg))
            .collect())
    }

    /// Adds what the state engine reads of one batch (call legs aside: see
    /// [`for_each_call_event`]); with `known_at`, only rows ingested by then.
    pub(crate) fn add_batch(
        &mut self,
        b: &RecordBatch,
        known_at: Option<Us>,
        names: &mut Interner,
    ) -> Result<()> {
        let col = |n: &str| b.column_by_name(n).ok_or_else(|| missing(n));
        let time = col("time")?
            .as_primitive::<TimestampMicrosecondType>()
            .clone();
        let itime = col("ingest_time")?
            .as_primitive::<TimestampMicrosecondType>()
            .clone();
        let iseq = col("ingest_seq")?.as_primitive::<UInt64Type>().clone();
        let wstart = col("window_start")?
            .as_primitive::<TimestampMicrosecondType>()
            .clone();
        let wend = col("window_end")?
            .as_primitive::<TimestampMicrosecondType>()
            .clone();
        let nodes = col("nodes")?.as_any().downcast_ref::<ListArray>().cloned();
        let text = |n: &str| StrCol::of(col(n)?);
        let kind = text("kind")?;
        let (scope, target, reason, ctimanager) = (
            text("scope")?,
            text("target")?,
            text("reason")?,
            text("ctimanager")?,
        );
        let names_of = |n: &str| NameCol::of(col(n)?);
        let (mut source, mut device, mut cluster) = (
            names_of("source")?,
            names_of("device")?,
            names_of("cluster")?,
        );
        let (mut node, mut pool, mut device_type, mut cause) = (
            names_of("node")?,
            names_of("device_pool")?,
            names_of("device_type")?,
            names_of("cause")?,
        );
        for i in 0..b.num_rows() {
            if known_at.is_some_and(|k| itime.value(i) > k) {
                continue;
            }
            // (a column the schema holds non-null)
            let src = names.get(source.str(i).unwrap_or_default());
            self.source_times
                .entry(src.clone())
                .or_default()
                .push(time.value(i));
            let mut get = |s: Option<&str>| s.map(|s| names.get(s));
            let Some(k) = kind.get(i).and_then(Kind::parse) else {
                continue;
            };
            match k {
                Kind::DeviceInService | Kind::DeviceOutOfService => {
                    if self.shadowed_before.is_some_and(|h| time.value(i) < h) {
                        self.shadowed += 1;
                        continue;
                    }
                    let mut name = |c: &mut NameCol| c.name(i, names);
                    let (Some(src), Some(dev), Some(cl)) =
                        (name(&mut source), name(&mut device), name(&mut cluster))
                    else {
                        continue;
                    };
                    self.service.push(ServiceRow {
                        time: time.value(i),
                        ingest_seq: iseq.value(i),
                        ingest_time: itime.value(i),
                        source: src,
                        cluster: cl,
                        device: dev,
                        in_service: k == Kind::DeviceInService,
                        node: name(&mut node),
                        device_pool: name(&mut pool),
                        device_type: name(&mut device_type),
                        cause: name(&mut cause),
                    });
                }
                Kind::DevicePoolConfig => {
                    let (Some(p), Some(list)) = (get(pool.str(i)), nodes.as_ref()) else {
                        continue;
                    };
                    if list.is_null(i) {
                        continue;
                    }
                    let l = list.value(i);
                    let l = l.as_string::<i32>();
                    self.pool_configs.push(PoolConfig {
                        time: time.value(i),
                        ingest_seq: iseq.value(i),
                        ingest_time: itime.value(i),
                        device_pool: p,
                        nodes: l.iter().flatten().map(|s| names.get(s)).collect(),
                    });
                }
                Kind::NodeDown
                | Kind::NodeUp
                | Kind::ProviderOutOfService
                | Kind::ProviderInService => {
                    let target = match k {
                        Kind::NodeDown | Kind::NodeUp => node.str(i),
                        _ => ctimanager.get(i),
                    };
                    let (Some(cl), Some(t)) = (get(cluster.str(i)), get(target)) else {
                        continue;
                    };
                    self.node_events.push(NodeEvent {
                        time: time.value(i),
                        ingest_time: itime.value(i),
                        kind: k,
                        cluster: cl,
                        target: t,
                        cause: get(cause.str(i)),
                    });
                }
                Kind::MaintenanceWindow => {
                    let (Some(sc), Some(tg), Some(cl)) =
                        (get(scope.get(i)), get(target.get(i)), get(cluster.str(i)))
                    else {
                        continue;
                    };
                    if wstart.is_null(i) || wend.is_null(i) {
                        continue;
                    }
                    self.windows.push(MaintenanceRow {
                        time: time.value(i),
                        ingest_time: itime.value(i),
                        cluster: cl,
                        scope: sc,
                        target: tg,
                        start: wstart.value(i),
                        end: wend.value(i),
                        reason: get(reason.get(i)),
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Each source's activity spans (merged, by start).
pub type SourceSpans = HashMap<Arc<str>, Vec<(Us, Us)>>;

/// Each source's activity spans as known at `known_at` (from the digests where a segment was
/// wholly ingested by then, from its events otherwise), merged.
pub fn source_spans_known_at(snap: &Snapshot, known_at: Us) -> Result<SourceSpans> {
    if let Some(base) = snap
        .base
        .as_ref()
        .filter(|b| known_at < b.max_ingest_time_us)
    {
        return Err(known_before_base(known_at, base));
    }
    let view = snap.read_activity(known_at)?;
    let mut names = Interner::default();
    let mut out = SourceSpans::new();
    for s in view.spans {
        out.entry(names.get(&s.source))
            .or_default()
            .push((s.start_us, s.end_us));
    }
    for b in &view.batches {
        let col = |n: &str| b.column_by_name(n).ok_or_else(|| missing(n));
        let time = col("time")?.as_primitive::<TimestampMicrosecondType>();
        let itime = col("ingest_time")?.as_primitive::<TimestampMicrosecondType>();
        let source = StrCol::of(col("source")?)?;
        for i in 0..b.num_rows() {
            if itime.value(i) > known_at {
                continue;
            }
            if let Some(src) = source.get(i) {
                let t = time.value(i);
                out.entry(names.get(src)).or_default().push((t, t));
            }
        }
    }
    for v in out.values_mut() {
        merge_spans(v);
    }
    Ok(out)
}

/// The refusal of a question as known at `known_at`, before the latest ingest time of what
/// the base (retention of intervals) holds: what was known then cannot be told apart.
pub fn known_before_base(known_at: Us, base: &callstate_log::Base) -> QueryError {
    QueryError::Retired(format!(
        "known_at {} is before {}, the latest ingest time of the history retention of \
         intervals folded (kept from {}): what was known before cannot be told apart",
        callstate_schemas::format_instant(known_at),
        callstate_schemas::format_instant(base.max_ingest_time_us),
        callstate_schemas::format_instant(base.horizon_us),
    ))
}

/// Sorts activity spans and merges those less than 90 s apart (the silence rule's runs).
pub fn merge_spans(v: &mut Vec<(Us, Us)>) {
    v.sort_unstable();
    let mut merged: Vec<(Us, Us)> = Vec::with_capacity(v.len().min(1024));
    for &(s, e) in v.iter() {
        match merged.last_mut() {
            Some(last) if s - last.1 <= SILENCE_US => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    *v = merged;
}

/// A string column, dictionary-encoded or plain, read without copying.
enum StrCol<'a> {
    Dict(&'a arrow::array::Int32Array, &'a StringArray),
    Plain(&'a StringArray),
}

impl<'a> StrCol<'a> {
    fn of(col: &'a arrow::array::ArrayRef) -> Result<StrCol<'a>> {
        match col.data_type() {
            DataType::Utf8 => Ok(StrCol::Plain(col.as_string::<i32>())),
            DataType::Dictionary(k, v) if **k == DataType::Int32 && **v == DataType::Utf8 => {
                let d = col.as_dictionary::<arrow::datatypes::Int32Type>();
                Ok(StrCol::Dict(d.keys(), d.values().as_string::<i32>()))
            }
            other => Err(QueryError::Data(format!(
                "unexpected string column type {other}"
            ))),
        }
    }

    fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            StrCol::Plain(a) => a.is_valid(i).then(|| a.value(i)),
            StrCol::Dict(k, v) => k.is_valid(i).then(|| v.value(k.value(i) as usize)),
        }
    }
}

/// One `call_started` or `call_ended` as [`for_each_call_event`] hands it over.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallEvent<'b> {
    /// Device.
    pub device: &'b str,
    /// Call id.
    pub call_id: &'b str,
    /// `call_started` (or `call_ended`).
    pub started: bool,
    /// Event time.
    pub time: Us,
    /// When the log accepted it.
    pub ingest_time: Us,
    /// Cause (of an end).
    pub cause: Option<&'b str>,
}

/// Calls `f` for every `call_started` and `call_ended` of a batch (with `known_at`,
/// ingested by then).
pub(crate) fn for_each_call_event<'b>(
    b: &'b RecordBatch,
    known_at: Option<Us>,
    mut f: impl FnMut(CallEvent<'b>),
) -> Result<()> {
    let col = |n: &str| b.column_by_name(n).ok_or_else(|| missing(n));
    let time = col("time")?.as_primitive::<TimestampMicrosecondType>();
    let itime = col("ingest_time")?.as_primitive::<TimestampMicrosecondType>();
    let kind = StrCol::of(col("kind")?)?;
    let device = StrCol::of(col("device")?)?;
    let cause = StrCol::of(col("cause")?)?;
    let call_id = StrCol::of(col("call_id")?)?;
    for i in 0..b.num_rows() {
        let started = match kind.get(i).and_then(Kind::parse) {
            Some(Kind::CallStarted) => true,
            Some(Kind::CallEnded) => false,
            _ => continue,
        };
        if known_at.is_some_and(|t| itime.value(i) > t) {
            continue;
        }
        let (Some(dev), Some(id)) = (device.get(i), call_id.get(i)) else {
            continue;
        };
        f(CallEvent {
            device: dev,
            call_id: id,
            started,
            time: time.value(i),
            ingest_time: itime.value(i),
            cause: cause.get(i),
        });
    }
    Ok(())
}
