//! Shared setup of the query tests: simulate a scenario, store its stream in a real log.

#![allow(dead_code)]

pub mod server;

use callstate_log::{Log, LogOptions};
use callstate_schemas::Event;
use callstate_sim::{Scenario, Truth};

/// A built-in scenario with `devices` per cluster, run with `seed`: its stream and truth.
pub fn simulate(name: &str, devices: usize, seed: u64) -> (Vec<Event>, Truth) {
    let mut sc = Scenario::load(name).unwrap();
    sc.topology.devices = devices;
    simulate_scenario(&sc, seed)
}

/// A scenario run with `seed`: its stream and truth.
pub fn simulate_scenario(sc: &Scenario, seed: u64) -> (Vec<Event>, Truth) {
    callstate_sim::collect(sc, seed).unwrap()
}

/// A fresh log on disk holding `events`, appended in batches of 4,096 (with segments of
/// `segment_rows`, so reads cover segments and the WAL tail).
pub fn log_with(events: &[Event], segment_rows: usize) -> (tempfile::TempDir, Log) {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogOptions { segment_rows }).unwrap();
    for chunk in events.chunks(4_096) {
        log.append(chunk).unwrap();
    }
    log.wait_idle().unwrap();
    (dir, log)
}
