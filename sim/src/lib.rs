//! A deterministic CUCM/CTI cluster simulator: topology, call traffic, failure injection and
//! delivery faults, producing v1 events and the ground truth of what it did.
//!
//! ```no_run
//! let sc = callstate_sim::Scenario::load("node-failover").unwrap();
//! // every event as delivered, and the truth (`run` hands each event to a sink instead)
//! let (events, truth) = callstate_sim::collect(&sc, 42).unwrap();
//! ```

#![warn(missing_docs)]

pub mod delivery;
pub mod engine;
pub mod error;
pub mod rng;
pub mod scenario;
pub mod synthetic;
pub mod timed;
pub mod topology;
pub mod truth;

pub use engine::{collect, run};
pub use error::{SimError, Sink, SinkError};
pub use scenario::{BUILT_IN, Scenario};
pub use truth::Truth;
