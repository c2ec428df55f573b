//! One device's live state: its service events, its intervals (closed silences cut out),
//! and its call legs. Shared between versions behind an `Arc`; the applier copies a device
//! only when a batch touches it.

use std::sync::Arc;

use callstate_schemas::Us;

use crate::model::intervals::{PoolHistory, ServiceInterval, raw_intervals, split_by_silence};
use crate::model::rollup::DayCache;
use crate::model::rows::{CallRow, Leg, ServiceRow};

use super::activity::Activity;

/// A leg as the live state keeps it: paired so far, and when what it says became known.
#[derive(Debug, Clone, Default)]
pub(super) struct KnownLeg {
    leg: Leg,
    /// Ingest time of the `call_started` that set the leg's start.
    start_known: Us,
    /// Ingest time of the `call_ended` that set its end.
    end_known: Us,
}

/// A call event of a revised leg.
#[derive(Debug, Clone)]
pub(super) struct Seen {
    started: bool,
    time: Us,
    ingest_time: Us,
    cause: Option<Arc<str>>,
}

impl KnownLeg {
    /// Adds a `call_started` (`started`) or `call_ended` at `t`, ingested at `ingest_time`;
    /// `revised` holds the leg's events once it got a second start or end.
    pub(super) fn add(
        &mut self,
        revised: &mut Option<Vec<Seen>>,
        started: bool,
        t: Us,
        ingest_time: Us,
        cause: Option<Arc<str>>,
    ) {
        let again = if started {
            self.leg.start.is_some()
        } else {
            self.leg.end.is_some()
        };
        if again || revised.is_some() {
            revised.get_or_insert_with(|| self.seen()).push(Seen {
                started,
                time: t,
                ingest_time,
                cause: cause.clone(),
            });
        }
        let before = (self.leg.start, self.leg.end);
        self.leg.add(started, t, || cause);
        if self.leg.start != before.0 {
            self.start_known = ingest_time;
        }
        if self.leg.end != before.1 {
            self.end_known = ingest_time;
        }
    }

    /// The events it was paired from (one start and one end at most: it was not revised).
    fn seen(&self) -> Vec<Seen> {
        let mut v = Vec::with_capacity(3);
        if let Some(t) = self.leg.start {
            v.push(Seen {
                started: true,
                time: t,
                ingest_time: self.start_known,
                cause: None,
            });
        }
        if let Some(t) = self.leg.end {
            v.push(Seen {
                started: false,
                time: t,
                ingest_time: self.end_known,
                cause: self.leg.end_cause.clone(),
            });
        }
        v.sort_by_key(|e| e.ingest_time);
        v
    }

    /// The leg as known at `known_at`.
    fn known_at(&self, known_at: Us, revised: Option<&[Seen]>) -> Leg {
        match revised {
            None => {
                let end = self.leg.end.filter(|_| self.end_known <= known_at);
                Leg {
                    start: self.leg.start.filter(|_| self.start_known <= known_at),
                    end,
                    end_cause: end.and(self.leg.end_cause.clone()),
                }
            }
            Some(seen) => {
                let mut leg = Leg::default();
                for e in seen.iter().filter(|e| e.ingest_time <= known_at) {
                    leg.add(e.started, e.time, || e.cause.clone());
                }
                leg
            }
        }
    }
}

/// A device's call legs, paired as they arrive in any order: ordered by where each sorts
/// (its start, or its end when seen only ending) then call id, with the call ids indexed.
/// Persistent maps, so that a version's copy costs nothing until it changes.
///
/// For `known_at` questions a leg remembers when its start and its end became known; the
/// rare leg that gets a second start or end (a call announced again) keeps its events.
///
/// Which legs were active at an instant is answered without walking the device's history:
/// an ended leg active at `t` started within the longest leg's length before it, and the legs
/// still open (started, not ended) are kept apart.
#[derive(Debug, Clone, Default)]
pub struct Calls {
    legs: imbl::OrdMap<(Us, Arc<str>), KnownLeg>,
    at: imbl::HashMap<Arc<str>, Us>,
    revised: imbl::HashMap<Arc<str>, Arc<Vec<Seen>>>,
    /// Legs started and not ended, by start.
    open: imbl::OrdSet<(Us, Arc<str>)>,
    /// The longest ended leg (end − start).
    longest: Us,
}

impl Calls {
    /// Adds a `call_started` (`started`) or a `call_ended` of `call_id` at `t`, ingested at
    /// `ingest_time`.
    pub fn add(
        &mut self,
        call_id: &Arc<str>,
        started: bool,
        t: Us,
        ingest_time: Us,
        cause: Option<Arc<str>>,
    ) {
        let mut k = match self.at.get(call_id) {
            Some(&at) => self
                .legs
                .remove(&(at, call_id.clone()))
                .expect("an indexed leg is stored"),
            None => KnownLeg::default(),
        };
        self.open.remove(&(k.leg.at(), call_id.clone()));
        let mut revised = self.revised.remove(call_id).map(Arc::unwrap_or_clone);
        k.add(&mut revised, started, t, ingest_time, cause);
        if let Some(r) = revised {
            self.revised.insert(call_id.clone(), Arc::new(r));
        }
        self.put(call_id.clone(), k);
    }

    /// Stores a leg under where it sorts, indexed.
    fn put(&mut self, call_id: Arc<str>, k: KnownLeg) {
        let at = k.leg.at();
        match (k.leg.start, k.leg.end) {
            (Some(s), Some(e)) => self.longest = self.longest.max(e - s),
            (Some(_), None) => {
                self.open.insert((at, call_id.clone()));
            }
            _ => {}
        }
        self.at.insert(call_id.clone(), at);
        self.legs.insert((at, call_id), k);
    }

    /// Puts a leg paired elsewhere (the from-scratch loader), with its events if revised.
    pub(super) fn insert(&mut self, call_id: Arc<str>, leg: KnownLeg, revised: Option<Vec<Seen>>) {
        if let Some(r) = revised {
            self.revised.insert(call_id.clone(), Arc::new(r));
        }
        self.put(call_id, leg);
    }

    /// The legs as rows of `device`, by start then call id.
    pub fn rows(&self, device: &Arc<str>) -> Vec<CallRow> {
        self.legs
            .iter()
            .map(|((_, id), k)| k.leg.row(id.clone(), device.clone()))
            .collect()
    }

    /// The legs as known at `known_at`, as rows of `device`, by start then call id.
    pub fn rows_known_at(&self, device: &Arc<str>, known_at: Us) -> Vec<CallRow> {
        let mut out: Vec<CallRow> = self
            .legs
            .iter()
            .filter_map(|((_, id), k)| {
                let leg = k.known_at(known_at, self.revised.get(id).map(|v| v.as_slice()));
                (leg.start.is_some() || leg.end.is_some())
                    .then(|| leg.row(id.clone(), device.clone()))
            })
            .collect();
        out.sort_by(|a, b| (a.start, &a.call_id).cmp(&(b.start, &b.call_id)));
        out
    }

    /// The ended legs that may hold `t` (started within the longest leg before it), and the
    /// open ones started by then.
    fn around(
        &self,
        t: Us,
    ) -> (
        impl Iterator<Item = &KnownLeg>,
        impl Iterator<Item = ()> + '_,
    ) {
        let from = t.saturating_sub(self.longest);
        let first = (from, Arc::<str>::from(""));
        let past = (t.saturating_add(1), Arc::<str>::from(""));
        let ended = self
            .legs
            .range(first..past.clone())
            .map(|(_, k)| k)
            .filter(|k| k.leg.end.is_some());
        let open = self.open.range(..past).map(|_| ());
        (ended, open)
    }

    /// Legs active at `t`: started by then, not ended by then.
    pub fn active_at(&self, t: Us) -> u64 {
        if self.legs.is_empty() {
            return 0;
        }
        let (ended, open) = self.around(t);
        let ended = ended
            .filter(|k| k.leg.start.is_some_and(|s| s <= t) && k.leg.end.is_some_and(|e| e > t))
            .count();
        (ended + open.count()) as u64
    }

    /// Legs an outage at `t` hits (started by then, not ended before): how each ended, `None`
    /// for those not ended.
    pub fn hit_at(&self, t: Us) -> Vec<Option<Arc<str>>> {
        if self.legs.is_empty() {
            return Vec::new();
        }
        let (ended, open) = self.around(t);
        // a leg seen only ending starts where it ends
        let mut out: Vec<Option<Arc<str>>> = ended
            .filter(|k| k.leg.at() <= t && k.leg.end.is_some_and(|e| e >= t))
            .map(|k| k.leg.end_cause.clone())
            .collect();
        out.extend(open.map(|()| None));
        out
    }

    /// Legs held.
    pub fn len(&self) -> usize {
        self.legs.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.legs.is_empty()
    }
}

/// Unknown windows: (start, end; `None` = open-ended).
pub type Silences = Vec<(Us, Option<Us>)>;

/// One device.
#[derive(Debug, Clone, Default)]
pub struct Device {
    /// `device_in_service` / `device_out_of_service` events, by (time, ingest_seq).
    pub events: Vec<ServiceRow>,
    /// Its intervals, closed silences cut out (open ones are cut when read).
    pub intervals: Vec<ServiceInterval>,
    /// Its call legs.
    pub calls: Calls,
    /// Its daily rollup, built when first read (a copy starts without).
    pub days: DayCache,
}

impl Device {
    /// Inserts a service event in order.
    pub fn insert(&mut self, e: ServiceRow) {
        let key = (e.time, e.ingest_seq);
        let at = self
            .events
            .partition_point(|x| (x.time, x.ingest_seq) <= key);
        self.events.insert(at, e);
    }

    /// Derives the intervals again from the events, the pools' history and the sources'
    /// closed silences (`activity` gives a source's).
    pub fn derive(
        &mut self,
        pools: &PoolHistory,
        activity: impl Fn(&str) -> Option<Arc<Activity>>,
    ) {
        let events: Vec<&ServiceRow> = self.events.iter().collect();
        self.days = DayCache::default();
        self.intervals = intervals(&events, pools, |source| {
            activity(source).map(|a| a.closed()).unwrap_or_default()
        });
    }

    /// Its service events ingested by `known_at`.
    pub fn events_known_at(&self, known_at: Us) -> Vec<&ServiceRow> {
        self.events
            .iter()
            .filter(|e| e.ingest_time <= known_at)
            .collect()
    }
}

/// A device's intervals from its service events (in time, then ingest order), with the
/// unknown windows `silences` gives for each source cut out.
pub fn intervals(
    events: &[&ServiceRow],
    pools: &PoolHistory,
    mut silences: impl FnMut(&str) -> Silences,
) -> Vec<ServiceInterval> {
    let raw = raw_intervals(events, pools);
    let mut out = Vec::with_capacity(raw.len());
    // the silences of the source of the intervals at hand
    let mut windows: Option<(Arc<str>, Silences)> = None;
    for i in raw {
        if windows.as_ref().is_none_or(|(s, _)| *s != i.source) {
            windows = Some((i.source.clone(), silences(&i.source)));
        }
        let w = &windows.as_ref().expect("set above").1;
        split_by_silence(i, w, &mut out);
    }
    out
}
