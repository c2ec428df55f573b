//! The callstate v1 event contract (design.md §1): the typed model, validation with errors
//! that name the field, the flat Arrow `events` schema, and the JSON Schema for bridge authors.

#![warn(missing_docs)]

pub mod batch;
pub mod event;
pub mod json_schema;
pub mod parse;
pub mod spec;

pub use batch::{EventBatchBuilder, StoredEvent, decode_batch, events_schema};
pub use event::{
    Body, CallStateKind, Cause, DeviceActivity, DeviceType, Event, EventView, Kind, KnownCause,
    RdChange, Scope, format_time,
};
pub use parse::{ParsedEvent, ValidationError, parse_time};
