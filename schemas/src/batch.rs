//! The flat `events` Arrow schema, and conversion between events and record batches.
//!
//! One table for every kind: envelope columns, one nullable column per kind-specific field,
//! low-cardinality strings dictionary-encoded, timestamps as UTC microseconds, unknown fields
//! in `extra` (JSON text), and the log's own columns `ingest_time`, `ingest_seq` and
//! `content_hash`. `maintenance_window`'s `start`/`end` are the columns `window_start` and
//! `window_end` (`end` is an SQL keyword).

use std::sync::{Arc, OnceLock};

use arrow::array::builder::NullBufferBuilder;
use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, DictionaryArray, Int32Array, ListArray,
    ListBuilder, RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray,
    TimestampMicrosecondBuilder, UInt64Array, UInt64Builder,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use chrono::{DateTime, Utc};
use hashbrown::HashMap;

use crate::event::{Event, EventView, Kind};
use crate::parse::{Bag, Parsed};
use crate::spec::{FieldType, kind_spec};

/// How a column is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// `Dictionary(Int32, Utf8)`: low-cardinality strings.
    DictStr,
    /// `Utf8`.
    Str,
    /// `Timestamp(Microsecond, "UTC")`.
    Time,
    /// `UInt64`.
    U64,
    /// `Boolean`.
    Bool,
    /// `List(Utf8)`.
    StrList,
}

/// Every column of the `events` table: name, storage, nullable.
pub const COLUMNS: &[(&str, ColumnType, bool)] = &[
    ("time", ColumnType::Time, false),
    ("kind", ColumnType::DictStr, false),
    ("cluster", ColumnType::DictStr, false),
    ("device", ColumnType::DictStr, true),
    ("device_type", ColumnType::DictStr, true),
    ("node", ColumnType::DictStr, true),
    ("device_pool", ColumnType::DictStr, true),
    ("ctimanager", ColumnType::DictStr, true),
    ("cause", ColumnType::DictStr, true),
    ("state", ColumnType::DictStr, true),
    ("address", ColumnType::DictStr, true),
    ("call_id", ColumnType::Str, true),
    ("consult_call_id", ColumnType::Str, true),
    ("calling", ColumnType::Str, true),
    ("called", ColumnType::Str, true),
    ("transferred_to", ColumnType::Str, true),
    ("remote_destination", ColumnType::Str, true),
    ("change", ColumnType::DictStr, true),
    ("active", ColumnType::Bool, true),
    ("nodes", ColumnType::StrList, true),
    ("scope", ColumnType::DictStr, true),
    ("target", ColumnType::DictStr, true),
    ("window_start", ColumnType::Time, true),
    ("window_end", ColumnType::Time, true),
    ("reason", ColumnType::Str, true),
    ("extra", ColumnType::Str, true),
    ("source", ColumnType::DictStr, false),
    ("seq", ColumnType::U64, false),
    ("ingest_time", ColumnType::Time, false),
    ("ingest_seq", ColumnType::U64, false),
    ("content_hash", ColumnType::U64, false),
];

/// The table column that holds a contract field (`start`/`end` are renamed).
pub fn column_for_field(field: &str) -> &str {
    match field {
        "start" => "window_start",
        "end" => "window_end",
        other => other,
    }
}

/// The Arrow data type of a column type.
pub fn data_type(t: ColumnType) -> DataType {
    match t {
        ColumnType::DictStr => {
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
        }
        ColumnType::Str => DataType::Utf8,
        ColumnType::Time => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ColumnType::U64 => DataType::UInt64,
        ColumnType::Bool => DataType::Boolean,
        ColumnType::StrList => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
    }
}

/// The Arrow schema of the `events` table.
pub fn events_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(
                COLUMNS
                    .iter()
                    .map(|(name, t, nullable)| Field::new(*name, data_type(*t), *nullable))
                    .collect::<Vec<_>>(),
            ))
        })
        .clone()
}

/// An event as stored by the log, with the log's own metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// The event.
    pub event: Event,
    /// Position in the log's ingest order (unique, increasing).
    pub ingest_seq: u64,
    /// When the log accepted it.
    pub ingest_time: DateTime<Utc>,
    /// [`Event::content_hash`].
    pub content_hash: u64,
}

/// A builder that appends a run of nulls at once.
trait NullRun {
    fn nulls(&mut self, n: usize);
}

impl NullRun for StringBuilder {
    fn nulls(&mut self, n: usize) {
        self.append_nulls(n);
    }
}
impl NullRun for TimestampMicrosecondBuilder {
    fn nulls(&mut self, n: usize) {
        self.append_nulls(n);
    }
}
impl NullRun for BooleanBuilder {
    fn nulls(&mut self, n: usize) {
        self.append_nulls(n);
    }
}
impl NullRun for ListBuilder<StringBuilder> {
    fn nulls(&mut self, n: usize) {
        self.append_nulls(n);
    }
}

/// A nullable column that counts nulls and appends them in runs: most columns of a row are
/// null (each kind fills a few), and a run costs about what one null does.
struct Sparse<B> {
    b: B,
    nulls: usize,
}

impl<B: NullRun> Sparse<B> {
    fn new(b: B) -> Self {
        Sparse { b, nulls: 0 }
    }
    fn null(&mut self) {
        self.nulls += 1;
    }
    /// The builder, with the pending nulls appended.
    fn get(&mut self) -> &mut B {
        if self.nulls > 0 {
            self.b.nulls(self.nulls);
            self.nulls = 0;
        }
        &mut self.b
    }
}

impl Sparse<StringBuilder> {
    fn put(&mut self, v: Option<&str>) {
        match v {
            Some(v) => self.get().append_value(v),
            None => self.null(),
        }
    }
}

impl Sparse<TimestampMicrosecondBuilder> {
    fn put(&mut self, v: Option<i64>) {
        match v {
            Some(v) => self.get().append_value(v),
            None => self.null(),
        }
    }
}

/// A `Dictionary(Int32, Utf8)` column: keys with runs of nulls, and a shortcut for a value
/// equal to the previous one (kind, cluster, source... repeat from row to row).
struct DictColumn {
    keys: Vec<i32>,
    valid: NullBufferBuilder,
    /// Nulls not yet in `keys` and `valid`.
    nulls: usize,
    values: Vec<Box<str>>,
    index: HashMap<Box<str>, i32>,
    last: Option<i32>,
}

impl DictColumn {
    fn with_capacity(cap: usize) -> Self {
        DictColumn {
            keys: Vec::with_capacity(cap),
            valid: NullBufferBuilder::new(cap),
            nulls: 0,
            values: Vec::new(),
            index: HashMap::new(),
            last: None,
        }
    }

    fn flush_nulls(&mut self) {
        if self.nulls > 0 {
            self.keys.resize(self.keys.len() + self.nulls, 0);
            self.valid.append_n_nulls(self.nulls);
            self.nulls = 0;
        }
    }

    fn put(&mut self, v: Option<&str>) {
        let Some(v) = v else {
            self.nulls += 1;
            return;
        };
        self.flush_nulls();
        let key = match self.last {
            Some(k) if *self.values[k as usize] == *v => k,
            _ => {
                let k = match self.index.get(v) {
                    Some(&k) => k,
                    None => {
                        let k = self.values.len() as i32;
                        self.values.push(v.into());
                        self.index.insert(v.into(), k);
                        k
                    }
                };
                self.last = Some(k);
                k
            }
        };
        self.keys.push(key);
        self.valid.append_non_null();
    }

    fn finish(&mut self) -> ArrayRef {
        self.flush_nulls();
        let keys = Int32Array::new(std::mem::take(&mut self.keys).into(), self.valid.finish());
        let values = StringArray::from_iter_values(self.values.drain(..));
        self.index.clear();
        self.last = None;
        Arc::new(DictionaryArray::new(keys, Arc::new(values)))
    }
}

/// Builds `events` record batches from events.
pub struct EventBatchBuilder {
    time: TimestampMicrosecondBuilder,
    kind: DictColumn,
    cluster: DictColumn,
    device: DictColumn,
    device_type: DictColumn,
    node: DictColumn,
    device_pool: DictColumn,
    ctimanager: DictColumn,
    cause: DictColumn,
    state: DictColumn,
    address: DictColumn,
    call_id: Sparse<StringBuilder>,
    consult_call_id: Sparse<StringBuilder>,
    calling: Sparse<StringBuilder>,
    called: Sparse<StringBuilder>,
    transferred_to: Sparse<StringBuilder>,
    remote_destination: Sparse<StringBuilder>,
    change: DictColumn,
    active: Sparse<BooleanBuilder>,
    nodes: Sparse<ListBuilder<StringBuilder>>,
    scope: DictColumn,
    target: DictColumn,
    window_start: Sparse<TimestampMicrosecondBuilder>,
    window_end: Sparse<TimestampMicrosecondBuilder>,
    reason: Sparse<StringBuilder>,
    extra: Sparse<StringBuilder>,
    source: DictColumn,
    seq: UInt64Builder,
    ingest_time: TimestampMicrosecondBuilder,
    ingest_seq: UInt64Builder,
    content_hash: UInt64Builder,
    len: usize,
}

fn ts_builder(cap: usize) -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::with_capacity(cap).with_timezone("UTC")
}

impl EventBatchBuilder {
    /// A builder sized for about `cap` events.
    pub fn with_capacity(cap: usize) -> Self {
        let d = || DictColumn::with_capacity(cap);
        // Sparse columns start small: most rows leave them null.
        let s = || Sparse::new(StringBuilder::new());
        let t = || Sparse::new(ts_builder(0));
        EventBatchBuilder {
            time: ts_builder(cap),
            kind: d(),
            cluster: d(),
            device: d(),
            device_type: d(),
            node: d(),
            device_pool: d(),
            ctimanager: d(),
            cause: d(),
            state: d(),
            address: d(),
            call_id: Sparse::new(StringBuilder::with_capacity(cap, cap * 8)),
            consult_call_id: s(),
            calling: s(),
            called: s(),
            transferred_to: s(),
            remote_destination: s(),
            change: d(),
            active: Sparse::new(BooleanBuilder::new()),
            nodes: Sparse::new(ListBuilder::new(StringBuilder::new())),
            scope: d(),
            target: d(),
            window_start: t(),
            window_end: t(),
            reason: s(),
            extra: s(),
            source: d(),
            seq: UInt64Builder::with_capacity(cap),
            ingest_time: ts_builder(cap),
            ingest_seq: UInt64Builder::with_capacity(cap),
            content_hash: UInt64Builder::with_capacity(cap),
            len: 0,
        }
    }

    /// Rows appended since the last `finish`.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no row was appended since the last `finish`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one event with the log's metadata.
    pub fn append(
        &mut self,
        e: &Event,
        ingest_seq: u64,
        ingest_time: DateTime<Utc>,
        content_hash: u64,
    ) {
        self.append_view(&e.view(), ingest_seq, ingest_time, content_hash);
    }

    /// Appends an event for the log to store: `ingest_seq` and `ingest_time` are left unset,
    /// for the log to stamp when it accepts the row.
    pub fn append_unstamped(&mut self, e: &EventView<'_>, content_hash: u64) {
        self.append_view(e, 0, DateTime::<Utc>::UNIX_EPOCH, content_hash);
    }

    /// [`EventBatchBuilder::append`] of an event's view.
    pub fn append_view(
        &mut self,
        e: &EventView<'_>,
        ingest_seq: u64,
        ingest_time: DateTime<Utc>,
        content_hash: u64,
    ) {
        let f = &e.fields;
        self.time.append_value(e.time_us);
        self.kind.put(Some(f.kind.as_str()));
        self.cluster.put(Some(e.cluster));
        self.device.put(f.device);
        self.device_type.put(f.device_type.map(|t| t.as_str()));
        self.node.put(f.node);
        self.device_pool.put(f.device_pool);
        self.ctimanager.put(f.ctimanager);
        self.cause.put(f.cause);
        self.state.put(f.state);
        self.address.put(f.address);
        self.call_id.put(f.call_id);
        self.consult_call_id.put(f.consult_call_id);
        self.calling.put(f.calling);
        self.called.put(f.called);
        self.transferred_to.put(f.transferred_to);
        self.remote_destination.put(f.remote_destination);
        self.change.put(f.change.map(|c| c.as_str()));
        match f.active {
            Some(a) => self.active.get().append_value(a),
            None => self.active.null(),
        }
        match f.nodes {
            Some(nodes) => {
                let b = self.nodes.get();
                for n in nodes {
                    b.values().append_value(n);
                }
                b.append(true);
            }
            None => self.nodes.null(),
        }
        self.scope.put(f.scope.map(|s| s.as_str()));
        self.target.put(f.target);
        self.window_start.put(f.start.map(|t| t.timestamp_micros()));
        self.window_end.put(f.end.map(|t| t.timestamp_micros()));
        self.reason.put(f.reason);
        self.extra.put(e.extra);
        self.source.put(Some(e.source));
        self.seq.append_value(e.seq);
        self.ingest_time
            .append_value(ingest_time.timestamp_micros());
        self.ingest_seq.append_value(ingest_seq);
        self.content_hash.append_value(content_hash);
        self.len += 1;
    }

    /// The batch of everything appended so far; the builder is empty afterwards.
    pub fn finish(&mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            self.kind.finish(),
            self.cluster.finish(),
            self.device.finish(),
            self.device_type.finish(),
            self.node.finish(),
            self.device_pool.finish(),
            self.ctimanager.finish(),
            self.cause.finish(),
            self.state.finish(),
            self.address.finish(),
            Arc::new(self.call_id.get().finish()),
            Arc::new(self.consult_call_id.get().finish()),
            Arc::new(self.calling.get().finish()),
            Arc::new(self.called.get().finish()),
            Arc::new(self.transferred_to.get().finish()),
            Arc::new(self.remote_destination.get().finish()),
            self.change.finish(),
            Arc::new(self.active.get().finish()),
            Arc::new(self.nodes.get().finish()),
            self.scope.finish(),
            self.target.finish(),
            Arc::new(self.window_start.get().finish()),
            Arc::new(self.window_end.get().finish()),
            Arc::new(self.reason.get().finish()),
            Arc::new(self.extra.get().finish()),
            self.source.finish(),
            Arc::new(self.seq.finish()),
            Arc::new(self.ingest_time.finish()),
            Arc::new(self.ingest_seq.finish()),
            Arc::new(self.content_hash.finish()),
        ];
        self.len = 0;
        RecordBatch::try_new(events_schema(), columns).expect("builder columns match the schema")
    }
}

/// Column accessors over a batch, with every string column cast to plain `Utf8`.
struct Columns<'a> {
    batch: &'a RecordBatch,
    strs: Vec<Option<StringArray>>,
}

impl<'a> Columns<'a> {
    fn new(batch: &'a RecordBatch) -> Result<Self, ArrowError> {
        let schema = batch.schema();
        let mut strs = Vec::with_capacity(COLUMNS.len());
        for (name, t, _) in COLUMNS {
            let idx = schema.index_of(name)?;
            strs.push(match t {
                ColumnType::DictStr | ColumnType::Str => {
                    let a = cast(batch.column(idx), &DataType::Utf8)?;
                    Some(
                        a.as_any()
                            .downcast_ref::<StringArray>()
                            .cloned()
                            .ok_or_else(|| {
                                ArrowError::CastError(format!("column {name} is not a string"))
                            })?,
                    )
                }
                _ => None,
            });
        }
        Ok(Columns { batch, strs })
    }
    fn pos(name: &str) -> usize {
        COLUMNS
            .iter()
            .position(|(n, ..)| *n == name)
            .expect("known column")
    }
    fn str(&self, name: &str, row: usize) -> Option<&str> {
        let a = self.strs[Self::pos(name)].as_ref().expect("string column");
        a.is_valid(row).then(|| a.value(row))
    }
    fn typed<T: 'static>(&self, name: &str) -> Result<&T, ArrowError> {
        self.batch
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<T>())
            .ok_or_else(|| ArrowError::SchemaError(format!("column {name} has the wrong type")))
    }
}

fn micros(t: i64) -> Result<DateTime<Utc>, ArrowError> {
    DateTime::from_timestamp_micros(t)
        .ok_or_else(|| ArrowError::ComputeError(format!("timestamp {t} out of range")))
}

/// Decodes an `events` batch back into stored events.
pub fn decode_batch(batch: &RecordBatch) -> Result<Vec<StoredEvent>, ArrowError> {
    let c = Columns::new(batch)?;
    let time = c.typed::<TimestampMicrosecondArray>("time")?;
    let seq = c.typed::<UInt64Array>("seq")?;
    let ingest_time = c.typed::<TimestampMicrosecondArray>("ingest_time")?;
    let ingest_seq = c.typed::<UInt64Array>("ingest_seq")?;
    let content_hash = c.typed::<UInt64Array>("content_hash")?;
    let active = c.typed::<BooleanArray>("active")?;
    let nodes = c.typed::<ListArray>("nodes")?;
    let wstart = c.typed::<TimestampMicrosecondArray>("window_start")?;
    let wend = c.typed::<TimestampMicrosecondArray>("window_end")?;
    let bad = |row: usize, what: String| ArrowError::ComputeError(format!("row {row}: {what}"));

    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let kind_text = c.str("kind", row).unwrap_or_default();
        let kind = Kind::parse(kind_text).ok_or_else(|| bad(row, format!("kind {kind_text}")))?;
        let mut bag = Bag::default();
        for f in kind_spec(kind).fields {
            let col = column_for_field(f.name);
            let v = match f.ty {
                FieldType::Time => {
                    let a = if f.name == "start" { wstart } else { wend };
                    a.is_valid(row)
                        .then(|| micros(a.value(row)).map(Parsed::Time))
                        .transpose()?
                }
                FieldType::Bool => active
                    .is_valid(row)
                    .then(|| Parsed::Bool(active.value(row))),
                FieldType::StrList => nodes.is_valid(row).then(|| {
                    let l = nodes.value(row);
                    let l = l.as_any().downcast_ref::<StringArray>().expect("utf8 list");
                    Parsed::List(
                        l.iter()
                            .map(|s| s.unwrap_or_default().to_string())
                            .collect(),
                    )
                }),
                _ => c.str(col, row).map(|s| Parsed::Str(s.to_string())),
            };
            if let Some(v) = v {
                bag.put(f.name, v);
            }
        }
        let body = bag.into_body(kind).map_err(|e| bad(row, e.to_string()))?;
        out.push(StoredEvent {
            event: Event {
                source: c.str("source", row).unwrap_or_default().to_string(),
                seq: seq.value(row),
                time: micros(time.value(row))?,
                cluster: c.str("cluster", row).unwrap_or_default().to_string(),
                body,
                extra: c.str("extra", row).map(str::to_string),
            },
            ingest_seq: ingest_seq.value(row),
            ingest_time: micros(ingest_time.value(row))?,
            content_hash: content_hash.value(row),
        });
    }
    Ok(out)
}
