//! The layout of a device's packed legs, on the heap and in the checkpoint: blocks of
//! [`FENCE`] legs in pack order (by start, then call id), each leg as the differences from the
//! one before, and a sorted index of call-id hashes beside them.
//!
//! A leg in a block: its start after the one before (the first's is the block's *fence*, held
//! in memory, so it costs a byte), its length, when its start became known after the later of
//! its start and when the start of the one before became known, when its end became known
//! after the later of its end and when its start became known (a few bytes whether events
//! arrive as they happen or a history is loaded at once), the index of its cause: varints of
//! differences that are not negative but in odd data (they wrap, so that any `i64` comes back
//! exactly, a negative one in 10 bytes). Then its call id: the length of the prefix it shares
//! with the one before and the rest (both lengths in one byte when under 15). About 18 bytes a
//! leg on the benchmark's year where the fixed records and their call ids took 60, and a block
//! decodes in about a microsecond. The index is 6 bytes a leg ([`IdIndex`]: the high half of
//! the call id's hash and the leg's number, 8 bytes in a pack of over 65,536 legs), sorted,
//! searched in place; a match is confirmed against the id.
//!
//! A damaged block decodes to what it can (the legs past the damage are zero, with no id);
//! like the segments, the blocks rely on the filesystem, and the checkpoint's checksum covers
//! what says where they are (the fences and offsets).

use std::cell::RefCell;
use std::ops::Range;

use callstate_schemas::Us;

use crate::model::varint::{Reader, put};

/// Legs per block: a fence and an offset in memory for each.
pub(super) const FENCE: usize = 64;

/// A leg of a block, decoded.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Record {
    pub start: Us,
    pub end: Us,
    pub start_known: Us,
    pub end_known: Us,
    /// Where its call id starts among the block's ids, and its length.
    pub id_at: u32,
    pub id_len: u32,
    /// Index in the causes plus one; 0 for none.
    pub cause: u32,
}

/// The most legs a pack may hold for its call-id index to take narrow keys.
pub(super) const NARROW: usize = 1 << 16;

/// The high half of a call id's [`hash`](super::packed::hash) `h`: what the index keeps.
pub(super) fn key_of(h: u64) -> u32 {
    (h >> 32) as u32
}

/// A pack's call-id index, as the heap and a file hold it: a key per leg, sorted by the high
/// half of its id's hash, then its number. A key is `u16` words: the hash's low and high
/// halves, then the leg's number, in one word for a pack of at most [`NARROW`] legs (6 bytes
/// a leg; most devices, even over a year) or two (8). Words, so that any pack's index follows
/// another's in a file without padding.
#[derive(Debug, Clone, Copy)]
pub(super) enum IdIndex<'a> {
    Narrow(&'a [[u16; 3]]),
    Wide(&'a [[u16; 4]]),
}

impl<'a> IdIndex<'a> {
    /// Bytes an index of a pack of `len` legs takes.
    pub fn bytes_for(len: usize) -> Option<usize> {
        len.checked_mul(if len <= NARROW { 6 } else { 8 })
    }

    /// The index of a pack of `len` legs in `words`; `None` unless it is whole.
    pub fn of(words: &'a [u16], len: usize) -> Option<IdIndex<'a>> {
        let index = if len <= NARROW {
            IdIndex::Narrow(bytemuck::try_cast_slice(words).ok()?)
        } else {
            IdIndex::Wide(bytemuck::try_cast_slice(words).ok()?)
        };
        (index.len() == len).then_some(index)
    }

    /// [`IdIndex::of`] from bytes (2-aligned).
    pub fn of_bytes(bytes: &'a [u8], len: usize) -> Option<IdIndex<'a>> {
        IdIndex::of(bytemuck::try_cast_slice(bytes).ok()?, len)
    }

    /// Keys it holds.
    pub fn len(&self) -> usize {
        match self {
            IdIndex::Narrow(k) => k.len(),
            IdIndex::Wide(k) => k.len(),
        }
    }

    /// Key `i`'s hash.
    pub fn hash(&self, i: usize) -> u32 {
        let w = match self {
            IdIndex::Narrow(k) => [k[i][0], k[i][1]],
            IdIndex::Wide(k) => [k[i][0], k[i][1]],
        };
        u32::from(w[0]) | u32::from(w[1]) << 16
    }

    /// Key `i`'s leg.
    pub fn leg(&self, i: usize) -> usize {
        match self {
            IdIndex::Narrow(k) => usize::from(k[i][2]),
            IdIndex::Wide(k) => usize::from(k[i][2]) | usize::from(k[i][3]) << 16,
        }
    }

    /// Where the keys of hash `key` are.
    pub fn positions(&self, key: u32) -> Range<usize> {
        let first = |pred: &dyn Fn(u32) -> bool| {
            let (mut lo, mut hi) = (0, self.len());
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if pred(self.hash(mid)) {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            lo
        };
        first(&|h| h < key)..first(&|h| h <= key)
    }

    /// The index of legs whose call ids have `hashes` (leg `k` the `k`th), as words.
    pub fn build(hashes: &[u64]) -> Vec<u16> {
        let mut keys: Vec<(u32, u32)> = hashes
            .iter()
            .enumerate()
            .map(|(k, &h)| (key_of(h), k as u32))
            .collect();
        keys.sort_unstable();
        let narrow = hashes.len() <= NARROW;
        let mut words = Vec::with_capacity(hashes.len() * if narrow { 3 } else { 4 });
        for (h, leg) in keys {
            words.extend([h as u16, (h >> 16) as u16, leg as u16]);
            if !narrow {
                words.push((leg >> 16) as u16);
            }
        }
        words
    }
}

/// A device's legs encoded: the blocks back to back, each block's first start and where it
/// begins in `bytes`.
#[derive(Debug, Default)]
pub(super) struct Encoded {
    pub bytes: Vec<u8>,
    pub fences: Vec<Us>,
    pub offsets: Vec<u32>,
}

/// Encodes legs in pack order, each given as its record (its `cause` the number to store) and
/// call id; `Err` if the blocks would pass 4 GiB.
pub(super) fn encode<'a>(legs: impl Iterator<Item = (Record, &'a str)>) -> Result<Encoded, ()> {
    let mut e = Encoded::default();
    let (mut prev_start, mut prev_known, mut prev_id) = (0, 0, "");
    for (k, (r, id)) in legs.enumerate() {
        if k % FENCE == 0 {
            e.fences.push(r.start);
            e.offsets
                .push(u32::try_from(e.bytes.len()).map_err(|_| ())?);
            (prev_start, prev_known, prev_id) = (r.start, r.start, "");
        }
        let out = &mut e.bytes;
        put(out, r.start.wrapping_sub(prev_start) as u64);
        put(out, r.end.wrapping_sub(r.start) as u64);
        put(
            out,
            r.start_known.wrapping_sub(r.start.max(prev_known)) as u64,
        );
        put(
            out,
            r.end_known.wrapping_sub(r.end.max(r.start_known)) as u64,
        );
        put(out, u64::from(r.cause));
        let shared = id
            .bytes()
            .zip(prev_id.bytes())
            .take_while(|(a, b)| a == b)
            .count();
        let rest = &id.as_bytes()[shared..];
        if shared < 15 && rest.len() < 15 {
            out.push((shared as u8) << 4 | rest.len() as u8);
        } else {
            out.push(0xff);
            put(out, shared as u64);
            put(out, rest.len() as u64);
        }
        out.extend_from_slice(rest);
        (prev_start, prev_known, prev_id) = (r.start, r.start_known, id);
    }
    u32::try_from(e.bytes.len()).map_err(|_| ())?;
    Ok(e)
}

/// A block decoded: its legs' records (`id_at`, `id_len` into `ids`) and call ids.
#[derive(Debug, Default)]
pub(super) struct Block {
    /// What it was decoded from: its pack's number and its number in the pack.
    key: Option<(u64, usize)>,
    pub records: Vec<Record>,
    pub ids: String,
}

/// Decodes the `n` legs of the block `bytes` whose first start is `fence` into `into`;
/// whether it read them whole (those it could not read are zero, with no id).
pub(super) fn decode(bytes: &[u8], fence: Us, n: usize, into: &mut Block) -> bool {
    into.records.clear();
    let mut raw: Vec<u8> = std::mem::take(&mut into.ids).into_bytes();
    raw.clear();
    let mut r = Reader { bytes, at: 0 };
    let read = legs(&mut r, fence, n, &mut into.records, &mut raw).is_some();
    // ids are written from `&str`: not UTF-8 only if damaged
    let (ids, utf8) = match String::from_utf8(raw) {
        Ok(s) => (s, true),
        Err(e) => {
            let mut b = e.into_bytes();
            b.clear();
            (String::from_utf8(b).unwrap_or_default(), false)
        }
    };
    into.ids = ids;
    if !utf8 {
        for rec in &mut into.records {
            (rec.id_at, rec.id_len) = (0, 0);
        }
    }
    into.records.resize(n, Record::default());
    read && utf8
}

/// Reads up to `n` legs into `records`, their ids into `ids`; `None` at the first damage.
fn legs(
    r: &mut Reader<'_>,
    fence: Us,
    n: usize,
    records: &mut Vec<Record>,
    ids: &mut Vec<u8>,
) -> Option<()> {
    let (mut prev_start, mut prev_known, mut prev_id) = (fence, fence, 0..0);
    for _ in 0..n {
        let start = prev_start.wrapping_add(r.next_varint()? as i64);
        let end = start.wrapping_add(r.next_varint()? as i64);
        let start_known = start.max(prev_known).wrapping_add(r.next_varint()? as i64);
        let end_known = end.max(start_known).wrapping_add(r.next_varint()? as i64);
        let cause = u32::try_from(r.next_varint()?).ok()?;
        let (shared, rest) = match r.next_byte()? {
            0xff => (
                usize::try_from(r.next_varint()?).ok()?,
                usize::try_from(r.next_varint()?).ok()?,
            ),
            b => (usize::from(b >> 4), usize::from(b & 15)),
        };
        let rest = r.next_bytes(rest)?;
        let shared = shared.min(prev_id.end - prev_id.start);
        let at = ids.len();
        ids.extend_from_within(prev_id.start..prev_id.start + shared);
        ids.extend_from_slice(rest);
        records.push(Record {
            start,
            end,
            start_known,
            end_known,
            id_at: u32::try_from(at).ok()?,
            id_len: u32::try_from(ids.len() - at).ok()?,
            cause,
        });
        (prev_start, prev_known, prev_id) = (start, start_known, at..ids.len());
    }
    Some(())
}

thread_local! {
    /// The block this thread decoded last: the legs of one block are asked for one by one.
    static LAST: RefCell<Block> = RefCell::new(Block::default());
}

/// Runs `f` on block `block` of pack `pack` (a number no other pack of the process has),
/// decoding it unless it is the one this thread decoded last. `f` must not ask for a block
/// itself.
pub(super) fn with<'a, R>(
    pack: u64,
    block: usize,
    bytes: impl FnOnce() -> (&'a [u8], Us, usize),
    f: impl FnOnce(&Block) -> R,
) -> R {
    LAST.with(|b| {
        let mut b = b.borrow_mut();
        if b.key != Some((pack, block)) {
            let (bytes, fence, n) = bytes();
            if !decode(bytes, fence, n, &mut b) {
                tracing::error!(
                    "a block of call legs in the checkpoint is damaged: its legs past the damage \
                     read as empty"
                );
            }
            b.key = Some((pack, block));
        }
        f(&b)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_id_index_finds_each_leg_in_narrow_or_wide_keys() {
        for n in [0, 1, 7, NARROW, NARROW + 1] {
            // spread hashes, every 1,000th leg's the same as the one before
            let mut hashes: Vec<u64> = (0..n as u64)
                .map(|k| k.wrapping_mul(0x9E37_79B9_7F4A_7C15))
                .collect();
            for k in (1..n).step_by(1000) {
                hashes[k] = hashes[k - 1];
            }
            let words = IdIndex::build(&hashes);
            assert_eq!(Some(words.len() * 2), IdIndex::bytes_for(n));
            assert_eq!(words.len(), n * if n <= NARROW { 3 } else { 4 });
            assert!(
                IdIndex::of(&words, n + 1).is_none(),
                "{n} legs' index read as one more"
            );
            let ix = IdIndex::of(&words, n).unwrap();
            assert!((1..n).all(|i| ix.hash(i - 1) <= ix.hash(i)), "sorted");
            let mut legs_of: std::collections::HashMap<u32, usize> = Default::default();
            for &h in &hashes {
                *legs_of.entry(key_of(h)).or_default() += 1;
            }
            for (k, &h) in hashes.iter().enumerate() {
                let at = ix.positions(key_of(h));
                assert!(at.clone().all(|i| ix.hash(i) == key_of(h)));
                assert!(at.clone().any(|i| ix.leg(i) == k), "{n} legs: leg {k}");
                assert_eq!(at.len(), legs_of[&key_of(h)]);
            }
        }
    }

    fn record() -> impl Strategy<Value = (Record, String)> {
        let t = prop_oneof![
            any::<i64>(),
            0i64..10_000_000,
            Just(i64::MIN),
            Just(i64::MAX)
        ];
        (
            t.clone(),
            t.clone(),
            t.clone(),
            t,
            0u32..5,
            "[A-C0-9-]{0,20}|[\\PC]{0,40}",
        )
            .prop_map(|(start, end, start_known, end_known, cause, id)| {
                (
                    Record {
                        start,
                        end,
                        start_known,
                        end_known,
                        id_at: 0,
                        id_len: 0,
                        cause,
                    },
                    id,
                )
            })
    }

    proptest! {
        #[test]
        fn every_leg_reads_back_as_it_was_encoded(
            mut legs in prop::collection::vec(record(), 0..300),
        ) {
            legs.sort_by(|a, b| (a.0.start, &a.1).cmp(&(b.0.start, &b.1)));
            let e = encode(legs.iter().map(|(r, id)| (*r, id.as_str()))).unwrap();
            prop_assert_eq!(e.fences.len(), legs.len().div_ceil(FENCE));
            prop_assert_eq!(e.offsets.len(), e.fences.len());
            let mut block = Block::default();
            for (j, chunk) in legs.chunks(FENCE).enumerate() {
                let end = e.offsets.get(j + 1).map_or(e.bytes.len(), |&o| o as usize);
                let bytes = &e.bytes[e.offsets[j] as usize..end];
                prop_assert_eq!(e.fences[j], chunk[0].0.start);
                prop_assert!(decode(bytes, e.fences[j], chunk.len(), &mut block));
                for (k, (r, id)) in chunk.iter().enumerate() {
                    let d = block.records[k];
                    prop_assert_eq!(
                        (d.start, d.end, d.start_known, d.end_known, d.cause),
                        (r.start, r.end, r.start_known, r.end_known, r.cause)
                    );
                    let at = d.id_at as usize;
                    prop_assert_eq!(&block.ids[at..at + d.id_len as usize], id.as_str());
                }
                // cut short or changed anywhere, it decodes without a panic
                for cut in [0, bytes.len() / 2, bytes.len().saturating_sub(1)] {
                    decode(&bytes[..cut], e.fences[j], chunk.len(), &mut block);
                    prop_assert_eq!(block.records.len(), chunk.len());
                }
                let mut changed = bytes.to_vec();
                if let Some(b) = changed.get_mut(bytes.len() / 3) {
                    *b ^= 0xa5;
                }
                decode(&changed, e.fences[j], chunk.len(), &mut block);
                prop_assert_eq!(block.records.len(), chunk.len());
            }
        }
    }

    #[test]
    fn a_leg_costs_a_few_bytes_beside_its_call_id() {
        // a device's calls over a day as they happen: starts minutes apart, calls of a few
        // minutes, each event known a second or two later
        let legs: Vec<(Record, String)> = (0..1_000i64)
            .map(|i| {
                let start = 1_790_000_000_000_000 + i * 97_000_000;
                let end = start + 180_000_000 + i * 1_000;
                let rec = Record {
                    start,
                    end,
                    start_known: start + 1_000_000 + i % 7 * 100_000,
                    end_known: end + 2_000_000,
                    id_at: 0,
                    id_len: 0,
                    cause: 1,
                };
                (rec, format!("CL1-{}", 400_000 + i * 7))
            })
            .collect();
        let e = encode(legs.iter().map(|(r, id)| (*r, id.as_str()))).unwrap();
        // the fixed layout took 48 bytes and the call id (10 bytes here)
        assert!(e.bytes.len() < 1_000 * 22, "{} bytes", e.bytes.len());
    }
}
