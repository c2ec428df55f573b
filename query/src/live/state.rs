//! The applier's state: built once from a snapshot (its call legs read from the checkpoint
//! under the log's directory when one matches the log, [`checkpoint`]), then advanced by
//! every durable append the log notifies. A batch re-derives only what it touches:
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

use hashbrown::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch, UInt64Array};
use arrow::datatypes::{TimestampMicrosecondType, UInt64Type};

use callstate_log::segment::{Batches, read_segment, read_segments_ahead};
use callstate_log::{Base, Notice, SegmentMeta, Snapshot};
use callstate_schemas::Us;

use crate::error::{QueryError, Result};
use crate::model::Name;
use crate::model::frozen::{Frozen, frozen_of};
use crate::model::intervals::{PoolHistory, pool_history};
use crate::model::name::index_in;
use crate::model::pack::IntervalPack;
use crate::model::rollup::RollupCache;
use crate::model::rows::{
    CallEvent, Interner, LogRows, MaintenanceRow, NodeEvent, PoolConfig, ServiceRow,
    for_each_call_event,
};
use crate::model::shared_bytes::Buffer;
use crate::model::shares::threads_taking;
use crate::model::sla::Targets;

use super::activity::Activity;
use super::calls::Calls;
use super::checkpoint;
use super::device::Device;
use super::mapped::Mapped;
use super::pairing::Pairer;
use super::service::ServiceEvents;
use super::service_chain::ServiceChain;
use super::service_file;
use super::spill::{CHECK_EVERY, SPILL_AT, Spiller};
use super::view::View;

/// Everything the live fleet is made of, owned by the applier.
pub struct State {
    version: u64,
    /// The latest ingest time applied.
    last_ingest_time: Us,
    devices: imbl::OrdMap<Name, Arc<Device>>,
    sources: SourceMap,
    pools: Arc<PoolHistory>,
    pool_configs: Arc<Vec<PoolConfig>>,
    windows: Arc<Vec<MaintenanceRow>>,
    node_events: Arc<Vec<NodeEvent>>,
    snapshot: Snapshot,
    targets: Targets,
    names: Interner,
    /// Pool → devices that reported it (whose homes a configuration of it changes).
    by_pool: HashMap<Name, HashSet<Name>>,
    /// Source → devices it reported (whose silences it decides).
    by_source: HashMap<Name, HashSet<Name>>,
    /// Call events paired since the checkpoint of the legs it started from (since the start
    /// of the log without one).
    calls_applied: u64,
    /// `calls_applied` as of the last checkpoint written.
    calls_at_checkpoint: u64,
    /// The version of the checkpoint of the legs it started from, if it did.
    legs_from: Option<u64>,
    /// What retention removed from the legs (as the checkpoint last read says).
    legs_retention: Option<checkpoint::LegsRetention>,
    /// The version of the last checkpoint of the legs it took in (at its start or since).
    legs_taken: Option<u64>,
    /// Retention of intervals: history is kept from this instant (the log's base).
    horizon: Option<Us>,
    /// The hourly rollups frozen before it, if kept.
    frozen: Option<Arc<Frozen>>,
}

/// The file of frozen rollups mapped (its pages the kernel's, let go of with the others').
fn mapped(path: &std::path::Path) -> std::io::Result<Buffer> {
    Ok(Mapped::open_shared(path)?)
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

/// Each source's activity, as the state holds it.
type SourceMap = imbl::HashMap<Arc<str>, Arc<Activity>>;

/// Legs being paired, per device.
type Pairings = hashbrown::HashMap<Arc<str>, Pairer>;

/// Calls `f` with every call event of `snap` of `ingest_seq` above `after`, in the
/// segments' order (which sorts a device's events by time then ingest order), then the
/// tail's. A few segments' call columns are held at a time (the next read on another thread
/// while one is paired); segments wholly at or below `after` are not read.
fn for_each_call_after(snap: &Snapshot, after: u64, mut f: impl FnMut(CallEvent)) -> Result<()> {
    let columns = [
        "time",
        "kind",
        "device",
        "call_id",
        "cause",
        "ingest_time",
        "ingest_seq",
    ];
    // the events after `after` picked on the thread reading the next segments meanwhile
    let later_only = |b: RecordBatch| -> Result<RecordBatch> {
        if after == 0 {
            return Ok(b);
        }
        let seq = b
            .column_by_name("ingest_seq")
            .and_then(|c| c.as_primitive_opt::<UInt64Type>())
            .ok_or_else(|| QueryError::Data("column ingest_seq missing".into()))?;
        let later = arrow::compute::kernels::cmp::gt(seq, &UInt64Array::new_scalar(after))?;
        Ok(arrow::compute::filter_record_batch(&b, &later)?)
    };
    let each = |b: RecordBatch| for_each_call_event(&b, None, &mut f);
    let later = |s: &&SegmentMeta| s.max_ingest_seq > after;
    if snap.segments.iter().filter(later).any(|s| s.retired) {
        tracing::warn!(
            "call events of segments whose raw events were retired are gone: their legs come \
             only from a checkpoint of the legs, and none covers them"
        );
    }
    let mut parts: Vec<_> = snap
        .held_segments()
        .filter(later)
        .map(|seg| (Batches::File(snap.segment_path(seg)), ()))
        .collect();
    parts.push((Batches::Held(snap.tail_batches(Some(&columns))?), ()));
    read_segments_ahead(parts, Some(&columns), |b, _| later_only(b), each)
}

/// Notes that `device` reported `pool` and `source` (whose changes re-derive it).
fn index(
    by_pool: &mut HashMap<Name, HashSet<Name>>,
    by_source: &mut HashMap<Name, HashSet<Name>>,
    device: Name,
    pool: Option<Name>,
    source: Name,
) {
    if let Some(p) = pool {
        by_pool.entry(p).or_default().insert(device);
    }
    by_source.entry(source).or_default().insert(device);
}

/// The call legs of a snapshot, paired as the applier pairs them, per device (complete legs
/// packed as they pile up: [`Pairer`]; spilled to a file by `spiller`), and the call events
/// they were paired from.
fn pair_calls(
    snap: &Snapshot,
    names: &mut Interner,
    spiller: &mut Spiller,
) -> Result<(Pairings, u64)> {
    let mut legs = Pairings::new();
    let mut n = 0u64;
    for_each_call_after(snap, 0, |e| {
        n += 1;
        if !legs.contains_key(e.device) {
            legs.insert(names.get(e.device), Pairer::new(Pairer::SEAL_AT));
        }
        let device = legs.get_mut(e.device).expect("inserted above");
        let cause = e.cause.map(|c| names.get(c));
        device.add(e.call_id, e.started, e.time, e.ingest_time, cause);
        spiller.paired(legs.iter_mut());
    })?;
    Ok((legs, n))
}

/// A device's service events as a start reads them, and the pools and sources they name
/// (each once: the start indexes them once per device, not once per event).
struct Gathered {
    device: Name,
    events: ServiceEvents,
    pools: Vec<Name>,
    sources: Vec<Name>,
}

impl Gathered {
    fn new(device: Name) -> Gathered {
        Gathered {
            device,
            events: ServiceEvents::default(),
            pools: Vec::new(),
            sources: Vec::new(),
        }
    }

    fn add(&mut self, r: ServiceRow) {
        if let Some(p) = r.device_pool {
            index_in(&mut self.pools, p);
        }
        index_in(&mut self.sources, r.source);
        self.events.insert(r);
    }
}

/// Devices a thread of a start's derivation takes at least: deriving one is worth a thread's
/// start long before reading one for a question is (`shares::DEVICES_PER_THREAD`), and so a
/// test's fleet of a few dozen devices is derived on two threads as a large one is.
const DERIVE_PER_THREAD: usize = 32;

/// Derives every device of `work` from its events (which become the device's), the devices
/// split between `threads` (each device's derivation reads only shared, unchanging state).
/// A year of the benchmark fleet: 50,000 devices, 2.9 M service events.
fn derive_all(
    work: &mut [(Name, Device, ServiceEvents)],
    threads: usize,
    pools: &PoolHistory,
    horizon: Option<Us>,
    sources: &SourceMap,
) {
    let each = |share: &mut [(Name, Device, ServiceEvents)]| {
        for (_, d, mine) in share {
            d.events = Arc::new(std::mem::take(mine));
            d.derive(pools, horizon, |s| sources.get(s).cloned());
        }
    };
    if threads <= 1 || work.len() < 2 {
        return each(work);
    }
    let share = work.len().div_ceil(threads);
    std::thread::scope(|s| {
        for c in work.chunks_mut(share) {
            s.spawn(|| each(c));
        }
    });
}

impl State {
    /// Derives the state of `snap` from scratch (the same rows the reference derivation
    /// reads), call legs included.
    /// With a checkpoint of the legs under the log's directory that matches the log, the
    /// legs come from it (mapped) and only the call events after it are paired.
    pub fn from_snapshot(snap: Snapshot, targets: Targets) -> Result<State> {
        State::from_snapshot_spilling(snap, targets, SPILL_AT, CHECK_EVERY)
    }

    /// [`State::from_snapshot`]; without a checkpoint, the legs being paired are spilled to
    /// a file whenever their packs hold over `spill_at` heap bytes, looked at every
    /// `check_every` call events (`live/spill.rs`).
    pub fn from_snapshot_spilling(
        snap: Snapshot,
        targets: Targets,
        spill_at: usize,
        check_every: u64,
    ) -> Result<State> {
        let began = std::time::Instant::now();
        // each device's service events kept encoded as they are read (~18 bytes an event
        // where a row takes 88: a year's 2.9 M rows would take 255 MB at once)
        let mut gathered: HashMap<u32, Gathered> = HashMap::new();
        let rows = LogRows::load_handing_service(&snap, |r| {
            gathered
                .entry(r.device.number())
                .or_insert_with(|| Gathered::new(r.device))
                .add(r);
        })?;
        let mut events: HashMap<Name, ServiceEvents> = HashMap::with_capacity(gathered.len());
        let mut by_pool: HashMap<Name, HashSet<Name>> = HashMap::new();
        let mut by_source: HashMap<Name, HashSet<Name>> = HashMap::new();
        for g in gathered.into_values() {
            for p in g.pools {
                by_pool.entry(p).or_default().insert(g.device);
            }
            for s in g.sources {
                by_source.entry(s).or_default().insert(g.device);
            }
            events.insert(g.device, g.events);
        }
        let read = began.elapsed();
        let mut names = Interner::default();
        let saved = checkpoint::load(&snap, |s| names.get(s));
        let (legs, paired) = match saved {
            None => {
                let mut spiller = Spiller::new(&snap.dir, spill_at, check_every);
                let paired = pair_calls(&snap, &mut names, &mut spiller)?;
                if spiller.spills > 0 {
                    tracing::info!(
                        spills = spiller.spills,
                        bytes = spiller.bytes,
                        "call legs paired with their packs spilled to files"
                    );
                }
                paired
            }
            Some(_) => (Pairings::new(), 0),
        };
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
        let frozen = frozen_of(&snap, None, &mapped)?;
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
            by_pool,
            by_source,
            calls_applied: 0,
            calls_at_checkpoint: 0,
            legs_from: None,
            legs_retention: None,
            legs_taken: None,
            horizon: rows.horizon,
            frozen,
        };
        let mut devices: HashMap<Name, Device> =
            events.keys().map(|d| (*d, Device::default())).collect();
        for (device, legs) in legs {
            devices.entry(Name::from(&device)).or_default().calls = legs.into_calls();
        }
        if let Some(c) = saved {
            for (device, packs, loose) in c.devices {
                devices.entry(device).or_default().calls = Calls::from_checkpoint(packs, loose);
            }
            let names = &mut st.names;
            let mut after = 0u64;
            for_each_call_after(&st.snapshot, c.version, |e| {
                after += 1;
                let id: Arc<str> = Arc::from(e.call_id);
                let cause = e.cause.map(|c| names.get(c));
                devices.entry(names.name(e.device)).or_default().calls.add(
                    &id,
                    e.started,
                    e.time,
                    e.ingest_time,
                    cause,
                );
            })?;
            st.calls_applied = after;
            st.legs_from = Some(c.version);
            st.legs_taken = Some(c.version);
            st.legs_retention = c.retention;
        } else {
            st.calls_applied = paired;
        }
        let legs = began.elapsed() - read;
        let mut work: Vec<(Name, Device, ServiceEvents)> = devices
            .into_iter()
            .map(|(name, d)| (name, d, events.remove(&name).unwrap_or_default()))
            .collect();
        let threads = threads_taking(work.len(), DERIVE_PER_THREAD);
        derive_all(&mut work, threads, &st.pools, st.horizon, &st.sources);
        for (name, d, _) in work {
            st.devices.insert(name, Arc::new(d));
        }
        tracing::debug!(
            read_s = read.as_secs_f64(),
            legs_s = legs.as_secs_f64(),
            derive_s = (began.elapsed() - read - legs).as_secs_f64(),
            "start's derivation by phase"
        );
        Ok(st)
    }

    /// Copies every device's service events and intervals into new allocations, freeing the
    /// ones the derivation made. Made while the derivation's scratch (its rows, each device's
    /// lists) was being allocated and freed around them, they sit in the allocator's pages
    /// among its holes, which stay the process's memory while one block of a page is alive;
    /// made in a row once that scratch is gone, they fill pages of their own, and the old
    /// pages are freed whole. A year of the benchmark fleet: 292 → 242 MB anonymous memory
    /// 3 s after a start, 348 → 296 after a round of questions (alternated with the build
    /// before; the bytes held are the same).
    pub fn compact_heap(&mut self) {
        self.devices = self
            .devices
            .iter()
            .map(|(name, d)| {
                let mut d = (**d).clone();
                d.events = Arc::new((*d.events).clone());
                d.intervals = Arc::new((*d.intervals).clone());
                (*name, Arc::new(d))
            })
            .collect();
    }

    fn index(&mut self, device: Name, pool: Option<Name>, source: Name) {
        index(&mut self.by_pool, &mut self.by_source, device, pool, source);
    }

    /// Devices with service events.
    pub fn devices_with_service_events(&self) -> usize {
        self.devices
            .values()
            .filter(|d| !d.events.is_empty())
            .count()
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
            Notice::Retired(files) => {
                for s in &mut self.snapshot.segments {
                    s.retired |= files.contains(&s.file);
                }
                Ok(())
            }
            Notice::Folded { segments, base } => self.folded(&segments, base),
            Notice::Compacted { merged, into } => {
                let segs = &mut self.snapshot.segments;
                if let Some(at) = segs.iter().position(|s| merged.first() == Some(&s.file)) {
                    segs.splice(at..(at + merged.len()).min(segs.len()), [into]);
                }
                Ok(())
            }
        }
    }

    /// Takes in a fold (retention of intervals): every device's service events before the
    /// horizon are replaced by the base's for it, and the devices that had any are derived
    /// again from the horizon on: what a start from the log would derive.
    fn folded(&mut self, segments: &[String], base: Base) -> Result<()> {
        for s in &mut self.snapshot.segments {
            if segments.contains(&s.file) {
                s.folded = true;
                s.digest = None;
            }
        }
        let horizon = base.horizon_us;
        let file = callstate_log::layout::segments_dir(&self.snapshot.dir).join(&base.digest.file);
        self.snapshot.base = Some(base);
        self.horizon = Some(horizon);
        self.frozen = frozen_of(&self.snapshot, None, &mapped)?;
        let mut seeds = LogRows::default();
        for b in read_segment(&file, Some(crate::model::rows::COLUMNS))? {
            seeds.add_batch(&b, None, &mut self.names)?;
        }
        let mut by_device: HashMap<Name, Vec<ServiceRow>> = HashMap::new();
        for r in seeds.service {
            by_device.entry(r.device).or_default().push(r);
        }
        let names: Vec<Name> = self.devices.keys().copied().collect();
        for name in names {
            let d = self.devices.get_mut(&name).expect("listed above");
            let mine = by_device.remove(&name).unwrap_or_default();
            let rows = d.events.rows();
            if rows.first().is_none_or(|r| r.time >= horizon) && mine.is_empty() {
                continue;
            }
            let mut kept: Vec<ServiceRow> = mine;
            kept.extend(rows.into_iter().filter(|r| r.time >= horizon));
            kept.sort_by_key(|r| (r.time, r.ingest_seq));
            let d = Arc::make_mut(d);
            d.events = Arc::new(ServiceEvents::from_rows(kept));
            let sources = &self.sources;
            d.derive(&self.pools, self.horizon, |s| sources.get(s).cloned());
        }
        Ok(())
    }

    fn rolled(&mut self, meta: SegmentMeta) {
        self.snapshot
            .batches
            .retain(|b| last_seq(b) > meta.max_ingest_seq);
        self.snapshot.segments.push(meta);
    }

    fn append(&mut self, batch: RecordBatch) -> Result<()> {
        let mut rows = LogRows {
            shadowed_before: self.horizon,
            ..LogRows::default()
        };
        rows.add_batch(&batch, None, &mut self.names)?;
        if rows.shadowed > 0 {
            tracing::warn!(
                events = rows.shadowed,
                horizon = %callstate_schemas::format_instant(self.horizon.unwrap_or_default()),
                "service events before the horizon of retention of intervals not applied: \
                 the history before it was folded (they are kept in the log as events)"
            );
        }
        let mut dirty: HashSet<Name> = HashSet::new();
        // sources: a changed closed silence re-derives the devices they reported
        for (source, times) in std::mem::take(&mut rows.source_times) {
            let a = self.sources.entry(source.clone()).or_default();
            if Arc::make_mut(a).add(&times).is_some() {
                dirty.extend(self.by_source.get(&*source).into_iter().flatten().copied());
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
                        .get(&*c.device_pool)
                        .into_iter()
                        .flatten()
                        .copied(),
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
            self.index(r.device, r.device_pool, r.source);
            dirty.insert(r.device);
            let d = self.devices.entry(r.device).or_default();
            Arc::make_mut(d).insert(r);
        }
        for name in &dirty {
            if let Some(d) = self.devices.get_mut(name) {
                let sources = &self.sources;
                Arc::make_mut(d).derive(&self.pools, self.horizon, |s| sources.get(s).cloned());
            }
        }
        // call legs
        let names = &mut self.names;
        let devices = &mut self.devices;
        let calls = &mut self.calls_applied;
        for_each_call_event(&batch, None, |e| {
            *calls += 1;
            let dev = names.name(e.device);
            // call ids are unique per call: sharing them would only cost
            let id: Arc<str> = Arc::from(e.call_id);
            let cause = e.cause.map(|c| names.get(c));
            let d = Arc::make_mut(devices.entry(dev).or_default());
            d.calls.add(&id, e.started, e.time, e.ingest_time, cause);
            d.calls_changed = *calls;
        })?;
        self.version = self.version.max(last_seq(&batch));
        self.last_ingest_time = self.last_ingest_time.max(last_ingest_time(&batch));
        self.snapshot.batches.push(batch);
        Ok(())
    }

    /// Takes the legs of `checkpoint`, written from `view`, as every device's legs that have
    /// not changed since `view` (no call event for it applied since; service events may
    /// have changed the rest of it): their packs are then the mapped file's, and the heap's
    /// go once no version holds them. Returns how many devices took them.
    /// Its horizon of retention becomes the checkpoint's (one written later holds every
    /// earlier one's).
    pub(super) fn adopt(&mut self, view: &View, checkpoint: checkpoint::Checkpoint) -> usize {
        if let Some(r) = checkpoint.retention
            && self
                .legs_retention
                .is_none_or(|now| now.kept_from <= r.kept_from)
        {
            self.legs_retention = Some(r);
        }
        self.legs_taken = self.legs_taken.max(Some(checkpoint.version));
        let mut adopted = 0;
        for (name, packed, loose) in checkpoint.devices {
            let Some((key, now)) = self.devices.get_key_value(name.as_str()) else {
                continue;
            };
            // (every device of the checkpoint is one of `view`'s)
            if now.calls_changed > view.calls_applied {
                continue;
            }
            let d = Device {
                events: now.events.clone(),
                intervals: now.intervals.clone(),
                calls: Calls::from_checkpoint(packed, loose),
                calls_changed: now.calls_changed,
                rollup: now.rollup.clone(),
            };
            let key = *key;
            self.devices.insert(key, Arc::new(d));
            adopted += 1;
        }
        adopted
    }

    /// Reads the service events and intervals of every device from `chain` (in place, each
    /// device's newest entry) where they are the same as its own (the same names numbered in
    /// the same order, the same bytes), freeing its heap copies (or letting go of an older
    /// file's); with `view`, only those of devices whose events and intervals have not
    /// changed since it. Returns how many devices read both from it.
    pub fn share(&mut self, chain: &ServiceChain, view: Option<&View>) -> usize {
        let mut shared = 0;
        chain.each_entry(|file, e| {
            let Some((key, now)) = self.devices.get_key_value(e.device) else {
                return;
            };
            let before = view.and_then(|v| v.devices.get(e.device));
            let unchanged = |a: &Arc<ServiceEvents>, b: &Arc<IntervalPack>| {
                before.is_none_or(|d| Arc::ptr_eq(&d.events, a) && Arc::ptr_eq(&d.intervals, b))
            };
            let (events, intervals) = (now.events.encoded(), now.intervals.encoded());
            let takes = |(names, bytes): (&[Name], &[u8]), part: &service_file::Part| {
                part.names_are(names) && part.range.len() == bytes.len()
            };
            let take_events = takes(events, &e.events);
            let take_intervals = takes(intervals, &e.intervals);
            if !unchanged(&now.events, &now.intervals) || !(take_events || take_intervals) {
                return;
            }
            let mut d = Device::clone(now);
            if take_events && let Some(ev) = d.events.with_bytes(file.shared(e.events.range)) {
                d.events = Arc::new(ev);
            }
            if take_intervals
                && let Some(iv) = d.intervals.with_bytes(file.shared(e.intervals.range))
            {
                d.intervals = Arc::new(iv);
                // the rollup written with these intervals, unless the device's own was built
                // with other windows since (or the file's fails its check)
                if let Some(part) = &e.rollup
                    && now.rollup.get().is_none_or(|r| r.windows() == part.windows)
                    && let Some(r) = file.rollup(part)
                {
                    d.rollup = Arc::new(RollupCache::holding(Arc::new(r)));
                }
            }
            shared += usize::from(d.events.is_shared() && d.intervals.is_shared());
            let key = *key;
            self.devices.insert(key, Arc::new(d));
        });
        shared
    }

    /// Call events paired since the last checkpoint of the legs (or since the log began,
    /// without one).
    pub fn calls_since_checkpoint(&self) -> u64 {
        self.calls_applied - self.calls_at_checkpoint
    }

    /// The version of the checkpoint of the legs it started from, if it did.
    pub fn legs_from(&self) -> Option<u64> {
        self.legs_from
    }

    /// Call events paired since its start's checkpoint of the legs (since the log began,
    /// without one).
    pub fn calls_applied(&self) -> u64 {
        self.calls_applied
    }

    /// Notes a checkpoint of the legs written from a view of this state (`View::calls_applied`).
    pub fn checkpointed(&mut self, calls_applied: u64) {
        self.calls_at_checkpoint = self.calls_at_checkpoint.max(calls_applied);
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
            calls_applied: self.calls_applied,
            legs_retention: self.legs_retention,
            legs_taken: self.legs_taken,
            horizon: self.horizon,
            frozen: self.frozen.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Devices with events of two sources, some late, some in pools with a home, the
    /// sources silent in places.
    fn fleet() -> (Vec<(Name, Device, ServiceEvents)>, PoolHistory, SourceMap) {
        let minute = 60_000_000;
        let mut work = Vec::new();
        let mut seq = 0;
        for d in 0..23u32 {
            let device = Name::new(&format!("SEP-derive-{d:03}"));
            let mut rows = Vec::new();
            for k in 0..(d as i64 % 7 + 1) * 3 {
                seq += 1;
                let late = k % 5 == 4;
                let time = if late {
                    k * 7 * minute - 3 * minute
                } else {
                    k * 7 * minute
                };
                rows.push(ServiceRow {
                    time,
                    ingest_seq: seq,
                    ingest_time: time + minute,
                    source: Name::new(if d % 3 == 0 { "bridge-a" } else { "bridge-b" }),
                    cluster: Name::new("CL1"),
                    device,
                    in_service: k % 2 == 0,
                    node: Some(Name::new(if k % 4 < 2 { "CUCM-A" } else { "CUCM-B" })),
                    device_pool: (d % 2 == 0).then(|| Name::new("DP-derive")),
                    device_type: Some(Name::new("Cisco 8845")),
                    cause: (k % 2 == 1).then(|| Name::new("NodeDown")),
                });
            }
            work.push((device, Device::default(), ServiceEvents::from_rows(rows)));
        }
        let mut pools = PoolHistory::new();
        pools.insert(
            Arc::from("DP-derive"),
            vec![(30 * minute, 1, Name::new("CUCM-B"))],
        );
        let mut sources = SourceMap::new();
        sources.insert(
            Arc::from("bridge-a"),
            Arc::new(Activity::from_spans(vec![
                (0, 20 * minute),
                (40 * minute, 200 * minute),
            ])),
        );
        sources.insert(
            Arc::from("bridge-b"),
            Arc::new(Activity::from_spans(vec![
                (0, 90 * minute),
                (95 * minute, 300 * minute),
            ])),
        );
        (work, pools, sources)
    }

    #[test]
    fn devices_derived_on_several_threads_are_those_derived_one_by_one() {
        let (mut one, pools, sources) = fleet();
        let horizon = Some(10 * 60_000_000);
        for (_, d, events) in &mut one {
            d.events = Arc::new(std::mem::take(events));
            d.derive(&pools, horizon, |s| sources.get(s).cloned());
        }
        for threads in [1, 2, 3, 40] {
            let (mut work, _, _) = fleet();
            derive_all(&mut work, threads, &pools, horizon, &sources);
            assert_eq!(work.len(), one.len());
            for ((name, d, left), (want_name, want, _)) in work.iter().zip(&one) {
                assert_eq!(name, want_name);
                assert!(left.is_empty(), "the events became the device's");
                assert_eq!(
                    d.events.encoded(),
                    want.events.encoded(),
                    "{threads} threads"
                );
                assert_eq!(
                    d.intervals.encoded(),
                    want.intervals.encoded(),
                    "{threads} threads"
                );
                assert!(!d.intervals.is_empty(), "{name}: intervals derived");
            }
        }
    }
}
