//! The `(source, seq)` idempotency index: tells new events from duplicates and conflicts.
//!
//! Kept in memory. A bridge numbers its events densely, so each source's sequence numbers
//! are kept in chunks of [`CHUNK`] consecutive numbers, in two kinds:
//! - *settled* keys, those of segments, are only marked present (one bit an event, and
//!   nothing for a chunk whose every number is settled: those are kept as ranges of chunks,
//!   so that a year of densely numbered events holds a few ranges instead of 15 MB of bits):
//!   opening sets them from the runs of sequence numbers the manifest records for each
//!   segment ([`all_key_runs`], [`listable`]), without reading the files, and a roll moves its keys there. A re-sent
//!   old event is answered [`Check::Settled`]: its content hash is in the segment, for the
//!   log to read and compare ([`verdict`]).
//!   A segment whose numbering is too scattered for a short list of runs is settled all the
//!   same when its numbers are dense enough for bits to be smaller than hashes
//!   ([`dense`]: a roll has its keys, opening reads them from the file); its
//!   re-sent events find it among the segments without a list.
//! - *recent* keys (the WAL tail, and a segment too scattered to list whose numbers are
//!   sparse) keep their content hash: a dense chunk is an array of
//!   hashes with a presence bitmap (about 8 bytes an event, one probe per look-up); a chunk
//!   holding few numbers stays a small sorted list (about 16 bytes an event instead of a
//!   whole chunk).

use arrow::array::{Array, AsArray, DictionaryArray, RecordBatch};
use arrow::datatypes::{Int32Type, UInt64Type};
use hashbrown::HashMap;

use crate::error::{LogError, Result};
use crate::manifest::SeqRuns;
use crate::segment::dictionary;

/// Sequence numbers per chunk.
pub const CHUNK: usize = 1024;
/// A segment too scattered to list settles its keys as bits when it holds at least one number
/// in this many of each chunk it touches ([`dense`]).
pub const DENSE_ENOUGH: usize = 16;
const CHUNK_BITS: u32 = CHUNK.trailing_zeros();
/// A sparse chunk becomes dense beyond this many entries (where dense is no larger).
const SPARSE_MAX: usize = CHUNK / 4;
/// Most runs (of all sources) a segment's key list holds; a segment with more keeps its keys
/// in the file only, and opening reads them ([`dense`]).
pub const MAX_RUNS: usize = 256;

/// Presence bits of one chunk.
type Bits = [u64; CHUNK / 64];

/// What the index says of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Never seen: store it.
    New,
    /// Seen with the same content: drop it and count it.
    Duplicate,
    /// Seen with different content: reject it.
    Conflict,
    /// Held by a segment, whose content hash is not kept in memory: read it from the segment
    /// and compare ([`verdict`]).
    Settled,
}

/// Whether an event with content hash `hash` is a duplicate of the stored one or a conflict.
pub fn verdict(stored: u64, hash: u64) -> Check {
    if stored == hash {
        Check::Duplicate
    } else {
        Check::Conflict
    }
}

enum Chunk {
    /// `(offset in chunk, hash)`, sorted by offset.
    Sparse(Vec<(u16, u64)>),
    Dense {
        present: Box<[u64; CHUNK / 64]>,
        hashes: Box<[u64; CHUNK]>,
    },
}

impl Chunk {
    fn get(&self, off: usize) -> Option<u64> {
        match self {
            Chunk::Sparse(v) => v
                .binary_search_by_key(&(off as u16), |e| e.0)
                .ok()
                .map(|i| v[i].1),
            Chunk::Dense { present, hashes } => {
                (present[off / 64] & (1 << (off % 64)) != 0).then(|| hashes[off])
            }
        }
    }

    /// Checks `off` and records `hash` there when it is new.
    fn check_insert(&mut self, off: usize, hash: u64) -> Check {
        match self {
            Chunk::Dense { present, hashes } => {
                let (w, bit) = (off / 64, 1u64 << (off % 64));
                if present[w] & bit != 0 {
                    return verdict(hashes[off], hash);
                }
                present[w] |= bit;
                hashes[off] = hash;
                Check::New
            }
            Chunk::Sparse(v) => {
                let at = match v.binary_search_by_key(&(off as u16), |e| e.0) {
                    Ok(i) => return verdict(v[i].1, hash),
                    Err(at) => at,
                };
                v.insert(at, (off as u16, hash));
                if v.len() > SPARSE_MAX {
                    let mut present = Box::new([0u64; CHUNK / 64]);
                    let mut hashes = Box::new([0u64; CHUNK]);
                    for &(o, h) in v.iter() {
                        present[o as usize / 64] |= 1 << (o % 64);
                        hashes[o as usize] = h;
                    }
                    *self = Chunk::Dense { present, hashes };
                }
                Check::New
            }
        }
    }

    /// Forgets the offsets `lo..=hi`; how many were held.
    fn remove_range(&mut self, lo: usize, hi: usize) -> usize {
        match self {
            Chunk::Sparse(v) => {
                let before = v.len();
                v.retain(|&(o, _)| (o as usize) < lo || (o as usize) > hi);
                before - v.len()
            }
            Chunk::Dense { present, .. } => {
                let mut removed = 0;
                for w in lo / 64..=hi / 64 {
                    let mask = word_mask(w, lo, hi);
                    removed += (present[w] & mask).count_ones() as usize;
                    present[w] &= !mask;
                }
                removed
            }
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Chunk::Sparse(v) => v.is_empty(),
            Chunk::Dense { present, .. } => present.iter().all(|&w| w == 0),
        }
    }
}

/// The bits of word `w` of a chunk's bitmap that fall in offsets `lo..=hi`.
fn word_mask(w: usize, lo: usize, hi: usize) -> u64 {
    let (a, b) = (lo.max(w * 64) - w * 64, hi.min(w * 64 + 63) - w * 64);
    (u64::MAX >> (63 - b)) & (u64::MAX << a)
}

fn has_bit(bits: &Bits, off: usize) -> bool {
    bits[off / 64] & (1 << (off % 64)) != 0
}

/// The sequence numbers of one source.
#[derive(Default)]
struct SeqIndex {
    /// Recent keys, with their content hashes.
    chunks: HashMap<u64, Chunk>,
    /// Settled keys of chunks not wholly settled: present, hashes in the segments.
    settled: HashMap<u64, Box<Bits>>,
    /// Chunks wholly settled, as ranges [first, end) of chunk numbers: sorted, apart.
    full: Vec<(u64, u64)>,
}

impl SeqIndex {
    fn is_settled(&self, seq: u64) -> bool {
        let c = seq >> CHUNK_BITS;
        self.is_full(c)
            || self
                .settled
                .get(&c)
                .is_some_and(|b| has_bit(b, seq as usize % CHUNK))
    }

    fn is_full(&self, c: u64) -> bool {
        let at = self.full.partition_point(|r| r.1 <= c);
        self.full.get(at).is_some_and(|r| r.0 <= c)
    }

    /// Records chunk `c` (not yet) wholly settled, joining the ranges it touches.
    fn add_full(&mut self, c: u64) {
        let at = self.full.partition_point(|r| r.1 < c);
        let joins_before = at < self.full.len() && self.full[at].1 == c;
        let after = if joins_before { at + 1 } else { at };
        let joins_after = after < self.full.len() && self.full[after].0 == c + 1;
        match (joins_before, joins_after) {
            (true, true) => {
                self.full[at].1 = self.full[after].1;
                self.full.remove(after);
            }
            (true, false) => self.full[at].1 = c + 1,
            (false, true) => self.full[after].0 = c,
            (false, false) => self.full.insert(at, (c, c + 1)),
        }
    }
}

/// A source's place in the index (see [`DedupeIndex::source`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceId(usize);

/// `(source, seq) -> content_hash`.
#[derive(Default)]
pub struct DedupeIndex {
    ids: HashMap<String, usize>,
    sources: Vec<SeqIndex>,
    len: usize,
}

impl std::fmt::Debug for DedupeIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DedupeIndex")
            .field("sources", &self.ids.len())
            .field("len", &self.len)
            .finish()
    }
}

impl DedupeIndex {
    /// The id of `source`, adding it if new.
    pub fn source(&mut self, source: &str) -> SourceId {
        if let Some(&i) = self.ids.get(source) {
            return SourceId(i);
        }
        self.sources.push(SeqIndex::default());
        self.ids.insert(source.to_string(), self.sources.len() - 1);
        SourceId(self.sources.len() - 1)
    }

    /// Looks an event up.
    pub fn check(&self, source: &str, seq: u64, hash: u64) -> Check {
        let Some(&i) = self.ids.get(source) else {
            return Check::New;
        };
        if self.sources[i].is_settled(seq) {
            return Check::Settled;
        }
        let found = self.sources[i]
            .chunks
            .get(&(seq >> CHUNK_BITS))
            .and_then(|c| c.get(seq as usize % CHUNK));
        match found {
            None => Check::New,
            Some(h) => verdict(h, hash),
        }
    }

    /// Looks an event up and records it when it is new (as a recent key).
    pub fn check_insert(&mut self, source: SourceId, seq: u64, hash: u64) -> Check {
        let ix = &mut self.sources[source.0];
        if ix.is_settled(seq) {
            return Check::Settled;
        }
        let check = ix
            .chunks
            .entry(seq >> CHUNK_BITS)
            .or_insert_with(|| Chunk::Sparse(Vec::new()))
            .check_insert(seq as usize % CHUNK, hash);
        if check == Check::New {
            self.len += 1;
        }
        check
    }

    /// Forgets a key recorded by [`DedupeIndex::check_insert`] (an append that did not
    /// become durable takes its keys back).
    pub fn remove(&mut self, source: SourceId, seq: u64) {
        let Some(chunk) = self.sources[source.0].chunks.get_mut(&(seq >> CHUNK_BITS)) else {
            return;
        };
        let off = seq as usize % CHUNK;
        let removed = match chunk {
            Chunk::Sparse(v) => match v.binary_search_by_key(&(off as u16), |e| e.0) {
                Ok(i) => {
                    v.remove(i);
                    true
                }
                Err(_) => false,
            },
            Chunk::Dense { present, .. } => {
                let (w, bit) = (off / 64, 1u64 << (off % 64));
                let was = present[w] & bit != 0;
                present[w] &= !bit;
                was
            }
        };
        if removed {
            self.len -= 1;
        }
    }

    /// Marks the keys `runs` of `source` settled (held by a segment): their hashes, where
    /// recent, are dropped.
    pub fn settle(&mut self, source: SourceId, runs: &[[u64; 2]]) {
        let ix = &mut self.sources[source.0];
        for &[first, last] in runs {
            let mut seq = first;
            loop {
                let c = seq >> CHUNK_BITS;
                let end = last.min(seq | (CHUNK as u64 - 1));
                let (lo, hi) = (seq as usize % CHUNK, end as usize % CHUNK);
                if !ix.is_full(c) {
                    let bits = ix
                        .settled
                        .entry(c)
                        .or_insert_with(|| Box::new([0; CHUNK / 64]));
                    for w in lo / 64..=hi / 64 {
                        let mask = word_mask(w, lo, hi);
                        self.len += (mask & !bits[w]).count_ones() as usize;
                        bits[w] |= mask;
                    }
                    if bits.iter().all(|&w| w == u64::MAX) {
                        ix.settled.remove(&c);
                        ix.add_full(c);
                    }
                }
                if let Some(recent) = ix.chunks.get_mut(&c) {
                    self.len -= recent.remove_range(lo, hi);
                    if recent.is_empty() {
                        ix.chunks.remove(&c);
                    }
                }
                if end == last {
                    break;
                }
                seq = end + 1;
            }
        }
    }

    /// Marks a segment's keys (its runs, by source) settled.
    pub fn settle_segment(&mut self, keys: &[SeqRuns]) {
        for k in keys {
            let source = self.source(&k.source);
            self.settle(source, &k.runs);
        }
    }

    /// Recent keys held (with their content hashes).
    pub fn recent_len(&self) -> usize {
        self.len - self.settled_len()
    }

    fn settled_len(&self) -> usize {
        let bits: usize = self
            .sources
            .iter()
            .flat_map(|s| s.settled.values())
            .map(|b| b.iter().map(|w| w.count_ones() as usize).sum::<usize>())
            .sum();
        let full: u64 = self
            .sources
            .iter()
            .flat_map(|s| &s.full)
            .map(|r| r.1 - r.0)
            .sum();
        bits + full as usize * CHUNK
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The idempotency keys of a batch's rows (its `source`, `seq` and `content_hash` columns).
pub struct BatchKeys<'a> {
    source: &'a DictionaryArray<Int32Type>,
    seq: &'a [u64],
    hash: &'a [u64],
}

impl<'a> BatchKeys<'a> {
    /// The keys of `b`, which must have the events schema's key columns.
    pub fn of(b: &'a RecordBatch) -> Result<Self> {
        let col = |name: &str| {
            b.column_by_name(name)
                .ok_or_else(|| LogError::InvalidBatch(format!("batch has no {name} column")))
        };
        let source = dictionary(col("source")?)?;
        let seq = col("seq")?
            .as_primitive_opt::<UInt64Type>()
            .ok_or_else(|| LogError::InvalidBatch("seq is not UInt64".into()))?;
        let hash = col("content_hash")?
            .as_primitive_opt::<UInt64Type>()
            .ok_or_else(|| LogError::InvalidBatch("content_hash is not UInt64".into()))?;
        if source.null_count() > 0 {
            return Err(LogError::InvalidBatch("source has nulls".into()));
        }
        Ok(BatchKeys {
            source,
            seq: seq.values(),
            hash: hash.values(),
        })
    }

    /// Row `row`'s source, sequence number and content hash.
    pub fn key(&self, row: usize) -> (&'a str, u64, u64) {
        let names = self.source.values().as_string::<i32>();
        let k = self.source.keys().value(row) as usize;
        (names.value(k), self.seq[row], self.hash[row])
    }

    /// Checks every row in order against `index`, recording new keys; `f` gets each verdict.
    pub fn check_insert(&self, index: &mut DedupeIndex, mut f: impl FnMut(Check)) {
        self.each(index, |index, id, seq, hash| {
            f(index.check_insert(id, seq, hash))
        });
    }

    /// Takes back the keys of the rows `accepted` says were recorded by
    /// [`BatchKeys::check_insert`].
    pub fn remove(&self, index: &mut DedupeIndex, accepted: impl Fn(usize) -> bool) {
        let mut row = 0;
        self.each(index, |index, id, seq, _| {
            if accepted(row) {
                index.remove(id, seq);
            }
            row += 1;
        });
    }

    fn each(
        &self,
        index: &mut DedupeIndex,
        mut f: impl FnMut(&mut DedupeIndex, SourceId, u64, u64),
    ) {
        let names = self.source.values().as_string::<i32>();
        let mut ids = vec![None; names.len()];
        for (i, key) in self.source.keys().values().iter().enumerate() {
            let k = *key as usize;
            let id = *ids[k].get_or_insert_with(|| index.source(names.value(k)));
            f(index, id, self.seq[i], self.hash[i]);
        }
    }
}

/// Records every key of `b` (recovery: what is stored is known to be distinct).
pub fn index_batch(index: &mut DedupeIndex, b: &RecordBatch) -> Result<()> {
    BatchKeys::of(b)?.check_insert(index, |_| {});
    Ok(())
}

/// Whether `runs` (a segment's) are few enough for the manifest to list: [`MAX_RUNS`] in all.
pub fn listable(runs: &[SeqRuns]) -> bool {
    runs.iter().map(|k| k.runs.len()).sum::<usize>() <= MAX_RUNS
}

/// Whether the numbers of `runs` (a segment's) are dense enough to be settled as bits (one in
/// [`DENSE_ENOUGH`] of the numbers of the chunks they touch, or more: the bits then take at
/// most 8 bytes a key, where a recent key takes 8 to 16): what settles a segment's keys when
/// they are too scattered to list in the manifest.
pub fn dense(runs: &[SeqRuns]) -> bool {
    let (mut keys, mut chunks) = (0u128, 0u128);
    for k in runs {
        let mut last_chunk = None;
        for &[first, last] in &k.runs {
            keys += u128::from(last - first) + 1;
            let (a, b) = (first >> CHUNK_BITS, last >> CHUNK_BITS);
            // runs are sorted: only the first chunk can be the previous run's last
            chunks += u128::from(b - a) + 1 - u128::from(last_chunk == Some(a));
            last_chunk = Some(b);
        }
    }
    keys * DENSE_ENOUGH as u128 >= chunks * CHUNK as u128
}

/// The keys of `batches` (with the key columns) as each source's runs of sequence numbers,
/// by source, however many they are.
pub fn all_key_runs(batches: &[RecordBatch]) -> Result<Vec<SeqRuns>> {
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut seqs: Vec<Vec<u64>> = Vec::new();
    for b in batches {
        let keys = BatchKeys::of(b)?;
        let names = keys.source.values().as_string::<i32>();
        let slot: Vec<usize> = (0..names.len())
            .map(|k| {
                *ids.entry_ref(names.value(k)).or_insert_with(|| {
                    seqs.push(Vec::new());
                    seqs.len() - 1
                })
            })
            .collect();
        for (row, k) in keys.source.keys().values().iter().enumerate() {
            seqs[slot[*k as usize]].push(keys.seq[row]);
        }
    }
    let mut out: Vec<SeqRuns> = Vec::with_capacity(ids.len());
    for (source, i) in ids {
        let v = &mut seqs[i];
        if v.is_empty() {
            continue;
        }
        v.sort_unstable();
        let mut runs: Vec<[u64; 2]> = Vec::new();
        for &s in v.iter() {
            match runs.last_mut() {
                Some(r) if r[1] == s || r[1].checked_add(1) == Some(s) => r[1] = s,
                _ => runs.push([s, s]),
            }
        }
        out.push(SeqRuns { source, runs });
    }
    out.sort_by(|a, b| a.source.cmp(&b.source));
    Ok(out)
}

/// Whether `keys` (a segment's runs) hold `(source, seq)`.
pub fn runs_hold(keys: &[SeqRuns], source: &str, seq: u64) -> bool {
    keys.iter().filter(|k| k.source == source).any(|k| {
        let i = k.runs.partition_point(|r| r[1] < seq);
        k.runs.get(i).is_some_and(|r| r[0] <= seq)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use callstate_schemas::Event;

    #[test]
    fn tells_new_duplicate_and_conflict_in_sparse_and_dense_chunks() {
        let mut ix = DedupeIndex::default();
        let a = ix.source("a");
        // dense: every number of several chunks, inserted out of order
        let mut seqs: Vec<u64> = (0..3 * CHUNK as u64).collect();
        seqs.reverse();
        for &s in &seqs {
            assert_eq!(ix.check_insert(a, s, s * 7 + 1), Check::New);
        }
        // sparse: far-apart numbers of another source
        let b = ix.source("b");
        for s in [5u64, 1 << 40, u64::MAX, 77_777] {
            assert_eq!(ix.check_insert(b, s, s ^ 3), Check::New);
        }
        assert_eq!(ix.len(), 3 * CHUNK + 4);
        for &s in &seqs {
            assert_eq!(ix.check("a", s, s * 7 + 1), Check::Duplicate);
            assert_eq!(ix.check("a", s, s * 7 + 2), Check::Conflict);
            assert_eq!(ix.check("b", s + 10, 0), Check::New);
        }
        assert_eq!(ix.check("b", u64::MAX, u64::MAX ^ 3), Check::Duplicate);
        assert_eq!(ix.check_insert(b, 1 << 40, 0), Check::Conflict);
        assert_eq!(ix.check("c", 5, 5 ^ 3), Check::New);
        assert_eq!(ix.len(), 3 * CHUNK + 4, "repeats add nothing");
        // taking keys back, from dense and sparse chunks
        ix.remove(a, 5);
        ix.remove(b, 77_777);
        ix.remove(b, 77_778);
        assert_eq!(ix.len(), 3 * CHUNK + 2);
        assert_eq!(ix.check("a", 5, 5 * 7 + 1), Check::New);
        assert_eq!(ix.check("b", 77_777, 77_777 ^ 3), Check::New);
        assert_eq!(ix.check_insert(a, 5, 1), Check::New);
    }

    #[test]
    fn settled_keys_are_present_without_hashes_and_leave_recent_ones() {
        let mut ix = DedupeIndex::default();
        let a = ix.source("a");
        for s in 0..3000u64 {
            assert_eq!(ix.check_insert(a, s, s), Check::New);
        }
        let b = ix.source("b");
        for s in [u64::MAX - 1, 7] {
            ix.check_insert(b, s, 1);
        }
        // runs across chunk and word boundaries, one to the top of the numbering
        ix.settle(a, &[[63, 64], [1000, 2100]]);
        ix.settle(b, &[[u64::MAX - 2, u64::MAX]]);
        assert_eq!(
            ix.len(),
            3000 + 4,
            "settling recent keys keeps them; b gains two"
        );
        assert_eq!(ix.recent_len(), 3000 - 2 - 1101 + 1);
        for s in [63, 64, 1000, 1023, 1024, 2100] {
            assert_eq!(ix.check("a", s, s), Check::Settled, "{s}");
            assert_eq!(ix.check_insert(a, s, 0), Check::Settled);
        }
        for s in [62, 65, 999, 2101] {
            assert_eq!(ix.check("a", s, s), Check::Duplicate, "{s}");
        }
        assert_eq!(ix.check("b", u64::MAX, 0), Check::Settled);
        assert_eq!(ix.check("b", 7, 1), Check::Duplicate);
        assert_eq!(ix.check_insert(a, 5000, 1), Check::New);
        // settling again changes nothing
        ix.settle(a, &[[1000, 2100]]);
        assert_eq!(ix.len(), 3000 + 5);
    }

    proptest::proptest! {
        #[test]
        fn settled_keys_are_those_of_the_runs_whole_chunks_kept_as_ranges(
            runs in proptest::collection::vec((0..6 * CHUNK as u64, 0..3 * CHUNK as u64), 0..12),
            recent in proptest::collection::vec(0..7 * CHUNK as u64, 0..20),
        ) {
            let mut ix = DedupeIndex::default();
            let a = ix.source("a");
            let mut want = std::collections::BTreeSet::new();
            for &s in &recent {
                ix.check_insert(a, s, s);
                want.insert(s);
            }
            let mut settled = std::collections::BTreeSet::new();
            for &(first, n) in &runs {
                ix.settle(a, &[[first, first + n]]);
                settled.extend(first..=first + n);
            }
            want.extend(&settled);
            proptest::prop_assert_eq!(ix.len(), want.len());
            proptest::prop_assert_eq!(ix.recent_len(), want.len() - settled.len());
            for s in 0..8 * CHUNK as u64 {
                let got = ix.check("a", s, s);
                let expected = if settled.contains(&s) {
                    Check::Settled
                } else if want.contains(&s) {
                    Check::Duplicate
                } else {
                    Check::New
                };
                proptest::prop_assert_eq!(got, expected, "{}", s);
            }
            let sx = &ix.sources[a.0];
            for c in 0..8u64 {
                let whole = (c * CHUNK as u64..(c + 1) * CHUNK as u64).all(|s| settled.contains(&s));
                proptest::prop_assert_eq!(sx.is_full(c), whole, "chunk {}", c);
                proptest::prop_assert!(!(whole && sx.settled.contains_key(&c)));
            }
            proptest::prop_assert!(sx.full.windows(2).all(|w| w[0].1 < w[1].0), "{:?}", sx.full);
        }
    }

    /// A heartbeat of `source` numbered `seq`.
    fn event(source: &str, seq: u64) -> Event {
        Event {
            source: source.into(),
            seq,
            time: chrono::DateTime::parse_from_rfc3339("2026-11-24T08:00:00Z")
                .unwrap()
                .to_utc(),
            cluster: "CL1".into(),
            body: callstate_schemas::Body::CollectorHeartbeat,
            extra: None,
        }
    }

    #[test]
    fn key_runs_list_each_source_and_give_up_beyond_the_limit() {
        let mut ev: Vec<Event> = (5..=9).chain(11..=11).map(|s| event("x", s)).collect();
        ev.extend([event("a", u64::MAX), event("a", 0)]);
        let b1 = crate::events_batch(&ev[..4]);
        let b2 = crate::events_batch(&ev[4..]);
        let runs = all_key_runs(&[b1, b2]).unwrap();
        assert!(listable(&runs));
        let got: Vec<(&str, &[[u64; 2]])> = runs
            .iter()
            .map(|r| (r.source.as_str(), r.runs.as_slice()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", &[[0, 0], [u64::MAX, u64::MAX]][..]),
                ("x", &[[5, 9], [11, 11]][..])
            ]
        );
        assert!(runs_hold(&runs, "x", 9) && runs_hold(&runs, "a", u64::MAX));
        assert!(!runs_hold(&runs, "x", 10) && !runs_hold(&runs, "y", 5));
        let scattered: Vec<Event> = (0..=MAX_RUNS as u64).map(|s| event("x", 2 * s)).collect();
        assert!(!listable(
            &all_key_runs(&[crate::events_batch(&scattered)]).unwrap()
        ));
    }

    /// Keys `first + step * i` of sources "x" and "y", `n` of each.
    fn spaced(first: u64, step: u64, n: u64) -> Vec<RecordBatch> {
        let of =
            |source| -> Vec<Event> { (0..n).map(|i| event(source, first + step * i)).collect() };
        vec![crate::events_batch(&of("x")), crate::events_batch(&of("y"))]
    }

    #[test]
    fn scattered_keys_are_settled_when_dense_enough_for_bits() {
        let step = DENSE_ENOUGH as u64;
        let runs_of = |batches: &[RecordBatch]| all_key_runs(batches).unwrap();
        // one number in 16 of the chunks touched: as dense as needed
        let runs = runs_of(&spaced(0, step, 4 * CHUNK as u64 / step));
        assert!(dense(&runs), "dense enough");
        assert!(!listable(&runs), "too many runs to list");
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].runs.len(), 4 * CHUNK / DENSE_ENOUGH);
        // the same numbers reaching into a fifth chunk: too sparse
        let spread = spaced(CHUNK as u64 - 1, step, 4 * CHUNK as u64 / step);
        assert!(!dense(&runs_of(&spread)));
        assert!(!dense(&runs_of(&spaced(0, step + 1, 1000))));

        // settled: each one answered as held by a segment, the others new
        let mut ix = DedupeIndex::default();
        ix.settle_segment(&runs);
        assert_eq!(
            (ix.len(), ix.recent_len()),
            (2 * 4 * CHUNK / DENSE_ENOUGH, 0)
        );
        for s in 0..5 * CHUNK as u64 {
            let held = s % step == 0 && s < 4 * CHUNK as u64;
            assert_eq!(ix.check("x", s, 0) == Check::Settled, held, "{s}");
        }
    }
}
