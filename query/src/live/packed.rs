//! A device's complete call legs (started and ended, each once), packed: one fixed-size
//! record per leg, the call ids back to back in one string, and a sorted index of their
//! hashes. About 75 bytes a leg where the persistent maps of [`Calls`](super::calls::Calls)
//! take several hundred; immutable, shared between versions, rebuilt when legs are sealed in.
//! A pack lives on the heap, or in a mapped checkpoint file, encoded in blocks of legs
//! ([`blocks`](super::blocks)), where its pages are read when asked for and are the kernel's
//! to drop again.

use std::borrow::Cow;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::ops::Range;
use std::sync::Arc;

use callstate_schemas::Us;

use super::blocks::{self, Encoded, FENCE, IdKey};
use super::hours::Hours;
use super::mapped::Mapped;

/// A complete leg, to pack or unpacked.
#[derive(Debug, Clone)]
pub(super) struct Complete {
    pub id: Arc<str>,
    pub start: Us,
    pub end: Us,
    /// Ingest times of its start and its end.
    pub start_known: Us,
    pub end_known: Us,
    pub cause: Option<Arc<str>>,
}

/// A complete leg to pack, borrowed from a [`Complete`] or a pack.
struct LegRef<'a> {
    id: Cow<'a, str>,
    start: Us,
    end: Us,
    start_known: Us,
    end_known: Us,
    cause: Option<&'a Arc<str>>,
}

impl<'a> LegRef<'a> {
    fn of_complete(c: &'a Complete) -> LegRef<'a> {
        LegRef {
            id: Cow::Borrowed(&c.id),
            start: c.start,
            end: c.end,
            start_known: c.start_known,
            end_known: c.end_known,
            cause: c.cause.as_ref(),
        }
    }

    fn of_pack(p: &'a Packed, k: usize) -> LegRef<'a> {
        let r = p.record(k);
        LegRef {
            id: p.id(k),
            start: r.start,
            end: r.end,
            start_known: r.start_known,
            end_known: r.end_known,
            cause: p.cause(k),
        }
    }

    fn to_complete(&self) -> Complete {
        Complete {
            id: Arc::from(&*self.id),
            start: self.start,
            end: self.end,
            start_known: self.start_known,
            end_known: self.end_known,
            cause: self.cause.cloned(),
        }
    }
}

/// A packed leg on the heap (and a leg of a mapped pack's block, decoded): fixed size, no
/// padding.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(super) struct Record {
    pub start: Us,
    pub end: Us,
    pub start_known: Us,
    pub end_known: Us,
    /// Where its call id starts among the pack's ids, and its length.
    pub id_at: u32,
    pub id_len: u32,
    /// Index in the causes plus one; 0 for none.
    pub cause: u32,
    pub pad: u32,
}

/// (hash of a call id, its record), sorted by hash.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct IdEntry {
    pub hash: u64,
    pub record: u32,
    pub pad: u32,
}

// SAFETY: plain integers, `repr(C)`, no padding (4 × 8 + 4 × 4 and 8 + 2 × 4 bytes).
unsafe impl bytemuck::Zeroable for Record {}
unsafe impl bytemuck::Pod for Record {}
unsafe impl bytemuck::Zeroable for IdEntry {}
unsafe impl bytemuck::Pod for IdEntry {}

/// Where a pack's records, index and ids are.
#[derive(Debug)]
enum Store {
    Heap {
        records: Vec<Record>,
        ids: String,
        by_id: Vec<IdEntry>,
        filter: Filter,
    },
    /// In a mapped checkpoint file: its blocks of legs and its index of call ids
    /// ([`IdKey`]s) at these byte ranges. In memory, each block's first start (its *fence*)
    /// and where it begins among the blocks, so that a search by time decodes one block.
    Mapped {
        file: Arc<Mapped>,
        blocks: Range<usize>,
        by_id: Range<usize>,
        len: usize,
        fences: Box<[Us]>,
        offsets: Box<[u32]>,
        /// The checkpoint's hour index and this device's number in it, if it has one.
        hours: Option<(Arc<Hours>, u32)>,
    },
}

impl Default for Store {
    fn default() -> Self {
        Store::Heap {
            records: Vec::new(),
            ids: String::new(),
            by_id: Vec::new(),
            filter: Filter::default(),
        }
    }
}

/// A Bloom filter of a heap pack's call-id hashes, about 10 bits a leg: a call id not packed
/// is told apart by reading one 64-bit word (4 bits of it, ~2% false positives) instead of a
/// binary search over the index, which misses the cache at nearly every step. Pairing asks
/// every pack of a device about every new call id, and nearly all are not there.
#[derive(Debug, Default)]
struct Filter {
    /// A power of two of words; none for an empty pack.
    words: Box<[u64]>,
}

impl Filter {
    fn new(hashes: impl ExactSizeIterator<Item = u64>) -> Filter {
        let n = hashes.len();
        if n == 0 {
            return Filter::default();
        }
        let mut words = vec![0u64; (n * 10).div_ceil(64).next_power_of_two()].into_boxed_slice();
        for h in hashes {
            let (w, bits) = Filter::place(h, words.len());
            words[w] |= bits;
        }
        Filter { words }
    }

    /// The word and the bits of hash `h` among `len` words: the word from its low bits, the
    /// four bits from four 6-bit fields of its high half.
    fn place(h: u64, len: usize) -> (usize, u64) {
        let w = (h as usize) & (len - 1);
        let bits = (0..4).fold(0u64, |b, k| b | 1 << ((h >> (32 + 6 * k)) & 63));
        (w, bits)
    }

    /// Whether a leg of hash `h` may be in the pack (no: it is not).
    fn may_hold(&self, h: u64) -> bool {
        if self.words.is_empty() {
            return false;
        }
        let (w, bits) = Filter::place(h, self.words.len());
        self.words[w] & bits == bits
    }
}

/// Complete legs by (start, call id).
#[derive(Debug, Default)]
pub(super) struct Packed {
    store: Store,
    /// The causes the records index (those of the pack, or of the whole checkpoint).
    causes: Arc<Vec<Arc<str>>>,
    /// The longest leg (end − start).
    pub longest: Us,
}

/// The hash a pack indexes a call id by.
pub(super) fn hash(id: &str) -> u64 {
    BuildHasherDefault::<DefaultHasher>::default().hash_one(id)
}

impl Packed {
    /// Packs `legs`; those it cannot (a call id or a cause list beyond `u32`) are returned.
    pub fn new(legs: Vec<Complete>) -> (Packed, Vec<Complete>) {
        let refs = legs.iter().map(LegRef::of_complete).collect();
        let (packed, rest) = Packed::of_refs(refs);
        (packed, rest.iter().map(LegRef::to_complete).collect())
    }

    /// Packs the legs of `packs` that `kept` keeps (a pack's number and a leg's): one pack of
    /// them all, read in place (no leg copied out on the way); those it cannot are returned.
    pub fn merge(
        packs: &[&Packed],
        kept: impl Fn(usize, usize) -> bool,
    ) -> (Packed, Vec<Complete>) {
        let kept = &kept;
        let refs = packs
            .iter()
            .enumerate()
            .flat_map(|(p, pack)| {
                (0..pack.len())
                    .filter(move |&k| kept(p, k))
                    .map(move |k| LegRef::of_pack(pack, k))
            })
            .collect();
        let (packed, rest) = Packed::of_refs(refs);
        (packed, rest.iter().map(LegRef::to_complete).collect())
    }

    /// Packs `legs`, returning those it cannot.
    fn of_refs(mut legs: Vec<LegRef<'_>>) -> (Packed, Vec<LegRef<'_>>) {
        legs.sort_by(|a, b| (a.start, &a.id).cmp(&(b.start, &b.id)));
        let mut records = Vec::with_capacity(legs.len());
        let mut ids = String::with_capacity(legs.iter().map(|l| l.id.len()).sum());
        let mut by_id = Vec::with_capacity(legs.len());
        let mut causes: Vec<Arc<str>> = Vec::new();
        let mut longest = 0;
        let mut rest = Vec::new();
        for l in legs {
            let (Ok(id_at), Ok(id_len)) = (u32::try_from(ids.len()), u32::try_from(l.id.len()))
            else {
                rest.push(l);
                continue;
            };
            let cause = match l.cause {
                None => 0,
                Some(c) => match causes.iter().position(|x| x == c) {
                    Some(k) => k + 1,
                    None => {
                        causes.push(c.clone());
                        causes.len()
                    }
                },
            };
            let (Ok(cause), Ok(k)) = (u32::try_from(cause), u32::try_from(records.len())) else {
                rest.push(l);
                continue;
            };
            ids.push_str(&l.id);
            by_id.push(IdEntry {
                hash: hash(&l.id),
                record: k,
                pad: 0,
            });
            longest = l.end.saturating_sub(l.start).max(longest);
            records.push(Record {
                start: l.start,
                end: l.end,
                start_known: l.start_known,
                end_known: l.end_known,
                id_at,
                id_len,
                cause,
                pad: 0,
            });
        }
        by_id.sort_unstable();
        records.shrink_to_fit();
        by_id.shrink_to_fit();
        let filter = Filter::new(by_id.iter().map(|e| e.hash));
        let p = Packed {
            store: Store::Heap {
                records,
                ids,
                by_id,
                filter,
            },
            causes: Arc::new(causes),
            longest,
        };
        (p, rest)
    }

    /// A pack kept in `file`: its `len` legs' blocks and call-id index at these byte ranges
    /// (checked to be in the file, the index whole and aligned, else `None`), each block's
    /// first start and where it begins among the blocks (checked to be as many as the
    /// blocks, in order, within them), its causes indexing `causes`.
    #[allow(clippy::too_many_arguments)]
    pub fn mapped(
        file: Arc<Mapped>,
        blocks: Range<usize>,
        by_id: Range<usize>,
        len: usize,
        fences: Box<[Us]>,
        offsets: Box<[u32]>,
        causes: Arc<Vec<Arc<str>>>,
        longest: Us,
    ) -> Option<Packed> {
        let bytes = file.bytes();
        let within = |r: &Range<usize>| r.start <= r.end && r.end <= bytes.len();
        let blocks_len = blocks.end.checked_sub(blocks.start)?;
        if !within(&blocks)
            || !within(&by_id)
            || by_id.end - by_id.start != len.checked_mul(size_of::<IdKey>())?
            || fences.len() != len.div_ceil(FENCE)
            || offsets.len() != fences.len()
            || offsets.first().is_some_and(|&o| o != 0)
            || offsets.windows(2).any(|w| w[0] > w[1])
            || offsets.last().is_some_and(|&o| o as usize > blocks_len)
        {
            return None;
        }
        bytemuck::try_cast_slice::<u8, IdKey>(&bytes[by_id.clone()]).ok()?;
        Some(Packed {
            store: Store::Mapped {
                file,
                blocks,
                by_id,
                len,
                fences,
                offsets,
                hours: None,
            },
            causes,
            longest,
        })
    }

    /// A heap pack's legs in the checkpoint's layout: its blocks, and its call-id index sorted;
    /// each leg's cause stored as `cause` numbers it. `None` for a mapped pack (it is laid out
    /// already) or blocks past 4 GiB.
    pub fn encode(
        &self,
        mut cause: impl FnMut(Option<&Arc<str>>) -> u32,
    ) -> Option<(Encoded, Vec<IdKey>)> {
        let (records, by_id, ids) = self.heap_parts()?;
        let legs = records.iter().map(|r| {
            let c = cause(self.cause_of(r));
            (Record { cause: c, ..*r }, id_in(ids, r))
        });
        let encoded = blocks::encode(legs).ok()?;
        let mut keys: Vec<IdKey> = by_id
            .iter()
            .map(|e| IdKey {
                hash: IdKey::hash_of(e.hash),
                leg: e.record,
            })
            .collect();
        keys.sort_unstable();
        Some((encoded, keys))
    }

    /// A mapped pack listed in its checkpoint's hour index as device `device`.
    pub fn with_hours(mut self, index: Arc<Hours>, device: u32) -> Packed {
        if let Store::Mapped { hours, .. } = &mut self.store {
            *hours = Some((index, device));
        }
        self
    }

    /// The hour index it is listed in, and its device number there.
    pub fn hours(&self) -> Option<(&Arc<Hours>, u32)> {
        match &self.store {
            Store::Mapped {
                hours: Some((h, k)),
                ..
            } => Some((h, *k)),
            _ => None,
        }
    }

    /// Bytes it holds on the heap: a heap pack's records, index, ids and filter; a mapped
    /// one's fences and block offsets.
    pub fn heap_bytes(&self) -> usize {
        match &self.store {
            Store::Heap {
                records,
                ids,
                by_id,
                filter,
            } => {
                records.capacity() * size_of::<Record>()
                    + ids.capacity()
                    + by_id.capacity() * size_of::<IdEntry>()
                    + filter.words.len() * 8
            }
            Store::Mapped {
                fences, offsets, ..
            } => fences.len() * size_of::<Us>() + offsets.len() * size_of::<u32>(),
        }
    }

    /// The file it is kept in, if mapped.
    pub fn file(&self) -> Option<&Arc<Mapped>> {
        match &self.store {
            Store::Mapped { file, .. } => Some(file),
            Store::Heap { .. } => None,
        }
    }

    /// A heap pack's records, index and call ids (`None` if mapped).
    pub fn heap_parts(&self) -> Option<(&[Record], &[IdEntry], &[u8])> {
        match &self.store {
            Store::Heap {
                records,
                ids,
                by_id,
                ..
            } => Some((records, by_id, ids.as_bytes())),
            Store::Mapped { .. } => None,
        }
    }

    /// Runs `f` on block `j` of a mapped pack, decoded (the last block this thread decoded
    /// is kept); `None` for a heap pack.
    fn with_block<R>(&self, j: usize, f: impl FnOnce(&blocks::Block) -> R) -> Option<R> {
        let Store::Mapped {
            file,
            blocks,
            len,
            fences,
            offsets,
            ..
        } = &self.store
        else {
            return None;
        };
        let from = blocks.start + offsets[j] as usize;
        let to = offsets
            .get(j + 1)
            .map_or(blocks.end, |&o| blocks.start + o as usize);
        let n = (len - j * FENCE).min(FENCE);
        Some(blocks::with(
            file.number,
            from,
            || (&file.bytes()[from..to], fences[j], n),
            f,
        ))
    }

    /// Runs `f` on leg `k`'s record and call id.
    fn with_leg<R>(&self, k: usize, f: impl FnOnce(&Record, &str) -> R) -> R {
        match &self.store {
            Store::Heap { records, ids, .. } => {
                let r = &records[k];
                f(r, id_in(ids.as_bytes(), r))
            }
            Store::Mapped { .. } => {
                let mut f = Some(f);
                let r = self.with_block(k / FENCE, |b| {
                    let r = &b.records[k % FENCE];
                    (f.take().expect("run once"))(r, id_in(b.ids.as_bytes(), r))
                });
                r.expect("a mapped pack")
            }
        }
    }

    /// Leg `k`'s record (its id's place meaningful only for a heap pack).
    fn record(&self, k: usize) -> Record {
        self.with_leg(k, |r, _| *r)
    }

    fn cause_of(&self, r: &Record) -> Option<&Arc<str>> {
        (r.cause as usize)
            .checked_sub(1)
            .and_then(|c| self.causes.get(c))
    }

    /// Legs held.
    pub fn len(&self) -> usize {
        match &self.store {
            Store::Heap { records, .. } => records.len(),
            Store::Mapped { len, .. } => *len,
        }
    }

    /// The call id of leg `k` (empty if a damaged file puts it out of place).
    pub fn id(&self, k: usize) -> Cow<'_, str> {
        match &self.store {
            Store::Heap { records, ids, .. } => Cow::Borrowed(id_in(ids.as_bytes(), &records[k])),
            Store::Mapped { .. } => Cow::Owned(self.with_leg(k, |_, id| id.to_string())),
        }
    }

    /// Leg `k`: (start, end).
    pub fn span(&self, k: usize) -> (Us, Us) {
        self.with_leg(k, |r, _| (r.start, r.end))
    }

    /// How leg `k` ended.
    pub fn cause(&self, k: usize) -> Option<&Arc<str>> {
        let c = self.with_leg(k, |r, _| r.cause) as usize;
        c.checked_sub(1).and_then(|c| self.causes.get(c))
    }

    /// Leg `k` whole.
    pub fn get(&self, k: usize) -> Complete {
        self.with_leg(k, |r, id| Complete {
            id: Arc::from(id),
            start: r.start,
            end: r.end,
            start_known: r.start_known,
            end_known: r.end_known,
            cause: self.cause_of(r).cloned(),
        })
    }

    /// The leg of `id`, if packed here.
    #[cfg(test)]
    pub fn find(&self, id: &str) -> Option<usize> {
        self.find_hashed(hash(id), id)
    }

    /// [`find`](Self::find), `h` being `id`'s [`hash`].
    pub fn find_hashed(&self, h: u64, id: &str) -> Option<usize> {
        let is = |k: usize| k < self.len() && self.with_leg(k, |_, i| i == id);
        match &self.store {
            Store::Heap { filter, by_id, .. } => {
                if !filter.may_hold(h) {
                    return None;
                }
                let first = by_id.partition_point(|x| x.hash < h);
                by_id[first..]
                    .iter()
                    .take_while(|x| x.hash == h)
                    .map(|x| x.record as usize)
                    .find(|&k| is(k))
            }
            Store::Mapped { file, by_id, .. } => {
                // checked in `mapped`: in the file, whole, aligned (a page-aligned map,
                // 8-aligned offsets)
                let keys: &[IdKey] = bytemuck::cast_slice(&file.bytes()[by_id.clone()]);
                let key = IdKey::hash_of(h);
                let first = keys.partition_point(|x| x.hash < key);
                keys[first..]
                    .iter()
                    .take_while(|x| x.hash == key)
                    .map(|x| x.leg as usize)
                    .find(|&k| is(k))
            }
        }
    }

    /// The legs starting in [from, to].
    pub fn starting(&self, from: Us, to: Us) -> Range<usize> {
        let a = self.partition(|s| s < from);
        let b = self.partition(|s| s <= to);
        a..b.max(a)
    }

    /// The first leg whose start is not `before` (which holds for a prefix of them).
    fn partition(&self, before: impl Fn(Us) -> bool) -> usize {
        match &self.store {
            Store::Heap { records, .. } => records.partition_point(|r| before(r.start)),
            Store::Mapped { fences, .. } => {
                // legs up to block j-1 are before, those from block j are not
                let j = fences.partition_point(|&f| before(f));
                let Some(b) = j.checked_sub(1) else {
                    return 0;
                };
                let within =
                    self.with_block(b, |blk| blk.records.partition_point(|r| before(r.start)));
                b * FENCE + within.unwrap_or(0)
            }
        }
    }
}

/// The call id of record `r` among `ids` (empty if a damaged file puts it out of place).
fn id_in<'a>(ids: &'a [u8], r: &Record) -> &'a str {
    let at = r.id_at as usize;
    ids.get(at..at.saturating_add(r.id_len as usize))
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Legs of one device: bursts of equal starts, then sparse ones.
    fn legs(n: usize) -> Vec<Complete> {
        let mut x: u64 = 7;
        (0..n)
            .map(|i| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let start = if i % 5 == 0 { 1_000 } else { (x >> 40) as Us };
                Complete {
                    id: Arc::from(format!("call-{i}")),
                    start,
                    end: start + (x % 1_000) as Us,
                    start_known: start,
                    end_known: start + 1_000,
                    cause: None,
                }
            })
            .collect()
    }

    #[test]
    fn the_filter_passes_every_packed_id_and_few_others() {
        for n in [0, 1, 5, 100, 10_000] {
            let (p, _) = Packed::new(legs(n));
            for k in 0..n {
                assert_eq!(p.find(&p.id(k)), Some(k));
            }
            let Store::Heap { filter, .. } = &p.store else {
                panic!("on the heap")
            };
            let passed = (0..10_000)
                .filter(|i| filter.may_hold(hash(&format!("other-{i}"))))
                .count();
            assert!(passed <= 500, "{n} legs: {passed} of 10,000 others pass");
            assert_eq!(p.find("other-1"), None);
        }
    }

    #[test]
    fn a_mapped_pack_answers_as_the_heap_one_does() {
        for n in [0, 1, FENCE - 1, FENCE, FENCE + 1, 10 * FENCE + 3] {
            let mut all = legs(n);
            let causes: Vec<Arc<str>> = vec![Arc::from("normal"), Arc::from("network")];
            for (i, c) in all.iter_mut().enumerate() {
                c.cause = (i % 3 > 0).then(|| causes[i % 3 - 1].clone());
            }
            let (heap, rest) = Packed::new(all);
            assert!(rest.is_empty());
            let number = |c: Option<&Arc<str>>| {
                c.map_or(0, |c| {
                    causes.iter().position(|x| x == c).unwrap() as u32 + 1
                })
            };
            let (encoded, keys) = heap.encode(number).expect("a heap pack");
            // after 8 bytes, as in a file with a header; the index 8-aligned
            let mut bytes: Vec<u8> = vec![0; 8];
            bytes.extend_from_slice(&encoded.bytes);
            let b = 8..bytes.len();
            bytes.resize(bytes.len().next_multiple_of(8), 0);
            let i = bytes.len()..bytes.len() + keys.len() * size_of::<IdKey>();
            bytes.extend_from_slice(bytemuck::cast_slice(&keys));
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("pack");
            std::fs::write(&path, &bytes).unwrap();
            let file = Arc::new(Mapped::open(&path).unwrap());
            let mapped = |f: &[Us], o: &[u32]| {
                Packed::mapped(
                    file.clone(),
                    b.clone(),
                    i.clone(),
                    n,
                    f.into(),
                    o.into(),
                    Arc::new(causes.clone()),
                    heap.longest,
                )
            };
            let (f, o) = (&encoded.fences, &encoded.offsets);
            if n > 0 {
                assert!(mapped(&f[1..], &o[1..]).is_none(), "too few fences");
                let mut late = o.clone();
                late[0] = 1;
                assert!(mapped(f, &late).is_none(), "a block out of place");
            }
            let mapped = mapped(f, o).expect("in place");
            assert_eq!(mapped.len(), n);
            let mut probes: Vec<Us> = (0..n)
                .flat_map(|k| {
                    let s = heap.span(k).0;
                    [s - 1, s, s + 1]
                })
                .collect();
            probes.extend([Us::MIN, 0, 999, 1_000, 1_001, Us::MAX]);
            for &from in &probes {
                for to in [
                    from,
                    from.saturating_add(1),
                    from.saturating_add(5_000_000),
                    Us::MAX,
                ] {
                    assert_eq!(
                        mapped.starting(from, to),
                        heap.starting(from, to),
                        "n {n}: {from}..={to}"
                    );
                }
            }
            // legs asked in any order: each decodes its block
            for k in (0..n).rev().chain(0..n) {
                let (h, m) = (heap.get(k), mapped.get(k));
                assert_eq!(
                    (&h.id, h.start, h.end, h.start_known, h.end_known, &h.cause),
                    (&m.id, m.start, m.end, m.start_known, m.end_known, &m.cause)
                );
                assert_eq!(mapped.find(&heap.id(k)), Some(k));
            }
            assert_eq!(mapped.find("other-1"), None);
            let (merged, rest) = Packed::merge(&[&mapped], |_, k| k % 2 == 0);
            assert!(rest.is_empty());
            assert_eq!(merged.len(), n.div_ceil(2));
            assert!(mapped.encode(number).is_none(), "laid out already");
        }
    }
}
