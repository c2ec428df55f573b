//! Work over a fleet's devices split between threads: each thread takes a share of the
//! devices in order, and the shares' results come back in that order; answers are built from
//! them so that they do not depend on how many threads there were. (Shares by stride, every
//! `n`th device, measured the same on the year's SLA and were not kept.)

use crate::error::{QueryError, Result};

use super::fleet::DeviceHistory;

/// Devices a thread takes at least.
pub const DEVICES_PER_THREAD: usize = 4096;

/// Threads worth starting for `devices` devices: one per core, each with at least
/// [`DEVICES_PER_THREAD`] devices (at least one).
pub fn threads_for(devices: usize) -> usize {
    threads_taking(devices, DEVICES_PER_THREAD)
}

/// Threads worth starting for `devices` devices: one per core, each with at least
/// `per_thread` devices (at least one).
pub fn threads_taking(devices: usize, per_thread: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.min(devices / per_thread.max(1)).max(1)
}

/// `work` on `threads` shares of `devices` (in order); `what` names the work if a thread
/// panics.
pub fn in_shares<'a, T: Send>(
    devices: &[DeviceHistory<'a>],
    threads: usize,
    what: &str,
    work: impl Fn(&[DeviceHistory<'a>]) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let threads = threads.clamp(1, devices.len().max(1));
    if threads == 1 {
        return Ok(vec![work(devices)?]);
    }
    let share = devices.len().div_ceil(threads);
    std::thread::scope(|s| {
        let running: Vec<_> = devices.chunks(share).map(|c| s.spawn(|| work(c))).collect();
        running
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(QueryError::Internal(format!("{what}: a thread panicked")))
                })
            })
            .collect()
    })
}
