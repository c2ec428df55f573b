//! Parquet segments: immutable files of events sorted by (device, time, ingest_seq).
//!
//! A roll writes the unrolled tail (many batches, each with its own dictionaries) as one
//! segment without first concatenating and sorting a copy of it: the row order is computed
//! over all the batches, every dictionary column's dictionaries are unified once, and each
//! row group's columns are gathered straight from the batches and encoded on all cores. So a
//! roll needs memory for one row group beyond the tail it writes.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayBuilder, ArrayRef, AsArray, DictionaryArray, Int32Array, RecordBatch, StringBuilder,
};
use arrow::compute::interleave;
use arrow::datatypes::{
    ArrowNumericType, DataType, Int32Type, TimestampMicrosecondType, UInt64Type,
};
use hashbrown::HashMap;
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowColumnWriter, compute_leaves};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use callstate_schemas::events_schema;

use crate::error::{IoContext, LogError, Result};
use crate::manifest::SegmentMeta;

/// Rows per Parquet row group.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

fn bad(e: impl std::fmt::Display) -> LogError {
    LogError::InvalidBatch(e.to_string())
}

fn col_index(name: &str) -> usize {
    events_schema().index_of(name).expect("known column")
}

/// A dictionary-encoded string column of the events schema.
pub(crate) fn dictionary(a: &dyn Array) -> Result<&DictionaryArray<Int32Type>> {
    a.as_dictionary_opt::<Int32Type>()
        .ok_or_else(|| bad("a dictionary column is not Dictionary(Int32, Utf8)"))
}

/// The least (or, with `max`, the greatest) value of a primitive column over `batches`;
/// `None` when they hold no value.
pub(crate) fn column_extreme<T: ArrowNumericType>(
    batches: &[RecordBatch],
    name: &str,
    max: bool,
) -> Option<T::Native>
where
    T::Native: Ord,
{
    let col = col_index(name);
    let each = batches.iter().filter_map(|b| {
        let a = b.column(col).as_primitive_opt::<T>()?;
        if max {
            arrow::compute::max(a)
        } else {
            arrow::compute::min(a)
        }
    });
    if max { each.max() } else { each.min() }
}

/// One dictionary column of several batches over one dictionary.
struct Unified {
    /// The distinct values of all the batches' dictionaries.
    values: ArrayRef,
    /// Per batch: old key → new key (`None` for a null value).
    remap: Vec<Vec<Option<i32>>>,
}

impl Unified {
    fn of(batches: &[RecordBatch], col: usize) -> Result<Unified> {
        let dicts = batches
            .iter()
            .map(|b| dictionary(b.column(col).as_ref()))
            .collect::<Result<Vec<_>>>()?;
        let total: usize = dicts.iter().map(|d| d.values().len()).sum();
        let mut ids: HashMap<&str, i32> = HashMap::with_capacity(total.min(1 << 20));
        let mut values = StringBuilder::new();
        let mut remap = Vec::with_capacity(batches.len());
        for d in dicts {
            let names = d.values().as_string::<i32>();
            remap.push(
                (0..names.len())
                    .map(|v| {
                        names.is_valid(v).then(|| {
                            let name = names.value(v);
                            *ids.entry(name).or_insert_with(|| {
                                values.append_value(name);
                                values.len() as i32 - 1
                            })
                        })
                    })
                    .collect(),
            );
        }
        Ok(Unified {
            values: Arc::new(values.finish()),
            remap,
        })
    }

    /// Every row's new key (-1 for null), all batches back to back.
    fn keys(&self, batches: &[RecordBatch], col: usize) -> Result<Vec<i32>> {
        let mut out = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
        for (b, remap) in batches.iter().zip(&self.remap) {
            let d = dictionary(b.column(col).as_ref())?;
            let keys = d.keys();
            out.extend(keys.values().iter().enumerate().map(|(r, &k)| {
                if keys.is_valid(r) {
                    remap[k as usize].unwrap_or(-1)
                } else {
                    -1
                }
            }));
        }
        Ok(out)
    }
}

/// The rows of several `events` batches in segment order, ready to be gathered by column.
struct SegmentRows<'a> {
    batches: &'a [RecordBatch],
    /// Row numbers (all batches back to back) in segment order.
    order: Vec<u32>,
    /// `order` as `(batch, row)`.
    pairs: Vec<(usize, usize)>,
    /// Per column: the unified dictionary of a dictionary column.
    dicts: Vec<Option<Unified>>,
}

impl<'a> SegmentRows<'a> {
    fn new(batches: &'a [RecordBatch]) -> Result<Self> {
        let schema = events_schema();
        for b in batches {
            if b.schema().fields() != schema.fields() {
                return Err(bad("a batch of another schema than events"));
            }
        }
        let dicts = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(c, f)| match f.data_type() {
                DataType::Dictionary(..) => Unified::of(batches, c).map(Some),
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        let dev = col_index("device");
        let order = Self::order(batches, dicts[dev].as_ref().expect("dictionary"))?;
        let mut starts = Vec::with_capacity(batches.len());
        let mut n = 0;
        for b in batches {
            starts.push(n);
            n += b.num_rows();
        }
        let pairs = order
            .iter()
            .map(|&g| {
                let g = g as usize;
                let b = starts.partition_point(|&s| s <= g) - 1;
                (b, g - starts[b])
            })
            .collect();
        Ok(SegmentRows {
            batches,
            order,
            pairs,
            dicts,
        })
    }

    /// By device text (null last), time, ingest_seq. Devices are ranked once per unified
    /// dictionary value, so the sort compares integers only.
    fn order(batches: &[RecordBatch], device: &Unified) -> Result<Vec<u32>> {
        let names = device.values.as_string::<i32>();
        // The first 16 bytes, zero-padded and big-endian, order like the text itself except
        // on ties (a common prefix, or NUL bytes), which the full comparison settles.
        let prefix = |v: usize| {
            let mut b = [0u8; 16];
            let s = names.value(v).as_bytes();
            let n = s.len().min(16);
            b[..n].copy_from_slice(&s[..n]);
            u128::from_be_bytes(b)
        };
        let mut by_text: Vec<(u128, usize)> = (0..names.len()).map(|v| (prefix(v), v)).collect();
        by_text.sort_unstable_by(|x, y| {
            x.0.cmp(&y.0)
                .then_with(|| names.value(x.1).cmp(names.value(y.1)))
        });
        let mut rank = vec![0u32; names.len()];
        for (r, &(_, v)) in by_text.iter().enumerate() {
            rank[v] = r as u32;
        }
        let device_keys = device.keys(batches, col_index("device"))?;
        let total = u32::try_from(device_keys.len()).map_err(|_| bad("segment too large"))?;
        let mut keys: Vec<(u32, i64, u64, u32)> = Vec::with_capacity(total as usize);
        for b in batches {
            let time = b
                .column(col_index("time"))
                .as_primitive::<TimestampMicrosecondType>()
                .values();
            let iseq = b
                .column(col_index("ingest_seq"))
                .as_primitive::<UInt64Type>()
                .values();
            for r in 0..b.num_rows() {
                let g = keys.len();
                let k = device_keys[g];
                let rank = if k < 0 { u32::MAX } else { rank[k as usize] };
                keys.push((rank, time[r], iseq[r], g as u32));
            }
        }
        keys.sort_unstable();
        Ok(keys.into_iter().map(|k| k.3).collect())
    }

    /// Column `col`, one array per row group of `group_rows` rows, in segment order.
    fn column(&self, col: usize, group_rows: usize) -> Result<Vec<ArrayRef>> {
        match &self.dicts[col] {
            Some(u) => {
                let keys = u.keys(self.batches, col)?;
                self.order
                    .chunks(group_rows)
                    .map(|part| {
                        let keys: Int32Array = part
                            .iter()
                            .map(|&g| Some(keys[g as usize]).filter(|k| *k >= 0))
                            .collect();
                        let array = DictionaryArray::try_new(keys, u.values.clone())?;
                        Ok(Arc::new(array) as ArrayRef)
                    })
                    .collect()
            }
            None => {
                let arrays: Vec<&dyn Array> = self
                    .batches
                    .iter()
                    .map(|b| b.column(col).as_ref())
                    .collect();
                self.pairs
                    .chunks(group_rows)
                    .map(|part| interleave(&arrays, part).map_err(LogError::from))
                    .collect()
            }
        }
    }
}

/// Columns with page statistics (the sort key and what queries filter on); the others have
/// statistics per row group only.
const PAGE_STATISTICS: &[&str] = &[
    "time",
    "kind",
    "cluster",
    "device",
    "node",
    "device_pool",
    "source",
    "ingest_time",
    "ingest_seq",
];

/// Columns whose values are (nearly) all distinct: no dictionary encoding, which would only
/// be tried, grown and given up for every row group.
const NO_DICTIONARY: &[&str] = &[
    "time",
    "call_id",
    "consult_call_id",
    "calling",
    "called",
    "transferred_to",
    "remote_destination",
    "window_start",
    "window_end",
    "extra",
    "seq",
    "ingest_time",
    "ingest_seq",
    "content_hash",
];

/// Writer settings of segments and digests: zstd, statistics, sorting columns.
pub(crate) fn writer_properties() -> WriterProperties {
    let sorting = ["device", "time", "ingest_seq"]
        .iter()
        .map(|c| SortingColumn {
            column_idx: col_index(c) as i32,
            descending: false,
            nulls_first: false,
        })
        .collect();
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("valid level"),
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_sorting_columns(Some(sorting))
        .set_created_by("callstate".into());
    for c in PAGE_STATISTICS {
        b = b.set_column_statistics_enabled(ColumnPath::from(*c), EnabledStatistics::Page);
    }
    for c in NO_DICTIONARY {
        b = b.set_column_dictionary_enabled(ColumnPath::from(*c), false);
    }
    b.build()
}

/// Writes `batches` as one Parquet file at `path` (durably), sorted by (device, time,
/// ingest_seq) with devices without a device (provider, node, configuration events) last,
/// and describes it.
pub fn write_segment(path: &Path, batches: &[RecordBatch]) -> Result<SegmentMeta> {
    let rows = SegmentRows::new(batches)?;
    let schema = events_schema();
    let file = File::create(path).ctx(|| format!("creating {}", path.display()))?;
    let (mut writer, factory) =
        ArrowWriter::try_new(file, schema.clone(), Some(writer_properties()))
            .and_then(ArrowWriter::into_serialized_writer)?;
    let groups = rows.order.len().div_ceil(ROW_GROUP_ROWS);
    // Writers by row group, then by column; every events column is one Parquet leaf.
    let mut writers: Vec<Vec<Option<ArrowColumnWriter>>> = (0..groups)
        .map(|g| {
            let w = factory.create_column_writers(g)?;
            if w.len() != schema.fields().len() {
                return Err(bad("an events column with more than one Parquet leaf"));
            }
            Ok(w.into_iter().map(Some).collect())
        })
        .collect::<Result<_>>()?;
    // One job per column: gather it for every row group and encode it.
    let jobs: Vec<(usize, Vec<ArrowColumnWriter>)> = (0..schema.fields().len())
        .map(|c| {
            let ws = writers
                .iter_mut()
                .map(|g| g[c].take().expect("once"))
                .collect();
            (c, ws)
        })
        .collect();
    let encode = |(col, ws): (usize, Vec<ArrowColumnWriter>)| -> Result<Vec<ArrowColumnChunk>> {
        let parts = rows.column(col, ROW_GROUP_ROWS)?;
        ws.into_iter()
            .zip(parts)
            .map(|(mut w, array)| {
                for leaf in compute_leaves(schema.field(col), &array)? {
                    w.write(&leaf)?;
                }
                w.close().map_err(LogError::from)
            })
            .collect()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut chunks: Vec<std::vec::IntoIter<ArrowColumnChunk>> = parallel(jobs, threads, encode)?
        .into_iter()
        .map(Vec::into_iter)
        .collect();
    for _ in 0..groups {
        let mut rg = writer.next_row_group()?;
        for col in chunks.iter_mut() {
            col.next()
                .expect("a chunk per row group")
                .append_to_row_group(&mut rg)?;
        }
        rg.close()?;
    }
    writer
        .into_inner()?
        .sync_all()
        .ctx(|| format!("syncing {}", path.display()))?;

    Ok(SegmentMeta {
        file: path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string(),
        rows: rows.order.len() as u64,
        bytes: std::fs::metadata(path)
            .ctx(|| format!("reading {}", path.display()))?
            .len(),
        min_time_us: column_extreme::<TimestampMicrosecondType>(batches, "time", false)
            .unwrap_or(0),
        max_time_us: column_extreme::<TimestampMicrosecondType>(batches, "time", true).unwrap_or(0),
        min_ingest_seq: column_extreme::<UInt64Type>(batches, "ingest_seq", false).unwrap_or(0),
        max_ingest_seq: column_extreme::<UInt64Type>(batches, "ingest_seq", true).unwrap_or(0),
        max_ingest_time_us: column_extreme::<TimestampMicrosecondType>(
            batches,
            "ingest_time",
            true,
        )
        .unwrap_or(0),
        digest: None,
        keys: None,
        retired: false,
        folded: false,
    })
}

/// Runs `f` on every job on `threads` threads; the results come back in job order.
fn parallel<J: Send, R: Send>(
    jobs: Vec<J>,
    threads: usize,
    f: impl Fn(J) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let n = jobs.len();
    if threads <= 1 || n <= 1 {
        return jobs.into_iter().map(f).collect();
    }
    let queue = std::sync::Mutex::new(jobs.into_iter().enumerate().rev().collect::<Vec<_>>());
    let mut done: Vec<(usize, R)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.min(n))
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let job = queue.lock().unwrap_or_else(|p| p.into_inner()).pop();
                        let Some((i, job)) = job else { break };
                        out.push((i, f(job)?));
                    }
                    Ok::<_, LogError>(out)
                })
            })
            .collect();
        let mut all = Vec::with_capacity(n);
        for w in workers {
            all.extend(
                w.join()
                    .map_err(|_| LogError::Internal("a segment writer thread panicked".into()))??,
            );
        }
        Ok::<_, LogError>(all)
    })?;
    done.sort_unstable_by_key(|(i, _)| *i);
    Ok(done.into_iter().map(|(_, r)| r).collect())
}

fn corrupt(path: &Path, e: impl std::fmt::Display) -> LogError {
    LogError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Reads a segment; `columns` limits the read to those columns (in schema order).
pub fn read_segment(path: &Path, columns: Option<&[&str]>) -> Result<Vec<RecordBatch>> {
    let file = File::open(path).ctx(|| format!("opening {}", path.display()))?;
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| corrupt(path, e))?
        .with_batch_size(64 * 1024);
    if let Some(cols) = columns {
        let mask = ProjectionMask::columns(builder.parquet_schema(), cols.iter().copied());
        builder = builder.with_projection(mask);
    }
    let reader = builder.build()?;
    reader.map(|b| b.map_err(|e| corrupt(path, e))).collect()
}

/// Batches read ahead of their reader by [`read_segments_ahead`] (of up to 64 Ki rows: a
/// digest's file is one or two). Enough that the reading thread and the caller's do not take
/// turns on one core: with two, each waited for the other half the time.
const READ_AHEAD: usize = 8;

/// Batches that [`read_segments_ahead`] hands on: a segment's file, read (as
/// [`read_segment`]), or batches already in memory (a log's unrolled tail, read last).
#[derive(Debug)]
pub enum Batches {
    /// A segment file (or a digest's) to read.
    File(PathBuf),
    /// Batches in memory.
    Held(Vec<RecordBatch>),
}

/// Reads `parts` in order (each with a tag the caller gives it) on another thread, which
/// also turns each batch into what the caller wants of it (`map`), while the caller's thread
/// takes those in order (`each`), at most [`READ_AHEAD`] batches behind (and the file being
/// read): the decoding and the caller's work overlap, and only a few batches are held at
/// once. Stops at the first error, of a read, `map` or `each`.
pub fn read_segments_ahead<T, U, E>(
    parts: Vec<(Batches, T)>,
    columns: Option<&[&str]>,
    mut map: impl FnMut(RecordBatch, &T) -> std::result::Result<U, E> + Send,
    mut each: impl FnMut(U) -> std::result::Result<(), E>,
) -> std::result::Result<(), E>
where
    T: Send,
    U: Send,
    E: From<LogError> + Send,
{
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel(READ_AHEAD);
        std::thread::Builder::new()
            .name("segment-read".into())
            .spawn_scoped(scope, move || {
                for (part, tag) in parts {
                    let batches = match part {
                        Batches::Held(b) => b,
                        Batches::File(path) => match read_segment(&path, columns) {
                            Ok(b) => b,
                            Err(e) => {
                                let _ = tx.send(Err(E::from(e)));
                                return;
                            }
                        },
                    };
                    for b in batches {
                        let made = map(b, &tag);
                        let failed = made.is_err();
                        // a receiver gone (the caller stopped) ends the reading too
                        if tx.send(made).is_err() || failed {
                            return;
                        }
                    }
                }
            })
            .map_err(|e| LogError::Io {
                context: "starting a thread to read segments".into(),
                source: e,
            })?;
        rx.into_iter().try_for_each(|made| each(made?))
    })
}

/// Number of valid (non-null) values of a column in a batch, for tests and stats.
pub fn non_null(batch: &RecordBatch, name: &str) -> usize {
    let c = batch.column(batch.schema().index_of(name).expect("column"));
    c.len() - c.null_count()
}
