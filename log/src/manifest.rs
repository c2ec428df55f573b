//! The manifest and the format types it records: which Parquet segments (and digests) make
//! up the log, which WAL files they cover, and the input positions stored with them.
//! Replaced atomically; the manifest is the commit point of a segment. A leaf module: the
//! writer, the readers and the roll all import these types from here.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, LogError, Result};
use crate::fsutil::write_atomic;
use crate::layout::file_id;

/// Input positions stored with the events: `"topic/partition"` → next offset to read.
pub type Positions = BTreeMap<String, i64>;

/// A run of a source's event times with no gap over the digest's `span_gap_us`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceSpan {
    /// The source.
    pub source: String,
    /// Its first event time in the run (microseconds since the epoch).
    pub start_us: i64,
    /// Its last event time in the run.
    pub end_us: i64,
}

/// The digest of one segment, as recorded in the manifest (see `digest.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Digest {
    /// File name of the control events under `segments/`.
    pub file: String,
    /// Control events in it.
    pub rows: u64,
    /// The gap the spans were built with.
    pub span_gap_us: i64,
    /// Activity spans of every source of the segment, by source then start.
    pub spans: Vec<SourceSpan>,
}

/// The sequence numbers of one source held by a segment, as inclusive runs `[first, last]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeqRuns {
    /// The source.
    pub source: String,
    /// Its runs of consecutive sequence numbers, ascending.
    pub runs: Vec<[u64; 2]>,
}

/// File name of the manifest in the data directory.
pub const FILE: &str = "MANIFEST.json";

/// One Parquet segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentMeta {
    /// File name under `segments/`.
    pub file: String,
    /// Rows (events).
    pub rows: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// Smallest event time, microseconds since the epoch (UTC).
    pub min_time_us: i64,
    /// Largest event time.
    pub max_time_us: i64,
    /// Smallest `ingest_seq`.
    pub min_ingest_seq: u64,
    /// Largest `ingest_seq`.
    pub max_ingest_seq: u64,
    /// Largest `ingest_time` (microseconds).
    pub max_ingest_time_us: i64,
    /// The segment's digest (absent in logs written before digests existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// The idempotency keys it holds, as each source's runs of sequence numbers, by source:
    /// opening the log builds its index from these without reading the file. Absent when the
    /// numbering is too scattered for a short list (opening then reads the keys from the
    /// file to settle them, [`dense`](crate::dedupe::dense)), and in logs
    /// written before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<SeqRuns>>,
    /// Its events were removed by retention ([`Log::retire`](crate::Log::retire)): the file
    /// is gone; its digest (control events and activity spans, what service state,
    /// intervals and SLA read) and its key runs stay.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retired: bool,
    /// Its digest was folded into the log's [`Base`] (retention of intervals,
    /// [`Log::fold`](crate::Log::fold)): its digest file is gone too; its key runs stay.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub folded: bool,
}

impl SegmentMeta {
    /// Its files under `segments/`: itself (unless retired) and its digest.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        (!self.retired)
            .then_some(self.file.as_str())
            .into_iter()
            .chain(self.digest.iter().map(|d| d.file.as_str()))
    }
}

/// What the digests of the segments wholly before a horizon were folded into (retention of
/// intervals): the state engine's inputs reduced to what the history from the horizon on
/// derives from. Its rows are chosen by the caller ([`Log::fold`](crate::Log::fold)); the
/// log only keeps them in place of the folded digests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Base {
    /// History is kept from this instant (microseconds since the epoch).
    pub horizon_us: i64,
    /// Its rows and spans, in the digest's form.
    pub digest: Digest,
    /// Segments folded into it, all folds together.
    pub segments: u64,
    /// Their events.
    pub events: u64,
    /// The latest ingest time among them (and the rows it holds): a question as known at an
    /// earlier ingest time cannot be answered from it.
    pub max_ingest_time_us: i64,
    /// What the caller kept of the history before the horizon beside it (the hourly rollups
    /// frozen there, `callstate_query::model::frozen`): bytes the log keeps, not reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<KeptFile>,
}

/// A file of the caller's bytes kept with the base, committed with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptFile {
    /// Its name under `segments/`.
    pub file: String,
    /// Its length, checked when read.
    pub bytes: u64,
}

impl Base {
    /// Its files under `segments/`: the folded digest's and the kept bytes'.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.digest.file.as_str()).chain(self.kept.iter().map(|k| k.file.as_str()))
    }
}

/// The manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version.
    pub format: u32,
    /// Segments, oldest first.
    pub segments: Vec<SegmentMeta>,
    /// Every WAL file numbered at or below this is fully in `segments`.
    pub wal_checkpoint: u64,
    /// Id for the next segment file.
    pub next_segment_id: u64,
    /// Input positions covered by `segments` (the Kafka materializer's offsets).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub positions: Positions,
    /// The folded digests of the history before a horizon, if retention of intervals ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<Base>,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            format: 1,
            segments: Vec::new(),
            wal_checkpoint: 0,
            next_segment_id: 1,
            positions: Default::default(),
            base: None,
        }
    }
}

impl Manifest {
    /// Every file under `segments/` it keeps: the segments' and their digests, and the base.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        self.segments
            .iter()
            .flat_map(SegmentMeta::files)
            .chain(self.base.iter().flat_map(Base::files))
    }

    /// The id for the next file: `next_segment_id`, or after every id a file it keeps is
    /// named with if later (a fold of a version before did not record the id it took; its
    /// next fold would otherwise take that base's name, then delete it with the base).
    pub fn next_id(&self) -> u64 {
        self.files()
            .filter_map(file_id)
            .map(|id| id + 1)
            .fold(self.next_segment_id, u64::max)
    }

    /// Loads the manifest of a data directory; a directory without one is an empty log.
    pub fn load(dir: &Path) -> Result<Manifest> {
        let path = dir.join(FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| LogError::Corrupt {
                path,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
            Err(e) => Err(LogError::io(format!("reading {}", path.display()), e)),
        }
    }

    /// Stores the manifest atomically and durably.
    pub fn store(&self, dir: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).expect("manifest serializes");
        let path = dir.join(FILE);
        write_atomic(&path, &bytes).ctx(|| format!("writing {}", path.display()))
    }
}
