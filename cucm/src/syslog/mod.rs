//! The remote-syslog alarm receiver (`callstate ingest syslog`, `cucm-sources.md` part 2):
//! CiscoLog alarms from the cluster's nodes into v1 events.

pub mod map;
pub mod parse;
pub mod receiver;
pub mod sidefile;
pub mod stamp;

pub use receiver::{SyslogConfig, SyslogReceiver, SyslogStatus};
