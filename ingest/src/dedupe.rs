//! The `(source, seq)` idempotency index: tells new events from duplicates and conflicts.
//!
//! Kept in memory (about 20 bytes per stored event) and rebuilt on open from the segments'
//! `source`, `seq` and `content_hash` columns and the replayed WAL.

use hashbrown::HashMap;

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

/// `(source, seq) -> content_hash`.
#[derive(Debug, Default)]
pub struct DedupeIndex {
    sources: HashMap<String, HashMap<u64, u64>>,
    len: usize,
}

impl DedupeIndex {
    /// Looks an event up.
    pub fn check(&self, source: &str, seq: u64, hash: u64) -> Check {
        match self.sources.get(source).and_then(|m| m.get(&seq)) {
            None => Check::New,
            Some(h) if *h == hash => Check::Duplicate,
            Some(_) => Check::Conflict,
        }
    }

    /// Records a stored event.
    pub fn insert(&mut self, source: &str, seq: u64, hash: u64) {
        let m = match self.sources.get_mut(source) {
            Some(m) => m,
            None => self.sources.entry(source.to_string()).or_default(),
        };
        if m.insert(seq, hash).is_none() {
            self.len += 1;
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
