//! A mock CUCM cluster for the RisPort70 poller: it answers RisPort70 and AXL from the
//! simulator's run as simulated time advances (`callstate simulate --serve-cucm`), with the
//! quirks of a real cluster (`cucm-sources.md`). It shares no code with the poller: its wire
//! format is written from Cisco's documentation on its own, so a misreading in one shows up
//! as a failing test instead of being mirrored.

#![warn(missing_docs)]

pub mod alarms;
mod answers;
pub mod cdr;
pub mod model;
pub mod server;
pub mod wire;

pub use model::CucmModel;
pub use server::{APP_USER, Inject, MockCucm, MockOptions, MockStats, Now};
