//! The flat `events` Arrow schema, and conversion between events and record batches.
//!
//! One table for every kind: envelope columns, one nullable column per kind-specific field,
//! low-cardinality strings dictionary-encoded, timestamps as UTC microseconds, unknown fields
//! in `extra` (JSON text), and the log's own columns `ingest_time`, `ingest_seq` and
//! `content_hash`. `maintenance_window`'s `start`/`end` are the columns `window_start` and
//! `window_end` (`end` is an SQL keyword).

use std::sync::{Arc, OnceLock};

use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, ListArray, ListBuilder, RecordBatch,
    StringArray, StringBuilder, StringDictionaryBuilder, TimestampMicrosecondArray,
    TimestampMicrosecondBuilder, UInt64Array, UInt64Builder,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use chrono::{DateTime, Utc};

use crate::event::{Event, Kind};
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

type DictBuilder = StringDictionaryBuilder<Int32Type>;

/// Builds `events` record batches from events.
pub struct EventBatchBuilder {
    time: TimestampMicrosecondBuilder,
    kind: DictBuilder,
    cluster: DictBuilder,
    device: DictBuilder,
    device_type: DictBuilder,
    node: DictBuilder,
    device_pool: DictBuilder,
    ctimanager: DictBuilder,
    cause: DictBuilder,
    state: DictBuilder,
    address: DictBuilder,
    call_id: StringBuilder,
    consult_call_id: StringBuilder,
    calling: StringBuilder,
    called: StringBuilder,
    transferred_to: StringBuilder,
    remote_destination: StringBuilder,
    change: DictBuilder,
    active: BooleanBuilder,
    nodes: ListBuilder<StringBuilder>,
    scope: DictBuilder,
    target: DictBuilder,
    window_start: TimestampMicrosecondBuilder,
    window_end: TimestampMicrosecondBuilder,
    reason: StringBuilder,
    extra: StringBuilder,
    source: DictBuilder,
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
        let d = DictBuilder::new;
        let s = || StringBuilder::with_capacity(cap, cap * 8);
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
            call_id: s(),
            consult_call_id: s(),
            calling: s(),
            called: s(),
            transferred_to: s(),
            remote_destination: s(),
            change: d(),
            active: BooleanBuilder::with_capacity(cap),
            nodes: ListBuilder::new(StringBuilder::new()),
            scope: d(),
            target: d(),
            window_start: ts_builder(cap),
            window_end: ts_builder(cap),
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
        let f = e.body.fields();
        self.time.append_value(e.time.timestamp_micros());
        self.kind.append_value(f.kind.as_str());
        self.cluster.append_value(&e.cluster);
        self.device.append_option(f.device);
        self.device_type
            .append_option(f.device_type.map(|t| t.as_str()));
        self.node.append_option(f.node);
        self.device_pool.append_option(f.device_pool);
        self.ctimanager.append_option(f.ctimanager);
        self.cause.append_option(f.cause);
        self.state.append_option(f.state);
        self.address.append_option(f.address);
        self.call_id.append_option(f.call_id);
        self.consult_call_id.append_option(f.consult_call_id);
        self.calling.append_option(f.calling);
        self.called.append_option(f.called);
        self.transferred_to.append_option(f.transferred_to);
        self.remote_destination.append_option(f.remote_destination);
        self.change.append_option(f.change.map(|c| c.as_str()));
        self.active.append_option(f.active);
        match f.nodes {
            Some(nodes) => {
                for n in nodes {
                    self.nodes.values().append_value(n);
                }
                self.nodes.append(true);
            }
            None => self.nodes.append(false),
        }
        self.scope.append_option(f.scope.map(|s| s.as_str()));
        self.target.append_option(f.target);
        self.window_start
            .append_option(f.start.map(|t| t.timestamp_micros()));
        self.window_end
            .append_option(f.end.map(|t| t.timestamp_micros()));
        self.reason.append_option(f.reason);
        self.extra.append_option(e.extra.as_deref());
        self.source.append_value(&e.source);
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
            Arc::new(self.kind.finish()),
            Arc::new(self.cluster.finish()),
            Arc::new(self.device.finish()),
            Arc::new(self.device_type.finish()),
            Arc::new(self.node.finish()),
            Arc::new(self.device_pool.finish()),
            Arc::new(self.ctimanager.finish()),
            Arc::new(self.cause.finish()),
            Arc::new(self.state.finish()),
            Arc::new(self.address.finish()),
            Arc::new(self.call_id.finish()),
            Arc::new(self.consult_call_id.finish()),
            Arc::new(self.calling.finish()),
            Arc::new(self.called.finish()),
            Arc::new(self.transferred_to.finish()),
            Arc::new(self.remote_destination.finish()),
            Arc::new(self.change.finish()),
            Arc::new(self.active.finish()),
            Arc::new(self.nodes.finish()),
            Arc::new(self.scope.finish()),
            Arc::new(self.target.finish()),
            Arc::new(self.window_start.finish()),
            Arc::new(self.window_end.finish()),
            Arc::new(self.reason.finish()),
            Arc::new(self.extra.finish()),
            Arc::new(self.source.finish()),
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
