//! The data directory's layout: where each file of the log lives and how it is named.
//!
//! ```text
//! DIR/LOCK                             held by the one process that writes
//! DIR/MANIFEST.json                    segments and WAL checkpoint (replaced atomically)
//! DIR/wal/000000000007.wal             WAL files not yet rolled into segments
//! DIR/segments/seg-00000003.parquet    a segment
//! DIR/segments/seg-00000003.digest.parquet   its digest
//! DIR/segments/base-00000042.parquet   the digests folded before a horizon (`log::fold`)
//! DIR/segments/rollups-00000042.bin    the caller's bytes kept with that base
//! DIR/rejects/                         rejects files of the collectors
//! ```

use std::path::{Path, PathBuf};

/// The lock file's name.
pub const LOCK: &str = "LOCK";

/// Directory of the WAL files.
pub fn wal_dir(dir: &Path) -> PathBuf {
    dir.join("wal")
}

/// Directory of the Parquet segments and their digests.
pub fn segments_dir(dir: &Path) -> PathBuf {
    dir.join("segments")
}

/// File name of segment `id`.
pub fn segment_file(id: u64) -> String {
    format!("seg-{id:08}.parquet")
}

/// File name of base `id` (`log::fold`).
pub fn base_file(id: u64) -> String {
    format!("base-{id:08}.parquet")
}

/// File name of the bytes kept with base `id` (`log::fold`).
pub fn kept_file(id: u64) -> String {
    format!("rollups-{id:08}.bin")
}

/// The id a segment, digest, base or kept file is named with.
pub fn file_id(name: &str) -> Option<u64> {
    let (_, rest) = name.split_once('-')?;
    rest.get(..8)?.parse().ok()
}

/// File name of the digest of segment file `segment`.
pub fn digest_file(segment: &str) -> String {
    match segment.strip_suffix(".parquet") {
        Some(stem) => format!("{stem}.digest.parquet"),
        None => format!("{segment}.digest"),
    }
}

/// File name of WAL file `n`.
pub fn wal_file(n: u64) -> String {
    format!("{n:012}.wal")
}

/// The number of a WAL file name, if it is one.
pub fn parse_wal_file(name: &str) -> Option<u64> {
    name.strip_suffix(".wal")?.parse().ok()
}
