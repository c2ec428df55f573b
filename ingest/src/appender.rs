//! Where collectors put validated events: the embedded log, or the canonical Kafka topic.

use std::io;

use callstate_schemas::Event;

use crate::log::{AppendResult, Log};

/// A durable destination for validated events.
pub trait Appender: Send + Sync {
    /// Stores `events` durably; one outcome per event, in order.
    fn append(&self, events: &[Event]) -> io::Result<AppendResult>;
}

impl Appender for Log {
    fn append(&self, events: &[Event]) -> io::Result<AppendResult> {
        Log::append(self, events)
    }
}
