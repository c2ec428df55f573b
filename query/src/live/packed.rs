//! A device's complete call legs (started and ended, each once), packed: in blocks of legs
//! encoded back to back ([`blocks`](super::blocks): by start, then call id), each block's
//! first start and where it begins, and a sorted index of the call ids' hashes. About 30
//! bytes a leg on the heap (with a Bloom filter of the call ids) where the persistent maps of
//! [`Calls`](super::calls::Calls) take several hundred; immutable, shared between versions,
//! rebuilt when legs are sealed in. A pack lives on the heap, or in a mapped checkpoint file
//! in the same layout, where its pages are read when asked for and are the kernel's to drop
//! again.

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use callstate_schemas::Us;

use super::blocks::{self, Block, Encoded, FENCE, IdIndex, Record, key_of};
use super::hours::Hours;
use super::mapped::Mapped;

/// Numbers the packs of this process: a decoded block is kept by its pack's number.
static PACKS: AtomicU64 = AtomicU64::new(1);

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

/// A complete leg to pack, borrowed from a [`Complete`] or a decoded pack.
struct LegRef<'a> {
    id: &'a str,
    start: Us,
    end: Us,
    start_known: Us,
    end_known: Us,
    cause: Option<&'a Arc<str>>,
}

impl<'a> LegRef<'a> {
    fn of_complete(c: &'a Complete) -> LegRef<'a> {
        LegRef {
            id: &c.id,
            start: c.start,
            end: c.end,
            start_known: c.start_known,
            end_known: c.end_known,
            cause: c.cause.as_ref(),
        }
    }

    fn to_complete(&self) -> Complete {
        Complete {
            id: Arc::from(self.id),
            start: self.start,
            end: self.end,
            start_known: self.start_known,
            end_known: self.end_known,
            cause: self.cause.cloned(),
        }
    }
}

/// Where a pack of a checkpoint is: the piece's id and the device's number in that piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Origin {
    pub piece: u64,
    pub entry: u32,
}

/// What the packs of one checkpoint piece share: its file, where every device's fences and
/// block offsets are in it (read there, not copied), its causes and its hour index.
#[derive(Debug)]
pub(super) struct Shelf {
    pub file: Arc<Mapped>,
    /// The piece's id.
    pub piece: u64,
    /// Where its fences (`i64`) and offsets (`u32`) are in the file.
    pub fences: Range<usize>,
    pub offsets: Range<usize>,
    pub causes: Arc<Vec<Arc<str>>>,
    pub hours: Option<Arc<Hours>>,
}

impl Shelf {
    /// This shelf if its fences and offsets are in the file, aligned and as many.
    pub fn checked(self) -> Option<Shelf> {
        let bytes = self.file.bytes();
        let f: &[Us] = bytemuck::try_cast_slice(bytes.get(self.fences.clone())?).ok()?;
        let o: &[u32] = bytemuck::try_cast_slice(bytes.get(self.offsets.clone())?).ok()?;
        (f.len() == o.len()).then_some(self)
    }

    /// Every device's fences, back to back (checked in [`Shelf::checked`]).
    fn fences(&self) -> &[Us] {
        bytemuck::try_cast_slice(&self.file.bytes()[self.fences.clone()]).unwrap_or(&[])
    }

    /// Every device's block offsets, as many as the fences.
    fn offsets(&self) -> &[u32] {
        bytemuck::try_cast_slice(&self.file.bytes()[self.offsets.clone()]).unwrap_or(&[])
    }
}

/// Where a pack's blocks, call-id index ([`IdIndex`]), fences and offsets are: cloned, a
/// pack shares them.
#[derive(Debug, Clone)]
enum Store {
    /// On the heap, with a Bloom filter of the call ids.
    Heap(Arc<OnHeap>),
    /// In a checkpoint piece: a few numbers, everything else in its [`Shelf`] and file.
    Kept(Kept),
    /// Spilled to a file while pairing.
    Spilled(Arc<Spilled>),
}

#[derive(Debug, Default)]
struct OnHeap {
    blocks: Vec<u8>,
    /// The index's words.
    by_id: Vec<u16>,
    filter: Filter,
    fences: Box<[Us]>,
    offsets: Box<[u32]>,
    /// The causes the legs index.
    causes: Arc<Vec<Arc<str>>>,
}

/// A pack of a checkpoint piece: its device's number there (in the piece's hour index too),
/// where its blocks and index begin in the file and its first fence among the shelf's.
#[derive(Debug, Clone)]
struct Kept {
    shelf: Arc<Shelf>,
    blocks_at: usize,
    by_id_at: usize,
    blocks_len: u32,
    fences_at: u32,
    entry: u32,
}

/// A pack spilled while pairing (asked about every new call id): its blocks and index in
/// `file`; its Bloom filter, and each index key's hash in the index's order (4 bytes a leg),
/// on the heap, so that an id it does not hold is told apart without reading the file (the
/// filter's ~2% false positives alone, or 16 bits of the hashes, read the file's pages all
/// over within seconds: each fault maps 16 pages around).
#[derive(Debug)]
struct Spilled {
    file: Arc<Mapped>,
    blocks: Range<usize>,
    by_id: Range<usize>,
    fences: Box<[Us]>,
    offsets: Box<[u32]>,
    causes: Arc<Vec<Arc<str>>>,
    filter: Filter,
    hashes: Box<[u32]>,
}

impl Kept {
    /// Where its call-id index is in the file, for `len` legs.
    fn by_id(&self, len: usize) -> Option<Range<usize>> {
        Some(self.by_id_at..self.by_id_at.checked_add(IdIndex::bytes_for(len)?)?)
    }

    /// Its fences and offsets among the shelf's, for `len` legs (`None` past them).
    fn fences(&self, len: usize) -> Option<(&[Us], &[u32])> {
        let at = self.fences_at as usize;
        let its = at..at.checked_add(len.div_ceil(FENCE))?;
        Some((
            self.shelf.fences().get(its.clone())?,
            self.shelf.offsets().get(its)?,
        ))
    }
}

impl Default for Store {
    fn default() -> Self {
        Store::Heap(Arc::default())
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

/// Complete legs by (start, call id), with each block's first start (its *fence*) and where
/// it begins among the blocks, so that a search by time decodes one block. Held by value (a
/// kept one is a few numbers, one per device per piece of a checkpoint), cloned cheaply.
#[derive(Debug, Clone, Default)]
pub(super) struct Packed {
    store: Store,
    /// Its number ([`PACKS`]; 0 for an empty one).
    number: u64,
    len: usize,
    /// The longest leg (end − start).
    pub longest: Us,
}

/// The hash a pack indexes a call id by.
pub(super) fn hash(id: &str) -> u64 {
    BuildHasherDefault::<DefaultHasher>::default().hash_one(id)
}

/// Whether `len` legs' blocks and call-id index are at `blocks` and `by_id` of `bytes` (in
/// them, the index whole and aligned), with a fence and an offset per block (the offsets in
/// order, within the blocks).
fn laid_out_in(
    bytes: &[u8],
    blocks: &Range<usize>,
    by_id: &Range<usize>,
    len: usize,
    fences: &[Us],
    offsets: &[u32],
) -> bool {
    let within = |r: &Range<usize>| r.start <= r.end && r.end <= bytes.len();
    within(blocks)
        && within(by_id)
        && IdIndex::bytes_for(len).is_some_and(|n| by_id.end - by_id.start == n)
        && fences.len() == len.div_ceil(FENCE)
        && offsets.len() == fences.len()
        && offsets.first().is_none_or(|&o| o == 0)
        && offsets.windows(2).all(|w| w[0] <= w[1])
        && offsets
            .last()
            .is_none_or(|&o| o as usize <= blocks.end - blocks.start)
        && IdIndex::of_bytes(&bytes[by_id.clone()], len).is_some()
}

impl Packed {
    /// Packs `legs`; those it cannot (a device's legs past 4 GiB encoded) are returned.
    pub fn new(legs: Vec<Complete>) -> (Packed, Vec<Complete>) {
        let refs = legs.iter().map(LegRef::of_complete).collect();
        let (packed, rest) = Packed::of_refs(refs);
        (packed, rest.iter().map(LegRef::to_complete).collect())
    }

    /// Packs the legs of `packs` that `kept` keeps (a pack's number and a leg's): one pack of
    /// them all; those it cannot are returned.
    pub fn merge(
        packs: &[&Packed],
        kept: impl Fn(usize, usize) -> bool,
    ) -> (Packed, Vec<Complete>) {
        let decoded: Vec<Block> = packs.iter().map(|p| p.decode_all()).collect();
        let refs = decoded
            .iter()
            .zip(packs)
            .enumerate()
            .flat_map(|(p, (d, pack))| {
                let kept = &kept;
                d.records
                    .iter()
                    .enumerate()
                    .filter(move |&(k, _)| kept(p, k))
                    .map(move |(_, r)| LegRef {
                        id: id_in(d.ids.as_bytes(), r),
                        start: r.start,
                        end: r.end,
                        start_known: r.start_known,
                        end_known: r.end_known,
                        cause: pack.cause_of(r),
                    })
            })
            .collect();
        let (packed, rest) = Packed::of_refs(refs);
        (packed, rest.iter().map(LegRef::to_complete).collect())
    }

    /// Packs `legs`, returning those it cannot (all of them, if it cannot).
    fn of_refs(mut legs: Vec<LegRef<'_>>) -> (Packed, Vec<LegRef<'_>>) {
        let mut causes: Vec<Arc<str>> = Vec::new();
        let cause_number = |c: Option<&Arc<str>>| -> u32 {
            let Some(c) = c else { return 0 };
            let k = match causes.iter().position(|x| x == c) {
                Some(k) => k,
                None => {
                    causes.push(c.clone());
                    causes.len() - 1
                }
            };
            u32::try_from(k + 1).unwrap_or(0)
        };
        let Some((e, hashes, longest)) = lay_out(&mut legs, cause_number) else {
            return (Packed::default(), legs);
        };
        let mut bytes = e.bytes;
        bytes.shrink_to_fit();
        let p = Packed {
            store: Store::Heap(Arc::new(OnHeap {
                blocks: bytes,
                by_id: IdIndex::build(&hashes),
                filter: Filter::new(hashes.iter().copied()),
                fences: e.fences.into(),
                offsets: e.offsets.into(),
                causes: Arc::new(causes),
            })),
            number: PACKS.fetch_add(1, Ordering::Relaxed),
            len: hashes.len(),
            longest,
        };
        (p, Vec::new())
    }

    /// Device `entry` of the piece `shelf`: its `len` legs' blocks at `blocks` of the file,
    /// its call-id index from `by_id_at`, its fences and offsets from the shelf's
    /// `fences_at`-th (checked to be in the file, the index whole and aligned, the blocks'
    /// offsets in order within them, else `None`).
    pub fn kept(
        shelf: &Arc<Shelf>,
        entry: u32,
        blocks: Range<usize>,
        by_id_at: usize,
        len: usize,
        fences_at: usize,
        longest: Us,
    ) -> Option<Packed> {
        let kept = Kept {
            shelf: shelf.clone(),
            blocks_at: blocks.start,
            by_id_at,
            blocks_len: u32::try_from(blocks.len()).ok()?,
            fences_at: u32::try_from(fences_at).ok()?,
            entry,
        };
        let (fences, offsets) = kept.fences(len)?;
        if !laid_out_in(
            shelf.file.bytes(),
            &blocks,
            &kept.by_id(len)?,
            len,
            fences,
            offsets,
        ) {
            return None;
        }
        Some(Packed {
            store: Store::Kept(kept),
            number: PACKS.fetch_add(1, Ordering::Relaxed),
            len,
            longest,
        })
    }

    /// Each block's first start (its fence), and where it begins among the blocks.
    fn fences(&self) -> (&[Us], &[u32]) {
        match &self.store {
            Store::Heap(h) => (&h.fences, &h.offsets),
            Store::Spilled(s) => (&s.fences, &s.offsets),
            Store::Kept(k) => k.fences(self.len).unwrap_or((&[], &[])),
        }
    }

    /// Its blocks, back to back.
    fn blocks(&self) -> &[u8] {
        match &self.store {
            Store::Heap(h) => &h.blocks,
            Store::Spilled(s) => &s.file.bytes()[s.blocks.clone()],
            Store::Kept(k) => {
                let bytes = k.shelf.file.bytes();
                &bytes[k.blocks_at..k.blocks_at + k.blocks_len as usize]
            }
        }
    }

    /// The causes its legs index.
    fn causes(&self) -> &[Arc<str>] {
        match &self.store {
            Store::Heap(h) => &h.causes,
            Store::Spilled(s) => &s.causes,
            Store::Kept(k) => &k.shelf.causes,
        }
    }

    /// Every leg decoded, in order.
    fn decode_all(&self) -> Block {
        let mut d = Block::default();
        d.records.reserve_exact(self.len);
        for j in 0..self.fences().0.len() {
            self.with_block(j, |b| {
                let base = d.ids.len() as u32;
                d.ids.push_str(&b.ids);
                d.records.extend(b.records.iter().map(|r| Record {
                    id_at: base + r.id_at,
                    ..*r
                }));
            });
        }
        d
    }

    /// The checkpoint piece it is kept in, if it is.
    pub fn origin(&self) -> Option<Origin> {
        match &self.store {
            Store::Kept(k) => Some(Origin {
                piece: k.shelf.piece,
                entry: k.entry,
            }),
            Store::Heap(_) | Store::Spilled(_) => None,
        }
    }

    /// Its first leg's start (`None`: it holds none).
    pub fn first_start(&self) -> Option<Us> {
        self.fences().0.first().copied()
    }

    /// The hour index it is listed in, and its device number there.
    pub fn hours(&self) -> Option<(&Arc<Hours>, u32)> {
        match &self.store {
            Store::Kept(k) => k.shelf.hours.as_ref().map(|h| (h, k.entry)),
            Store::Heap(_) | Store::Spilled(_) => None,
        }
    }

    /// Bytes it holds on the heap beside its own: a heap pack's blocks, index, filter, fences
    /// and offsets; a spilled one's filter, hashes, fences and offsets; a kept one's none.
    pub fn heap_bytes(&self) -> usize {
        let fences = |f: &[Us], o: &[u32]| size_of_val(f) + size_of_val(o);
        match &self.store {
            Store::Heap(h) => {
                size_of::<OnHeap>()
                    + fences(&h.fences, &h.offsets)
                    + h.blocks.capacity()
                    + h.by_id.capacity() * size_of::<u16>()
                    + size_of_val(&*h.filter.words)
            }
            Store::Spilled(s) => {
                size_of::<Spilled>()
                    + fences(&s.fences, &s.offsets)
                    + size_of_val(&*s.filter.words)
                    + size_of_val(&*s.hashes)
            }
            Store::Kept(_) => 0,
        }
    }

    /// Whether it is kept in a mapped file.
    pub fn is_mapped(&self) -> bool {
        !matches!(self.store, Store::Heap(_))
    }

    /// A heap pack's blocks and call-id index, as a file holds them (`None` when mapped).
    pub fn heap_layout(&self) -> Option<(&[u8], &[u8])> {
        match &self.store {
            Store::Heap(h) => Some((&h.blocks, bytemuck::cast_slice(&h.by_id))),
            Store::Kept(_) | Store::Spilled(_) => None,
        }
    }

    /// Reads this heap pack from `file` from now on, where its [`Packed::heap_layout`] was
    /// written at `blocks` and `by_id` (a 2-aligned offset), its Bloom filter and its index's
    /// hashes kept on the heap. Returns whether it does: not if it is mapped already, shared
    /// with a clone, or they are not in the file so.
    pub fn spill_to(
        &mut self,
        file: Arc<Mapped>,
        blocks: Range<usize>,
        by_id: Range<usize>,
    ) -> bool {
        let (fences, offsets) = self.fences();
        let fits = laid_out_in(file.bytes(), &blocks, &by_id, self.len, fences, offsets);
        if !fits || self.is_mapped() {
            return false;
        }
        let Store::Heap(h) = std::mem::take(&mut self.store) else {
            unreachable!("a heap pack, checked above");
        };
        let h = match Arc::try_unwrap(h) {
            Ok(h) => h,
            Err(shared) => {
                self.store = Store::Heap(shared);
                return false;
            }
        };
        let OnHeap {
            by_id: keys,
            filter,
            fences,
            offsets,
            causes,
            ..
        } = h;
        let hashes = IdIndex::of(&keys, self.len)
            .map(|ix| (0..ix.len()).map(|i| ix.hash(i)).collect())
            .unwrap_or_default();
        self.store = Store::Spilled(Arc::new(Spilled {
            file,
            blocks,
            by_id,
            fences,
            offsets,
            causes,
            filter,
            hashes,
        }));
        self.number = PACKS.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// The file it is kept in, if mapped.
    pub fn file(&self) -> Option<&Arc<Mapped>> {
        match &self.store {
            Store::Kept(k) => Some(&k.shelf.file),
            Store::Spilled(s) => Some(&s.file),
            Store::Heap(_) => None,
        }
    }

    /// Runs `f` on block `j`, decoded (the last block this thread decoded is kept).
    fn with_block<R>(&self, j: usize, f: impl FnOnce(&blocks::Block) -> R) -> R {
        let n = (self.len - j * FENCE).min(FENCE);
        let (fences, offsets) = self.fences();
        let fence = fences[j];
        let from = offsets[j] as usize;
        let to = offsets.get(j + 1).map(|&o| o as usize);
        let bytes = || {
            let all = self.blocks();
            &all[from..to.unwrap_or(all.len())]
        };
        blocks::with(self.number, j, || (bytes(), fence, n), f)
    }

    /// Runs `f` on leg `k`'s record and call id.
    fn with_leg<R>(&self, k: usize, f: impl FnOnce(&Record, &str) -> R) -> R {
        self.with_block(k / FENCE, |b| {
            let r = &b.records[k % FENCE];
            f(r, id_in(b.ids.as_bytes(), r))
        })
    }

    /// How the leg of record `r` (of this pack) ended.
    pub fn cause_of(&self, r: &Record) -> Option<&Arc<str>> {
        (r.cause as usize)
            .checked_sub(1)
            .and_then(|c| self.causes().get(c))
    }

    /// Legs held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The call id of leg `k` (empty if a damaged file puts it out of place).
    #[cfg(test)]
    pub fn id(&self, k: usize) -> String {
        self.with_leg(k, |_, id| id.to_string())
    }

    /// Leg `k`: (start, end).
    pub fn span(&self, k: usize) -> (Us, Us) {
        self.with_leg(k, |r, _| (r.start, r.end))
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
        let key = key_of(h);
        // the index, and where in it the keys of `key` may be (all of it to search); a
        // mapped one checked to be in the file, whole, aligned
        let (index, within) = match &self.store {
            Store::Heap(heap) => {
                if !heap.filter.may_hold(h) {
                    return None;
                }
                (IdIndex::of(&heap.by_id, self.len), None)
            }
            Store::Kept(k) => {
                let at = k.by_id(self.len)?;
                (IdIndex::of_bytes(&k.shelf.file.bytes()[at], self.len), None)
            }
            Store::Spilled(s) => {
                // one word read for nearly every id, the hashes for ~2%
                if !s.filter.may_hold(h) {
                    return None;
                }
                let from = s.hashes.partition_point(|&x| x < key);
                let to = from + s.hashes[from..].partition_point(|&x| x == key);
                if from == to {
                    return None;
                }
                let index = IdIndex::of_bytes(&s.file.bytes()[s.by_id.clone()], self.len);
                (index, Some(from..to))
            }
        };
        let index = index?;
        let within = within.unwrap_or_else(|| index.positions(key));
        within
            .filter(|&i| i < index.len() && index.hash(i) == key)
            .map(|i| index.leg(i))
            .find(|&k| k < self.len && self.with_leg(k, |_, i| i == id))
    }

    /// Runs `f` on every leg starting in [from, to] (its number and record), in order,
    /// decoding each block that may hold one once. `f` must not read a pack itself.
    pub fn each_starting(&self, from: Us, to: Us, mut f: impl FnMut(usize, &Record)) {
        if from > to {
            return;
        }
        // blocks from the last one starting before `from` to the last one starting by `to`
        let (fences, _) = self.fences();
        let first = fences.partition_point(|&s| s < from).saturating_sub(1);
        let end = fences.partition_point(|&s| s <= to);
        for j in first..end {
            self.with_block(j, |b| {
                for (i, r) in b.records.iter().enumerate() {
                    if (from..=to).contains(&r.start) {
                        f(j * FENCE + i, r);
                    }
                }
            });
        }
    }
}

/// Sorts `legs` by start and call id and encodes them, each leg's cause stored as `cause`
/// numbers it; with their call ids' hashes in that order and the longest leg. `None` if the
/// blocks would pass 4 GiB or the legs `u32`.
fn lay_out(
    legs: &mut [LegRef<'_>],
    mut cause: impl FnMut(Option<&Arc<str>>) -> u32,
) -> Option<(Encoded, Vec<u64>, Us)> {
    legs.sort_by(|a, b| (a.start, a.id).cmp(&(b.start, b.id)));
    u32::try_from(legs.len()).ok()?;
    let records = legs.iter().map(|l| {
        let rec = Record {
            start: l.start,
            end: l.end,
            start_known: l.start_known,
            end_known: l.end_known,
            id_at: 0,
            id_len: 0,
            cause: cause(l.cause),
        };
        (rec, l.id)
    });
    let encoded = blocks::encode(records).ok()?;
    let hashes = legs.iter().map(|l| hash(l.id)).collect();
    let longest = legs
        .iter()
        .map(|l| l.end.saturating_sub(l.start))
        .max()
        .unwrap_or(0)
        .max(0);
    Some((encoded, hashes, longest))
}

/// Complete legs in the packs' layout, as a checkpoint writes them (sorted in place by start
/// and call id): their blocks, their call-id index and the longest leg; each leg's cause
/// stored as `cause` numbers it. `None` if the blocks would pass 4 GiB or the legs `u32`.
pub(super) fn lay_out_complete(
    legs: &mut [Complete],
    cause: impl FnMut(Option<&Arc<str>>) -> u32,
) -> Option<(Encoded, Vec<u16>, Us)> {
    legs.sort_by(|a, b| (a.start, &a.id).cmp(&(b.start, &b.id)));
    let mut refs: Vec<LegRef<'_>> = legs.iter().map(LegRef::of_complete).collect();
    let (encoded, hashes, longest) = lay_out(&mut refs, cause)?;
    Some((encoded, IdIndex::build(&hashes), longest))
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
    use std::path::Path;

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

    /// A file under `dir` holding a pack as a checkpoint piece does: its blocks after 8
    /// bytes (as a header), its index 2-aligned, then `fences` and `offsets` 8-aligned: the
    /// piece's shelf (with `causes`) and where the blocks and the index are.
    fn in_file(
        dir: &Path,
        encoded: &Encoded,
        keys: &[u16],
        (fences, offsets): (&[Us], &[u32]),
        causes: &[Arc<str>],
    ) -> Option<(Arc<Shelf>, Range<usize>, usize)> {
        let mut bytes: Vec<u8> = vec![0; 8];
        bytes.extend_from_slice(&encoded.bytes);
        let b = 8..bytes.len();
        bytes.resize(bytes.len().next_multiple_of(2), 0);
        let i = bytes.len();
        bytes.extend_from_slice(bytemuck::cast_slice(keys));
        bytes.resize(bytes.len().next_multiple_of(8), 0);
        let f = bytes.len()..bytes.len() + size_of_val(fences);
        bytes.extend_from_slice(bytemuck::cast_slice(fences));
        let o = bytes.len()..bytes.len() + size_of_val(offsets);
        bytes.extend_from_slice(bytemuck::cast_slice(offsets));
        let path = dir.join(format!("pack-{}", std::fs::read_dir(dir).unwrap().count()));
        std::fs::write(&path, &bytes).unwrap();
        let file = Arc::new(Mapped::open(&path).unwrap());
        let shelf = Shelf {
            file,
            piece: 7,
            fences: f,
            offsets: o,
            causes: Arc::new(causes.to_vec()),
            hours: None,
        }
        .checked()?;
        Some((Arc::new(shelf), b, i))
    }

    #[test]
    fn a_pack_of_more_legs_than_narrow_keys_number_finds_each() {
        let n = blocks::NARROW + 3;
        let mut all = legs(n);
        let (heap, _) = Packed::new(all.clone());
        let (encoded, keys, longest) = lay_out_complete(&mut all, |_| 0).unwrap();
        assert_eq!(keys.len(), 4 * n, "two words a leg's number");
        let dir = tempfile::tempdir().unwrap();
        let fo = (&encoded.fences[..], &encoded.offsets[..]);
        let (shelf, b, i) = in_file(dir.path(), &encoded, &keys, fo, &[]).unwrap();
        let mapped = Packed::kept(&shelf, 3, b, i, n, 0, longest).unwrap();
        assert_eq!(mapped.origin(), Some(Origin { piece: 7, entry: 3 }));
        assert_eq!(mapped.heap_bytes(), 0, "everything in the file");
        // one per device per piece of a checkpoint: a few numbers, where the fences and
        // offsets copied to the heap and the spilled packs' fields made it ~240 bytes
        assert!(size_of::<Packed>() <= 72, "{} bytes", size_of::<Packed>());
        for k in (0..n).step_by(97).chain(n - 3..n) {
            let id = heap.id(k);
            assert_eq!((heap.find(&id), mapped.find(&id)), (Some(k), Some(k)));
        }
        assert_eq!(mapped.find("other-1"), None);
    }

    #[test]
    fn the_filter_passes_every_packed_id_and_few_others() {
        for n in [0, 1, 5, 100, 10_000] {
            let (p, _) = Packed::new(legs(n));
            for k in 0..n {
                assert_eq!(p.find(&p.id(k)), Some(k));
            }
            let Store::Heap(heap) = &p.store else {
                panic!("on the heap")
            };
            let passed = (0..10_000)
                .filter(|i| heap.filter.may_hold(hash(&format!("other-{i}"))))
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
            let mut sorted = all.clone();
            let (heap, rest) = Packed::new(all);
            assert!(rest.is_empty());
            let number = |c: Option<&Arc<str>>| {
                c.map_or(0, |c| {
                    causes.iter().position(|x| x == c).unwrap() as u32 + 1
                })
            };
            let (encoded, keys, longest) =
                lay_out_complete(&mut sorted, number).expect("within bounds");
            assert_eq!(longest, heap.longest);
            let dir = tempfile::tempdir().unwrap();
            let mapped = |f: &[Us], o: &[u32], fences_at: usize| {
                let (shelf, b, i) = in_file(dir.path(), &encoded, &keys, (f, o), &causes)?;
                Packed::kept(&shelf, 0, b, i, n, fences_at, heap.longest)
            };
            let (f, o) = (&encoded.fences, &encoded.offsets);
            if n > 0 {
                assert!(mapped(&f[1..], &o[1..], 0).is_none(), "too few fences");
                assert!(mapped(f, o, 1).is_none(), "fences past the shelf's");
                assert!(mapped(f, &o[1..], 0).is_none(), "fewer offsets than fences");
                let mut late = o.clone();
                late[0] = 1;
                assert!(mapped(f, &late, 0).is_none(), "a block out of place");
            }
            let mapped = mapped(f, o, 0).expect("in place");
            assert_eq!(mapped.len(), n);
            let mut probes: Vec<Us> = (0..n)
                .flat_map(|k| {
                    let s = heap.span(k).0;
                    [s - 1, s, s + 1]
                })
                .collect();
            probes.extend([Us::MIN, 0, 999, 1_000, 1_001, Us::MAX]);
            let starting = |p: &Packed, from: Us, to: Us| {
                let mut got = Vec::new();
                p.each_starting(from, to, |k, r| got.push((k, r.start, r.end)));
                got
            };
            for &from in &probes {
                for to in [
                    from.saturating_sub(1),
                    from,
                    from.saturating_add(1),
                    from.saturating_add(5_000_000),
                    Us::MAX,
                ] {
                    let want: Vec<(usize, Us, Us)> = (0..n)
                        .map(|k| (k, heap.span(k).0, heap.span(k).1))
                        .filter(|&(_, s, _)| from <= s && s <= to)
                        .collect();
                    assert_eq!(starting(&mapped, from, to), want, "n {n}: {from}..={to}");
                    assert_eq!(starting(&heap, from, to), want, "n {n}: {from}..={to}");
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
            // laid out again as it was
            let mut legs_again: Vec<Complete> = (0..n).map(|k| mapped.get(k)).collect();
            let (again, keys_again, _) =
                lay_out_complete(&mut legs_again, number).expect("within bounds");
            assert_eq!(again.bytes, encoded.bytes);
            assert_eq!(
                (again.fences, again.offsets),
                (encoded.fences, encoded.offsets)
            );
            assert_eq!(keys_again, keys);
        }
    }
}
