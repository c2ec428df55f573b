//! callstate ingest: the embedded append-only log (WAL + Parquet segments) and the
//! collectors that feed it.

#![warn(missing_docs)]

pub mod dedupe;
pub mod digest;
pub mod fsutil;
pub mod log;
pub mod manifest;
pub mod ndjson;
pub mod segment;
pub mod stats;
pub mod wal;

pub use log::{AppendResult, DigestView, Log, LogOptions, Outcome, Snapshot};
pub use stats::LogStats;
