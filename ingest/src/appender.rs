//! Where collectors put validated events: the embedded log, or the canonical Kafka topic.

use callstate_log::{AppendResult, Log};
use callstate_schemas::Event;

use crate::error::Result;

/// A durable destination for validated events.
pub trait Appender: Send + Sync {
    /// Stores `events` durably; one outcome per event, in order.
    fn append(&self, events: &[Event]) -> Result<AppendResult>;
}

impl Appender for Log {
    fn append(&self, events: &[Event]) -> Result<AppendResult> {
        Ok(Log::append(self, events)?)
    }
}
