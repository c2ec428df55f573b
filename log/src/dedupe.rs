//! The `(source, seq)` idempotency index: tells new events from duplicates and conflicts.
//!
//! Kept in memory and rebuilt on open from the segments' `source`, `seq` and `content_hash`
//! columns and the replayed WAL. A bridge numbers its events densely, so each source's
//! sequence numbers are kept in chunks of [`CHUNK`] consecutive numbers: a dense chunk is an
//! array of content hashes with a presence bitmap (about 8 bytes an event, and one probe per
//! look-up); a chunk holding few numbers stays a small sorted list, so sparse numbering costs
//! about 16 bytes an event instead of a whole chunk.

use arrow::array::{Array, AsArray, DictionaryArray, RecordBatch};
use arrow::datatypes::{Int32Type, UInt64Type};
use hashbrown::HashMap;

use crate::error::{LogError, Result};
use crate::segment::dictionary;

/// Sequence numbers per chunk.
pub const CHUNK: usize = 1024;
const CHUNK_BITS: u32 = CHUNK.trailing_zeros();
/// A sparse chunk becomes dense beyond this many entries (where dense is no larger).
const SPARSE_MAX: usize = CHUNK / 4;

/// What the index says of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Never seen: store it.
    New,
    /// Seen with the same content: drop it and count it.
    Duplicate,
    /// Seen with different content: reject it.
    Conflict,
}

fn verdict(stored: u64, hash: u64) -> Check {
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
}

/// The sequence numbers of one source.
#[derive(Default)]
struct SeqIndex {
    chunks: HashMap<u64, Chunk>,
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
        let found = self.sources[i]
            .chunks
            .get(&(seq >> CHUNK_BITS))
            .and_then(|c| c.get(seq as usize % CHUNK));
        match found {
            None => Check::New,
            Some(h) => verdict(h, hash),
        }
    }

    /// Looks an event up and records it when it is new (one probe).
    pub fn check_insert(&mut self, source: SourceId, seq: u64, hash: u64) -> Check {
        let check = self.sources[source.0]
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
