//! Subscriptions: the log tells each subscriber what became durable, in order, so that
//! derived state can follow the log without polling it or re-reading it.
//!
//! A subscriber gets a [`Snapshot`](crate::Snapshot) and a [`Subscription`] taken at the same
//! instant ([`Log::subscribe`](crate::Log::subscribe)): the snapshot holds every event up to
//! that instant, and the subscription every later [`Notice`], each exactly once and in ingest
//! order. Notices are sent while the log holds its lock (that is what orders them) over an
//! unbounded channel, so a slow subscriber never holds up a writer; it only falls behind.

use std::sync::mpsc;
use std::time::Duration;

use arrow::array::RecordBatch;

use crate::manifest::SegmentMeta;

/// What became durable.
#[derive(Debug, Clone)]
pub enum Notice {
    /// The events one append stored, stamped with their `ingest_seq` and `ingest_time`, in
    /// ingest order. Sent after the WAL record is synced, before the append returns.
    Appended(RecordBatch),
    /// A segment was committed: the events it covers (by `ingest_seq`) moved from the
    /// unrolled tail into it. What the log holds did not change.
    Rolled(SegmentMeta),
    /// A compaction replaced adjacent segments (`merged`, by file name, oldest first) by one
    /// holding the same events (`into`), at their place. What the log holds did not change.
    Compacted {
        /// The files replaced.
        merged: Vec<String>,
        /// The segment that holds their events now.
        into: SegmentMeta,
    },
    /// Retention removed the raw events of these segments (by file name): their files are
    /// going; their digests and key runs stay (see [`Log::retire`](crate::Log::retire)).
    Retired(Vec<String>),
    /// Retention of intervals folded the digests of these segments (by file name) into
    /// the log's new base (see [`Log::fold`](crate::Log::fold)).
    Folded {
        /// The segments folded by this fold.
        segments: Vec<String>,
        /// The base now.
        base: crate::manifest::Base,
    },
}

/// The receiving end of a subscription. Dropping it unsubscribes.
pub struct Subscription {
    rx: mpsc::Receiver<Notice>,
}

impl Subscription {
    /// The next notice, waiting for it; `None` once the log is closed.
    pub fn recv(&self) -> Option<Notice> {
        self.rx.recv().ok()
    }

    /// The next notice, waiting at most `timeout`; `Ok(None)` when none came, `Err(())`
    /// once the log is closed and every notice was received.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Notice>, Closed> {
        match self.rx.recv_timeout(timeout) {
            Ok(n) => Ok(Some(n)),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(Closed),
        }
    }

    /// The next notice if one was sent, without waiting.
    pub fn try_recv(&self) -> Option<Notice> {
        self.rx.try_recv().ok()
    }

    /// Every notice already sent, without waiting.
    pub fn drain(&self) -> Vec<Notice> {
        self.rx.try_iter().collect()
    }
}

/// The log was closed: no more notices will come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// The sending side, kept in the log's state.
#[derive(Default)]
pub(crate) struct Notifier {
    subscribers: Vec<mpsc::Sender<Notice>>,
}

impl Notifier {
    /// A new subscription (the caller holds the log's lock and takes the snapshot with it).
    pub(crate) fn subscribe(&mut self) -> Subscription {
        let (tx, rx) = mpsc::channel();
        self.subscribers.push(tx);
        Subscription { rx }
    }

    /// Sends `notice` to every subscriber still listening.
    pub(crate) fn send(&mut self, notice: &Notice) {
        self.subscribers.retain(|s| s.send(notice.clone()).is_ok());
    }

    /// Whether anyone listens (so that a notice need not be built).
    pub(crate) fn any(&self) -> bool {
        !self.subscribers.is_empty()
    }
}
