//! What callstate's tests share across crates: a real small file system for disk-full cases
//! ([`tmpfs`]) and the process's CPU time ([`cpu`]), to check that work has stopped.

pub mod cpu;
pub mod tmpfs;
