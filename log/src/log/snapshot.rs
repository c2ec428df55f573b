//! The read side: consistent, lock-free views of the log (committed segments plus the
//! unrolled tail), from the writing process or from any other process.

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;

use callstate_schemas::{StoredEvent, decode_batch};

use super::record::decode;
use super::{Log, State};
use crate::digest::usable;
use crate::error::{LogError, Result};
use crate::layout::{segments_dir, wal_dir};
use crate::manifest::{self, Base, Manifest, SegmentMeta, SourceSpan};
use crate::notify::Subscription;
use crate::segment::{Batches, read_segment, read_segments_ahead};
use crate::wal;

/// See [`Snapshot::read_digests`].
#[derive(Debug, Default)]
pub struct DigestView {
    /// Control events of digested segments; every event of the others and of the tail.
    pub batches: Vec<RecordBatch>,
    /// Activity spans of the digested segments.
    pub spans: Vec<SourceSpan>,
    /// Events of the digested segments (covered by `spans` and the control events).
    pub digested_rows: u64,
    /// How many of `batches`, first, are the base's ([`Snapshot::base`]).
    pub base_batches: usize,
}

/// What retention removed of a view's raw events ([`Log::retire`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredSpan {
    /// Segments retired.
    pub segments: usize,
    /// The events they held.
    pub events: u64,
    /// The bytes their files held.
    pub bytes: u64,
    /// The earliest event time among them (microseconds since the epoch).
    pub min_time_us: i64,
    /// The latest.
    pub max_time_us: i64,
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
    /// What the digests of the history before a horizon were folded into, if any.
    pub base: Option<Base>,
}

impl Log {
    /// A consistent view of everything acknowledged so far.
    pub fn snapshot(&self) -> Snapshot {
        self.versioned_snapshot().1
    }

    /// [`Log::snapshot`] with its version: the last `ingest_seq` it holds (0 when empty).
    /// Two snapshots of the same version hold the same events (a roll only moves them).
    pub fn versioned_snapshot(&self) -> (u64, Snapshot) {
        let st = self.lock();
        (st.next_ingest_seq - 1, self.snapshot_of(&st))
    }

    /// A view of everything acknowledged so far and a subscription to everything after it,
    /// taken at one instant: no event is in both, none in neither.
    pub fn subscribe(&self) -> (Snapshot, Subscription) {
        let mut st = self.lock();
        let snap = self.snapshot_of(&st);
        (snap, st.notifier.subscribe())
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
            base: st.manifest.base.clone(),
        }
    }
}

/// Whether an error means a file vanished under a reader (a concurrent roll).
fn vanished(e: &LogError) -> bool {
    matches!(e, LogError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

impl Snapshot {
    /// Loads a view of a data directory without taking its lock (a writer may be running).
    pub fn load(dir: impl AsRef<Path>) -> Result<Snapshot> {
        let dir = dir.as_ref();
        if !dir.join(manifest::FILE).exists() && !wal_dir(dir).exists() {
            return Err(LogError::NotALog(dir.to_path_buf()));
        }
        // A concurrent roll may delete WAL files between reading the manifest and the WAL:
        // then the manifest has moved on and the read is retried.
        for _ in 0..20 {
            let manifest = Manifest::load(dir)?;
            let files = match wal::scan_after(&wal_dir(dir), manifest.wal_checkpoint) {
                Ok(f) => f,
                Err(e) if vanished(&e) => continue,
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
                base: manifest.base,
            });
        }
        Err(LogError::Busy)
    }

    /// The file of the bytes the caller kept with the base ([`Log::fold`]'s `kept`) and
    /// their length as the manifest says (the reader checks it), if any.
    pub fn kept_file(&self) -> Option<(PathBuf, u64)> {
        let k = self.base.as_ref()?.kept.as_ref()?;
        Some((segments_dir(&self.dir).join(&k.file), k.bytes))
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

    /// The unrolled tail's batches, limited to `columns` if given.
    pub fn tail_batches(&self, columns: Option<&[&str]>) -> Result<Vec<RecordBatch>> {
        self.batches
            .iter()
            .map(|b| match columns {
                Some(cols) => {
                    let idx: Vec<usize> = cols
                        .iter()
                        .map(|c| b.schema().index_of(c))
                        .collect::<std::result::Result<_, _>>()?;
                    Ok(b.project(&idx)?)
                }
                None => Ok(b.clone()),
            })
            .collect()
    }

    /// The segments whose raw events are kept (not retired), oldest first.
    pub fn held_segments(&self) -> impl Iterator<Item = &SegmentMeta> {
        self.segments.iter().filter(|s| !s.retired)
    }

    /// What retention removed, if it removed anything.
    pub fn retired(&self) -> Option<RetiredSpan> {
        let retired: Vec<&SegmentMeta> = self.segments.iter().filter(|s| s.retired).collect();
        Some(RetiredSpan {
            segments: retired.len(),
            events: retired.iter().map(|s| s.rows).sum(),
            bytes: retired.iter().map(|s| s.bytes).sum(),
            min_time_us: retired.iter().map(|s| s.min_time_us).min()?,
            max_time_us: retired.iter().map(|s| s.max_time_us).max()?,
        })
    }

    /// Every batch of the view (segments read from disk; retired ones have no events left),
    /// limited to `columns` if given.
    pub fn read_batches(&self, columns: Option<&[&str]>) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        self.each_batch(columns, Ok, |b| -> Result<()> {
            out.push(b);
            Ok(())
        })?;
        Ok(out)
    }

    /// [`Snapshot::read_batches`] a batch at a time, in order: each batch turned by `map` on
    /// a thread that reads the next segments meanwhile ([`read_segments_ahead`]; the tail's
    /// on the caller's), and what it made handed to `each` on the caller's.
    pub fn each_batch<U: Send, E: From<LogError> + Send>(
        &self,
        columns: Option<&[&str]>,
        mut map: impl FnMut(RecordBatch) -> std::result::Result<U, E> + Send,
        each: impl FnMut(U) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let mut parts: Vec<_> = self
            .held_segments()
            .map(|seg| (Batches::File(self.segment_path(seg)), ()))
            .collect();
        parts.push((Batches::Held(self.tail_batches(columns)?), ()));
        read_segments_ahead(parts, columns, |b, _| map(b), each)
    }

    /// What the state engine reads, cheaply: the control events and activity spans of
    /// every digested segment whose events were all ingested by `known_at` (all of them
    /// without it), and every event of the other segments and of the tail (the caller
    /// filters those by `known_at`). `columns` as in [`Snapshot::read_batches`]. A retired
    /// segment is read from its digest whatever `known_at` (its control events carry their
    /// ingest times; its activity spans are taken as known). The base's rows come first
    /// ([`DigestView::base_batches`]); folded segments are in it.
    pub fn read_digests(
        &self,
        columns: Option<&[&str]>,
        known_at: Option<i64>,
    ) -> Result<DigestView> {
        let mut view = DigestView::default();
        let (spans, digested_rows) = self.each_digest_batch(
            columns,
            known_at,
            |b, base| Ok((b, base)),
            |(b, base)| -> Result<()> {
                view.base_batches += usize::from(base);
                view.batches.push(b);
                Ok(())
            },
        )?;
        view.spans = spans;
        view.digested_rows = digested_rows;
        Ok(view)
    }

    /// [`Snapshot::read_digests`] a batch at a time, in order: each batch turned by `map`
    /// (given whether it is the base's) on a thread that reads the next files meanwhile
    /// ([`read_segments_ahead`]; the tail's on the caller's), and what it made handed to
    /// `each` on the caller's, so that only a few files' batches are held at once. Returns
    /// the activity spans of the digested segments and how many events they hold.
    pub fn each_digest_batch<U: Send, E: From<LogError> + Send>(
        &self,
        columns: Option<&[&str]>,
        known_at: Option<i64>,
        mut map: impl FnMut(RecordBatch, bool) -> std::result::Result<U, E> + Send,
        each: impl FnMut(U) -> std::result::Result<(), E>,
    ) -> std::result::Result<(Vec<SourceSpan>, u64), E> {
        let (mut files, mut spans, mut digested_rows) = (Vec::new(), Vec::new(), 0);
        if let Some(base) = &self.base {
            let path = segments_dir(&self.dir).join(&base.digest.file);
            files.push((Batches::File(path), true));
            spans.extend(base.digest.spans.iter().cloned());
            digested_rows += base.events;
        }
        for seg in self.segments.iter().filter(|s| !s.folded) {
            let known = seg.retired || known_at.is_none_or(|k| seg.max_ingest_time_us <= k);
            match usable(seg).filter(|_| known) {
                Some(d) => {
                    let path = segments_dir(&self.dir).join(&d.file);
                    files.push((Batches::File(path), false));
                    spans.extend(d.spans.iter().cloned());
                    digested_rows += seg.rows;
                }
                None => files.push((Batches::File(self.segment_path(seg)), false)),
            }
        }
        files.push((Batches::Held(self.tail_batches(columns)?), false));
        read_segments_ahead(files, columns, |b, &base| map(b, base), each)?;
        Ok((spans, digested_rows))
    }

    /// What the silence rule needs of the events ingested by `known_at`, cheaply: the
    /// activity spans of every digested segment wholly ingested by then, and the `source`,
    /// `time` and `ingest_time` columns of the rest (the caller filters those by
    /// `known_at`). Ingest times never decrease in append order (the log makes them so,
    /// across restarts too), so the segments after the first one ingested partly later, and
    /// the tail after it, hold nothing known then and are not read.
    pub fn read_activity(&self, known_at: i64) -> Result<DigestView> {
        const COLUMNS: &[&str] = &["source", "time", "ingest_time"];
        let mut view = DigestView::default();
        if let Some(base) = &self.base {
            view.spans.extend(base.digest.spans.iter().cloned());
            view.digested_rows += base.events;
        }
        for seg in self.segments.iter().filter(|s| !s.folded) {
            let whole = seg.max_ingest_time_us <= known_at;
            match usable(seg).filter(|_| whole || seg.retired) {
                Some(d) => {
                    view.spans.extend(d.spans.iter().cloned());
                    view.digested_rows += seg.rows;
                }
                None => view
                    .batches
                    .extend(read_segment(&self.segment_path(seg), Some(COLUMNS))?),
            }
            if !whole {
                return Ok(view);
            }
        }
        view.batches.extend(self.tail_batches(Some(COLUMNS))?);
        Ok(view)
    }

    /// Every event of the view, decoded (for tests, export and small logs).
    pub fn stored_events(&self) -> Result<Vec<StoredEvent>> {
        let mut out = Vec::with_capacity(self.len() as usize);
        for b in self.read_batches(None)? {
            out.extend(decode_batch(&b)?);
        }
        Ok(out)
    }

    /// Number of non-null values of a column across the view (for tests and stats).
    pub fn count_non_null(&self, column: &str) -> Result<u64> {
        Ok(self
            .read_batches(Some(&[column]))?
            .iter()
            .map(|b| (b.num_rows() - b.column(0).null_count()) as u64)
            .sum())
    }
}
