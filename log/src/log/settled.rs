//! Content hashes of settled keys (those the idempotency index holds only as present): a
//! re-sent old event is told a duplicate or a conflict by reading the key columns of the
//! segment holding it, found through the manifest's key runs. The last few segments read are
//! kept, so a re-sent stretch of history reads each of its segments once. A key of a retired
//! segment has no stored content left to compare: a re-sent event is taken as a duplicate.

use std::collections::VecDeque;
use std::path::Path;

use arrow::array::RecordBatch;
use hashbrown::HashMap;

use crate::dedupe::{BatchKeys, runs_hold};
use crate::error::{LogError, Result};
use crate::layout::segments_dir;
use crate::manifest::{Manifest, SegmentMeta};
use crate::segment::read_segment;

/// Segments whose keys are kept.
const CACHED: usize = 4;

/// `source` → `seq` → content hash, of one segment.
type SegmentKeys = HashMap<String, HashMap<u64, u64>>;

/// The keys of the segments read last.
#[derive(Default)]
pub(super) struct SettledHashes {
    segments: VecDeque<(String, SegmentKeys)>,
}

fn lookup(keys: &SegmentKeys, source: &str, seq: u64) -> Option<u64> {
    keys.get(source).and_then(|m| m.get(&seq)).copied()
}

impl SettledHashes {
    /// The content hash stored for `(source, seq)`, a settled key of the log in `dir`;
    /// `None` when its segment was retired (its raw events, hashes included, are gone).
    pub(super) fn get(
        &mut self,
        dir: &Path,
        manifest: &Manifest,
        source: &str,
        seq: u64,
    ) -> Result<Option<u64>> {
        if let Some(h) = self
            .segments
            .iter()
            .find_map(|(_, k)| lookup(k, source, seq))
        {
            return Ok(Some(h));
        }
        let holds = |s: &SegmentMeta| s.keys.as_deref().is_some_and(|k| runs_hold(k, source, seq));
        if manifest.segments.iter().any(|s| s.retired && holds(s)) {
            return Ok(None);
        }
        // Segments whose runs hold it, then those without runs (a compaction may have merged
        // segments into one with too many runs to list).
        let listed = manifest.segments.iter().filter(|s| holds(s));
        let unlisted = manifest
            .segments
            .iter()
            .filter(|s| s.keys.is_none() && !s.retired);
        for s in listed.chain(unlisted) {
            if self.segments.iter().any(|(f, _)| *f == s.file) {
                continue;
            }
            let keys = read_keys(&segments_dir(dir).join(&s.file))?;
            let found = lookup(&keys, source, seq);
            if self.segments.len() == CACHED {
                self.segments.pop_front();
            }
            self.segments.push_back((s.file.clone(), keys));
            if let Some(h) = found {
                return Ok(Some(h));
            }
        }
        Err(LogError::Internal(format!(
            "the idempotency index holds ({source}, {seq}) but no segment does"
        )))
    }
}

/// The keys of a segment file.
fn read_keys(path: &Path) -> Result<SegmentKeys> {
    let batches: Vec<RecordBatch> = read_segment(path, Some(&["source", "seq", "content_hash"]))?;
    let mut out = SegmentKeys::new();
    for b in &batches {
        let keys = BatchKeys::of(b)?;
        for row in 0..b.num_rows() {
            let (source, seq, hash) = keys.key(row);
            out.entry_ref(source).or_default().insert(seq, hash);
        }
    }
    Ok(out)
}
