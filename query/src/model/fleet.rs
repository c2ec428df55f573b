//! The fleet as the fleet-wide questions read it, whatever keeps it: a from-scratch
//! derivation of a snapshot, or the live state that follows the log.
//!
//! A device's intervals are stored with every *closed* silence of their sources cut out; the
//! *open* silence of a source (from 90 s after its last event, open-ended) moves with every
//! heartbeat, so it is applied when the intervals are read. That way a heartbeat changes one
//! number, not the history of every device its source reports.

use std::borrow::Cow;
use std::cell::Cell;
use std::sync::Arc;

use callstate_schemas::Us;

use crate::error::QueryError;

use super::Name;
use super::frozen::{Edges, Frozen};
use super::intervals::{ServiceInterval, split_by_silence};
use super::pack::Stored;
use super::rollup::{Exclusions, Rollup, RollupCache, UNIT, settled_until, unit_from, unit_of};
use super::rows::{CallRow, MaintenanceRow, NodeEvent, PoolConfig};
use super::tally::Tally;
use super::targets::{GroupBy, Targets};
use super::unit_runs::Cursor;

/// When each source fell silent for good (90 s after its last event), if it has events.
pub trait OpenSilence: Sync {
    /// The start of `source`'s open unknown window.
    fn open_from(&self, source: &str) -> Option<Us>;
}

/// One device's history.
#[derive(Clone, Copy)]
pub struct DeviceHistory<'a> {
    /// Its intervals, in time order, closed silences cut out (never empty).
    pub intervals: Stored<'a>,
    /// Open silences still to cut out when read; `None` when `intervals` are final.
    pub open: Option<&'a dyn OpenSilence>,
    /// Where its hourly rollup is kept, if it has one (the live state's devices do).
    pub rollup: Option<&'a RollupCache>,
    /// The hourly rollups frozen before the horizon of retention of intervals, if kept.
    pub frozen: Option<&'a Frozen>,
}

impl<'a> DeviceHistory<'a> {
    /// The device.
    pub fn name(&self) -> &'static str {
        self.last().device.as_str()
    }

    /// Its latest interval: the device's attributes (cluster, type, pool, home).
    pub fn last(&self) -> &'a ServiceInterval {
        self.intervals.last().expect("a device has intervals")
    }

    /// Its first interval's start.
    pub fn first_from(&self) -> Us {
        self.intervals.first_from().expect("a device has intervals")
    }

    /// The home node of its latest interval that has one.
    pub fn last_home(&self) -> Option<Name> {
        self.intervals.last_home()
    }

    /// Its group by `by`, by its latest report.
    pub fn group(&self, by: GroupBy) -> &'static str {
        let last = self.last();
        let v = match by {
            GroupBy::Device => Some(last.device),
            GroupBy::DevicePool => last.device_pool,
            GroupBy::Node => self.last_home(),
            GroupBy::Cluster => Some(last.cluster),
            GroupBy::DeviceType => last.device_type,
        };
        v.map_or("(none)", |s| s.as_str())
    }

    /// The interval whose attributes hold at `t`: the last one starting by then, or the first.
    pub fn attributes_at(&self, t: Us) -> Cow<'a, ServiceInterval> {
        self.intervals
            .starting_by(t)
            .or_else(|| self.intervals.first())
            .expect("a device has intervals")
    }

    /// The intervals overlapping [from, to), open silences cut out.
    pub fn window(&self, from: Us, to: Us) -> Cow<'a, [ServiceInterval]> {
        self.cut_open(self.intervals.overlapping(from, to))
    }

    /// Every interval, open silences cut out.
    pub fn all(&self) -> Cow<'a, [ServiceInterval]> {
        self.cut_open(self.intervals.all())
    }

    /// Its time over [from, to): whole units (hours) from its rollup where it has one, the
    /// partial ones at the edges from its intervals; the same, to the microsecond, as reading
    /// intervals alone.
    pub fn tally(&self, from: Us, to: Us, ex: &Exclusions<'_>) -> Tally {
        self.reader(ex).tally(from, to)
    }

    /// What [`tally`](Self::tally) reads, looked up once for many windows.
    pub fn reader<'e>(&self, ex: &'e Exclusions<'e>) -> Reader<'a, 'e> {
        let rollup = self.built_rollup(ex).map(|r| {
            let (first, end) = r.covered();
            let end = end.min(unit_of(self.settled_until(&r)));
            (r, first, end)
        });
        Reader {
            dev: *self,
            rollup,
            ex,
            hint: Cell::new(None),
            frozen: self.frozen.map(|f| (f, f.device(self.name()))),
            frozen_hint: Cell::new(None),
        }
    }

    /// Its rollup with the windows of `ex`, built now if it has a place for one and it was
    /// not built yet, or with other windows.
    pub fn built_rollup(&self, ex: &Exclusions<'_>) -> Option<Arc<Rollup>> {
        let cache = self.rollup?;
        let name = self.name();
        Some(cache.get_or_build(
            |r| r.built_with(name, ex),
            || {
                let built = Rollup::build(name, &self.intervals.all(), |s| self.open_from(s), ex);
                // copied into new allocations once the decoded intervals are freed, so that it
                // does not sit among their holes (as `State::compact_heap` does after a start):
                // a year's memory after a round of questions 295-296 -> 286-288 MB
                built.clone()
            },
        ))
    }

    /// Up to where no open silence cuts into its intervals (as this version knows them).
    fn settled_until(&self, rollup: &Rollup) -> Us {
        settled_until(rollup.sources(), |s| self.open_from(s))
    }

    fn open_from(&self, source: &str) -> Option<Us> {
        self.open?.open_from(source)
    }

    /// The interval holding `t` (open silences cut out); `None` before the first.
    pub fn at(&self, t: Us) -> Option<ServiceInterval> {
        self.piece_at(&self.attributes_at(t), t)
    }

    /// The piece of `attributes` (what [`attributes_at`](Self::attributes_at) gave for `t`)
    /// holding `t`, open silences cut out: the interval holding `t` without looking it up
    /// again.
    pub fn piece_at(&self, attributes: &ServiceInterval, t: Us) -> Option<ServiceInterval> {
        // (the first interval, given when none starts by `t`, does not hold it)
        if !attributes.contains(t) {
            return None;
        }
        let mut pieces = Vec::with_capacity(2);
        self.cut_one(attributes, &mut pieces);
        pieces.into_iter().find(|p| p.contains(t))
    }

    fn open_of(&self, i: &ServiceInterval) -> Option<Us> {
        let o = self.open_from(&i.source)?;
        i.valid_to.is_none_or(|e| e > o).then_some(o)
    }

    fn cut_one(&self, i: &ServiceInterval, out: &mut Vec<ServiceInterval>) {
        match self.open_of(i) {
            Some(o) => split_by_silence(i.clone(), &[(o, None)], out),
            None => out.push(i.clone()),
        }
    }

    fn cut_open(&self, iv: Cow<'a, [ServiceInterval]>) -> Cow<'a, [ServiceInterval]> {
        if self.open.is_none() {
            return iv;
        }
        let Some(first) = iv.iter().position(|i| self.open_of(i).is_some()) else {
            return iv;
        };
        let mut out = Vec::with_capacity(iv.len() + 1);
        out.extend_from_slice(&iv[..first]);
        for i in &iv[first..] {
            self.cut_one(i, &mut out);
        }
        Cow::Owned(out)
    }
}

/// A device's time over windows, from its rollup where it can (see
/// [`DeviceHistory::tally`]).
pub struct Reader<'a, 'e> {
    dev: DeviceHistory<'a>,
    /// The rollup and the units it may answer for, [first, end).
    rollup: Option<(Arc<Rollup>, i64, i64)>,
    ex: &'e Exclusions<'e>,
    /// Where the last window's reading of the rollup's runs started: windows asked in time
    /// order walk on from there.
    hint: Cell<Option<Cursor>>,
    /// The hours frozen before the horizon of retention of intervals, and the device's.
    frozen: Option<(&'a Frozen, Option<&'a Rollup>)>,
    /// [`hint`](Self::hint) in the device's frozen hours.
    frozen_hint: Cell<Option<Cursor>>,
}

impl Reader<'_, '_> {
    /// The device's first instant with a history: its first hour frozen before the horizon
    /// of retention of intervals, if it has one, else its first interval's start.
    pub fn first_from(&self) -> Us {
        let first = self.dev.first_from();
        match self.frozen {
            Some((_, Some(r))) => first.min(r.covered().0 * UNIT),
            _ => first,
        }
    }

    fn direct(&self, a: Us, b: Us) -> Tally {
        if a >= b {
            return Tally::default();
        }
        Tally::of(&self.dev.window(a, b), a, b, self.ex.rows)
    }

    /// The device's time over [from, to): before the horizon of retention of intervals from
    /// the hours frozen there where they can answer (the question checked by
    /// [`Fleet::availability_known`]), else from the history kept alone (unknown before it).
    pub fn tally(&self, from: Us, to: Us) -> Tally {
        match self.frozen.filter(|(f, _)| f.covers(from, to)) {
            Some((f, device)) => {
                let mid = to.min(f.until());
                let (before, at) = f.tally(device, self.frozen_hint.get(), from, mid);
                self.frozen_hint.set(at);
                before.then(self.kept(mid.max(from), to))
            }
            None => self.kept(from, to),
        }
    }

    /// [`tally`](Self::tally) from the history kept.
    fn kept(&self, from: Us, to: Us) -> Tally {
        if from >= to {
            return Tally::default();
        }
        let Some((rollup, first, end)) = &self.rollup else {
            return self.direct(from, to);
        };
        let (d0, d1) = (unit_from(from).max(*first), unit_of(to).min(*end));
        if d0 >= d1 {
            return self.direct(from, to);
        }
        let (whole, at) = rollup.tally_from(self.hint.get(), d0, d1);
        self.hint.set(at);
        self.direct(from, d0 * UNIT)
            .then(whole)
            .then(self.direct(d1 * UNIT, to))
    }
}

/// What the fleet-wide questions answer from.
pub trait Fleet: Send + Sync {
    /// Every device with a service history, by name.
    fn devices(&self) -> Box<dyn Iterator<Item = DeviceHistory<'_>> + '_>;
    /// One device's history, if it has one.
    fn device(&self, name: &str) -> Option<DeviceHistory<'_>>;
    /// A device's call legs, by start.
    fn calls_of(&self, device: &str) -> Cow<'_, [CallRow]>;
    /// The instant before which retention removed call legs (the legs that started and
    /// ended before it); `None`: every leg is kept.
    fn calls_kept_from(&self) -> Option<Us> {
        None
    }
    /// The instant from which retention of intervals keeps the service history (`None`:
    /// all of it): questions reaching before it are refused ([`Fleet::intervals_known`]).
    fn intervals_kept_from(&self) -> Option<Us> {
        None
    }
    /// The hourly rollups frozen before the horizon of retention of intervals, if kept (and
    /// known as of the question's ingest time).
    fn frozen(&self) -> Option<&Frozen> {
        None
    }
    /// Refuses availability over `windows` where what reaches before the horizon of
    /// retention of intervals cannot be answered from the hours frozen there
    /// ([`Frozen::answers`]; refused as [`intervals_known`](Self::intervals_known) does
    /// when none are kept).
    fn availability_known(&self, windows: &[(Us, Us)]) -> Result<(), QueryError> {
        let Some(h) = self.intervals_kept_from() else {
            return Ok(());
        };
        for &(from, to) in windows.iter().filter(|w| w.0 < h) {
            match self.frozen_before_horizon() {
                Some(f) => f.answers(from, to, self.windows())?,
                None => return Err(intervals_retired(h, from)),
            }
        }
        Ok(())
    }
    /// The hourly rollups frozen before the horizon of retention of intervals, if kept up to
    /// it (what availability before it is answered from).
    fn frozen_before_horizon(&self) -> Option<&Frozen> {
        let h = self.intervals_kept_from()?;
        self.frozen().filter(|f| f.until() == h)
    }
    /// The windows availability over `windows` answers, their edges taken as `edges` says,
    /// checked by [`availability_known`](Self::availability_known): with [`Edges::Hours`],
    /// an edge inside an hour before the horizon of retention of intervals, where hourly
    /// rollups are kept, moved inward to the whole hour ([`Frozen::inward`]); a window that
    /// lies inside one such hour is refused.
    fn availability_windows(
        &self,
        windows: Vec<(Us, Us)>,
        edges: Edges,
    ) -> Result<Vec<(Us, Us)>, QueryError> {
        let windows = match (edges, self.frozen_before_horizon()) {
            (Edges::Hours, Some(f)) => windows
                .into_iter()
                .map(|(from, to)| f.inward(from, to))
                .collect::<Result<_, _>>()?,
            _ => windows,
        };
        self.availability_known(&windows)?;
        Ok(windows)
    }
    /// Refuses a question about the service history from `from` on when retention of
    /// intervals removed what lies before its horizon.
    fn intervals_known(&self, from: Us) -> Result<(), QueryError> {
        match self.intervals_kept_from().filter(|h| from < *h) {
            Some(h) => Err(intervals_retired(h, from)),
            None => Ok(()),
        }
    }
    /// Whether the call legs active or hit at `t` are all kept (retention removed none
    /// that could be).
    fn calls_known_at(&self, t: Us) -> bool {
        self.calls_kept_from().is_none_or(|h| t >= h)
    }
    /// A device's call legs active at `t`, `None` where retention removed legs that could be.
    fn active_calls_known(&self, device: &str, t: Us) -> Option<u64> {
        self.calls_known_at(t).then(|| self.active_calls(device, t))
    }
    /// A device's call legs active at `t` (started by then, not ended).
    fn active_calls(&self, device: &str, t: Us) -> u64 {
        self.calls_of(device)
            .iter()
            .filter(|c| c.start <= t && c.end.is_none_or(|e| e > t))
            .count() as u64
    }
    /// Every device with a service history, with the number of its call legs active at `t`
    /// (one pass: implementations that hold legs per device need no lookup by name).
    fn devices_with_active_calls(
        &self,
        t: Us,
    ) -> Box<dyn Iterator<Item = (DeviceHistory<'_>, u64)> + '_> {
        Box::new(self.devices().map(move |d| {
            let n = self.active_calls(d.name(), t);
            (d, n)
        }))
    }
    /// A device's call legs an outage at `t` hits (started by then, not ended before it):
    /// how each ended (its end cause; `None` while not ended).
    fn calls_hit(&self, device: &str, t: Us) -> Vec<Option<Arc<str>>> {
        self.calls_of(device)
            .iter()
            .filter(|c| c.start <= t && c.end.is_none_or(|e| e >= t))
            .map(|c| c.end.and(c.end_cause.clone()))
            .collect()
    }
    /// Every call leg, by device then start.
    fn calls(&self) -> Box<dyn Iterator<Item = Cow<'_, [CallRow]>> + '_>;
    /// Maintenance windows.
    fn windows(&self) -> &[MaintenanceRow];
    /// Node and CTIManager events, by time.
    fn node_events(&self) -> &[NodeEvent];
    /// Pool configurations.
    fn pool_configs(&self) -> &[PoolConfig];
    /// SLA targets.
    fn targets(&self) -> &Targets;
}

/// The refusal of a question reaching `from`, before `horizon`, where retention of
/// intervals keeps the service history from.
pub fn intervals_retired(horizon: Us, from: Us) -> QueryError {
    QueryError::Retired(format!(
        "the service history is kept from {} (retention of intervals, retain_intervals_days): \
         {} is before it; ask from then on",
        callstate_schemas::format_instant(horizon),
        callstate_schemas::format_instant(from),
    ))
}

/// Devices of the cluster and device pool asked for (`None`: any), by their latest report.
pub fn in_groups(d: &DeviceHistory<'_>, cluster: Option<&str>, device_pool: Option<&str>) -> bool {
    let last = d.last();
    cluster.is_none_or(|c| c == &*last.cluster)
        && device_pool.is_none_or(|p| Some(p) == last.device_pool.as_deref())
}

/// A shared fleet.
pub type SharedFleet = Arc<dyn Fleet>;
