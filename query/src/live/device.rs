//! One device's live state: its service events, its intervals (closed silences cut out),
//! and its call legs ([`Calls`]). Shared between versions behind an `Arc`; the applier copies
//! a device only when a batch touches it.

use std::sync::Arc;

use callstate_schemas::Us;

use crate::model::Name;
use crate::model::intervals::{
    PoolHistory, ServiceInterval, clip_from, raw_intervals, split_by_silence,
};
use crate::model::pack::IntervalPack;
use crate::model::rollup::RollupCache;
use crate::model::rows::ServiceRow;

use super::activity::Activity;
use super::calls::Calls;
use super::service::ServiceEvents;

/// Unknown windows: (start, end; `None` = open-ended).
pub type Silences = Vec<(Us, Option<Us>)>;

/// One device. A copy (the applier copies a device before a batch changes it) shares its
/// service events, intervals and rollup until they change: a call event copies only the legs.
#[derive(Debug, Clone, Default)]
pub struct Device {
    /// `device_in_service` / `device_out_of_service` events, by (time, ingest_seq), packed.
    pub events: Arc<ServiceEvents>,
    /// Its intervals, closed silences cut out (open ones are cut when read).
    pub intervals: Arc<IntervalPack>,
    /// Its call legs.
    pub calls: Calls,
    /// The state's count of call events applied when one last changed its legs (0: none
    /// since the start): a checkpoint written from a version that had applied as many holds
    /// its legs as they are.
    pub calls_changed: u64,
    /// Its hourly rollup of these intervals, built when first read; a new one with every
    /// derivation.
    pub rollup: Arc<RollupCache>,
}

impl Device {
    /// Inserts a service event in order (the caller derives the device again after).
    pub fn insert(&mut self, e: ServiceRow) {
        Arc::make_mut(&mut self.events).insert(e);
    }

    /// Derives the intervals again from the events, the pools' history and the sources'
    /// closed silences (`activity` gives a source's), from `horizon` on if retention of
    /// intervals set one.
    pub fn derive(
        &mut self,
        pools: &PoolHistory,
        horizon: Option<Us>,
        activity: impl Fn(&str) -> Option<Arc<Activity>>,
    ) {
        let rows = self.events.rows();
        let events: Vec<&ServiceRow> = rows.iter().collect();
        self.rollup = Arc::default();
        let derived = intervals(&events, pools, horizon, |source| {
            activity(source).map(|a| a.closed()).unwrap_or_default()
        });
        self.intervals = Arc::new(IntervalPack::new(&derived));
    }

    /// Its service events ingested by `known_at`.
    pub fn events_known_at(&self, known_at: Us) -> Vec<ServiceRow> {
        self.events.known_at(known_at)
    }
}

/// A device's intervals from its service events (in time, then ingest order), with the
/// unknown windows `silences` gives for each source cut out, from `horizon` on if given.
pub fn intervals(
    events: &[&ServiceRow],
    pools: &PoolHistory,
    horizon: Option<Us>,
    mut silences: impl FnMut(&str) -> Silences,
) -> Vec<ServiceInterval> {
    let raw = raw_intervals(events, pools);
    let mut out = Vec::with_capacity(raw.len());
    // the silences of the source of the intervals at hand
    let mut windows: Option<(Name, Silences)> = None;
    for i in raw {
        if windows.as_ref().is_none_or(|(s, _)| *s != i.source) {
            windows = Some((i.source, silences(&i.source)));
        }
        let w = &windows.as_ref().expect("set above").1;
        split_by_silence(i, w, &mut out);
    }
    if let Some(h) = horizon {
        clip_from(&mut out, 0, h);
    }
    out
}
