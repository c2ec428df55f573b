//! Pairing a device's call legs from scratch (a start without a checkpoint of the legs) in
//! memory that grows by a packed leg's size, not a map entry's: legs are paired in a map
//! until it holds [`Pairer::SEAL_AT`] legs, then the complete ones are packed as a new run
//! ([`runs`](super::runs)). A later event for a packed leg (an end sent again, a call
//! announced again) takes it out of its run into the map, as [`Calls`] does with its packs.
//! At a year of the benchmark fleet (26.6 M legs) a start pairing every leg in maps peaked at
//! 6.54 GiB, with runs at 3.08 GiB (docs/performance.md).

use std::sync::Arc;

use callstate_schemas::Us;

use super::calls::{Calls, KnownLeg, Seen};
use super::packed::{Complete, hash};
use super::runs::{self, Pack};

/// One device's legs being paired.
pub(super) struct Pairer {
    /// Legs not packed: open, seen only ending, revised, and complete since the last seal.
    loose: hashbrown::HashMap<Arc<str>, KnownLeg>,
    /// The events of the revised ones (few: a map beside, so that `loose` stays small).
    revised: hashbrown::HashMap<Arc<str>, Vec<Seen>>,
    /// Complete legs packed, oldest run first.
    runs: Vec<Pack>,
    /// Legs left in `loose` by the last seal.
    kept: usize,
    /// `loose` is sealed once it holds this many legs and twice `kept`.
    seal_at: usize,
}

impl Pairer {
    /// Legs in the map when sealing (at a year of the benchmark fleet a device pairs about
    /// 530 legs; 50,000 maps of 16 legs stay a small part of the packed ones: at 32, with
    /// revised legs' events inside the map, that year peaked about 0.16 GiB higher and
    /// paired 7% faster, having fewer runs to merge).
    pub const SEAL_AT: usize = 16;

    /// A device with no legs yet, sealing its map at `seal_at` legs.
    pub fn new(seal_at: usize) -> Pairer {
        Pairer {
            loose: hashbrown::HashMap::new(),
            revised: hashbrown::HashMap::new(),
            runs: Vec::new(),
            kept: 0,
            seal_at: seal_at.max(1),
        }
    }

    /// Adds a `call_started` (`started`) or a `call_ended` of `call_id` at `t`, ingested at
    /// `ingest_time`.
    pub fn add(
        &mut self,
        call_id: &str,
        started: bool,
        t: Us,
        ingest_time: Us,
        cause: Option<Arc<str>>,
    ) {
        let runs = &mut self.runs;
        let leg = self.loose.entry_ref(call_id).or_insert_with(|| {
            runs::take(runs, hash(call_id), call_id)
                .map(KnownLeg::of)
                .unwrap_or_default()
        });
        let mut revised = self.revised.remove(call_id);
        leg.add(&mut revised, started, t, ingest_time, cause);
        if let Some(r) = revised {
            self.revised.insert(Arc::from(call_id), r);
        }
        if self.loose.len() >= self.seal_at.max(2 * self.kept) {
            self.seal();
        }
    }

    /// Packs the map's complete, unrevised legs into a new run, and merges runs.
    fn seal(&mut self) {
        let revised = &self.revised;
        let complete: Vec<Complete> = self
            .loose
            .extract_if(|id, leg| leg.is_complete() && !revised.contains_key(id))
            .filter_map(|(id, leg)| leg.complete(&id))
            .collect();
        self.kept = self.loose.len();
        let rest = runs::push(&mut self.runs, complete);
        self.put_back(rest);
    }

    /// Legs a pack could not hold (beyond its `u32` offsets), back in the map (also for
    /// [`spill`](super::spill)).
    pub fn put_back(&mut self, rest: Vec<Complete>) {
        for c in rest {
            self.loose.insert(c.id.clone(), KnownLeg::of(c));
        }
    }

    /// Bytes its runs not spilled to a file hold on the heap (what a spill would free).
    pub fn unspilled_bytes(&self) -> usize {
        self.runs
            .iter()
            .filter(|r| !r.packed.is_mapped())
            .map(|r| r.heap_bytes())
            .sum()
    }

    /// Its runs of packed legs, oldest first (for [`spill`](super::spill)).
    pub fn runs_mut(&mut self) -> &mut Vec<Pack> {
        &mut self.runs
    }

    /// The device's legs: the complete ones in its runs (not merged into one: that would
    /// hold every device's legs twice for a moment), the others as paired.
    pub fn into_calls(mut self) -> Calls {
        self.seal();
        let loose = self
            .loose
            .into_iter()
            .map(|(id, leg)| {
                let revised = self.revised.remove(&id);
                (id, leg, revised)
            })
            .collect();
        Calls::from_parts(Vec::new(), self.runs, loose)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Calls `n` legs, each started and ended, some ends sent again later.
    fn pair(n: usize, seal_at: usize, mut each: impl FnMut(&Pairer)) -> Pairer {
        let mut p = Pairer::new(seal_at);
        for i in 0..n {
            let t = i as Us * 10;
            p.add(&format!("call-{i}"), true, t, t, None);
            p.add(&format!("call-{i}"), false, t + 5, t + 5, None);
            if i % 97 == 0 && i > 0 {
                // an end sent again for a leg packed long ago: taken out, revised
                p.add(&format!("call-{}", i / 2), false, t, t, None);
            }
            each(&p);
        }
        p
    }

    #[test]
    fn complete_legs_are_packed_in_few_runs_as_they_pile_up() {
        for seal_at in [1, 4, 32] {
            let n = 5_000;
            let mut most_runs = 0;
            let p = pair(n, seal_at, |p| {
                // the map holds what its threshold allows plus the revised legs
                assert!(p.loose.len() < seal_at.max(2 * p.kept).max(1) + 1);
                most_runs = most_runs.max(p.runs.len());
            });
            let packed: usize = p.runs.iter().map(Pack::len).sum();
            assert_eq!(packed + p.loose.len(), n);
            // each run over twice the next: at most log2 of the legs packed
            assert!(
                most_runs <= (n as f64).log2().ceil() as usize + 1,
                "{most_runs}"
            );
            let calls = p.into_calls();
            assert_eq!(calls.len(), n);
            let revised = calls
                .rows("D1")
                .iter()
                .filter(|r| r.end.is_some_and(|e| e != r.start + 5))
                .count();
            assert_eq!(revised, (n - 1) / 97);
        }
    }
}
