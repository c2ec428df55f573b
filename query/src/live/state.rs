//! The applier's state: built once from a snapshot, then advanced by every durable append
//! the log notifies. A batch re-derives only what it touches:
//! - a device's service event re-derives that device (a late one rewrites its history);
//! - a source's event extends its activity; only when that changes a *closed* silence (a gap
//!   appears or is filled) are the devices it reported re-derived — a heartbeat in time
//!   moves the source's open silence, which readers cut out themselves;
//! - a pool configuration re-derives the devices that reported that pool (their home node);
//! - maintenance windows, node events and call legs are added as they come (a leg pairs when
//!   its other end arrives, in any order).
//!
//! Segment rolls move events from the tail to a segment: only the `events` table's snapshot
//! changes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{TimestampMicrosecondType, UInt64Type};

use callstate_log::segment::read_segment;
use callstate_log::{Notice, SegmentMeta, Snapshot};
use callstate_schemas::Us;

use crate::error::Result;
use crate::model::intervals::{PoolHistory, pool_history};
use crate::model::rows::{
    Interner, LogRows, MaintenanceRow, NodeEvent, PoolConfig, for_each_call_event,
};
use crate::model::sla::Targets;

use super::activity::Activity;
use super::calls::{Calls, KnownLeg, Paired, Seen};
use super::device::Device;
use super::view::View;

/// Everything the live fleet is made of, owned by the applier.
pub struct State {
    version: u64,
    /// The latest ingest time applied.
    last_ingest_time: Us,
    devices: imbl::OrdMap<Arc<str>, Arc<Device>>,
    sources: imbl::HashMap<Arc<str>, Arc<Activity>>,
    pools: Arc<PoolHistory>,
    pool_configs: Arc<Vec<PoolConfig>>,
    windows: Arc<Vec<MaintenanceRow>>,
    node_events: Arc<Vec<NodeEvent>>,
    snapshot: Snapshot,
    targets: Targets,
    names: Interner,
    /// Pool → devices that reported it (whose homes a configuration of it changes).
    by_pool: HashMap<Arc<str>, HashSet<Arc<str>>>,
    /// Source → devices it reported (whose silences it decides).
    by_source: HashMap<Arc<str>, HashSet<Arc<str>>>,
}

/// The latest `ingest_time` of a batch.
fn last_ingest_time(b: &RecordBatch) -> Us {
    b.column_by_name("ingest_time")
        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
        .and_then(arrow::compute::max)
        .unwrap_or(Us::MIN)
}

/// The last `ingest_seq` of a batch (0 for none).
fn last_seq(b: &RecordBatch) -> u64 {
    b.column_by_name("ingest_seq")
        .and_then(|c| c.as_primitive_opt::<UInt64Type>())
        .and_then(arrow::compute::max)
        .unwrap_or(0)
}

/// A leg being paired from scratch, and its events once revised.
type Pairing = (KnownLeg, Option<Vec<Seen>>);

/// Legs being paired, per device, then per call id.
type Pairings = hashbrown::HashMap<Arc<str>, hashbrown::HashMap<Arc<str>, Pairing>>;

/// The call legs of a snapshot, paired as the applier pairs them (in the segments' order,
/// which sorts a device's events by time then ingest order), per device and call id. One
/// segment's call columns are held at a time: only the legs stay.
fn pair_calls(snap: &Snapshot, names: &mut Interner) -> Result<Pairings> {
    let columns = ["time", "kind", "device", "call_id", "cause", "ingest_time"];
    let mut legs = Pairings::new();
    let mut pair = |b: &RecordBatch| {
        for_each_call_event(b, None, |e| {
            if !legs.contains_key(e.device) {
                legs.insert(names.get(e.device), Default::default());
            }
            let device = legs.get_mut(e.device).expect("inserted above");
            let (leg, revised) = device.entry_ref(e.call_id).or_default();
            let cause = e.cause.map(|c| names.get(c));
            leg.add(revised, e.started, e.time, e.ingest_time, cause);
        })
    };
    for seg in &snap.segments {
        for b in read_segment(&snap.segment_path(seg), Some(&columns))? {
            pair(&b)?;
        }
    }
    for b in snap.tail_batches(Some(&columns))? {
        pair(&b)?;
    }
    Ok(legs)
}

impl State {
    /// Derives the state of `snap` from scratch (the same rows the reference derivation
    /// reads), call legs included.
    pub fn from_snapshot(snap: Snapshot, targets: Targets) -> Result<State> {
        let rows = LogRows::load_with(&snap, None, false)?;
        let mut names = Interner::default();
        let legs = pair_calls(&snap, &mut names)?;
        let version = snap
            .segments
            .iter()
            .map(|s| s.max_ingest_seq)
            .chain(snap.batches.iter().map(last_seq))
            .max()
            .unwrap_or(0);
        let last_ingest_time = snap
            .segments
            .iter()
            .map(|s| s.max_ingest_time_us)
            .chain(snap.batches.iter().map(last_ingest_time))
            .max()
            .unwrap_or(Us::MIN);
        let mut st = State {
            version,
            last_ingest_time,
            devices: imbl::OrdMap::new(),
            sources: rows
                .source_spans
                .iter()
                .map(|(s, spans)| (s.clone(), Arc::new(Activity::from_spans(spans.clone()))))
                .collect(),
            pools: Arc::new(pool_history(&rows.pool_configs)),
            pool_configs: Arc::new(rows.pool_configs.clone()),
            windows: Arc::new(rows.windows.clone()),
            node_events: Arc::new(rows.node_events.clone()),
            snapshot: snap,
            targets,
            names,
            by_pool: HashMap::new(),
            by_source: HashMap::new(),
        };
        let mut devices: HashMap<Arc<str>, Device> = HashMap::new();
        for r in rows.service {
            st.index(&r.device, r.device_pool.as_ref(), &r.source);
            devices.entry(r.device.clone()).or_default().events.push(r);
        }
        for (device, legs) in legs {
            let pairs: Vec<Paired> = legs.into_iter().map(|(id, (l, r))| (id, l, r)).collect();
            devices.entry(device).or_default().calls = Calls::from_pairs(pairs);
        }
        for (name, mut d) in devices {
            d.events.sort_by_key(|e| (e.time, e.ingest_seq));
            d.derive(&st.pools, |s| st.sources.get(s).cloned());
            st.devices.insert(name, Arc::new(d));
        }
        Ok(st)
    }

    fn index(&mut self, device: &Arc<str>, pool: Option<&Arc<str>>, source: &Arc<str>) {
        if let Some(p) = pool {
            self.by_pool
                .entry(p.clone())
                .or_default()
                .insert(device.clone());
        }
        self.by_source
            .entry(source.clone())
            .or_default()
            .insert(device.clone());
    }

    /// The last `ingest_seq` applied.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Applies one notice of the log.
    pub fn apply(&mut self, notice: Notice) -> Result<()> {
        match notice {
            Notice::Appended(batch) => self.append(batch),
            Notice::Rolled(meta) => {
                self.rolled(meta);
                Ok(())
            }
            Notice::Compacted { merged, into } => {
                let segs = &mut self.snapshot.segments;
                if let Some(at) = segs.iter().position(|s| merged.first() == Some(&s.file)) {
                    segs.splice(at..(at + merged.len()).min(segs.len()), [into]);
                }
                Ok(())
            }
        }
    }

    fn rolled(&mut self, meta: SegmentMeta) {
        self.snapshot
            .batches
            .retain(|b| last_seq(b) > meta.max_ingest_seq);
        self.snapshot.segments.push(meta);
    }

    fn append(&mut self, batch: RecordBatch) -> Result<()> {
        let mut rows = LogRows::default();
        rows.add_batch(&batch, None, &mut self.names)?;
        let mut dirty: HashSet<Arc<str>> = HashSet::new();
        // sources: a changed closed silence re-derives the devices they reported
        for (source, times) in std::mem::take(&mut rows.source_times) {
            let a = self.sources.entry(source.clone()).or_default();
            if Arc::make_mut(a).add(&times).is_some() {
                dirty.extend(self.by_source.get(&source).into_iter().flatten().cloned());
            }
        }
        // pool configurations: new homes for the devices of the pool
        if !rows.pool_configs.is_empty() {
            let configs = Arc::make_mut(&mut self.pool_configs);
            configs.extend(rows.pool_configs.iter().cloned());
            self.pools = Arc::new(pool_history(configs));
            for c in &rows.pool_configs {
                dirty.extend(
                    self.by_pool
                        .get(&c.device_pool)
                        .into_iter()
                        .flatten()
                        .cloned(),
                );
            }
        }
        if !rows.windows.is_empty() {
            Arc::make_mut(&mut self.windows).extend(rows.windows.iter().cloned());
        }
        if !rows.node_events.is_empty() {
            let n = Arc::make_mut(&mut self.node_events);
            n.extend(rows.node_events.iter().cloned());
            n.sort_by_key(|e| e.time);
        }
        // service events
        for r in rows.service {
            self.index(&r.device, r.device_pool.as_ref(), &r.source);
            dirty.insert(r.device.clone());
            let d = self.devices.entry(r.device.clone()).or_default();
            Arc::make_mut(d).insert(r);
        }
        for name in &dirty {
            if let Some(d) = self.devices.get_mut(name) {
                let sources = &self.sources;
                Arc::make_mut(d).derive(&self.pools, |s| sources.get(s).cloned());
            }
        }
        // call legs
        let names = &mut self.names;
        let devices = &mut self.devices;
        for_each_call_event(&batch, None, |e| {
            let dev = names.get(e.device);
            // call ids are unique per call: sharing them would only cost
            let id: Arc<str> = Arc::from(e.call_id);
            let cause = e.cause.map(|c| names.get(c));
            let d = devices.entry(dev).or_default();
            Arc::make_mut(d)
                .calls
                .add(&id, e.started, e.time, e.ingest_time, cause);
        })?;
        self.version = self.version.max(last_seq(&batch));
        self.last_ingest_time = self.last_ingest_time.max(last_ingest_time(&batch));
        self.snapshot.batches.push(batch);
        Ok(())
    }

    /// The published form of this state.
    pub fn view(&self) -> View {
        View {
            version: self.version,
            last_ingest_time: self.last_ingest_time,
            devices: self.devices.clone(),
            sources: self.sources.clone(),
            pool_configs: self.pool_configs.clone(),
            windows: self.windows.clone(),
            node_events: self.node_events.clone(),
            snapshot: self.snapshot.clone(),
            targets: self.targets.clone(),
        }
    }
}
