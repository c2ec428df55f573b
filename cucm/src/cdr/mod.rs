//! CDR flat files (`cucm-sources.md` part 3): file names, the CSV layout, codes, records to
//! call and transfer events, and the directory collector (`callstate ingest cdr`).

pub mod codes;
pub mod collector;
pub mod map;
pub mod name;
pub mod record;

pub use collector::{CdrCollector, CdrConfig, CdrStatus};
