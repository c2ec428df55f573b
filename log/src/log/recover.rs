//! Opening the log: take the directory's lock, drop what a crash left uncommitted, rebuild
//! the dedupe index and replay the WAL tail.

use std::fs::{self, File};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::{TimestampMicrosecondType, UInt64Type};

use super::record::decode;
use super::{Log, LogOptions, Shared, State};
use crate::dedupe::{DedupeIndex, all_key_runs, dense, index_batch, listable};
use crate::error::{IoContext, LogError, Result};
use crate::layout::{LOCK, segments_dir, wal_dir, wal_file};
use crate::manifest::Manifest;
use crate::notify::Notifier;
use crate::segment::{column_extreme, read_segment};
use crate::wal::{self, WalWriter};

/// Largest `ingest_seq` and `ingest_time` in a batch.
fn batch_maxima(b: &RecordBatch) -> (u64, i64) {
    let b = std::slice::from_ref(b);
    (
        column_extreme::<UInt64Type>(b, "ingest_seq", true).unwrap_or(0),
        column_extreme::<TimestampMicrosecondType>(b, "ingest_time", true).unwrap_or(0),
    )
}

/// Removes segment files the manifest does not name: a roll wrote them but crashed before
/// its commit, so their events are still in the WAL.
fn remove_uncommitted(dir: &Path, manifest: &Manifest) -> Result<()> {
    let seg_dir = segments_dir(dir);
    let listing = || format!("listing {}", seg_dir.display());
    for entry in fs::read_dir(&seg_dir).ctx(listing)? {
        let entry = entry.ctx(listing)?;
        let name = entry.file_name().to_string_lossy().to_string();
        let committed = manifest.files().any(|f| f == name);
        if !committed {
            tracing::info!(file = %name, "removing uncommitted segment");
            fs::remove_file(entry.path()).ctx(|| format!("removing {name}"))?;
        }
    }
    Ok(())
}

/// Builds the idempotency index of the segments: settled keys from each segment's runs; a
/// segment without runs (written before they were recorded, or too scattered to list) has
/// its keys read, and listed in the manifest when they are few runs (so the next open need
/// not read it), else settled unlisted ([`dense`]). Returns how many segments were
/// listed.
fn list_keys(dir: &Path, manifest: &mut Manifest, dedupe: &mut DedupeIndex) -> Result<usize> {
    let mut listed = 0;
    for seg in &mut manifest.segments {
        if seg.keys.is_none() && seg.retired {
            tracing::warn!(segment = %seg.file,
                "a retired segment without key runs: its events would be accepted again");
        } else if seg.keys.is_none() {
            let path = segments_dir(dir).join(&seg.file);
            let batches = read_segment(&path, Some(&["source", "seq", "content_hash"]))?;
            let runs = all_key_runs(&batches)?;
            if listable(&runs) {
                seg.keys = Some(runs);
                listed += 1;
            } else if dense(&runs) {
                // too scattered to list: settled as bits
                dedupe.settle_segment(&runs);
            } else {
                // and sparse: held with hashes
                for b in &batches {
                    index_batch(dedupe, b)?;
                }
            }
        }
        if let Some(keys) = &seg.keys {
            dedupe.settle_segment(keys);
        }
    }
    Ok(listed)
}

impl Log {
    /// Opens (creating if needed) the log in `dir` for writing, recovering from any crash.
    pub fn open(dir: impl AsRef<Path>, opts: LogOptions) -> Result<Log> {
        let dir = dir.as_ref().to_path_buf();
        for d in [wal_dir(&dir), segments_dir(&dir)] {
            fs::create_dir_all(&d).ctx(|| format!("creating {}", d.display()))?;
        }
        let lock =
            File::create(dir.join(LOCK)).ctx(|| format!("creating {}/LOCK", dir.display()))?;
        lock.try_lock().map_err(|_| LogError::Locked(dir.clone()))?;
        let mut manifest = Manifest::load(&dir)?;
        remove_uncommitted(&dir, &manifest)?;

        let mut dedupe = DedupeIndex::default();
        let listed = list_keys(&dir, &mut manifest, &mut dedupe)?;
        let mut positions = manifest.positions.clone();
        let mut next_ingest_seq = 1;
        let mut last_ingest_time_us = 0;
        for seg in &manifest.segments {
            next_ingest_seq = next_ingest_seq.max(seg.max_ingest_seq + 1);
            last_ingest_time_us = last_ingest_time_us.max(seg.max_ingest_time_us);
        }
        if listed > 0 {
            tracing::info!(
                segments = listed,
                "listed the idempotency keys of older segments"
            );
            manifest.store(&dir)?;
        }

        // WAL files at or below the checkpoint are in segments already.
        for (n, path) in wal::list(&wal_dir(&dir))? {
            if n <= manifest.wal_checkpoint {
                fs::remove_file(&path).ctx(|| format!("removing {}", path.display()))?;
            }
        }
        let files = wal::scan_after(&wal_dir(&dir), manifest.wal_checkpoint)?;
        let mut tail = Vec::new();
        let last = files.len().saturating_sub(1);
        for (i, (_, path, scan)) in files.iter().enumerate() {
            if scan.garbage > 0 && i != last {
                return Err(LogError::Corrupt {
                    path: path.clone(),
                    reason: format!(
                        "{} corrupt bytes in a WAL file that is not the newest; acknowledged \
                         events may be damaged (move the file aside to start)",
                        scan.garbage
                    ),
                });
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
        let opening = |p: &Path| format!("opening {}", p.display());
        let (wal_no, wal) = match files.last() {
            Some((n, path, scan)) if scan.valid_len > 0 => (
                *n,
                WalWriter::reopen(path, scan.valid_len).ctx(|| opening(path))?,
            ),
            // Created but its header never became durable: nothing in it was acknowledged.
            Some((n, path, _)) => {
                fs::remove_file(path).ctx(|| opening(path))?;
                (*n, WalWriter::create(path).ctx(|| opening(path))?)
            }
            None => {
                let n = manifest.wal_checkpoint + 1;
                let path = wal_dir(&dir).join(wal_file(n));
                (n, WalWriter::create(&path).ctx(|| opening(&path))?)
            }
        };
        let tail_rows = tail.iter().map(RecordBatch::num_rows).sum();
        let manifest_next_id = manifest.next_id();
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
                    settled: Default::default(),
                    next_ingest_seq,
                    last_ingest_time_us,
                    positions,
                    failed: None,
                    encode_buf: Vec::new(),
                    notifier: Notifier::default(),
                    next_id: manifest_next_id,
                    obsolete: Vec::new(),
                }),
                roll_done: Condvar::new(),
                compacting: Mutex::new(()),
                version: std::sync::atomic::AtomicU64::new(next_ingest_seq - 1),
                _lock: lock,
            }),
            roller: Mutex::new(None),
        })
    }
}
