//! callstate ingest: the embedded append-only log (WAL + Parquet segments), the Kafka-backed
//! log, and the collectors that feed them.

#![warn(missing_docs)]

pub mod appender;
pub mod dedupe;
pub mod digest;
pub mod fsutil;
pub mod kafka;
pub mod log;
pub mod manifest;
pub mod ndjson;
pub mod segment;
pub mod stats;
pub mod wal;

pub use appender::Appender;
pub use log::{
    AppendResult, DigestView, Log, LogOptions, Outcome, Positions, Snapshot, events_batch,
};
pub use stats::LogStats;
