//! The embedded append-only log: a WAL for durability, Parquet segments for history.
//!
//! An append is acknowledged once its WAL record is synced. When the unrolled tail reaches
//! [`LogOptions::segment_rows`], the WAL is rotated and the tail is written as a sorted Parquet
//! segment in the background; the manifest update is the commit point, after which the covered
//! WAL files are deleted. On open, orphan segments are removed and the WAL files after the
//! checkpoint are replayed, so nothing acknowledged is lost and nothing is applied twice.
//!
//! An append may carry input [`Positions`](crate::Positions) (the Kafka materializer's next
//! offsets): they are written in the same WAL record as the events and into the manifest with
//! the segment that covers them, so a restart resumes exactly after the last durable append.
//!
//! This module holds the log's state; its operations live in the submodules, each of which
//! depends only on this one: [`recover`] (open), [`append`], [`roll`], [`compact`] (merging
//! small segments), [`retire`] (retention of raw events), [`record`] (the WAL record
//! codec), [`settled`] (content hashes of keys held by segments) and [`snapshot`] (the read
//! side). Subscribers ([`crate::notify`]) are told
//! every durable append and every committed roll, in order.

pub mod append;
pub mod compact;
pub mod fold;
pub mod record;
pub mod recover;
pub mod retire;
pub mod roll;
mod settled;
pub mod snapshot;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use arrow::array::RecordBatch;

use crate::dedupe::{DedupeIndex, all_key_runs, listable};
use crate::digest::write_digest;
use crate::error::{IoContext, Refusal, Result};
use crate::fsutil::sync_dir;
use crate::layout::{digest_file, segments_dir};
use crate::manifest::{Manifest, Positions, SegmentMeta, SeqRuns};
use crate::notify::Notifier;
use crate::segment::write_segment;
use crate::wal::WalWriter;

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

/// The tail batches a roll is writing (still readable until the segment is committed), and
/// what its commit records.
struct Frozen {
    batches: Arc<Vec<RecordBatch>>,
    /// The segment's id.
    id: u64,
    /// The last WAL file the segment covers.
    wal_through: u64,
    /// Input positions as of the roll.
    positions: Positions,
    /// The roll failed (the log refuses appends); it is retried when the log recovers.
    failed: bool,
}

/// Why the log refuses appends, and when it last checked whether it can take them again.
struct Failure {
    refusal: Refusal,
    checked: Instant,
}

struct State {
    wal: WalWriter,
    wal_no: u64,
    tail: Vec<RecordBatch>,
    tail_rows: usize,
    frozen: Option<Frozen>,
    manifest: Manifest,
    dedupe: DedupeIndex,
    /// Content hashes of settled keys, read from segments when an old event is re-sent.
    settled: settled::SettledHashes,
    next_ingest_seq: u64,
    last_ingest_time_us: i64,
    /// Positions of everything durable (manifest, then WAL records in order).
    positions: Positions,
    /// Set by a failed WAL write or roll: the log refuses appends until it recovers.
    failed: Option<Failure>,
    /// The buffer WAL records are encoded in.
    encode_buf: Vec<u8>,
    /// Who is told what became durable.
    notifier: Notifier,
    /// Id of the next segment file (a roll's or a compaction's).
    next_id: u64,
    /// Files compactions replaced, not deleted yet.
    obsolete: Vec<Obsolete>,
}

impl State {
    /// Takes the next segment id.
    fn take_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id - 1
    }
}

/// Files replaced by a compaction (or retired), deleted once no reader needs them.
struct Obsolete {
    files: Vec<String>,
    since: Instant,
}

/// Test hook: with `CALLSTATE_FAILPOINT` set to `name`, the process aborts here (as a crash
/// would: nothing is flushed or unwound).
fn fail_point(name: &str) {
    if std::env::var("CALLSTATE_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}

struct Shared {
    dir: PathBuf,
    opts: LogOptions,
    state: Mutex<State>,
    /// The last `ingest_seq` acknowledged, readable without the lock.
    version: std::sync::atomic::AtomicU64,
    roll_done: Condvar,
    /// Held by the one compaction running.
    compacting: Mutex<()>,
    _lock: File,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The embedded log, open for writing by this process.
pub struct Log {
    shared: Arc<Shared>,
    roller: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Log {
    /// The data directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.shared.dir
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// The last `ingest_seq` acknowledged (0 when empty), without taking the log's lock: an
    /// append in flight (syncing) is not waited for.
    pub fn version(&self) -> u64 {
        self.shared
            .version
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Input positions of everything durable (see [`Log::append_at`]).
    pub fn positions(&self) -> Positions {
        self.lock().positions.clone()
    }

    /// Keys in the dedupe index (distinct events stored).
    pub fn distinct_keys(&self) -> usize {
        self.lock().dedupe.len()
    }

    /// Keys in the dedupe index with their content hash in memory (not yet in a segment, or
    /// in one whose numbers are too scattered to list as runs and sparse).
    pub fn recent_keys(&self) -> usize {
        self.lock().dedupe.recent_len()
    }
}

/// Writes `batches` as segment `name` of the log in `dir`, with its digest, durably and under
/// their final names (written as `.tmp`, renamed, directory synced): ready for a manifest to
/// commit (a roll's or a compaction's). What a failure leaves is the caller's to remove.
/// With the segment's keys as runs however many they are (its meta lists them when they are
/// few enough: [`listable`]).
fn write_segment_files(
    dir: &Path,
    name: &str,
    batches: &[RecordBatch],
) -> Result<(SegmentMeta, Vec<SeqRuns>)> {
    let seg_dir = segments_dir(dir);
    let dname = digest_file(name);
    let (tmp, dtmp) = (
        seg_dir.join(format!("{name}.tmp")),
        seg_dir.join(format!("{dname}.tmp")),
    );
    let mut meta = write_segment(&tmp, batches)?;
    let digest = write_digest(&dtmp, &dname, batches)?;
    fs::rename(&tmp, seg_dir.join(name)).ctx(|| format!("renaming {name}"))?;
    fs::rename(&dtmp, seg_dir.join(&dname)).ctx(|| format!("renaming {dname}"))?;
    sync_dir(&seg_dir).ctx(|| format!("syncing {}", seg_dir.display()))?;
    meta.file = name.to_string();
    meta.digest = Some(digest);
    let runs = all_key_runs(batches)?;
    meta.keys = listable(&runs).then(|| runs.clone());
    Ok((meta, runs))
}
