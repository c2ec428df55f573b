//! callstate query: device service-state intervals, availability and SLA over the log, and
//! the DataFusion views and the HTTP API.

#![warn(missing_docs)]

pub mod api;
pub mod availability;
pub mod functions;
pub mod incidents;
pub mod instant;
pub mod intervals;
pub mod lazy;
pub mod rows;
pub mod session;
pub mod sla;

pub use availability::{Seconds, device_seconds};
pub use intervals::{DeviceIndex, Movement, ServiceInterval, ServiceState, derive};
pub use rows::LogRows;
