//! What callstate's tests share across crates: a real small file system for disk-full cases
//! ([`tmpfs`]), the process's CPU time ([`cpu`]), to check that work has stopped, and its
//! memory ([`memory`]), to check that load leaves it bounded; and the outside programs some
//! tests drive ([`tools`]).

pub mod cpu;
pub mod memory;
pub mod tmpfs;
pub mod tools;
