//! callstate ingest: the transports that turn outside bytes into v1 events and append them
//! to the log. NDJSON files ([`ndjson`]), Kafka topics ([`kafka`]: the bridge-topic
//! collector, the canonical topic and its materializer); the HTTP collector lives in the
//! server and uses the same [`frontend`], so that every transport splits lines, caps sizes
//! and words rejects alike.

#![warn(missing_docs)]

pub mod appender;
pub mod error;
pub mod frontend;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod ndjson;

pub use appender::Appender;
pub use error::{IngestError, Result};
pub use frontend::{MAX_LINE_BYTES, Parsed, Reject};
