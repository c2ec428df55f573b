//! The embedded append-only log: a WAL for durability, Parquet segments for history.
//!
//! Data directory layout:
//! ```text
//! DIR/LOCK                   held by the one process that writes
//! DIR/MANIFEST.json          segments and WAL checkpoint (replaced atomically)
//! DIR/wal/000000000007.wal   WAL files not yet rolled into segments
//! DIR/segments/seg-00000003.parquet
//! DIR/rejects/               rejects files of the collectors
//! ```
//! An append is acknowledged once its WAL record is synced. When the unrolled tail reaches
//! [`LogOptions::segment_rows`], the WAL is rotated and the tail is written as a sorted Parquet
//! segment in the background; the manifest update is the commit point, after which the covered
//! WAL files are deleted. On open, orphan segments are removed and the WAL files after the
//! checkpoint are replayed, so nothing acknowledged is lost and nothing is applied twice.
//!
//! An append may carry input [`Positions`] (the Kafka materializer's next offsets): they are
//! written in the same WAL record as the events and into the manifest with the segment that
//! covers them, so a restart resumes exactly after the last durable append.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use arrow::array::{
    Array, AsArray, BooleanArray, RecordBatch, TimestampMicrosecondArray, UInt64Array,
};
use arrow::datatypes::{Int32Type, TimestampMicrosecondType, UInt64Type};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use chrono::Utc;

use callstate_schemas::{Event, EventBatchBuilder, StoredEvent, decode_batch};

use crate::dedupe::{Check, DedupeIndex};
use crate::digest::{SPAN_GAP_US, SourceSpan, digest_file, write_digest};
use crate::fsutil::sync_dir;
use crate::manifest::{Manifest, SegmentMeta};
use crate::segment::{column_extreme, dictionary, read_segment, write_segment};
use crate::wal::{self, WalWriter};

/// Input positions stored with the events: `"topic/partition"` → next offset to read.
pub type Positions = BTreeMap<String, i64>;

/// Schema metadata key of a WAL record's positions.
const POSITIONS_KEY: &str = "callstate.positions";

/// Tuning of the log.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// Unrolled events that trigger writing a segment.
    pub segment_rows: usize,
}

/// Default [`LogOptions::segment_rows`]: two Parquet row groups. The unrolled tail is held
/// in memory (about 130 bytes an event) and a roll works on all of it, so smaller segments
/// keep memory flat and let rolls overlap ingestion; larger ones mean fewer files.
pub const DEFAULT_SEGMENT_ROWS: usize = 2 * crate::segment::ROW_GROUP_ROWS;

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_rows: DEFAULT_SEGMENT_ROWS,
        }
    }
}

/// What the log did with one event of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stored, at this position of the ingest order.
    Accepted(u64),
    /// Same `(source, seq)` and content already stored: dropped.
    Duplicate,
    /// Same `(source, seq)` already stored with different content: rejected.
    Conflict,
    /// Durable in the canonical Kafka topic; deduplicated when materialized.
    Queued,
}

/// The result of one append, one outcome per event in input order.
#[derive(Debug, Clone, Default)]
pub struct AppendResult {
    /// Per event.
    pub outcomes: Vec<Outcome>,
    /// Events stored (or queued in the canonical topic).
    pub accepted: usize,
    /// Duplicates dropped.
    pub duplicates: usize,
    /// Conflicts rejected.
    pub conflicts: usize,
}

struct Frozen {
    batches: Vec<RecordBatch>,
}

struct State {
    wal: WalWriter,
    wal_no: u64,
    tail: Vec<RecordBatch>,
    tail_rows: usize,
    frozen: Option<Frozen>,
    manifest: Manifest,
    dedupe: DedupeIndex,
    next_ingest_seq: u64,
    last_ingest_time_us: i64,
    /// Positions of everything durable (manifest, then WAL records in order).
    positions: Positions,
    /// Set by a failed WAL write or roll: the log refuses appends until reopened.
    failed: Option<String>,
    /// The buffer WAL records are encoded in.
    encode_buf: Vec<u8>,
}

struct Shared {
    dir: PathBuf,
    opts: LogOptions,
    state: Mutex<State>,
    roll_done: Condvar,
    _lock: File,
}

/// The embedded log, open for writing by this process.
pub struct Log {
    shared: Arc<Shared>,
    roller: Mutex<Option<std::thread::JoinHandle<()>>>,
}

fn wal_dir(dir: &Path) -> PathBuf {
    dir.join("wal")
}

/// Directory of the Parquet segments.
pub fn segments_dir(dir: &Path) -> PathBuf {
    dir.join("segments")
}

fn segment_file(id: u64) -> String {
    format!("seg-{id:08}.parquet")
}

/// One WAL record: the batch (if any) and the positions (if any) in one IPC stream, written
/// into `buf` (cleared first; reused so that appends do not take fresh memory).
fn encode(
    buf: &mut Vec<u8>,
    batch: Option<&RecordBatch>,
    positions: Option<&Positions>,
) -> io::Result<()> {
    buf.clear();
    let mut schema = callstate_schemas::events_schema().as_ref().clone();
    if let Some(p) = positions {
        let json = serde_json::to_string(p).map_err(io::Error::other)?;
        schema = schema.with_metadata([(POSITIONS_KEY.to_string(), json)].into());
    }
    let mut w = StreamWriter::try_new(buf, &schema).map_err(io::Error::other)?;
    if let Some(b) = batch {
        w.write(b).map_err(io::Error::other)?;
    }
    w.finish().map_err(io::Error::other)
}

/// A decoded WAL record.
struct Record {
    batches: Vec<RecordBatch>,
    positions: Option<Positions>,
}

fn decode(bytes: &[u8], what: &Path) -> io::Result<Record> {
    let bad = |e: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: undecodable WAL record: {e}", what.display()),
        )
    };
    let reader = StreamReader::try_new(Cursor::new(bytes), None).map_err(|e| bad(e.to_string()))?;
    let positions = match reader.schema().metadata().get(POSITIONS_KEY) {
        Some(json) => Some(serde_json::from_str(json).map_err(|e| bad(e.to_string()))?),
        None => None,
    };
    let plain = callstate_schemas::events_schema();
    let batches = reader
        .map(|b| {
            let b = b.map_err(|e| bad(e.to_string()))?;
            RecordBatch::try_new(plain.clone(), b.columns().to_vec())
                .map_err(|e| bad(e.to_string()))
        })
        .collect::<io::Result<_>>()?;
    Ok(Record { batches, positions })
}

/// Largest `ingest_seq` and `ingest_time` in a batch.
fn batch_maxima(b: &RecordBatch) -> (u64, i64) {
    let b = std::slice::from_ref(b);
    (
        column_extreme::<UInt64Type>(b, "ingest_seq", true).unwrap_or(0),
        column_extreme::<TimestampMicrosecondType>(b, "ingest_time", true).unwrap_or(0),
    )
}

fn index_batch(dedupe: &mut DedupeIndex, b: &RecordBatch) -> io::Result<()> {
    BatchKeys::of(b)?.check_insert(dedupe, |_| {});
    Ok(())
}

/// The `events` batch of `events` (content hashes computed; `ingest_seq` and `ingest_time`
/// left for the log to set), as [`Log::append_batch`] takes it.
pub fn events_batch(events: &[Event]) -> RecordBatch {
    let mut builder = EventBatchBuilder::with_capacity(events.len());
    for e in events {
        let view = e.view();
        builder.append_unstamped(&view, view.content_hash());
    }
    builder.finish()
}

/// The idempotency keys of a batch's rows.
struct BatchKeys<'a> {
    source: &'a arrow::array::DictionaryArray<Int32Type>,
    seq: &'a [u64],
    hash: &'a [u64],
}

impl<'a> BatchKeys<'a> {
    fn of(b: &'a RecordBatch) -> io::Result<Self> {
        let col = |name: &str| {
            b.column_by_name(name)
                .ok_or_else(|| io::Error::other(format!("batch has no {name} column")))
        };
        let source = dictionary(col("source")?)?;
        let seq = col("seq")?
            .as_primitive_opt::<UInt64Type>()
            .ok_or_else(|| io::Error::other("seq is not UInt64"))?;
        let hash = col("content_hash")?
            .as_primitive_opt::<UInt64Type>()
            .ok_or_else(|| io::Error::other("content_hash is not UInt64"))?;
        if source.null_count() > 0 {
            return Err(io::Error::other("source has nulls"));
        }
        Ok(BatchKeys {
            source,
            seq: seq.values(),
            hash: hash.values(),
        })
    }

    /// Checks every row in order against `index`, recording new keys; `f` gets each verdict.
    fn check_insert(&self, index: &mut DedupeIndex, mut f: impl FnMut(Check)) {
        let names = self.source.values().as_string::<i32>();
        let mut ids = vec![None; names.len()];
        for (i, key) in self.source.keys().values().iter().enumerate() {
            let k = *key as usize;
            let id = *ids[k].get_or_insert_with(|| index.source(names.value(k)));
            f(index.check_insert(id, self.seq[i], self.hash[i]));
        }
    }
}

/// `batch` with the rows that `res` accepts, numbered from `first_seq`, stamped `now`.
fn stamp(
    batch: &RecordBatch,
    res: &AppendResult,
    first_seq: u64,
    now: i64,
) -> io::Result<RecordBatch> {
    let kept = if res.accepted == batch.num_rows() {
        batch.clone()
    } else {
        let keep: BooleanArray = res
            .outcomes
            .iter()
            .map(|o| Some(matches!(o, Outcome::Accepted(_))))
            .collect();
        arrow::compute::filter_record_batch(batch, &keep).map_err(io::Error::other)?
    };
    let schema = kept.schema();
    let mut columns = kept.columns().to_vec();
    let n = kept.num_rows() as u64;
    columns[schema.index_of("ingest_seq").map_err(io::Error::other)?] =
        Arc::new(UInt64Array::from_iter_values(first_seq..first_seq + n));
    columns[schema.index_of("ingest_time").map_err(io::Error::other)?] =
        Arc::new(TimestampMicrosecondArray::from_value(now, n as usize).with_timezone("UTC"));
    RecordBatch::try_new(schema, columns).map_err(io::Error::other)
}

/// Reads the WAL files after the manifest checkpoint. Returns (number, path, scan) per file.
fn read_wal_tail(dir: &Path, checkpoint: u64) -> io::Result<Vec<(u64, PathBuf, wal::WalScan)>> {
    let mut out = Vec::new();
    for (n, path) in wal::list(&wal_dir(dir))? {
        if n > checkpoint {
            let scan = wal::scan(&path)?;
            out.push((n, path, scan));
        }
    }
    Ok(out)
}

impl Log {
    /// Opens (creating if needed) the log in `dir` for writing, recovering from any crash.
    pub fn open(dir: impl AsRef<Path>, opts: LogOptions) -> io::Result<Log> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(wal_dir(&dir))?;
        fs::create_dir_all(segments_dir(&dir))?;
        let lock = File::create(dir.join("LOCK"))?;
        lock.try_lock().map_err(|_| {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "{} is in use by another callstate process (its LOCK is held)",
                    dir.display()
                ),
            )
        })?;
        let manifest = Manifest::load(&dir)?;

        // Segments not in the manifest were never committed: their events are still in the WAL.
        for entry in fs::read_dir(segments_dir(&dir))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().to_string();
            let committed = manifest
                .segments
                .iter()
                .any(|s| s.file == name || s.digest.as_ref().is_some_and(|d| d.file == name));
            if !committed {
                tracing::info!(file = %name, "removing uncommitted segment");
                fs::remove_file(entry.path())?;
            }
        }

        let mut dedupe = DedupeIndex::default();
        let mut positions = manifest.positions.clone();
        let mut next_ingest_seq = 1;
        let mut last_ingest_time_us = 0;
        for seg in &manifest.segments {
            let path = segments_dir(&dir).join(&seg.file);
            for b in read_segment(&path, Some(&["source", "seq", "content_hash"]))? {
                index_batch(&mut dedupe, &b)?;
            }
            next_ingest_seq = next_ingest_seq.max(seg.max_ingest_seq + 1);
            last_ingest_time_us = last_ingest_time_us.max(seg.max_ingest_time_us);
        }

        // WAL files at or below the checkpoint are in segments already.
        for (n, path) in wal::list(&wal_dir(&dir))? {
            if n <= manifest.wal_checkpoint {
                fs::remove_file(path)?;
            }
        }
        let files = read_wal_tail(&dir, manifest.wal_checkpoint)?;
        let mut tail = Vec::new();
        let last = files.len().saturating_sub(1);
        for (i, (_, path, scan)) in files.iter().enumerate() {
            if scan.garbage > 0 && i != last {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: {} corrupt bytes in a WAL file that is not the newest; \
                         acknowledged events may be damaged (move the file aside to start)",
                        path.display(),
                        scan.garbage
                    ),
                ));
            }
            if scan.garbage > 0 {
                tracing::warn!(file = %path.display(), bytes = scan.garbage,
                    "cutting off a torn WAL tail (never acknowledged)");
            }
            for rec in &scan.records {
                let rec = decode(rec, path)?;
                positions.extend(rec.positions.unwrap_or_default());
                for b in rec.batches {
                    index_batch(&mut dedupe, &b)?;
                    let (s, t) = batch_maxima(&b);
                    next_ingest_seq = next_ingest_seq.max(s + 1);
                    last_ingest_time_us = last_ingest_time_us.max(t);
                    tail.push(b);
                }
            }
        }
        let (wal_no, wal) = match files.last() {
            Some((n, path, scan)) if scan.valid_len > 0 => {
                (*n, WalWriter::reopen(path, scan.valid_len)?)
            }
            // Created but its header never became durable: nothing in it was acknowledged.
            Some((n, path, _)) => {
                fs::remove_file(path)?;
                (*n, WalWriter::create(path)?)
            }
            None => {
                let n = manifest.wal_checkpoint + 1;
                (
                    n,
                    WalWriter::create(&wal_dir(&dir).join(wal::file_name(n)))?,
                )
            }
        };
        let tail_rows = tail.iter().map(RecordBatch::num_rows).sum();
        Ok(Log {
            shared: Arc::new(Shared {
                dir,
                opts,
                state: Mutex::new(State {
                    wal,
                    wal_no,
                    tail,
                    tail_rows,
                    frozen: None,
                    manifest,
                    dedupe,
                    next_ingest_seq,
                    last_ingest_time_us,
                    positions,
                    failed: None,
                    encode_buf: Vec::new(),
                }),
                roll_done: Condvar::new(),
                _lock: lock,
            }),
            roller: Mutex::new(None),
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends events durably: when this returns `Ok`, every accepted event is on disk.
    ///
    /// Each event is checked against the `(source, seq)` index (duplicates in the same call
    /// included). All accepted events of one call share one `ingest_time`.
    pub fn append(&self, events: &[Event]) -> io::Result<AppendResult> {
        self.append_at(events, None)
    }

    /// [`Log::append`] that also stores input positions in the same durable record (written
    /// even when no event is new), so that they are durable exactly when the events are.
    pub fn append_at(
        &self,
        events: &[Event],
        positions: Option<&Positions>,
    ) -> io::Result<AppendResult> {
        let batch = events_batch(events);
        self.append_batch(&batch, positions)
    }

    /// Appends an `events` batch (as [`events_batch`] builds it) durably, like
    /// [`Log::append_at`]: rows are deduplicated by their `source`, `seq` and `content_hash`
    /// columns, and the log sets `ingest_seq` and `ingest_time` (the batch's values of those
    /// two columns are ignored). One outcome per row.
    pub fn append_batch(
        &self,
        batch: &RecordBatch,
        positions: Option<&Positions>,
    ) -> io::Result<AppendResult> {
        if batch.schema().fields() != callstate_schemas::events_schema().fields() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "append_batch needs a batch of the events schema",
            ));
        }
        let keys = BatchKeys::of(batch)?;
        let mut st = self.lock();
        if let Some(f) = &st.failed {
            return Err(io::Error::other(format!("the log is failed: {f}")));
        }
        let now = Utc::now().timestamp_micros().max(st.last_ingest_time_us);
        let first_seq = st.next_ingest_seq;
        let mut res = AppendResult {
            outcomes: Vec::with_capacity(batch.num_rows()),
            ..AppendResult::default()
        };
        // A key enters the index before its record is durable: if the WAL write fails, the
        // log refuses every later append until it is reopened, which rebuilds the index.
        keys.check_insert(&mut st.dedupe, |check| {
            res.outcomes.push(match check {
                Check::New => {
                    res.accepted += 1;
                    Outcome::Accepted(first_seq + res.accepted as u64 - 1)
                }
                Check::Duplicate => {
                    res.duplicates += 1;
                    Outcome::Duplicate
                }
                Check::Conflict => {
                    res.conflicts += 1;
                    Outcome::Conflict
                }
            })
        });
        if res.accepted == 0 && positions.is_none() {
            return Ok(res);
        }
        let mut payload = std::mem::take(&mut st.encode_buf);
        let written = (res.accepted > 0)
            .then(|| stamp(batch, &res, first_seq, now))
            .transpose()
            .and_then(|stored| {
                encode(&mut payload, stored.as_ref(), positions)?;
                st.wal.append(&payload)?;
                st.wal.sync()?;
                Ok(stored)
            });
        st.encode_buf = payload;
        let stored = match written {
            Ok(stored) => stored,
            Err(e) => {
                st.failed = Some(format!("WAL write failed: {e}"));
                return Err(e);
            }
        };
        if let Some(p) = positions {
            st.positions.extend(p.iter().map(|(k, v)| (k.clone(), *v)));
        }
        let Some(stored) = stored else {
            return Ok(res);
        };
        st.next_ingest_seq = first_seq + res.accepted as u64;
        st.last_ingest_time_us = now;
        st.tail_rows += stored.num_rows();
        st.tail.push(stored);
        if st.tail_rows >= self.shared.opts.segment_rows {
            self.start_roll(st)?;
        }
        Ok(res)
    }

    /// Waits until no roll is in flight; returns the guard.
    fn wait_roll<'a>(&'a self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        while st.frozen.is_some() && st.failed.is_none() {
            st = self
                .shared
                .roll_done
                .wait(st)
                .unwrap_or_else(|p| p.into_inner());
        }
        st
    }

    /// Rotates the WAL and writes the tail as a segment in the background.
    fn start_roll(&self, st: MutexGuard<'_, State>) -> io::Result<()> {
        let mut st = self.wait_roll(st);
        if let Some(f) = &st.failed {
            return Err(io::Error::other(format!("the log is failed: {f}")));
        }
        if st.tail.is_empty() {
            return Ok(());
        }
        let dir = &self.shared.dir;
        let old = st.wal_no;
        let new = WalWriter::create(&wal_dir(dir).join(wal::file_name(old + 1)))?;
        st.wal = new;
        st.wal_no = old + 1;
        let batches = std::mem::take(&mut st.tail);
        st.tail_rows = 0;
        let id = st.manifest.next_segment_id;
        let positions = st.positions.clone();
        st.frozen = Some(Frozen {
            batches: batches.clone(),
        });
        drop(st);
        let shared = self.shared.clone();
        let handle = std::thread::Builder::new()
            .name("callstate-roll".into())
            .spawn(move || roll(shared, id, old, batches, positions))?;
        // The previous roll has finished (waited for above): reap its thread.
        let previous = self
            .roller
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(handle);
        if let Some(h) = previous {
            let _ = h.join();
        }
        Ok(())
    }

    /// Writes the whole unrolled tail as a segment now and waits for it.
    pub fn roll_now(&self) -> io::Result<()> {
        let st = self.lock();
        self.start_roll(st)?;
        self.wait_idle()
    }

    /// Waits for an in-flight roll; reports a failed roll.
    pub fn wait_idle(&self) -> io::Result<()> {
        let st = self.wait_roll(self.lock());
        match &st.failed {
            Some(f) => Err(io::Error::other(f.clone())),
            None => Ok(()),
        }
    }

    /// A consistent view of everything acknowledged so far.
    pub fn snapshot(&self) -> Snapshot {
        self.versioned_snapshot().1
    }

    /// [`Log::snapshot`] with its version: the last `ingest_seq` it holds (0 when empty).
    /// Two snapshots of the same version hold the same events (a roll only moves them).
    pub fn versioned_snapshot(&self) -> (u64, Snapshot) {
        let st = self.lock();
        let version = st.next_ingest_seq - 1;
        (version, self.snapshot_of(&st))
    }

    /// Why the log refuses appends, if it does (a failed WAL or segment write).
    pub fn failure(&self) -> Option<String> {
        self.lock().failed.clone()
    }

    fn snapshot_of(&self, st: &State) -> Snapshot {
        let mut batches: Vec<RecordBatch> = st
            .frozen
            .iter()
            .flat_map(|f| f.batches.iter().cloned())
            .collect();
        batches.extend(st.tail.iter().cloned());
        Snapshot {
            dir: self.shared.dir.clone(),
            segments: st.manifest.segments.clone(),
            batches,
        }
    }

    /// Input positions of everything durable (see [`Log::append_at`]).
    pub fn positions(&self) -> Positions {
        self.lock().positions.clone()
    }

    /// Keys in the dedupe index (distinct events stored).
    pub fn distinct_keys(&self) -> usize {
        self.lock().dedupe.len()
    }
}

impl Drop for Log {
    /// Waits for an in-flight roll so that the data directory's lock is free on return.
    fn drop(&mut self) {
        let _ = self.wait_idle();
        if let Some(h) = self.roller.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
        }
    }
}

/// The background half of a roll: write the segment, commit it in the manifest, drop the
/// covered WAL files. Waiters are woken however it ends: a roll that panics fails the log
/// (the WAL keeps its events) instead of leaving appends waiting for it forever.
fn roll(
    shared: Arc<Shared>,
    id: u64,
    wal_through: u64,
    batches: Vec<RecordBatch>,
    positions: Positions,
) {
    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        write_and_commit(&shared, id, wal_through, &batches, positions)
    }));
    if done.is_err() {
        let name = segment_file(id);
        tracing::error!(segment = %name, "writing a segment panicked; the WAL keeps the events");
        let mut st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
        st.failed = Some(format!(
            "writing segment {name} failed: the writer panicked"
        ));
    }
    shared.roll_done.notify_all();
}

fn write_and_commit(
    shared: &Shared,
    id: u64,
    wal_through: u64,
    batches: &[RecordBatch],
    positions: Positions,
) {
    let dir = &shared.dir;
    let name = segment_file(id);
    let tmp = segments_dir(dir).join(format!("{name}.tmp"));
    let dname = digest_file(&name);
    let dtmp = segments_dir(dir).join(format!("{dname}.tmp"));
    let written = write_segment(&tmp, batches).and_then(|mut meta| {
        let digest = write_digest(&dtmp, &dname, batches)?;
        fs::rename(&tmp, segments_dir(dir).join(&name))?;
        fs::rename(&dtmp, segments_dir(dir).join(&dname))?;
        sync_dir(&segments_dir(dir))?;
        meta.file = name.clone();
        meta.digest = Some(digest);
        Ok(meta)
    });
    let mut st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
    let committed = written.and_then(|meta| {
        let mut m = st.manifest.clone();
        m.segments.push(meta);
        m.wal_checkpoint = wal_through;
        m.next_segment_id = id + 1;
        m.positions = positions;
        m.store(dir)?;
        st.manifest = m;
        Ok(())
    });
    match committed {
        Ok(()) => {
            st.frozen = None;
            drop(st);
            if let Ok(files) = wal::list(&wal_dir(dir)) {
                for (n, path) in files {
                    if n <= wal_through {
                        let _ = fs::remove_file(path);
                    }
                }
            }
            tracing::debug!(segment = %name, "segment committed");
        }
        Err(e) => {
            tracing::error!(segment = %name, error = %e, "writing a segment failed; the WAL keeps the events");
            st.failed = Some(format!("writing segment {name} failed: {e}"));
        }
    }
}

/// See [`Snapshot::read_digests`].
#[derive(Debug, Default)]
pub struct DigestView {
    /// Control events of digested segments; every event of the others and of the tail.
    pub batches: Vec<RecordBatch>,
    /// Activity spans of the digested segments.
    pub spans: Vec<SourceSpan>,
    /// Events of the digested segments (covered by `spans` and the control events).
    pub digested_rows: u64,
}

/// A consistent, read-only view of the log: committed segments plus the unrolled tail.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The data directory.
    pub dir: PathBuf,
    /// Committed segments, oldest first.
    pub segments: Vec<SegmentMeta>,
    /// Events not yet in a segment (WAL-backed), in ingest order.
    pub batches: Vec<RecordBatch>,
}

impl Snapshot {
    /// Loads a view of a data directory without taking its lock (a writer may be running).
    pub fn load(dir: impl AsRef<Path>) -> io::Result<Snapshot> {
        let dir = dir.as_ref();
        if !dir.join(crate::manifest::FILE).exists() && !wal_dir(dir).exists() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} holds no callstate log", dir.display()),
            ));
        }
        // A concurrent roll may delete WAL files between reading the manifest and the WAL:
        // then the manifest has moved on and the read is retried.
        for _ in 0..20 {
            let manifest = Manifest::load(dir)?;
            let files = match read_wal_tail(dir, manifest.wal_checkpoint) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if Manifest::load(dir)? != manifest {
                continue;
            }
            let mut batches = Vec::new();
            for (_, path, scan) in &files {
                for rec in &scan.records {
                    batches.extend(decode(rec, path)?.batches);
                }
            }
            return Ok(Snapshot {
                dir: dir.to_path_buf(),
                segments: manifest.segments,
                batches,
            });
        }
        Err(io::Error::other(
            "the log kept changing while being read; try again",
        ))
    }

    /// Path of a segment.
    pub fn segment_path(&self, seg: &SegmentMeta) -> PathBuf {
        segments_dir(&self.dir).join(&seg.file)
    }

    /// Events in the view.
    pub fn len(&self) -> u64 {
        self.segments.iter().map(|s| s.rows).sum::<u64>()
            + self
                .batches
                .iter()
                .map(|b| b.num_rows() as u64)
                .sum::<u64>()
    }

    /// Whether the view holds no event.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every batch of the view (segments read from disk), limited to `columns` if given.
    pub fn read_batches(&self, columns: Option<&[&str]>) -> io::Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        for seg in &self.segments {
            out.extend(read_segment(&self.segment_path(seg), columns)?);
        }
        for b in &self.batches {
            out.push(match columns {
                Some(cols) => {
                    let idx: Vec<usize> = cols
                        .iter()
                        .map(|c| b.schema().index_of(c))
                        .collect::<Result<_, _>>()
                        .map_err(io::Error::other)?;
                    b.project(&idx).map_err(io::Error::other)?
                }
                None => b.clone(),
            });
        }
        Ok(out)
    }

    /// What the state engine reads, cheaply: the control events and activity spans of
    /// every digested segment whose events were all ingested by `known_at` (all of them
    /// without it), and every event of the other segments and of the tail (the caller
    /// filters those by `known_at`). `columns` as in [`Snapshot::read_batches`].
    pub fn read_digests(
        &self,
        columns: Option<&[&str]>,
        known_at: Option<i64>,
    ) -> io::Result<DigestView> {
        let mut view = DigestView::default();
        for seg in &self.segments {
            let usable = seg.digest.as_ref().filter(|d| {
                d.span_gap_us == SPAN_GAP_US && known_at.is_none_or(|k| seg.max_ingest_time_us <= k)
            });
            match usable {
                Some(d) => {
                    view.batches.extend(read_segment(
                        &segments_dir(&self.dir).join(&d.file),
                        columns,
                    )?);
                    view.spans.extend(d.spans.iter().cloned());
                    view.digested_rows += seg.rows;
                }
                None => view
                    .batches
                    .extend(read_segment(&self.segment_path(seg), columns)?),
            }
        }
        let tail = Snapshot {
            segments: Vec::new(),
            ..self.clone()
        };
        view.batches.extend(tail.read_batches(columns)?);
        Ok(view)
    }

    /// Every event of the view, decoded (for tests, export and small logs).
    pub fn stored_events(&self) -> io::Result<Vec<StoredEvent>> {
        let mut out = Vec::with_capacity(self.len() as usize);
        for b in self.read_batches(None)? {
            out.extend(decode_batch(&b).map_err(io::Error::other)?);
        }
        Ok(out)
    }

    /// Number of non-null values of a column across the view (for tests and stats).
    pub fn count_non_null(&self, column: &str) -> io::Result<u64> {
        Ok(self
            .read_batches(Some(&[column]))?
            .iter()
            .map(|b| (b.num_rows() - b.column(0).null_count()) as u64)
            .sum())
    }
}
