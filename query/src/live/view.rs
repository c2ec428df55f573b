//! One published version of the live state: immutable, shared by every reader, and cheap to
//! make (persistent maps and `Arc`s: a new version shares everything a batch did not touch).

use std::borrow::Cow;
use std::sync::Arc;

use callstate_log::Snapshot;
use callstate_schemas::Us;

use crate::model::Name;
use crate::model::fleet::{DeviceHistory, Fleet, OpenSilence};
use crate::model::frozen::Frozen;
use crate::model::rows::{CallRow, MaintenanceRow, NodeEvent, PoolConfig, ServiceRow};
use crate::model::sla::Targets;

use super::activity::Activity;
use super::device::Device;
use super::hours::Listed;
use super::retention::LegsRetention;

/// A consistent version of the live state.
pub struct View {
    /// The last `ingest_seq` it holds.
    pub version: u64,
    /// The latest ingest time it holds (`Us::MIN` for none).
    pub last_ingest_time: Us,
    pub(super) devices: imbl::OrdMap<Name, Arc<Device>>,
    pub(super) sources: imbl::HashMap<Arc<str>, Arc<Activity>>,
    pub(super) pool_configs: Arc<Vec<PoolConfig>>,
    pub(super) windows: Arc<Vec<MaintenanceRow>>,
    pub(super) node_events: Arc<Vec<NodeEvent>>,
    pub(super) snapshot: Snapshot,
    pub(super) targets: Targets,
    /// Call events its state had paired since its start's checkpoint of the legs.
    pub(super) calls_applied: u64,
    /// What retention removed from the call legs.
    pub(super) legs_retention: Option<LegsRetention>,
    /// The version of the last checkpoint of the legs its state took in.
    pub(super) legs_taken: Option<u64>,
    /// Retention of intervals: history is kept from this instant.
    pub(super) horizon: Option<Us>,
    /// The hourly rollups frozen before it, if kept.
    pub(super) frozen: Option<Arc<Frozen>>,
}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View")
            .field("version", &self.version)
            .field("devices", &self.devices.len())
            .finish()
    }
}

impl View {
    /// The log snapshot of this version (what the `events` table reads).
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Devices with service events whose events and intervals are read in place from the
    /// service file (none of their bytes on the heap).
    pub fn devices_reading_service_file(&self) -> usize {
        self.devices
            .values()
            .filter(|d| !d.events.is_empty() && d.events.is_shared() && d.intervals.is_shared())
            .count()
    }

    /// Devices whose hourly rollup is read in place from the service file.
    pub fn rollups_reading_service_file(&self) -> usize {
        self.devices
            .values()
            .filter(|d| d.rollup.get().is_some_and(|r| r.is_shared()))
            .count()
    }

    /// Devices some of whose call legs a start without a checkpoint spilled to a file (read
    /// from it, mapped, until a checkpoint is taken in).
    pub fn devices_with_spilled_legs(&self) -> usize {
        self.devices
            .values()
            .filter(|d| d.calls.has_spilled())
            .count()
    }

    /// Devices whose call legs are kept in a mapped checkpoint file (the rest are on the
    /// heap).
    pub fn devices_with_mapped_legs(&self) -> usize {
        self.devices
            .values()
            .filter(|d| d.calls.mapped_file().is_some())
            .count()
    }

    /// The version of the last checkpoint of the call legs its state took in (at its start
    /// or written since; `None`: none).
    pub fn legs_taken_in(&self) -> Option<u64> {
        self.legs_taken
    }

    /// What retention removed from the call legs (`None`: nothing).
    pub fn legs_retention(&self) -> Option<LegsRetention> {
        self.legs_retention
    }

    /// Every device's service events (decoded one device at a time, in time then ingest
    /// order).
    pub fn service_events(&self) -> impl Iterator<Item = Vec<ServiceRow>> + '_ {
        self.devices
            .values()
            .filter(|d| !d.events.is_empty())
            .map(|d| d.events.rows())
    }

    /// A source's activity spans.
    pub fn activity(&self, source: &str) -> Option<&[(Us, Us)]> {
        self.sources.get(source).map(|a| a.spans())
    }

    /// Every source with its activity spans.
    pub fn sources(&self) -> impl Iterator<Item = (&Arc<str>, &[(Us, Us)])> {
        self.sources.iter().map(|(s, a)| (s, a.spans()))
    }

    pub(super) fn history<'a>(&'a self, d: &'a Device) -> Option<DeviceHistory<'a>> {
        (!d.intervals.is_empty()).then_some(DeviceHistory {
            intervals: (&*d.intervals).into(),
            open: Some(self),
            rollup: Some(&*d.rollup),
            frozen: self.frozen.as_deref(),
        })
    }
}

impl OpenSilence for View {
    fn open_from(&self, source: &str) -> Option<Us> {
        self.sources.get(source).and_then(|a| a.open_from())
    }
}

impl Fleet for View {
    fn devices(&self) -> Box<dyn Iterator<Item = DeviceHistory<'_>> + '_> {
        Box::new(self.devices.values().filter_map(|d| self.history(d)))
    }

    fn device(&self, name: &str) -> Option<DeviceHistory<'_>> {
        self.devices.get(name).and_then(|d| self.history(d))
    }

    fn calls_of(&self, device: &str) -> Cow<'_, [CallRow]> {
        match self.devices.get_key_value(device) {
            Some((name, d)) if !d.calls.is_empty() => Cow::Owned(d.calls.rows(name)),
            _ => Cow::Borrowed(&[]),
        }
    }

    fn calls_kept_from(&self) -> Option<Us> {
        self.legs_retention.map(|r| r.kept_from)
    }

    fn intervals_kept_from(&self) -> Option<Us> {
        self.horizon
    }

    fn frozen(&self) -> Option<&Frozen> {
        self.frozen.as_deref()
    }

    fn active_calls(&self, device: &str, t: Us) -> u64 {
        self.devices.get(device).map_or(0, |d| d.calls.active_at(t))
    }

    fn devices_with_active_calls(
        &self,
        t: Us,
    ) -> Box<dyn Iterator<Item = (DeviceHistory<'_>, u64)> + '_> {
        let mut listed = Listed::at(t);
        Box::new(self.devices.values().filter_map(move |d| {
            Some((self.history(d)?, d.calls.active_at_listed(t, &mut listed)))
        }))
    }

    fn calls_hit(&self, device: &str, t: Us) -> Vec<Option<Arc<str>>> {
        self.devices
            .get(device)
            .map_or_else(Vec::new, |d| d.calls.hit_at(t))
    }

    fn calls(&self) -> Box<dyn Iterator<Item = Cow<'_, [CallRow]>> + '_> {
        Box::new(
            self.devices
                .iter()
                .filter(|(_, d)| !d.calls.is_empty())
                .map(|(name, d)| Cow::Owned(d.calls.rows(name))),
        )
    }

    fn windows(&self) -> &[MaintenanceRow] {
        &self.windows
    }

    fn node_events(&self) -> &[NodeEvent] {
        &self.node_events
    }

    fn pool_configs(&self) -> &[PoolConfig] {
        &self.pool_configs
    }

    fn targets(&self) -> &Targets {
        &self.targets
    }
}
