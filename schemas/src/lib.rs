//! The callstate v1 event contract (design.md §1) and the facts every crate shares: the
//! typed model, validation with errors that name the field, the flat Arrow `events` schema,
//! the JSON Schema for bridge authors, the derived states of §2 and time as users write it.

#![warn(missing_docs)]

#[macro_use]
mod macros;

pub mod batch;
pub mod event;
pub mod json_schema;
pub mod parse;
pub mod spec;
pub mod state;
pub mod time;

pub use batch::{EventBatchBuilder, StoredEvent, decode_batch, events_schema};
pub use event::{
    Body, CallStateKind, Cause, DeviceActivity, DeviceType, Event, EventView, Kind, KnownCause,
    RdChange, Scope,
};
pub use parse::{ParsedEvent, ValidationError};
pub use state::{Movement, ServiceState};
pub use time::{
    SILENCE_US, TimeError, US_PER_DAY, US_PER_HOUR, US_PER_S, Us, format_instant, format_time,
    parse_duration, parse_instant, parse_positive_duration, parse_time, parse_time_us,
};
