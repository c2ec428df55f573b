//! A device's complete call legs (started and ended, each once), packed: one fixed-size
//! record per leg, the call ids back to back in one string, and a sorted index of their
//! hashes. About 75 bytes a leg where the persistent maps of [`Calls`](super::calls::Calls)
//! take several hundred; immutable, shared between versions, rebuilt when legs are sealed in.

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::ops::Range;
use std::sync::Arc;

use callstate_schemas::Us;

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

#[derive(Debug, Clone, Copy)]
struct Record {
    start: Us,
    end: Us,
    start_known: Us,
    end_known: Us,
    id_at: u32,
    id_len: u32,
    /// Index in `causes` plus one; 0 for none.
    cause: u32,
}

/// Complete legs by (start, call id).
#[derive(Debug, Default)]
pub(super) struct Packed {
    records: Vec<Record>,
    ids: String,
    /// (hash of the call id, record) by hash.
    by_id: Vec<(u64, u32)>,
    causes: Vec<Arc<str>>,
    /// The longest leg (end − start).
    pub longest: Us,
}

fn hash(id: &str) -> u64 {
    BuildHasherDefault::<DefaultHasher>::default().hash_one(id)
}

impl Packed {
    /// Packs `legs`; those it cannot (a call id or a cause list beyond `u32`) are returned.
    pub fn new(mut legs: Vec<Complete>) -> (Packed, Vec<Complete>) {
        legs.sort_by(|a, b| (a.start, &a.id).cmp(&(b.start, &b.id)));
        let mut p = Packed {
            records: Vec::with_capacity(legs.len()),
            ids: String::with_capacity(legs.iter().map(|l| l.id.len()).sum()),
            ..Packed::default()
        };
        let mut rest = Vec::new();
        for l in legs {
            let (Ok(id_at), Ok(id_len)) = (u32::try_from(p.ids.len()), u32::try_from(l.id.len()))
            else {
                rest.push(l);
                continue;
            };
            let cause = match &l.cause {
                None => 0,
                Some(c) => match p.causes.iter().position(|x| x == c) {
                    Some(k) => k + 1,
                    None => {
                        p.causes.push(c.clone());
                        p.causes.len()
                    }
                },
            };
            let (Ok(cause), Ok(k)) = (u32::try_from(cause), u32::try_from(p.records.len())) else {
                rest.push(l);
                continue;
            };
            p.ids.push_str(&l.id);
            p.by_id.push((hash(&l.id), k));
            p.longest = p.longest.max(l.end - l.start);
            p.records.push(Record {
                start: l.start,
                end: l.end,
                start_known: l.start_known,
                end_known: l.end_known,
                id_at,
                id_len,
                cause,
            });
        }
        p.by_id.sort_unstable();
        p.records.shrink_to_fit();
        p.by_id.shrink_to_fit();
        (p, rest)
    }

    /// Legs held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// The call id of leg `k`.
    pub fn id(&self, k: usize) -> &str {
        let r = &self.records[k];
        &self.ids[r.id_at as usize..(r.id_at + r.id_len) as usize]
    }

    /// Leg `k`: (start, end).
    pub fn span(&self, k: usize) -> (Us, Us) {
        (self.records[k].start, self.records[k].end)
    }

    /// How leg `k` ended.
    pub fn cause(&self, k: usize) -> Option<&Arc<str>> {
        let c = self.records[k].cause as usize;
        c.checked_sub(1).map(|c| &self.causes[c])
    }

    /// Leg `k` whole.
    pub fn get(&self, k: usize) -> Complete {
        let r = &self.records[k];
        Complete {
            id: Arc::from(self.id(k)),
            start: r.start,
            end: r.end,
            start_known: r.start_known,
            end_known: r.end_known,
            cause: self.cause(k).cloned(),
        }
    }

    /// The leg of `id`, if packed here.
    pub fn find(&self, id: &str) -> Option<usize> {
        let h = hash(id);
        let first = self.by_id.partition_point(|x| x.0 < h);
        self.by_id[first..]
            .iter()
            .take_while(|x| x.0 == h)
            .map(|x| x.1 as usize)
            .find(|&k| self.id(k) == id)
    }

    /// The legs starting in [from, to].
    pub fn starting(&self, from: Us, to: Us) -> Range<usize> {
        let a = self.records.partition_point(|r| r.start < from);
        let b = self.records.partition_point(|r| r.start <= to);
        a..b.max(a)
    }
}
