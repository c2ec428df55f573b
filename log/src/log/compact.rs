//! Compaction: adjacent small segments (left by final rolls at shutdown, or by short
//! ingest runs) are merged into one, in the background, while appends, rolls and readers go
//! on.
//!
//! The merged segment and its digest are written under a new id and renamed into place
//! without the log's lock; the manifest replacing the small segments by the merged one (at
//! their place in the order) is the commit point, taken under the lock. A crash before it
//! leaves an uncommitted file that opening removes; a crash after it leaves the small files,
//! which opening removes too (the manifest no longer names them). Either way every event is
//! in exactly one committed segment.
//!
//! Readers that took a snapshot before the commit may still read the small files: they are
//! deleted only `grace` after the commit (by a later compaction), or when the log is opened
//! again.

use std::fs;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;

use super::{Log, Obsolete, State, fail_point, write_segment_files};
use crate::error::Result;
use crate::layout::{digest_file, segment_file, segments_dir};
use crate::manifest::SegmentMeta;
use crate::notify::Notice;
use crate::segment::read_segment;

/// When segments are merged.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// A segment with fewer events is small.
    pub small_rows: u64,
    /// A merged segment holds at most this many events (a compaction holds them in memory,
    /// as a roll holds its tail).
    pub max_rows: u64,
    /// How long replaced files stay for readers that still hold a snapshot naming them.
    pub grace: Duration,
}

impl CompactOptions {
    /// Small: under half a roll; merged: up to one roll.
    pub fn for_segment_rows(segment_rows: usize) -> CompactOptions {
        CompactOptions {
            small_rows: (segment_rows as u64 / 2).max(1),
            max_rows: segment_rows as u64,
            grace: Duration::from_secs(600),
        }
    }
}

/// What one compaction did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Compacted {
    /// The segment files merged, oldest first.
    pub merged: Vec<String>,
    /// The segment that replaced them.
    pub into: String,
    /// Events in it.
    #[serde(rename = "events")]
    pub rows: u64,
    /// Bytes of the merged files (segments and digests) before, and of the new ones.
    pub bytes_before: u64,
    /// Bytes after.
    pub bytes_after: u64,
}

/// The first run of at least two adjacent small segments, cut so that their events stay
/// within `max_rows`; as positions in `segments`. Retired segments (no file) are never
/// merged.
fn pick(segments: &[SegmentMeta], opts: &CompactOptions) -> Option<std::ops::Range<usize>> {
    let small = |s: &SegmentMeta| s.rows < opts.small_rows && !s.retired;
    let mut k = 0;
    while k < segments.len() {
        if !small(&segments[k]) {
            k += 1;
            continue;
        }
        let (mut end, mut rows) = (k, 0);
        while end < segments.len()
            && small(&segments[end])
            && rows + segments[end].rows <= opts.max_rows.max(segments[k].rows)
        {
            rows += segments[end].rows;
            end += 1;
        }
        if end - k >= 2 {
            return Some(k..end);
        }
        k = end.max(k + 1);
    }
    None
}

impl Log {
    /// The compaction settings that go with this log's segment size.
    pub fn compact_options(&self) -> CompactOptions {
        CompactOptions::for_segment_rows(self.shared.opts.segment_rows)
    }

    /// Merges the oldest run of adjacent small segments into one; `None` when there is none.
    /// One compaction runs at a time; appends, rolls and readers are not held up.
    pub fn compact(&self, opts: &CompactOptions) -> Result<Option<Compacted>> {
        let _one = self
            .shared
            .compacting
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.remove_obsolete(opts.grace);
        let (run, id) = {
            let mut st = self.lock();
            let Some(range) = pick(&st.manifest.segments, opts) else {
                return Ok(None);
            };
            let run = st.manifest.segments[range].to_vec();
            (run, st.take_id())
        };
        let dir = segments_dir(&self.shared.dir);
        let name = segment_file(id);
        let dname = digest_file(&name);
        // what a failure leaves is removed (and would be on the next open anyway)
        let discard = || {
            for f in [
                format!("{name}.tmp"),
                format!("{dname}.tmp"),
                name.clone(),
                dname.clone(),
            ] {
                let _ = fs::remove_file(dir.join(f));
            }
        };
        let meta = match self.write_merged(&run, &name) {
            Ok(meta) => meta,
            Err(e) => {
                discard();
                return Err(e);
            }
        };
        fail_point("compact-written");
        let merged: Vec<String> = run.iter().map(|s| s.file.clone()).collect();
        let bytes_before = run.iter().map(|s| files_bytes(&dir, s)).sum();
        let bytes_after = files_bytes(&dir, &meta);
        {
            let mut st = self.lock();
            if let Err(e) = commit(&mut st, &self.shared.dir, &run, meta.clone()) {
                drop(st);
                discard();
                return Err(e);
            }
            fail_point("compact-committed");
            st.obsolete.push(Obsolete {
                files: run
                    .iter()
                    .flat_map(SegmentMeta::files)
                    .map(str::to_string)
                    .collect(),
                since: Instant::now(),
            });
        }
        self.remove_obsolete(opts.grace);
        tracing::info!(into = %name, merged = merged.len(), rows = meta.rows, "segments compacted");
        Ok(Some(Compacted {
            merged,
            into: name,
            rows: meta.rows,
            bytes_before,
            bytes_after,
        }))
    }

    /// Compacts until no run of small segments is left; what each step did.
    pub fn compact_all(&self, opts: &CompactOptions) -> Result<Vec<Compacted>> {
        let mut out = Vec::new();
        while let Some(c) = self.compact(opts)? {
            out.push(c);
        }
        Ok(out)
    }

    /// Writes the merged segment and its digest durably under their final names.
    fn write_merged(&self, run: &[SegmentMeta], name: &str) -> Result<SegmentMeta> {
        let dir = segments_dir(&self.shared.dir);
        let mut batches: Vec<RecordBatch> = Vec::new();
        for s in run {
            batches.extend(read_segment(&dir.join(&s.file), None)?);
        }
        Ok(write_segment_files(&self.shared.dir, name, &batches)?.0)
    }

    /// Deletes replaced (or retired) files older than `grace`.
    pub(super) fn remove_obsolete(&self, grace: Duration) {
        let due: Vec<Obsolete> = {
            let mut st = self.lock();
            let (due, keep) = std::mem::take(&mut st.obsolete)
                .into_iter()
                .partition(|o| o.since.elapsed() >= grace);
            st.obsolete = keep;
            due
        };
        let dir = segments_dir(&self.shared.dir);
        for f in due.iter().flat_map(|o| &o.files) {
            if let Err(e) = fs::remove_file(dir.join(f))
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(file = %f, error = %e, "a compacted file was not removed");
            }
        }
    }

    /// Replaced files not deleted yet (readers may still hold them).
    pub fn obsolete_files(&self) -> usize {
        self.lock().obsolete.iter().map(|o| o.files.len()).sum()
    }
}

/// Bytes of a segment's files.
fn files_bytes(dir: &std::path::Path, s: &SegmentMeta) -> u64 {
    s.files()
        .filter_map(|f| fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

/// Replaces `run` (still in the manifest: only compaction removes segments, one at a time)
/// by `meta` at its place, durably, and tells subscribers.
fn commit(
    st: &mut State,
    dir: &std::path::Path,
    run: &[SegmentMeta],
    meta: SegmentMeta,
) -> Result<()> {
    let mut m = st.manifest.clone();
    let at = m
        .segments
        .iter()
        .position(|s| s.file == run[0].file)
        .expect("the compacted segments are committed");
    m.segments.splice(at..at + run.len(), [meta.clone()]);
    m.next_segment_id = m.next_segment_id.max(st.next_id);
    m.store(dir)?;
    st.manifest = m;
    st.notifier.send(&Notice::Compacted {
        merged: run.iter().map(|s| s.file.clone()).collect(),
        into: meta,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(rows: u64) -> SegmentMeta {
        SegmentMeta {
            file: String::new(),
            rows,
            bytes: 0,
            min_time_us: 0,
            max_time_us: 0,
            min_ingest_seq: 0,
            max_ingest_seq: 0,
            max_ingest_time_us: 0,
            digest: None,
            keys: None,
            retired: false,
            folded: false,
        }
    }

    #[test]
    fn picks_the_first_run_of_small_segments_within_the_limit() {
        let o = CompactOptions {
            small_rows: 10,
            max_rows: 20,
            grace: Duration::ZERO,
        };
        let s = |v: &[u64]| v.iter().map(|&r| seg(r)).collect::<Vec<_>>();
        assert_eq!(
            pick(&s(&[100, 5, 100, 5]), &o),
            None,
            "alone, a small one stays"
        );
        assert_eq!(pick(&s(&[100, 5, 6, 100]), &o), Some(1..3));
        assert_eq!(pick(&s(&[9, 9, 9, 9]), &o), Some(0..2), "cut at max_rows");
        assert_eq!(pick(&s(&[9, 100, 9, 9]), &o), Some(2..4));
        let mut r = s(&[9, 9, 9, 9]);
        r[1].retired = true;
        assert_eq!(pick(&r, &o), Some(2..4), "a retired one is not merged");
        assert_eq!(pick(&s(&[]), &o), None);
    }
}
