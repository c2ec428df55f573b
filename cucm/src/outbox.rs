//! Where a collector's events wait until they are stored: each gets the source, the cluster
//! and the next persisted sequence number; a flush validates them as any collector's input
//! (the ingest front end) and appends them; a failed append keeps them, in order, for the
//! next flush (the same `(source, seq)` again: a retry is never a conflict).

use std::path::Path;
use std::sync::Arc;

use chrono::Utc;
use serde_json::Value;

use callstate_ingest::{Appender, frontend};
use callstate_schemas::Event;

use crate::error::CucmError;
use crate::seq::SeqFile;
use crate::tracker::Pending;

/// Events waiting to be stored.
pub struct Outbox {
    source: String,
    cluster: String,
    seq: SeqFile,
    events: Vec<Event>,
}

/// What a flush stored.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Flushed {
    /// Stored (or already stored: duplicates).
    pub stored: usize,
    /// Refused by the validation (a collector bug if ever non-zero; logged).
    pub rejected: usize,
}

impl Outbox {
    /// An outbox for `source` in `cluster`, numbering from the sequence file `seq_file`.
    pub fn open(source: &str, cluster: &str, seq_file: &Path) -> Result<Outbox, CucmError> {
        Ok(Outbox {
            source: source.to_string(),
            cluster: cluster.to_string(),
            seq: SeqFile::open(seq_file)?,
            events: Vec::new(),
        })
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Nothing waits.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Numbers and queues an event.
    pub fn push(&mut self, p: Pending) -> Result<(), CucmError> {
        let seq = self.seq.take()?;
        let extra = (!p.extra.is_empty()).then(|| Value::Object(p.extra).to_string());
        self.events.push(Event {
            source: self.source.clone(),
            seq,
            time: p.time,
            cluster: self.cluster.clone(),
            body: p.body,
            extra,
        });
        Ok(())
    }

    /// A function that validates and appends the waiting events (run it where blocking is
    /// allowed); on success call [`Outbox::clear`].
    pub fn batch(
        &self,
    ) -> impl FnOnce(&dyn Appender) -> Result<Flushed, CucmError> + Send + 'static {
        let events = self.events.clone();
        let origin = self.source.clone();
        move |out: &dyn Appender| append_validated(&origin, &events, out)
    }

    /// Forgets the events a successful [`Outbox::batch`] stored.
    pub fn clear(&mut self) {
        self.events.clear();
    }

    /// Validates and appends now (blocking).
    pub fn flush_blocking(&mut self, out: &Arc<dyn Appender>) -> Result<Flushed, CucmError> {
        if self.events.is_empty() {
            return Ok(Flushed::default());
        }
        let f = self.batch()(out.as_ref())?;
        self.clear();
        Ok(f)
    }
}

/// Validates `events` as any collector's input (the ingest front end, as NDJSON) and appends
/// those that pass; the others are logged (a collector bug) and counted.
pub fn append_validated(
    origin: &str,
    events: &[Event],
    out: &dyn Appender,
) -> Result<Flushed, CucmError> {
    let mut ndjson = Vec::new();
    for e in events {
        ndjson.extend_from_slice(e.to_json().as_bytes());
        ndjson.push(b'\n');
    }
    let parsed = frontend::parse_lines(origin, &ndjson, Utc::now());
    for r in &parsed.rejects {
        tracing::error!(reject = ?r, "a collector produced an invalid event");
    }
    let r = out.append(&parsed.events)?;
    Ok(Flushed {
        stored: r.accepted + r.duplicates,
        rejected: parsed.rejects.len(),
    })
}
