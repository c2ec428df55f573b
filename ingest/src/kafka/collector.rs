//! `callstate ingest kafka`: consumes bridge events from a topic, validates them, appends them
//! to the log, dead-letters the rejects, and only then commits the offsets.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, TopicPartitionList};
use serde::Serialize;

use super::batch::{Dlq, next_offsets, offset_list, parse, poll_batch};
use super::group::{self, GroupConsumer, partitions};
use super::{KafkaConfig, subscribe};
use crate::appender::Appender;
use crate::error::{Result, kerr};

/// Collector settings.
#[derive(Debug, Clone)]
pub struct CollectorOptions {
    /// The bridges' topic.
    pub topic: String,
    /// Consumer group (committed offsets live there).
    pub group: String,
    /// Dead-letter topic for rejected values.
    pub dlq_topic: String,
    /// Most messages per append.
    pub batch_max: usize,
    /// How long a batch waits for more messages once it has one.
    pub linger: Duration,
    /// Stop once every assigned partition is read to its end (batch runs, tests).
    pub until_end: bool,
}

impl CollectorOptions {
    /// Defaults for `topic` in `group`; rejects go to `TOPIC.dlq`.
    pub fn new(topic: &str, group: &str) -> CollectorOptions {
        CollectorOptions {
            topic: topic.to_string(),
            group: group.to_string(),
            dlq_topic: format!("{topic}.dlq"),
            batch_max: 16_384,
            linger: Duration::from_millis(50),
            until_end: false,
        }
    }
}

/// Counts of a collector run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CollectorStats {
    /// Messages consumed.
    pub messages: u64,
    /// Events stored (or queued in the canonical topic).
    pub accepted: u64,
    /// Events already stored: dropped.
    pub duplicates: u64,
    /// Values or lines sent to the dead-letter topic.
    pub rejected: u64,
    /// Successful offset commits.
    pub commits: u64,
}

/// Applies rebalances at the group's committed offsets, and logs them.
pub(crate) struct CollectorContext {
    cooperative: bool,
}

impl ClientContext for CollectorContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        group::log_client_error(error, reason);
    }
}

impl ConsumerContext for CollectorContext {
    fn rebalance(&self, c: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        group::rebalance(c, err, tpl, self.cooperative, |tpl| Ok(tpl.clone()));
    }
}

/// The Kafka collector.
pub struct Collector {
    consumer: GroupConsumer<CollectorContext>,
    dlq: Dlq,
    sink: Arc<dyn Appender>,
    opts: CollectorOptions,
    stats: CollectorStats,
}

impl Collector {
    /// Subscribes to the topic (which must exist) in the group.
    pub fn new(
        cfg: &KafkaConfig,
        opts: CollectorOptions,
        sink: Arc<dyn Appender>,
    ) -> Result<Collector> {
        let consumer: BaseConsumer<CollectorContext> =
            super::consumer_config(cfg, &opts.group, opts.until_end)
                .create_with_context(CollectorContext {
                    cooperative: group::cooperative(cfg),
                })
                .map_err(|e| kerr("creating the Kafka consumer", e))?;
        subscribe(&consumer, &opts.topic)?;
        let dlq = Dlq::new(cfg, &opts.dlq_topic)?;
        Ok(Collector {
            consumer: GroupConsumer::new(consumer),
            dlq,
            sink,
            opts,
            stats: CollectorStats::default(),
        })
    }

    /// Runs until `stop` is set (or, with `until_end`, every assigned partition is read);
    /// `progress` is called after each committed batch. An append or dead-letter failure
    /// ends the run with an error and without committing that batch.
    pub fn run(
        &mut self,
        stop: &AtomicBool,
        mut progress: impl FnMut(&CollectorStats),
    ) -> Result<CollectorStats> {
        let mut at_end: BTreeSet<i32> = BTreeSet::new();
        while !stop.load(Ordering::Relaxed) {
            let polled = poll_batch(
                &self.consumer,
                self.opts.batch_max,
                self.opts.linger,
                Duration::from_millis(200),
            );
            for m in &polled.messages {
                at_end.remove(&rdkafka::Message::partition(m));
            }
            at_end.extend(polled.eof.iter().copied());
            if !polled.messages.is_empty() {
                self.process(&polled.messages)?;
                progress(&self.stats);
            } else if self.opts.until_end && self.all_at_end(&at_end) {
                break;
            }
        }
        Ok(self.stats.clone())
    }

    fn all_at_end(&self, at_end: &BTreeSet<i32>) -> bool {
        match self.consumer.assignment() {
            Ok(a) if a.count() > 0 => partitions(&a).iter().all(|p| at_end.contains(p)),
            _ => false,
        }
    }

    fn process(&mut self, messages: &[rdkafka::message::OwnedMessage]) -> Result<()> {
        let mut parsed = parse(messages);
        if !parsed.events.is_empty() {
            let res = self.sink.append(&parsed.events)?;
            parsed.add_conflicts(messages, &res.outcomes);
            self.stats.accepted += res.accepted as u64;
            self.stats.duplicates += res.duplicates as u64;
        }
        if !parsed.rejects.is_empty() {
            self.dlq.send(&parsed.rejects, messages)?;
            self.stats.rejected += parsed.rejects.len() as u64;
        }
        self.stats.messages += messages.len() as u64;
        let tpl = offset_list(&next_offsets(messages))?;
        commit(&self.consumer, &tpl, &mut self.stats.commits);
        Ok(())
    }
}

/// Commits `tpl`, retrying transient failures. A commit that still fails is not fatal: the
/// events are durable, a later commit covers them, and a re-read is dropped as duplicates.
pub(crate) fn commit<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    tpl: &TopicPartitionList,
    commits: &mut u64,
) {
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=6 {
        match consumer.commit(tpl, CommitMode::Sync) {
            Ok(()) => {
                *commits += 1;
                return;
            }
            Err(e) if attempt < 6 => {
                tracing::debug!(error = %e, attempt, "offset commit failed; retrying");
                std::thread::sleep(delay);
                delay *= 2;
            }
            Err(e) => tracing::warn!(error = %e,
                "offset commit failed; the next commit covers these events (a re-read is deduplicated)"),
        }
    }
}
