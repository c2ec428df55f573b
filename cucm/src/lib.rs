//! Collectors that read a CUCM cluster directly, without a JTAPI bridge (see
//! `docs/cucm.md`). Today: the RisPort70 poller — device registration from
//! `selectCmDeviceExt`, CTI providers from `selectCtiItem`, the watched inventory and the
//! device pools' CUCM groups from AXL — turned into v1 events and appended through the same
//! validation and dedupe as every other collector.

#![warn(missing_docs)]

pub mod axl;
pub mod cdr;
pub mod client;
pub mod clock;
pub mod config;
pub mod cti;
pub mod error;
pub mod outbox;
pub mod perfmon;
pub mod poller;
pub mod reasons;
pub mod risport;
pub mod seq;
pub mod soap;
pub mod status;
pub mod syslog;
pub mod tracker;

pub use clock::{Clock, VirtualClock, WallClock};
pub use config::{Inventory, PollerConfig};
pub use error::CucmError;
pub use poller::Poller;
pub use status::{CtiManagerStatus, NodeGap, PollerStatus};
