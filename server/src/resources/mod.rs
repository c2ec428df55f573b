//! One file per resource of the API.

pub mod devices;
pub mod events;
pub mod fleet;
pub mod incidents;
pub mod metrics;
pub mod query;
pub mod reports;
pub mod series;
pub mod slo;
