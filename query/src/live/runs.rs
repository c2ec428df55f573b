//! Packs of complete legs with the legs taken out of them since, and lists of them kept as
//! *runs*: new legs are packed into a run of their own, and the newest run is merged into
//! the one before while that one is not over twice its size (as a binary counter carries), so
//! a device has a few runs (about log₂ of its legs over the first run's) and each leg is
//! repacked a few times — where repacking one pack at every seal made a device's cost grow
//! with the square of its legs (a busy CTI route point).

use std::sync::Arc;

use callstate_schemas::Us;

use super::blocks::Record;
use super::hours::Hours;
use super::packed::{Complete, Packed};

/// The numbers of the legs taken out of a pack: none for nearly every pack, and then 8
/// bytes where the set itself takes 40 (a pack is one of a few per device per piece of a
/// checkpoint).
#[derive(Debug, Clone, Default)]
pub(super) struct Moved(Option<Box<imbl::HashSet<usize>>>);

impl Moved {
    pub fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|s| s.is_empty())
    }

    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |s| s.len())
    }

    pub fn contains(&self, k: &usize) -> bool {
        self.0.as_ref().is_some_and(|s| s.contains(k))
    }

    /// Adds `k`; whether it was taken out before.
    pub fn insert(&mut self, k: usize) -> bool {
        self.0.get_or_insert_default().insert(k).is_some()
    }
}

/// Packed legs, and those taken out since (held elsewhere now).
#[derive(Debug, Clone, Default)]
pub(super) struct Pack {
    pub packed: Packed,
    pub moved: Moved,
}

impl Pack {
    /// A pack of its own.
    pub fn new(packed: Packed) -> Pack {
        Pack {
            packed,
            moved: Moved::default(),
        }
    }

    /// Bytes it holds on the heap (the legs taken out counted as a set's entries).
    pub fn heap_bytes(&self) -> usize {
        self.packed.heap_bytes() + self.moved.len() * 2 * size_of::<usize>()
    }

    /// The legs still in the pack.
    pub fn legs(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.packed.len()).filter(|k| !self.moved.contains(k))
    }

    /// Takes the leg of `call_id` (of [`hash`] `h`) out, if still in the pack.
    pub fn take(&mut self, h: u64, call_id: &str) -> Option<Complete> {
        let k = self.packed.find_hashed(h, call_id)?;
        if self.moved.insert(k) {
            return None; // taken out before: it is held elsewhere
        }
        Some(self.packed.get(k))
    }

    /// Runs `f` on the records of the legs in the pack that may hold `t` (started within the
    /// longest before it). `f` must not read a pack itself.
    pub fn each_around(&self, t: Us, mut f: impl FnMut(&Record)) {
        let from = t.saturating_sub(self.packed.longest);
        self.packed.each_starting(from, t, |k, r| {
            if !self.moved.contains(&k) {
                f(r);
            }
        });
    }

    /// Legs still in the pack.
    pub fn len(&self) -> usize {
        self.packed.len() - self.moved.len()
    }

    /// The hour index that answers for the pack (none once legs were taken out of it: the
    /// index still holds them) and its device number there.
    pub fn indexed(&self) -> Option<(&Arc<Hours>, u32)> {
        self.packed.hours().filter(|_| self.moved.is_empty())
    }
}

/// Takes the leg of `call_id` out of the runs (the newest first: a leg taken out of an
/// older run and packed again is in a newer one).
pub(super) fn take(runs: &mut [Pack], h: u64, call_id: &str) -> Option<Complete> {
    runs.iter_mut().rev().find_map(|r| r.take(h, call_id))
}

/// Packs `legs` as the newest run and merges runs; returns the legs a pack cannot hold (a
/// device's call ids past 4 GiB).
pub(super) fn push(runs: &mut Vec<Pack>, legs: Vec<Complete>) -> Vec<Complete> {
    if legs.is_empty() {
        return legs;
    }
    let (packed, mut rest) = Packed::new(legs);
    runs.push(Pack::new(packed));
    while let [.., before, last] = &runs[..] {
        // a run spilled to a file while pairing is not merged (back onto the heap)
        if before.len() > 2 * last.len() || before.packed.is_mapped() {
            break;
        }
        let at = runs.len() - 2;
        let (merged, more) = merged(&runs[at..]);
        runs.truncate(at);
        runs.push(merged);
        rest.extend(more);
    }
    rest
}

/// Takes the runs not spilled to a file (the newest) out of `runs`: the legs they still hold
/// in one heap pack (none if they hold none), and those a pack cannot hold.
pub(super) fn take_heap(runs: &mut Vec<Pack>) -> (Option<Pack>, Vec<Complete>) {
    let at = runs
        .iter()
        .rposition(|r| r.packed.is_mapped())
        .map_or(0, |k| k + 1);
    let heap = runs.split_off(at);
    match &heap[..] {
        [] => (None, Vec::new()),
        [one] if one.moved.is_empty() => (heap.into_iter().next(), Vec::new()),
        _ => {
            let (pack, rest) = merged(&heap);
            (Some(pack).filter(|p| p.len() > 0), rest)
        }
    }
}

/// The legs `runs` still hold, in one pack, and those it cannot hold.
fn merged(runs: &[Pack]) -> (Pack, Vec<Complete>) {
    let packs: Vec<&Packed> = runs.iter().map(|r| &r.packed).collect();
    let (packed, rest) = Packed::merge(&packs, |p, k| !runs[p].moved.contains(&k));
    (Pack::new(packed), rest)
}

#[cfg(test)]
mod tests {
    use super::super::packed::hash;
    use super::*;

    fn legs(from: usize, n: usize) -> Vec<Complete> {
        (from..from + n)
            .map(|i| Complete {
                id: Arc::from(format!("call-{i}")),
                start: (i as Us * 7_919) % 10_007,
                end: (i as Us * 7_919) % 10_007 + 5,
                start_known: i as Us,
                end_known: i as Us + 1,
                cause: None,
            })
            .collect()
    }

    #[test]
    fn runs_stay_few_and_hold_every_leg_once() {
        let mut runs = Vec::new();
        let (batch, batches) = (10, 1_000);
        for b in 0..batches {
            assert!(push(&mut runs, legs(b * batch, batch)).is_empty());
            if b % 7 == 3 {
                // a leg packed before taken out again (a late event for it)
                let id = format!("call-{}", b * batch / 2);
                let c = take(&mut runs, hash(&id), &id).expect("held");
                assert!(push(&mut runs, vec![c]).is_empty());
            }
            // sizes fall by more than half from one run to the next: log₂ of the legs
            assert!(runs.len() <= ((b + 1) as f64 * batch as f64).log2() as usize + 2);
        }
        assert!(push(&mut runs, Vec::new()).is_empty());
        let (all, rest) = merged(&runs);
        assert!(rest.is_empty());
        assert_eq!(all.len(), batch * batches);
        assert_eq!(runs.iter().map(Pack::len).sum::<usize>(), batch * batches);
        for i in 0..batch * batches {
            let id = format!("call-{i}");
            let k = all.packed.find(&id).expect("packed");
            assert_eq!(all.packed.get(k).start_known, i as Us);
            assert!(take(&mut runs, hash(&id), &id).is_some());
            assert!(take(&mut runs, hash(&id), &id).is_none(), "{id} twice");
        }
        let starts: Vec<Us> = (0..all.len()).map(|k| all.packed.span(k).0).collect();
        assert!(starts.is_sorted());
    }
}
