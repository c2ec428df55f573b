//! What the live state holds on the heap, by part: what `/metrics` reports, so that an
//! operator sees which part grows with history (the sizes of its structures; what the
//! allocator adds, and mapped checkpoint pages, are not counted).

use serde::Serialize;

use crate::model::Name;

use super::device::Device;
use super::view::View;

/// Heap bytes of a view's devices, by part.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Memory {
    /// Devices: the table and each device's fixed part.
    pub devices: u64,
    /// Service events, encoded.
    pub service_events: u64,
    /// Intervals, encoded.
    pub intervals: u64,
    /// Hourly rollups built so far.
    pub rollups: u64,
    /// Call legs packed on the heap (sealed since the checkpoint, or all of them without
    /// one), and the fences of those mapped from the checkpoint.
    pub call_legs_packed: u64,
    /// The packs of call legs themselves (a pack per device per piece of the checkpoint
    /// holding some of its legs, and per run sealed since): their structures, not their legs.
    pub call_leg_packs: u64,
    /// Call legs in maps: open, revised, or not sealed yet.
    pub call_legs_loose: u64,
    /// The index of the hourly rollups frozen before the horizon of retention of intervals
    /// (their runs are read in place from the mapped file).
    pub frozen_rollups: u64,
}

impl Memory {
    /// Its parts, named as `/metrics` labels them.
    pub fn parts(&self) -> [(&'static str, u64); 8] {
        [
            ("devices", self.devices),
            ("service_events", self.service_events),
            ("intervals", self.intervals),
            ("rollups", self.rollups),
            ("call_legs_packed", self.call_legs_packed),
            ("call_leg_packs", self.call_leg_packs),
            ("call_legs_loose", self.call_legs_loose),
            ("frozen_rollups", self.frozen_rollups),
        ]
    }
}

impl View {
    /// What its devices hold on the heap.
    pub fn memory(&self) -> Memory {
        let mut m = Memory {
            frozen_rollups: self.frozen.as_ref().map_or(0, |f| f.heap_bytes()) as u64,
            ..Memory::default()
        };
        for d in self.devices.values() {
            // the device, its `Arc`'s counts, its entry in the table
            m.devices += (size_of::<Device>() + 16 + size_of::<(Name, usize)>()) as u64;
            m.service_events += d.events.heap_bytes() as u64;
            m.intervals += d.intervals.heap_bytes() as u64;
            m.rollups += d.rollup.get().map_or(0, |r| r.heap_bytes()) as u64;
            let (packed, packs, loose) = d.calls.heap_bytes();
            m.call_legs_packed += packed as u64;
            m.call_leg_packs += packs as u64;
            m.call_legs_loose += loose as u64;
        }
        m
    }
}
