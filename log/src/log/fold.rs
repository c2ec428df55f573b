//! Retention of intervals: the digests of the segments wholly before a horizon are folded
//! into one *base* (the state engine's inputs reduced to what the history from the horizon
//! on derives from; the caller chooses its rows, see `callstate_query::fold`). The segments
//! stay in the manifest (versions, ingest times, key runs: re-sent old events are still
//! dropped as duplicates), marked `folded`; their digest files go.
//!
//! The manifest naming the new base is the commit point; the old digests and base are
//! deleted after the grace for readers, or by the next open (which removes the files the
//! manifest does not keep), and a base written but not committed is removed the same way.

use std::time::{Duration, Instant};

use arrow::array::RecordBatch;

use super::{Log, Obsolete, fail_point};
use crate::digest::{SPAN_GAP_US, usable};
use crate::error::IoContext;
use crate::error::{LogError, Result};
use crate::fsutil::write_atomic;
use crate::layout::{base_file, kept_file, segments_dir};
use crate::manifest::{Base, Digest, KeptFile, SegmentMeta, SourceSpan};
use crate::notify::Notice;
use crate::segment::write_segment;

/// What one fold did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Folded {
    /// The segments whose digests it folded, oldest first.
    pub segments: Vec<String>,
    /// Their events.
    pub events: u64,
    /// The base now.
    pub base: Base,
}

/// Whether the digest of `s` may be folded at `horizon_us`: all its events before the
/// horizon, digested with the silence rule's gap, not folded yet. (Its raw events, if still
/// held, stay for the `events` table: the two retentions are independent.)
pub fn foldable(s: &SegmentMeta, horizon_us: i64) -> bool {
    !s.folded && s.max_time_us < horizon_us && usable(s).is_some()
}

impl Log {
    /// Replaces the digests of `segments` (each [`foldable`] at `horizon_us`) and the base
    /// before (if any) by a base of `rows` (events-schema batches) and `spans`, for history
    /// from `horizon_us` on, with `kept` (the caller's bytes for the history before the
    /// horizon, in place of those the base before kept) beside it. The horizon only moves
    /// forward; `segments` may be empty (the base written again with other `kept` bytes).
    /// Runs apart from compactions
    /// and retirements; appends and readers go on (a reader holding an older snapshot reads
    /// the old files until `grace` has passed).
    pub fn fold(
        &self,
        horizon_us: i64,
        segments: &[String],
        rows: &[RecordBatch],
        spans: Vec<SourceSpan>,
        kept: Option<&[u8]>,
        grace: Duration,
    ) -> Result<Folded> {
        let _one = self
            .shared
            .compacting
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let (prior, id) = {
            let mut st = self.lock();
            (st.manifest.base.clone(), st.take_id())
        };
        if let Some(p) = prior.as_ref().filter(|p| p.horizon_us > horizon_us) {
            return Err(LogError::Stale(format!(
                "the base already keeps history from a later instant ({} µs)",
                p.horizon_us
            )));
        }
        let file = base_file(id);
        let dir = segments_dir(&self.shared.dir);
        let meta = write_segment(&dir.join(&file), rows)?;
        let kept = match kept {
            Some(bytes) => {
                let file = kept_file(id);
                let path = dir.join(&file);
                write_atomic(&path, bytes).ctx(|| format!("writing {}", path.display()))?;
                Some(KeptFile {
                    file,
                    bytes: bytes.len() as u64,
                })
            }
            None => None,
        };
        fail_point("fold-written");
        let mut st = self.lock();
        let mut m = st.manifest.clone();
        // the ids taken are kept taken after a reopen (a next fold's base must not reuse the
        // name of this one, which it deletes)
        m.next_segment_id = m.next_segment_id.max(st.next_id);
        let mut base = Base {
            horizon_us,
            digest: Digest {
                file,
                rows: meta.rows,
                span_gap_us: SPAN_GAP_US,
                spans,
            },
            segments: prior.as_ref().map_or(0, |p| p.segments),
            events: prior.as_ref().map_or(0, |p| p.events),
            max_ingest_time_us: prior.as_ref().map_or(meta.max_ingest_time_us, |p| {
                p.max_ingest_time_us.max(meta.max_ingest_time_us)
            }),
            kept,
        };
        let mut gone: Vec<String> = prior
            .iter()
            .flat_map(|p| p.files().map(str::to_string))
            .collect();
        let mut out = Vec::new();
        for name in segments {
            let s = m
                .segments
                .iter_mut()
                .find(|s| &s.file == name)
                .filter(|s| foldable(s, horizon_us))
                .ok_or_else(|| {
                    LogError::Stale(format!(
                        "segment {name} is no longer there to fold (a compaction or fold ran)"
                    ))
                })?;
            s.folded = true;
            gone.extend(s.digest.take().map(|d| d.file));
            base.segments += 1;
            base.events += s.rows;
            base.max_ingest_time_us = base.max_ingest_time_us.max(s.max_ingest_time_us);
            out.push(name.clone());
        }
        m.base = Some(base.clone());
        m.store(&self.shared.dir)?;
        st.manifest = m;
        fail_point("fold-committed");
        st.notifier.send(&Notice::Folded {
            segments: out.clone(),
            base: base.clone(),
        });
        st.obsolete.push(Obsolete {
            files: gone,
            since: Instant::now(),
        });
        drop(st);
        self.remove_obsolete(grace);
        tracing::info!(
            segments = out.len(),
            horizon_us,
            base_rows = base.digest.rows,
            "digests folded into the base"
        );
        Ok(Folded {
            segments: out,
            events: base.events - prior.map_or(0, |p| p.events),
            base,
        })
    }
}
