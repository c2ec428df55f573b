//! callstate query: derived state over the log (service-state intervals, call legs,
//! availability, SLA, incidents) and the DataFusion catalog over it.
//!
//! Layers, each importing only from those after it: [`session`] (registration) →
//! [`functions`] (table-function adapters) → [`tables`] (one file per table: schema and
//! batch builder) → [`derived`] (a log version's derived state) → [`model`] (the domain, in
//! microseconds) → [`error`]. No HTTP, no Kafka here: the server and the binary wire it.

#![warn(missing_docs)]

pub mod derived;
pub mod error;
pub mod exec;
pub mod fold;
pub mod functions;
pub mod guards;
pub mod limits;
pub mod live;
pub mod model;
pub mod session;
pub mod source;
pub mod tables;
pub mod yielding;

pub use derived::{Derived, LazyDerived};
pub use error::{QueryError, Result};
pub use exec::{Cancel, QueryRuntime, Running};
pub use limits::Limits;
pub use live::{Live, LiveOptions, View};
pub use model::availability::Seconds;
pub use model::intervals::{DeviceIndex, ServiceInterval, derive};
pub use model::rows::LogRows;
pub use model::tally::device_seconds;
pub use source::{LiveSource, SharedSource, Source};
