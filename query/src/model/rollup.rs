//! Hourly rollups of one device: its [`Tally`] per UTC hour (the [`UNIT`]), so that
//! availability over a long window sums a few rollups instead of walking a year of intervals.
//! Hours spent wholly in one state are kept as one run however many they are (a quiet month
//! is one entry); the rest one by one. Hours rather than days: a window aligned to a zone's
//! midnight or month (Paris, New York) is then whole units, where daily rollups read its
//! partial first and last days, and every local day of a daily SLA, from intervals; over a
//! year of the benchmark fleet, answers identical, memory the same (docs/storage.md).
//!
//! A rollup is built with the maintenance windows that may touch the device (those targeting
//! it or a cluster, pool or node its intervals mention, [`Exclusions`]): the units they touch
//! are tallied with them, so that a question sums rollups alone. It records which windows
//! those were (a digest), and a question whose windows differ for the device builds it again
//! (windows come and go with events of their own, rarely). It covers the whole units from
//! the device's first interval to where its sources' open silences could begin (a unit after
//! that is not settled yet), and is built once per version of the device and of its windows
//! ([`RollupCache`]): a device that changes gets a new one.
//!
//! Answers are the same to the microsecond as reading intervals alone: the pieces join
//! exactly ([`Tally::then`]).

use hashbrown::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use callstate_schemas::{ServiceState, US_PER_HOUR, Us};

use super::intervals::ServiceInterval;
use super::name::Name;
use super::rows::MaintenanceRow;
use super::shared_bytes::SharedBytes;
use super::tally::Tally;
use super::unit_runs::{Cursor, Extent, Kind, UnitRuns};

/// The rollup's unit: one UTC hour, µs.
pub const UNIT: Us = US_PER_HOUR;

/// The unit holding `t` (units since 1970-01-01, UTC).
pub fn unit_of(t: Us) -> i64 {
    t.div_euclid(UNIT)
}

/// The first unit starting at or after `t`.
pub fn unit_from(t: Us) -> i64 {
    unit_of(t) + i64::from(t.rem_euclid(UNIT) != 0)
}

/// The units [first, end) that [start, end) (not empty) touches.
pub fn units_touched(start: Us, end: Us) -> (i64, i64) {
    (unit_of(start), unit_from(end))
}

/// A device's sources and the latest end of the intervals each reported (`None`: one lasts).
pub type SourceEnds = Vec<(Name, Option<Us>)>;

fn code_state(c: u8) -> ServiceState {
    ServiceState::ALL[usize::from(c)]
}

/// One device's tallies per unit over the units its history settled.
///
/// Kept small, as every device has one once an SLA is asked (a year of the benchmark fleet:
/// 2.5 M runs, half of them single mixed hours): the runs are encoded ([`UnitRuns`]).
#[derive(Debug, Clone, Default)]
pub struct Rollup {
    /// Contiguous and by unit.
    runs: UnitRuns,
    /// Its sources: their open silences bound the units a question may read from here.
    sources: SourceEnds,
    /// The clusters, pools, nodes and homes its intervals mention (what maintenance windows
    /// target), sorted.
    names: Vec<Name>,
    /// The digest of the maintenance windows it was built with ([`Exclusions::digest`]).
    windows: u64,
}

/// A rollup but for its runs' bytes: what a file of derived state keeps of it beside them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RollupHead {
    /// Where its runs lie.
    pub extent: Extent,
    /// Its sources, with the latest end of the intervals each reported.
    pub sources: SourceEnds,
    /// The clusters, pools, nodes and homes its intervals mention, sorted.
    pub names: Vec<Name>,
    /// The digest of the maintenance windows it was built with.
    pub windows: u64,
}

impl Rollup {
    /// Where its runs lie.
    pub fn extent(&self) -> Extent {
        self.runs.parts().0
    }

    /// Its runs' bytes.
    pub fn bytes(&self) -> &[u8] {
        self.runs.parts().1
    }

    /// The rollup `head` describes (its [`extent`](Self::extent), [`sources`](Self::sources),
    /// [`names`](Self::names) and [`windows`](Self::windows)), its runs' bytes `bytes` (as
    /// [`bytes`](Self::bytes) gave them).
    pub fn from_parts(head: RollupHead, bytes: SharedBytes) -> Rollup {
        Rollup {
            runs: UnitRuns::from_parts(head.extent, bytes),
            sources: head.sources,
            names: head.names,
            windows: head.windows,
        }
    }

    /// Whether its runs are read in place from a shared buffer (a file of derived state).
    pub fn is_shared(&self) -> bool {
        self.runs.is_shared()
    }

    /// The digest of the maintenance windows it was built with.
    pub fn windows(&self) -> u64 {
        self.windows
    }

    /// Bytes it holds on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.runs.heap_bytes()
            + self.sources.capacity() * size_of::<(Name, Option<Us>)>()
            + self.names.capacity() * size_of::<Name>()
    }

    /// The rollup of the device `device`'s `intervals` (in time order, closed silences cut
    /// out) over the whole units no open silence can reach (`open_from` gives where a source's
    /// begins; with none, the units up to the last change), the units a window of `ex` may
    /// touch tallied with those windows.
    pub fn build(
        device: &str,
        intervals: &[ServiceInterval],
        open_from: impl Fn(&str) -> Option<Us>,
        ex: &Exclusions<'_>,
    ) -> Rollup {
        let names = names_of(intervals);
        let (touched, windows, digest) = ex.touched(device, &names);
        let mut out = Rollup {
            runs: UnitRuns::default(),
            sources: source_ends(intervals),
            windows: digest,
            names,
        };
        let (Some(first), Some(last)) = (intervals.first(), intervals.last()) else {
            return out;
        };
        let until = match settled_until(&out.sources, open_from) {
            Us::MAX => last.valid_from,
            until => until,
        };
        fill(
            &mut out.runs,
            intervals,
            (&touched, &windows),
            unit_of(first.valid_from),
            unit_of(until),
        );
        out.runs.finish();
        out
    }

    /// Appends to `runs` (ending at `d0`, or empty) the units [d0, d1) of the device
    /// `device`'s `intervals` (in time order, every silence cut out: they are read as they
    /// are), those a window of `ex` may touch tallied with those windows: what
    /// [`build`](Self::build) gives for them, for units it would not cover (the hours frozen
    /// before a horizon of retention of intervals). [`UnitRuns::finish`] to call after.
    pub fn push_units(
        runs: &mut UnitRuns,
        device: &str,
        intervals: &[ServiceInterval],
        ex: &Exclusions<'_>,
        (d0, d1): (i64, i64),
    ) {
        let names = names_of(intervals);
        let (touched, windows, _) = ex.touched(device, &names);
        fill(runs, intervals, (&touched, &windows), d0, d1);
    }

    /// Its runs.
    pub fn runs(&self) -> &UnitRuns {
        &self.runs
    }

    /// The units covered, [first, end).
    pub fn covered(&self) -> (i64, i64) {
        self.runs.covered()
    }

    /// Its sources, with the latest end of the intervals each reported.
    pub fn sources(&self) -> &SourceEnds {
        &self.sources
    }

    /// The clusters, pools, nodes and homes its intervals mention.
    pub fn names(&self) -> &[Name] {
        &self.names
    }

    /// Whether it was built with the windows `ex` has for the device `device`.
    pub fn built_with(&self, device: &str, ex: &Exclusions<'_>) -> bool {
        self.windows == ex.digest(device, &self.names)
    }

    /// Runs held (a measure of its size).
    pub fn len(&self) -> usize {
        self.runs.len()
    }

    /// Whether it covers no unit.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// The tally of whole units [d0, d1), which must be covered.
    pub fn tally(&self, d0: i64, d1: i64) -> Tally {
        self.tally_from(None, d0, d1).0
    }

    /// [`tally`](Self::tally), read from the run at `hint` (a cursor an earlier question of
    /// this rollup gave) when it starts by `d0` (windows asked in time order walk on instead
    /// of reading the rollup from its start again), else from the first; with the run it
    /// started from, the next window's hint.
    pub fn tally_from(&self, hint: Option<Cursor>, d0: i64, d1: i64) -> (Tally, Option<Cursor>) {
        let mut t = Tally::default();
        if d0 >= d1 {
            return (t, hint);
        }
        let mut c = hint
            .filter(|h| h.unit() <= d0)
            .unwrap_or_else(|| self.runs.start());
        let mut from = None;
        loop {
            let at = c;
            let Some(run) = self.runs.read(&mut c) else {
                break;
            };
            if run.end() <= d0 {
                continue;
            }
            from.get_or_insert(at);
            if run.first >= d1 {
                break;
            }
            let (a, b) = (run.first.max(d0), run.end().min(d1));
            let piece = match run.kind {
                Kind::Pure(s) => Tally::pure(code_state(s), (b - a) * UNIT),
                Kind::Mixed(fields) => Tally::unpack(UNIT, fields),
            };
            t = t.then(piece);
        }
        (t, Some(from.unwrap_or(c)))
    }
}

/// The clusters, pools, nodes and homes `intervals` mention (what maintenance windows
/// target), sorted.
fn names_of(intervals: &[ServiceInterval]) -> Vec<Name> {
    let mut names: Vec<Name> = Vec::new();
    for i in intervals {
        let mentioned = [&i.node, &i.last_node, &i.home_node, &i.device_pool];
        for n in std::iter::once(&i.cluster).chain(mentioned.into_iter().flatten()) {
            if !names.contains(n) {
                names.push(*n);
            }
        }
    }
    names.sort();
    names
}

/// Adds the tally `t` of `n` units from `unit` to `runs` (after the last run).
fn push(runs: &mut UnitRuns, unit: i64, n: i64, t: Tally) {
    let pure = t.is_pure().filter(|&s| t == Tally::pure(s, t.span));
    let kind = match (pure, t.pack()) {
        (Some(state), _) => Kind::Pure(state.index() as u8),
        (None, Some(fields)) if n == 1 => Kind::Mixed(fields),
        _ => unreachable!("a unit not in one state is one unit, and its fields fit 32 bits"),
    };
    runs.push(unit, n, kind);
}

/// Pushes to `runs` the units [d, end) of `intervals`, those of the `touched` ranges tallied
/// with `windows`.
fn fill(
    runs: &mut UnitRuns,
    intervals: &[ServiceInterval],
    (touched, windows): (&[(i64, i64)], &[&MaintenanceRow]),
    mut d: i64,
    end: i64,
) {
    let mut k = 0; // first interval that may overlap unit `d`
    let mut w = 0; // first touched range not ending by unit `d`
    while d < end {
        let (a, b) = (d * UNIT, (d + 1) * UNIT);
        while intervals
            .get(k)
            .is_some_and(|i| i.valid_to.is_some_and(|e| e <= a))
        {
            k += 1;
        }
        while touched.get(w).is_some_and(|r| r.1 <= d) {
            w += 1;
        }
        // a unit a window may touch: tallied with the windows
        if touched.get(w).is_some_and(|r| r.0 <= d) {
            let m = k + intervals[k..].partition_point(|i| i.valid_from < b);
            push(runs, d, 1, Tally::of(&intervals[k..m], a, b, windows));
            d += 1;
            continue;
        }
        // runs stop where the next touched range starts
        let lim = touched.get(w).map_or(end, |r| r.0.min(end));
        match intervals.get(k) {
            // nothing more: unknown up to the limit
            None => {
                push(
                    runs,
                    d,
                    lim - d,
                    Tally::pure(ServiceState::Unknown, (lim - d) * UNIT),
                );
                d = lim;
            }
            // a gap before the next interval: unknown up to the unit it starts
            Some(i) if i.valid_from >= b => {
                let n = (unit_of(i.valid_from) - d).min(lim - d);
                push(runs, d, n, Tally::pure(ServiceState::Unknown, n * UNIT));
                d += n;
            }
            // one interval covers whole units
            Some(i) if i.valid_from <= a && i.valid_to.is_none_or(|e| e >= b) => {
                let last = i.valid_to.map_or(end, unit_of).min(lim);
                let n = last - d;
                push(runs, d, n, Tally::pure(i.state, n * UNIT));
                d = last;
            }
            Some(_) => {
                let m = k + intervals[k..].partition_point(|i| i.valid_from < b);
                let none: &[MaintenanceRow] = &[];
                push(runs, d, 1, Tally::of(&intervals[k..m], a, b, none));
                d += 1;
            }
        }
    }
}

/// Each source of `intervals` with the latest end of its intervals (`None` when one lasts).
fn source_ends(intervals: &[ServiceInterval]) -> SourceEnds {
    let mut out: SourceEnds = Vec::new();
    for i in intervals {
        match out.iter_mut().find(|(s, _)| *s == i.source) {
            Some((_, end)) => {
                *end = match (*end, i.valid_to) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                }
            }
            None => out.push((i.source, i.valid_to)),
        }
    }
    out
}

/// The earliest instant an open silence could cut into intervals with these source ends:
/// a source's open silence from `o` cuts only intervals lasting past `o`.
pub fn settled_until(sources: &SourceEnds, open_from: impl Fn(&str) -> Option<Us>) -> Us {
    sources
        .iter()
        .filter_map(|(s, end)| {
            let o = open_from(s)?;
            end.is_none_or(|e| e > o).then_some(o)
        })
        .min()
        .unwrap_or(Us::MAX)
}

/// A device's rollup, built when first asked for and again when a question's maintenance
/// windows for the device differ from those it was built with; a device derived again starts
/// with an empty one (and cloning gives an empty cache: the live state shares one behind an
/// `Arc` between copies of a device whose intervals did not change).
#[derive(Debug, Default)]
pub struct RollupCache(Mutex<Option<Arc<Rollup>>>);

impl Clone for RollupCache {
    fn clone(&self) -> Self {
        RollupCache::default()
    }
}

impl RollupCache {
    /// A cache holding `rollup`.
    pub fn holding(rollup: Arc<Rollup>) -> RollupCache {
        RollupCache(Mutex::new(Some(rollup)))
    }

    /// The rollup if `usable`, else the one `build` makes (kept for the next question).
    pub fn get_or_build(
        &self,
        usable: impl FnOnce(&Rollup) -> bool,
        build: impl FnOnce() -> Rollup,
    ) -> Arc<Rollup> {
        // (held while building: two questions do not build one device's rollup twice)
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match &*slot {
            Some(r) if usable(r) => r.clone(),
            _ => slot.insert(Arc::new(build())).clone(),
        }
    }

    /// The rollup if built.
    pub fn get(&self) -> Option<Arc<Rollup>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Maintenance windows as availability reads them next to rollups: the windows themselves,
/// and the units each may touch, by the name it targets.
#[derive(Debug)]
pub struct Exclusions<'a> {
    /// The windows.
    pub rows: &'a [MaintenanceRow],
    /// The windows on each target (device, pool, node or cluster name), the units
    /// [first, end) they touch and their fingerprints.
    by_target: HashMap<&'a str, Vec<Targeting<'a>>>,
}

/// A window, the units [first, end) it touches and its fingerprint (a hash of its scope,
/// target, start and end).
type Targeting<'a> = (&'a MaintenanceRow, (i64, i64), u64);

impl<'a> Exclusions<'a> {
    /// Indexes `rows`.
    pub fn new(rows: &'a [MaintenanceRow]) -> Exclusions<'a> {
        let mut by_target: HashMap<&str, Vec<_>> = HashMap::new();
        for w in rows.iter().filter(|w| w.start < w.end) {
            let units = units_touched(w.start, w.end);
            let mut h = DefaultHasher::new();
            (&*w.scope, &*w.target, w.start, w.end).hash(&mut h);
            by_target
                .entry(&w.target)
                .or_default()
                .push((w, units, h.finish()));
        }
        Exclusions { rows, by_target }
    }

    /// The units a window may touch for a device named `device` whose intervals mention
    /// `names` (its clusters, pools, nodes and homes): those of the windows targeting any of
    /// them, whatever their scope (a superset of what covers it), merged.
    /// With the units, the windows themselves (the only ones that may cover the device) and
    /// their [`digest`](Self::digest).
    pub fn touched(
        &self,
        device: &str,
        names: &[Name],
    ) -> (Vec<(i64, i64)>, Vec<&'a MaintenanceRow>, u64) {
        let (mut units, mut windows, mut digest) = (Vec::new(), Vec::new(), 0);
        for (w, d, fp) in self.targeting(device, names) {
            units.push(*d);
            windows.push(*w);
            digest = fold(digest, *fp);
        }
        merge(&mut units);
        (units, windows, digest)
    }

    /// A digest of the windows [`touched`](Self::touched) gives, in order: what a rollup
    /// records of the windows it was built with. (Two sets of windows share one only if
    /// 64-bit fingerprints collide.)
    pub fn digest(&self, device: &str, names: &[Name]) -> u64 {
        self.targeting(device, names)
            .fold(0, |d, (_, _, fp)| fold(d, *fp))
    }

    fn targeting<'s>(
        &'s self,
        device: &'s str,
        names: &'s [Name],
    ) -> impl Iterator<Item = &'s Targeting<'a>> + 's {
        std::iter::once(device)
            .chain(names.iter().map(|n| &**n))
            .filter_map(|n| self.by_target.get(n))
            .flatten()
    }
}

/// A digest of windows with the window of fingerprint `fp` folded in after them.
fn fold(digest: u64, fp: u64) -> u64 {
    (digest ^ fp)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .rotate_left(29)
}

/// Sorts and merges overlapping or adjacent ranges.
fn merge(v: &mut Vec<(i64, i64)>) {
    v.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(v.len());
    for &(a, b) in v.iter() {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    *v = out;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_units_tally_packs_into_32_bits_and_back(
            pieces in proptest::collection::vec((0..3u8, 1..400_000_000i64), 1..9),
        ) {
            // any unit's tally: pieces of states joined, as many as fit an hour
            let mut t = Tally::default();
            let mut left = UNIT;
            for (s, len) in pieces {
                let len = len.min(left);
                if len == 0 {
                    break;
                }
                left -= len;
                t = t.then(Tally::pure(code_state(s), len));
            }
            let p = t.pack().expect("an hour's fields fit 32 bits");
            prop_assert_eq!(Tally::unpack(t.span, p), t);
        }
    }

    #[test]
    fn a_tally_too_long_for_32_bits_is_not_packed() {
        let t = Tally::pure(ServiceState::OutOfService, i64::from(u32::MAX) + 1);
        assert_eq!(t.pack(), None);
        let t = Tally::pure(ServiceState::InService, i64::from(u32::MAX));
        assert_eq!(Tally::unpack(t.span, t.pack().expect("fits")), t);
    }

    #[test]
    fn runs_longer_than_32_bits_of_units_are_read_whole() {
        let mut r = Rollup::default();
        let long = i64::from(u32::MAX) + 10;
        push(
            &mut r.runs,
            7,
            3,
            Tally::pure(ServiceState::InService, 3 * UNIT),
        );
        // (a run's own tally is only read for its state: `long` units do not fit i64 µs)
        push(
            &mut r.runs,
            10,
            long,
            Tally::pure(ServiceState::InService, UNIT),
        );
        // a mixed unit after: half in service, half out
        let half = Tally::pure(ServiceState::InService, UNIT / 2);
        let mixed = half.then(Tally::pure(ServiceState::OutOfService, UNIT / 2));
        push(&mut r.runs, 10 + long, 1, mixed);
        r.runs.finish();
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(r.covered(), (7, 11 + long));
        let edge = 7 + i64::from(u32::MAX);
        for (d0, d1) in [(7, 20), (edge - 5, edge + 5), (edge, edge + 1), (8, 9)] {
            let want = Tally::pure(ServiceState::InService, (d1 - d0) * UNIT);
            assert_eq!(r.tally(d0, d1), want, "[{d0}, {d1})");
        }
        let last = 10 + long;
        let want = Tally::pure(ServiceState::InService, 2 * UNIT).then(mixed);
        assert_eq!(r.tally(last - 2, last + 1), want);
        assert_eq!(r.tally(last, last + 1), mixed);
        // from a hint left by an earlier window, or from one after the window
        let (_, hint) = r.tally_from(None, edge, edge + 1);
        assert_eq!(r.tally_from(hint, last, last + 1).0, mixed);
        let (_, late) = r.tally_from(None, last, last + 1);
        assert_eq!(r.tally_from(late, 8, 9).0, r.tally(8, 9));
    }

    #[test]
    fn units_from_and_of() {
        assert_eq!(unit_of(0), 0);
        assert_eq!(unit_of(-1), -1);
        assert_eq!(unit_from(0), 0);
        assert_eq!(unit_from(1), 1);
        assert_eq!(unit_from(-1), 0);
        assert_eq!(unit_from(UNIT), 1);
    }
}
