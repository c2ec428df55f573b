//! Retention of raw events: a segment whose events all lie before a horizon loses its Parquet
//! file. Its digest (the control events and each source's activity spans: all that service
//! state, intervals, availability and SLA read) and its key runs (deduplication) stay, so
//! those answers do not change. Call legs come from the raw call events, so only segments
//! whose events the caller has kept elsewhere (the checkpoint of the legs, up to an
//! `ingest_seq`) are retired.
//!
//! The manifest marking the segments retired is the commit point; the files are deleted
//! after a grace for readers holding an older snapshot (or when the log is opened again,
//! which removes files the manifest does not keep).

use std::time::{Duration, Instant};

use super::{Log, Obsolete, fail_point};
use crate::digest::usable;
use crate::error::Result;
use crate::manifest::SegmentMeta;
use crate::notify::Notice;

/// What one retirement removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Retired {
    /// The segment files removed, oldest first.
    pub segments: Vec<String>,
    /// Their events.
    pub events: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Whether `s` may lose its raw events: all before `before_us`, at or below `through_seq`,
/// with a digest the state engine reads and its keys listed.
fn retirable(s: &SegmentMeta, before_us: i64, through_seq: u64) -> bool {
    !s.retired
        && s.max_time_us < before_us
        && s.max_ingest_seq <= through_seq
        && s.keys.is_some()
        && (s.folded || usable(s).is_some())
}

impl Log {
    /// Removes the raw events of every segment whose events are all older than `before_us`
    /// and at or below `through_seq` (what the caller keeps the call legs of); the files go
    /// once `grace` has passed for readers that still hold them. Runs apart from
    /// compactions; appends and readers go on.
    pub fn retire(&self, before_us: i64, through_seq: u64, grace: Duration) -> Result<Retired> {
        let _one = self
            .shared
            .compacting
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut out = Retired::default();
        {
            let mut st = self.lock();
            let mut m = st.manifest.clone();
            for s in m
                .segments
                .iter_mut()
                .filter(|s| retirable(s, before_us, through_seq))
            {
                s.retired = true;
                out.segments.push(s.file.clone());
                out.events += s.rows;
                out.bytes += s.bytes;
            }
            if out.segments.is_empty() {
                return Ok(out);
            }
            m.store(&self.shared.dir)?;
            st.manifest = m;
            fail_point("retire-committed");
            st.notifier.send(&Notice::Retired(out.segments.clone()));
            st.obsolete.push(Obsolete {
                files: out.segments.clone(),
                since: Instant::now(),
            });
        }
        self.remove_obsolete(grace);
        tracing::info!(
            segments = out.segments.len(),
            events = out.events,
            bytes = out.bytes,
            "raw events retired"
        );
        Ok(out)
    }
}
