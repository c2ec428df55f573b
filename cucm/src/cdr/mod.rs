//! CDR flat files (`cucm-sources.md` part 3): file names, the CSV layout, codes, and records
//! to call and transfer events. The directory collector (`callstate ingest cdr`) is not
//! written yet (docs/cucm.md).

pub mod codes;
pub mod map;
pub mod name;
pub mod record;
