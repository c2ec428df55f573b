//! Delivery: the order in which events reach the collector. Events normally arrive at their
//! event time; delivery faults make some late, out of order or duplicated. These change the
//! stream, never the truth.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use callstate_schemas::Event;

use crate::error::{Sink, SinkError};
use crate::rng::Rng;
use crate::scenario::{DeliverySpec, parse_duration};
use crate::timed::Timed;
use crate::truth::StreamStats;

const SEC: i64 = 1_000_000;

/// Orders events by delivery time and injects delivery faults.
pub struct Delivery {
    rng: Rng,
    late_ratio: f64,
    late_max: i64,
    reorder_ratio: f64,
    duplicate_ratio: f64,
    heap: BinaryHeap<Reverse<Timed<Event>>>,
    /// Events due at the current instant, in emission order. Everything in `heap` is due
    /// later (it was flushed up to now), so these go out first without passing the heap.
    ready: Vec<Event>,
    now: i64,
    order: u64,
    /// Counts so far.
    pub stats: StreamStats,
}

impl Delivery {
    /// Delivery with the faults of `spec`, drawn from `rng`.
    pub fn new(spec: &DeliverySpec, rng: Rng) -> Delivery {
        Delivery {
            rng,
            late_ratio: spec.late_ratio,
            late_max: parse_duration(&spec.late_max)
                .map(|d| d.num_microseconds().unwrap_or(i64::MAX))
                .unwrap_or(5 * 60 * SEC)
                .max(2 * SEC),
            reorder_ratio: spec.reorder_ratio,
            duplicate_ratio: spec.duplicate_ratio,
            heap: BinaryHeap::new(),
            ready: Vec::new(),
            now: i64::MIN,
            order: 0,
            stats: StreamStats::default(),
        }
    }

    fn queue(&mut self, at: i64, event: Event) {
        self.order += 1;
        self.heap.push(Reverse(Timed {
            at,
            order: self.order,
            item: event,
        }));
    }

    /// Queues an event that happened at `now`; `deliver_at` delays it (a replay).
    pub fn push(&mut self, now: i64, deliver_at: Option<i64>, event: Event) {
        self.stats.distinct += 1;
        let mut at = match deliver_at {
            Some(t) => {
                self.stats.replayed += 1;
                t.max(now)
            }
            None => now,
        };
        if self.late_ratio > 0.0 && self.rng.chance(self.late_ratio) {
            at += self.rng.range(SEC, self.late_max);
            self.stats.late += 1;
        } else if self.reorder_ratio > 0.0 && self.rng.chance(self.reorder_ratio) {
            at += self.rng.range(SEC / 10, 5 * SEC);
            self.stats.reordered += 1;
        }
        if self.duplicate_ratio > 0.0 && self.rng.chance(self.duplicate_ratio) {
            let again = at + self.rng.range(0, 60 * SEC);
            self.stats.duplicates += 1;
            self.queue(again, event.clone());
        }
        if at == now && now == self.now {
            self.ready.push(event);
        } else {
            self.queue(at, event);
        }
    }

    /// Delivers everything due at or before `t`.
    pub fn flush_until(&mut self, t: i64, sink: &mut Sink<'_>) -> Result<(), SinkError> {
        for e in self.ready.drain(..) {
            self.stats.events += 1;
            sink(&e)?;
        }
        self.now = t;
        while self.heap.peek().is_some_and(|p| p.0.at <= t) {
            let Reverse(p) = self.heap.pop().expect("peeked");
            self.stats.events += 1;
            sink(&p.item)?;
        }
        Ok(())
    }

    /// Delivers everything left.
    pub fn flush_all(&mut self, sink: &mut Sink<'_>) -> Result<(), SinkError> {
        self.flush_until(i64::MAX, sink)
    }
}
