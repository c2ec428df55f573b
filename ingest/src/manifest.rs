//! The manifest: which Parquet segments make up the log, and which WAL files they cover.
//! Replaced atomically; the manifest is the commit point of a segment.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::fsutil::write_atomic;

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
    pub positions: crate::log::Positions,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            format: 1,
            segments: Vec::new(),
            wal_checkpoint: 0,
            next_segment_id: 1,
            positions: Default::default(),
        }
    }
}

impl Manifest {
    /// Loads the manifest of a data directory; a directory without one is an empty log.
    pub fn load(dir: &Path) -> io::Result<Manifest> {
        match std::fs::read(dir.join(FILE)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", dir.join(FILE).display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Manifest::default()),
            Err(e) => Err(e),
        }
    }

    /// Stores the manifest atomically and durably.
    pub fn store(&self, dir: &Path) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).expect("manifest serializes");
        write_atomic(&dir.join(FILE), &bytes)
    }
}
