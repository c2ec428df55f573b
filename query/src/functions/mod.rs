//! SQL table functions: each parses its arguments ([`args`]) and answers from a log
//! version's derived state, as the batches of [`crate::tables`].

pub mod args;
pub mod availability;
pub mod device_intervals_at;
pub mod device_state_at;
pub mod sla;
