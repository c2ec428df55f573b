//! The materializer of the Kafka-backed log: consumes the canonical topic into this process's
//! log, storing each partition's next offset in the same durable record as its events. Every
//! assigned partition starts from the offset the log holds for it (from the beginning when it
//! holds none, even if the group committed further: those offsets belong to whichever
//! instance held the partition before), so a restart neither loses nor repeats an event.
//! Several instances in one group split the partitions: each answers for the devices of the
//! partitions it holds (events without a device are in every partition).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::Serialize;

use super::batch::{Dlq, next_offsets, offset_list, parse, poll_batch};
use super::group::{self, GroupConsumer, partitions};
use callstate_log::{Log, Positions};

use super::{KafkaConfig, subscribe};
use crate::error::{Result, kerr};

/// Materializer settings.
#[derive(Debug, Clone)]
pub struct MaterializerOptions {
    /// The canonical topic.
    pub topic: String,
    /// Consumer group of the serve instances that split the topic.
    pub group: String,
    /// Dead-letter topic for values that are not valid events or conflict.
    pub dlq_topic: String,
    /// Most messages per append.
    pub batch_max: usize,
    /// How long a batch waits for more messages once it has one.
    pub linger: Duration,
}

impl MaterializerOptions {
    /// Defaults for `topic` in `group`; rejects go to `TOPIC.dlq`.
    pub fn new(topic: &str, group: &str) -> MaterializerOptions {
        MaterializerOptions {
            topic: topic.to_string(),
            group: group.to_string(),
            dlq_topic: format!("{topic}.dlq"),
            batch_max: 16_384,
            linger: Duration::from_millis(20),
        }
    }
}

/// What the materializer has done, for `/readyz`, metrics and tests.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MaterializerStatus {
    /// Partitions held now.
    pub assigned: Vec<i32>,
    /// Rebalances seen.
    pub rebalances: u64,
    /// Messages consumed.
    pub messages: u64,
    /// Events stored.
    pub accepted: u64,
    /// Copies dropped (broadcast events, re-reads).
    pub duplicates: u64,
    /// Values sent to the dead-letter topic.
    pub rejected: u64,
    /// Why it stopped, if it failed.
    pub failed: Option<String>,
}

/// Assigns partitions at the log's positions, and keeps the status's list of them (from the
/// callbacks: see [`group`] for why the consumer is not asked).
struct PositionsContext {
    log: Arc<Log>,
    status: Arc<Mutex<MaterializerStatus>>,
    cooperative: bool,
}

impl ClientContext for PositionsContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        group::log_client_error(error, reason);
    }
}

impl PositionsContext {
    fn status(&self) -> std::sync::MutexGuard<'_, MaterializerStatus> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `tpl` at the offsets the log holds for its partitions.
    fn at_positions(&self, tpl: &TopicPartitionList) -> KafkaResult<TopicPartitionList> {
        let positions = self.log.positions();
        let mut at = TopicPartitionList::new();
        for e in tpl.elements() {
            let key = position_key(e.topic(), e.partition());
            let offset = positions
                .get(&key)
                .map_or(Offset::Beginning, |&o| Offset::Offset(o));
            tracing::info!(
                partition = e.partition(),
                ?offset,
                "materializing partition"
            );
            at.add_partition_offset(e.topic(), e.partition(), offset)?;
        }
        Ok(at)
    }
}

impl ConsumerContext for PositionsContext {
    fn rebalance(&self, c: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        group::rebalance(c, err, tpl, self.cooperative, |tpl| self.at_positions(tpl));
        let changed = partitions(tpl);
        let mut st = self.status();
        st.rebalances += 1;
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS if self.cooperative => {
                st.assigned.extend(changed)
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => st.assigned = changed,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS if self.cooperative => {
                st.assigned.retain(|p| !changed.contains(p))
            }
            _ => st.assigned.clear(),
        }
        st.assigned.sort_unstable();
        st.assigned.dedup();
    }
}

/// The key of a partition in [`Positions`].
pub fn position_key(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

/// A running materializer (its own thread).
pub struct Materializer {
    stop: Arc<AtomicBool>,
    status: Arc<Mutex<MaterializerStatus>>,
    thread: Option<JoinHandle<()>>,
}

impl Materializer {
    /// Subscribes to the canonical topic (which must exist) and starts consuming into `log`.
    pub fn start(
        cfg: &KafkaConfig,
        opts: MaterializerOptions,
        log: Arc<Log>,
    ) -> Result<Materializer> {
        let status = Arc::new(Mutex::new(MaterializerStatus::default()));
        let consumer: BaseConsumer<PositionsContext> =
            super::consumer_config(cfg, &opts.group, false)
                .create_with_context(PositionsContext {
                    log: log.clone(),
                    status: status.clone(),
                    cooperative: group::cooperative(cfg),
                })
                .map_err(|e| kerr("creating the materializer's consumer", e))?;
        subscribe(&consumer, &opts.topic)?;
        let dlq = Dlq::new(cfg, &opts.dlq_topic)?;
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            consumer: GroupConsumer::new(consumer),
            dlq,
            log,
            opts,
            status: status.clone(),
        };
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("callstate-materializer".into())
            .spawn(move || worker.run(&stop2))
            .map_err(crate::error::IngestError::Thread)?;
        Ok(Materializer {
            stop,
            status,
            thread: Some(thread),
        })
    }

    /// What it has done so far.
    pub fn status(&self) -> MaterializerStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A probe for readiness checks: why the materializer stopped, if it did.
    pub fn failure_probe(&self) -> impl Fn() -> Option<String> + Send + Sync + 'static {
        let status = self.status.clone();
        move || {
            status
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .failed
                .as_ref()
                .map(|f| format!("the Kafka materializer stopped: {f}"))
        }
    }

    /// Stops after the batch in hand (appended or not at all) and leaves the group (waiting
    /// at most [`CLOSE_TIMEOUT`](super::CLOSE_TIMEOUT) for it to let go).
    pub fn stop(mut self) -> MaterializerStatus {
        self.shut_down();
        self.status()
    }

    fn shut_down(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Materializer {
    fn drop(&mut self) {
        self.shut_down();
    }
}

struct Worker {
    consumer: GroupConsumer<PositionsContext>,
    dlq: Dlq,
    log: Arc<Log>,
    opts: MaterializerOptions,
    status: Arc<Mutex<MaterializerStatus>>,
}

impl Worker {
    /// Consumes until `stop`, then leaves the group (dropping the consumer).
    fn run(self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            let polled = poll_batch(
                &self.consumer,
                self.opts.batch_max,
                self.opts.linger,
                Duration::from_millis(100),
            );
            if polled.messages.is_empty() {
                continue;
            }
            if let Err(e) = self.process(&polled.messages) {
                tracing::error!(error = %e, "the materializer stopped");
                self.status.lock().unwrap_or_else(|p| p.into_inner()).failed = Some(e.to_string());
                break;
            }
        }
    }

    fn process(&self, messages: &[rdkafka::message::OwnedMessage]) -> Result<()> {
        let mut parsed = parse(messages);
        let next = next_offsets(messages);
        let positions: Positions = next
            .iter()
            .map(|((t, p), o)| (position_key(t, *p), *o))
            .collect();
        // Events and positions become durable together.
        let res = self.log.append_at(&parsed.events, Some(&positions))?;
        parsed.add_conflicts(messages, &res.outcomes);
        if !parsed.rejects.is_empty() {
            for r in &parsed.rejects {
                tracing::error!(error = %r.reject.reason, value = %r.reject.raw,
                    "canonical topic: rejected value");
            }
            self.dlq.send(&parsed.rejects, messages)?;
        }
        // For lag monitoring only: the log's positions are what a restart uses.
        if let Err(e) = self
            .consumer
            .commit(&offset_list(&next)?, CommitMode::Async)
        {
            tracing::debug!(error = %e, "committing the materializer's offsets for monitoring");
        }
        let mut st = self.status.lock().unwrap_or_else(|p| p.into_inner());
        st.messages += messages.len() as u64;
        st.accepted += res.accepted as u64;
        st.duplicates += res.duplicates as u64;
        st.rejected += parsed.rejects.len() as u64;
        Ok(())
    }
}
