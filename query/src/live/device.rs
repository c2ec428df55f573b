//! One device's live state: its service events, its intervals (closed silences cut out),
//! and its call legs. Shared between versions behind an `Arc`; the applier copies a device
//! only when a batch touches it.

use std::sync::Arc;

use callstate_schemas::Us;

use crate::model::intervals::{PoolHistory, ServiceInterval, raw_intervals, split_by_silence};
use crate::model::rows::{CallRow, Leg, ServiceRow};

use super::activity::Activity;

/// A device's call legs, paired as they arrive in any order: ordered by where each sorts
/// (its start, or its end when seen only ending) then call id, with the call ids indexed.
/// Persistent maps, so that a version's copy costs nothing until it changes.
#[derive(Debug, Clone, Default)]
pub struct Calls {
    legs: imbl::OrdMap<(Us, Arc<str>), Leg>,
    at: imbl::HashMap<Arc<str>, Us>,
}

impl Calls {
    /// Adds a `call_started` (`started`) or a `call_ended` of `call_id` at `t`.
    pub fn add(&mut self, call_id: &Arc<str>, started: bool, t: Us, cause: Option<Arc<str>>) {
        let mut leg = match self.at.get(call_id) {
            Some(&at) => self
                .legs
                .remove(&(at, call_id.clone()))
                .expect("an indexed leg is stored"),
            None => Leg::default(),
        };
        leg.add(started, t, || cause);
        let at = leg.at();
        self.at.insert(call_id.clone(), at);
        self.legs.insert((at, call_id.clone()), leg);
    }

    /// Puts a leg paired elsewhere (the from-scratch loader).
    pub fn insert(&mut self, call_id: Arc<str>, leg: Leg) {
        let at = leg.at();
        self.at.insert(call_id.clone(), at);
        self.legs.insert((at, call_id), leg);
    }

    /// The legs as rows of `device`, by start then call id.
    pub fn rows(&self, device: &Arc<str>) -> Vec<CallRow> {
        self.legs
            .iter()
            .map(|((_, id), leg)| leg.row(id.clone(), device.clone()))
            .collect()
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
type Silences = Vec<(Us, Option<Us>)>;

/// One device.
#[derive(Debug, Clone, Default)]
pub struct Device {
    /// `device_in_service` / `device_out_of_service` events, by (time, ingest_seq).
    pub events: Vec<ServiceRow>,
    /// Its intervals, closed silences cut out (open ones are cut when read).
    pub intervals: Vec<ServiceInterval>,
    /// Its call legs.
    pub calls: Calls,
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
        let raw = raw_intervals(&events, pools);
        let mut out = Vec::with_capacity(raw.len());
        // the closed silences of the source of the intervals at hand
        let mut windows: Option<(Arc<str>, Silences)> = None;
        for i in raw {
            if windows.as_ref().is_none_or(|(s, _)| *s != i.source) {
                let w = activity(&i.source).map(|a| a.closed()).unwrap_or_default();
                windows = Some((i.source.clone(), w));
            }
            let w = &windows.as_ref().expect("set above").1;
            split_by_silence(i, w, &mut out);
        }
        self.intervals = out;
    }
}
