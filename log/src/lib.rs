//! callstate log: the embedded append-only event log, and nothing else. A WAL of checksummed
//! Arrow records for durability, sorted Parquet segments with digests for history, an atomic
//! manifest as the commit point, `(source, seq)` dedupe, crash recovery, lock-free snapshots,
//! stats, and subscriptions that tell derived state what became durable.
//!
//! It knows nothing of HTTP, Kafka or SQL: collectors append to it ([`Log::append_batch`]),
//! readers take [`Snapshot`]s or [`Log::subscribe`].
//!
//! Module layers (each imports only from those listed after it): `stats` → `log` (`recover`,
//! `append`, `roll`, `snapshot`, `record`) → `notify`, `digest` → `dedupe` → `segment` →
//! `wal` → `manifest`, `layout`, `fsutil`, `error`.

#![warn(missing_docs)]

pub mod dedupe;
pub mod digest;
pub mod error;
pub mod fsutil;
pub mod layout;
pub mod log;
pub mod manifest;
pub mod notify;
pub mod segment;
pub mod stats;
pub mod wal;

pub use error::{LogError, Refusal, Result};
pub use log::append::events_batch;
pub use log::compact::{CompactOptions, Compacted};
pub use log::fold::{Folded, foldable};
pub use log::retire::Retired;
pub use log::snapshot::{DigestView, RetiredSpan, Snapshot};
pub use log::{AppendResult, DEFAULT_SEGMENT_ROWS, Log, LogOptions, Outcome};
pub use manifest::{Base, KeptFile, Positions, SegmentMeta, SourceSpan};
pub use notify::{Notice, Subscription};
pub use stats::LogStats;
