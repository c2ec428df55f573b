//! The domain model of design.md §2–§4, in microseconds: what the state engine reads from
//! the log ([`rows`]), service-state intervals ([`intervals`]), a device's state at an
//! instant ([`state`]), availability and SLA ([`availability`], [`sla`], [`calendar`]),
//! incidents ([`incidents`]), and what dashboards draw ([`series`], [`annotations`]).
//! Nothing here knows about DataFusion or HTTP.

pub mod annotations;
pub mod availability;
pub mod calendar;
pub mod fleet;
pub mod frozen;
pub mod incidents;
pub mod intervals;
pub mod name;
pub mod pack;
pub mod rollup;
pub mod rows;
pub mod ser;
pub mod series;
pub mod shared_bytes;
pub mod shares;
pub mod sla;
pub mod state;
pub mod tally;
pub mod targets;
pub mod unit_runs;
pub(crate) mod varint;

pub use name::Name;
