//! A device's call legs, paired as their events arrive in any order, with what a `known_at`
//! question needs (when each end became known). Legs complete when the state was built, or
//! sealed since, are kept packed ([`Packed`](super::packed::Packed)); the rest in persistent
//! maps that a version's copy shares until it changes.

use std::sync::Arc;

use callstate_schemas::Us;

use crate::model::rows::{CallRow, Leg};

use super::hours::Listed;
use super::mapped::Mapped;
use super::packed::{Complete, hash};
use super::runs::{self, Pack};

/// A call event of a revised leg as a checkpoint stores it: (started, time, ingest time,
/// cause).
type WireSeen = (bool, Us, Us, Option<String>);

/// A leg that is not packed (open, seen only ending, revised) as a checkpoint stores it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct WireLeg {
    id: String,
    start: Option<Us>,
    end: Option<Us>,
    cause: Option<String>,
    start_known: Us,
    end_known: Us,
    /// (started, time, ingest time, cause) of each event, once revised.
    revised: Option<Vec<WireSeen>>,
}

impl WireLeg {
    pub(super) fn of((id, k, revised): &Paired) -> WireLeg {
        WireLeg {
            id: id.to_string(),
            start: k.leg.start,
            end: k.leg.end,
            cause: k.leg.end_cause.as_deref().map(str::to_string),
            start_known: k.start_known,
            end_known: k.end_known,
            revised: revised.as_ref().map(|v| {
                v.iter()
                    .map(|e| {
                        (
                            e.started,
                            e.time,
                            e.ingest_time,
                            e.cause.as_deref().map(str::to_string),
                        )
                    })
                    .collect()
            }),
        }
    }

    /// The leg again, its causes shared through `name`.
    pub(super) fn paired(self, mut name: impl FnMut(&str) -> Arc<str>) -> Paired {
        let mut cause = |c: Option<String>| c.map(|c| name(&c));
        let leg = KnownLeg {
            leg: Leg {
                start: self.start,
                end: self.end,
                end_cause: cause(self.cause),
            },
            start_known: self.start_known,
            end_known: self.end_known,
        };
        let revised = self.revised.map(|v| {
            v.into_iter()
                .map(|(started, time, ingest_time, c)| Seen {
                    started,
                    time,
                    ingest_time,
                    cause: cause(c),
                })
                .collect()
        });
        (Arc::from(self.id), leg, revised)
    }
}

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
    /// Its start and end, where known.
    pub(super) fn span(&self) -> (Option<Us>, Option<Us>) {
        (self.leg.start, self.leg.end)
    }

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

/// A device's call legs, paired as they arrive in any order.
///
/// Complete legs (started and ended, each once) are kept [`Packed`](super::packed::Packed):
/// the base (those of a checkpoint, mapped) and those sealed in since (once the maps below
/// hold twice the legs they kept at the last seal; a start without a checkpoint pairs the
/// log's into the same runs) as [`runs`](super::runs), so the base stays where it is and a
/// seal repacks a few small runs, not everything sealed before. The rest
/// — open legs, legs seen only ending, revised legs, and the latest complete ones — are in
/// persistent maps, ordered by where each sorts (its start,
/// or its end when seen only ending) then call id, with the call ids indexed, so that a
/// version's copy costs nothing until it changes. An event for a packed leg takes it out of
/// the pack (`moved`) into the maps.
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
    /// The longest ended leg (end − start) of the maps.
    longest: Us,
    /// Complete legs of the checkpoint the state started from or took in: one pack per
    /// piece of it holding the device's (oldest first).
    base: Vec<Pack>,
    /// Complete legs sealed in since, as runs (oldest first).
    sealed: Vec<Pack>,
    /// Legs the maps kept at the last seal.
    kept: usize,
}

/// A leg paired from scratch: its call id, what it says, and its events once revised.
pub(super) type Paired = (Arc<str>, KnownLeg, Option<Vec<Seen>>);

/// The maps are sealed into the pack when they hold this many legs and twice what they kept
/// at the last seal.
const SEAL_AT: usize = 64;

impl KnownLeg {
    /// Whether it started and ended.
    pub(super) fn is_complete(&self) -> bool {
        self.leg.start.is_some() && self.leg.end.is_some()
    }

    /// The leg if complete (what can be packed when not revised).
    pub(super) fn complete(&self, id: &Arc<str>) -> Option<Complete> {
        Some(Complete {
            id: id.clone(),
            start: self.leg.start?,
            end: self.leg.end?,
            start_known: self.start_known,
            end_known: self.end_known,
            cause: self.leg.end_cause.clone(),
        })
    }

    pub(super) fn of(c: Complete) -> KnownLeg {
        KnownLeg {
            leg: Leg {
                start: Some(c.start),
                end: Some(c.end),
                end_cause: c.cause,
            },
            start_known: c.start_known,
            end_known: c.end_known,
        }
    }
}

impl Calls {
    /// A device's legs from a checkpoint (its complete legs in `base`, a pack per piece of
    /// the checkpoint) or paired from scratch ([`Pairer`](super::pairing::Pairer): its
    /// complete legs in `runs`), the others (`loose`: open, seen only ending, revised) as
    /// they were paired.
    pub(super) fn from_parts(base: Vec<Pack>, runs: Vec<Pack>, loose: Vec<Paired>) -> Calls {
        let mut calls = Calls {
            base,
            sealed: runs,
            ..Calls::default()
        };
        for (id, leg, revised) in loose {
            calls.insert(id, leg, revised);
        }
        calls.kept = calls.legs.len();
        calls
    }

    /// A device's legs as a checkpoint holds them: its packs (one per piece holding some; the
    /// list kept as it is, so it should hold room for those only: a list per device of the
    /// fleet) and the others as paired.
    pub(super) fn from_checkpoint(packs: Vec<Pack>, loose: Vec<Paired>) -> Calls {
        Calls::from_parts(packs, Vec::new(), loose)
    }

    /// Whether some of its packs were spilled to a file by a start pairing without a
    /// checkpoint.
    pub(super) fn has_spilled(&self) -> bool {
        self.sealed.iter().any(|p| p.packed.is_mapped())
    }

    /// A checkpoint file one of its base packs is kept in, if mapped.
    pub(super) fn mapped_file(&self) -> Option<&Arc<Mapped>> {
        self.base.iter().find_map(|p| p.packed.file())
    }

    /// Bytes it holds on the heap: its packs' legs (and fences), its packs' own structures
    /// (one per piece of the checkpoint holding some of its legs, and one per run), and its
    /// maps' (their entries and call ids; the maps' own nodes are not counted).
    pub fn heap_bytes(&self) -> (usize, usize, usize) {
        let packed = self.packs().map(Pack::heap_bytes).sum();
        // a pack in its list (its `Packed` held by value)
        let packs = self.packs().count() * size_of::<Pack>();
        let ids: usize = self.legs.keys().map(|(_, id)| id.len() + 16).sum();
        let entry = size_of::<((Us, Arc<str>), KnownLeg)>() + size_of::<(Arc<str>, Us)>();
        let revised: usize = self
            .revised
            .values()
            .map(|s| size_of::<(Arc<str>, Arc<Vec<Seen>>)>() + s.len() * size_of::<Seen>())
            .sum();
        let maps =
            self.legs.len() * entry + ids + revised + self.open.len() * size_of::<(Us, Arc<str>)>();
        (packed, packs, maps)
    }

    /// What a checkpoint writes of the legs: the complete ones (each pack's still packed but
    /// those of the packs it keeps where they are, `kept`, asked once a pack, and the maps'
    /// complete and unrevised), and the rest as paired.
    pub(super) fn checkpoint_parts(
        &self,
        mut kept: impl FnMut(&Pack) -> bool,
    ) -> (Vec<Complete>, Vec<Paired>) {
        let mut complete: Vec<Complete> = self
            .packs()
            .filter(|p| !kept(p))
            .flat_map(|p| p.legs().map(|k| p.packed.get(k)))
            .collect();
        let mut loose = Vec::new();
        for ((_, id), k) in &self.legs {
            let revised = self.revised.get(id);
            match k.complete(id).filter(|_| revised.is_none()) {
                Some(c) => complete.push(c),
                None => loose.push((id.clone(), k.clone(), revised.map(|r| r.to_vec()))),
            }
        }
        (complete, loose)
    }

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
            None => self.unpack(call_id).unwrap_or_default(),
        };
        self.open.remove(&(k.leg.at(), call_id.clone()));
        let mut revised = self.revised.remove(call_id).map(Arc::unwrap_or_clone);
        k.add(&mut revised, started, t, ingest_time, cause);
        if let Some(r) = revised {
            self.revised.insert(call_id.clone(), Arc::new(r));
        }
        self.put(call_id.clone(), k);
        if self.legs.len() >= SEAL_AT.max(2 * self.kept) {
            self.seal();
        }
    }

    /// Takes a packed leg out of its pack.
    fn unpack(&mut self, call_id: &str) -> Option<KnownLeg> {
        let h = hash(call_id);
        runs::take(&mut self.sealed, h, call_id)
            .or_else(|| runs::take(&mut self.base, h, call_id))
            .map(KnownLeg::of)
    }

    /// Packs the maps' complete, unrevised legs as a new run.
    fn seal(&mut self) {
        let mut complete: Vec<Complete> = Vec::new();
        for ((_, id), k) in &self.legs {
            if let Some(c) = k.complete(id).filter(|_| !self.revised.contains_key(id)) {
                complete.push(c);
            }
        }
        for c in &complete {
            if let Some(at) = self.at.remove(&c.id) {
                self.legs.remove(&(at, c.id.clone()));
            }
        }
        for c in runs::push(&mut self.sealed, complete) {
            self.put(c.id.clone(), KnownLeg::of(c));
        }
        self.kept = self.legs.len();
    }

    /// The packs: the base's, then the runs sealed since.
    pub(super) fn packs(&self) -> impl Iterator<Item = &Pack> {
        self.base.iter().chain(&self.sealed)
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
    fn insert(&mut self, call_id: Arc<str>, leg: KnownLeg, revised: Option<Vec<Seen>>) {
        if let Some(r) = revised {
            self.revised.insert(call_id.clone(), Arc::new(r));
        }
        self.put(call_id, leg);
    }

    /// The packed legs still in their packs, whole, with their call ids.
    fn unpacked(&self) -> impl Iterator<Item = (Arc<str>, KnownLeg)> + '_ {
        self.packs().flat_map(|p| {
            p.legs().map(|k| {
                let c = p.packed.get(k);
                (c.id.clone(), KnownLeg::of(c))
            })
        })
    }

    /// The legs as rows of `device`, by start then call id.
    pub fn rows(&self, device: &str) -> Vec<CallRow> {
        let device: Arc<str> = Arc::from(device);
        let mut out: Vec<CallRow> = self
            .unpacked()
            .map(|(id, k)| k.leg.row(id, device.clone()))
            .chain(
                self.legs
                    .iter()
                    .map(|((_, id), k)| k.leg.row(id.clone(), device.clone())),
            )
            .collect();
        out.sort_by(|a, b| (a.start, &a.call_id).cmp(&(b.start, &b.call_id)));
        out
    }

    /// The legs as known at `known_at`, as rows of `device`, by start then call id.
    pub fn rows_known_at(&self, device: &str, known_at: Us) -> Vec<CallRow> {
        let device: Arc<str> = Arc::from(device);
        let packed = self.unpacked().filter_map(|(id, k)| {
            let leg = k.known_at(known_at, None);
            (leg.start.is_some() || leg.end.is_some()).then(|| leg.row(id, device.clone()))
        });
        let mut out: Vec<CallRow> = self
            .legs
            .iter()
            .filter_map(|((_, id), k)| {
                let leg = k.known_at(known_at, self.revised.get(id).map(|v| v.as_slice()));
                (leg.start.is_some() || leg.end.is_some())
                    .then(|| leg.row(id.clone(), device.clone()))
            })
            .chain(packed)
            .collect();
        out.sort_by(|a, b| (a.start, &a.call_id).cmp(&(b.start, &b.call_id)));
        out
    }

    /// The ended legs of the maps that may hold `t` (started within the longest leg before
    /// it), and the open ones started by then.
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
        self.active_listed(t, None)
    }

    /// [`active_at`](Self::active_at) for one of many devices asked at the same instant
    /// (`listed`, made for it): a mapped pack whose checkpoint has an hour index is counted
    /// from it, without reading the pack (unless legs were taken out of it since).
    pub(super) fn active_at_listed(&self, t: Us, listed: &mut Listed) -> u64 {
        self.active_listed(t, Some(listed))
    }

    fn active_listed(&self, t: Us, mut listed: Option<&mut Listed>) -> u64 {
        if self.is_empty() {
            return 0;
        }
        let (ended, open) = self.around(t);
        let ended = ended
            .filter(|k| k.leg.start.is_some_and(|s| s <= t) && k.leg.end.is_some_and(|e| e > t))
            .count();
        let mut packed = 0;
        for p in self.packs() {
            if let Some((hours, device)) = p.indexed() {
                let n = match listed.as_deref_mut() {
                    Some(l) => l.count(hours, device),
                    None => hours.active(device, t),
                };
                if let Some(n) = n {
                    packed += n as usize;
                    continue;
                }
            }
            p.each_around(t, |r| packed += usize::from(r.end > t));
        }
        (ended + open.count() + packed) as u64
    }

    /// Legs an outage at `t` hits (started by then, not ended before): how each ended, `None`
    /// for those not ended.
    pub fn hit_at(&self, t: Us) -> Vec<Option<Arc<str>>> {
        if self.is_empty() {
            return Vec::new();
        }
        let (ended, open) = self.around(t);
        // a leg seen only ending starts where it ends
        let mut out: Vec<Option<Arc<str>>> = ended
            .filter(|k| k.leg.at() <= t && k.leg.end.is_some_and(|e| e >= t))
            .map(|k| k.leg.end_cause.clone())
            .collect();
        // the packed legs; a pack whose hour index says none of its legs is hit then is not
        // read
        let read = self
            .packs()
            .filter(|p| p.indexed().is_none_or(|(h, device)| h.may_hit(device, t)));
        for p in read {
            p.each_around(t, |r| {
                if r.end >= t {
                    out.push(p.packed.cause_of(r).cloned());
                }
            });
        }
        out.extend(open.map(|()| None));
        out
    }

    /// Legs held.
    pub fn len(&self) -> usize {
        self.legs.len() + self.packs().map(Pack::len).sum::<usize>()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::super::pairing::Pairer;
    use super::*;

    /// (call, started, time, cause) in arrival order; ingest times follow the order.
    type Ev = (usize, bool, Us, usize);

    fn ev() -> impl Strategy<Value = Ev> {
        (0..160usize, any::<bool>(), 0..20_000i64, 0..3usize)
    }

    fn cause(c: usize) -> Option<Arc<str>> {
        Some(Arc::from(["normal", "node_failure", "dropped"][c]))
    }

    /// The legs as plain pairing gives them, from the events ingested by `known_at`.
    fn reference(evs: &[Ev], known_at: Us) -> Vec<(Arc<str>, Leg)> {
        let mut legs: HashMap<usize, Leg> = HashMap::new();
        for (i, &(call, started, t, c)) in evs.iter().enumerate() {
            if i as Us <= known_at {
                legs.entry(call).or_default().add(started, t, || cause(c));
            }
        }
        legs.into_iter()
            .map(|(c, l)| (Arc::from(format!("call-{c}")), l))
            .collect()
    }

    fn rows(legs: &[(Arc<str>, Leg)], device: &Arc<str>) -> Vec<CallRow> {
        let mut out: Vec<CallRow> = legs
            .iter()
            .map(|(id, l)| l.row(id.clone(), device.clone()))
            .collect();
        out.sort_by(|a, b| (a.start, &a.call_id).cmp(&(b.start, &b.call_id)));
        out
    }

    fn text(rows: Vec<CallRow>) -> Vec<String> {
        rows.iter().map(|r| format!("{r:?}")).collect()
    }

    fn check(calls: &Calls, evs: &[Ev], probes: &[Us]) -> Result<(), TestCaseError> {
        let device: Arc<str> = Arc::from("D1");
        let all = reference(evs, Us::MAX);
        prop_assert_eq!(text(calls.rows(&device)), text(rows(&all, &device)));
        prop_assert_eq!(calls.len(), all.len());
        for &t in probes {
            let active = all
                .iter()
                .filter(|(_, l)| match (l.start, l.end) {
                    (Some(s), Some(e)) => s <= t && e > t,
                    (Some(s), None) => s <= t,
                    _ => false,
                })
                .count() as u64;
            prop_assert_eq!(calls.active_at(t), active, "active at {}", t);
            let mut hit: Vec<Option<Arc<str>>> = all
                .iter()
                .filter(|(_, l)| match (l.start, l.end) {
                    (_, Some(e)) => l.at() <= t && e >= t,
                    (Some(s), None) => s <= t,
                    _ => false,
                })
                .map(|(_, l)| l.end.and(l.end_cause.clone()))
                .collect();
            hit.sort();
            let mut got = calls.hit_at(t);
            got.sort();
            prop_assert_eq!(got, hit, "hit at {}", t);
        }
        for k in [0, evs.len() as Us / 3, evs.len() as Us / 2, evs.len() as Us] {
            prop_assert_eq!(
                text(calls.rows_known_at(&device, k)),
                text(rows(&reference(evs, k), &device)),
                "known at {}",
                k
            );
        }
        Ok(())
    }

    /// The legs of `evs` (all of them known) are those of plain pairing.
    fn check_prefix(calls: &Calls, evs: &[Ev]) -> Result<(), TestCaseError> {
        let device: Arc<str> = Arc::from("D1");
        let all = reference(evs, Us::MAX);
        prop_assert_eq!(text(calls.rows(&device)), text(rows(&all, &device)));
        prop_assert_eq!(calls.len(), all.len());
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Packed, sealed and unpacked legs answer as plain pairing does: built event by
        /// event (sealing as legs pile up), and built from pairs (the loader) then added to.
        #[test]
        fn packed_legs_answer_as_plain_pairing(
            evs in proptest::collection::vec(ev(), 1..700),
            split in 0.0..1.0f64,
            seal_at in 1..40usize,
            probes in proptest::collection::vec(0..21_000i64, 1..12),
        ) {
            let id = |c: usize| -> Arc<str> { Arc::from(format!("call-{c}")) };
            let mut calls = Calls::default();
            for (i, &(c, started, t, k)) in evs.iter().enumerate() {
                calls.add(&id(c), started, t, i as Us, cause(k));
            }
            check(&calls, &evs, &probes)?;

            // the loader's way: the first part paired from scratch (sealing its map at
            // `seal_at` legs, merging runs, taking legs out of them), then the rest added
            let n = (evs.len() as f64 * split) as usize;
            let mut pairer = Pairer::new(seal_at);
            for (i, &(c, started, t, k)) in evs[..n].iter().enumerate() {
                pairer.add(&id(c), started, t, i as Us, cause(k));
            }
            let mut calls = pairer.into_calls();
            check_prefix(&calls, &evs[..n])?;
            for (i, &(c, started, t, k)) in evs.iter().enumerate().skip(n) {
                calls.add(&id(c), started, t, i as Us, cause(k));
            }
            check(&calls, &evs, &probes)?;
        }
    }

    #[test]
    fn a_pack_is_a_few_numbers() {
        // a pack per device per piece of a checkpoint: held by value, a few numbers
        assert!(size_of::<Pack>() <= 80, "{} bytes", size_of::<Pack>());
    }
}
