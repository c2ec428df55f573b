//! Kafka: the collector of bridge topics, the canonical topic the Kafka-backed log is made of,
//! and the materializer that turns it into this process's Parquet segments.
//!
//! ```text
//! bridges ──► raw topic ──(Collector: validate, DLQ)──► canonical topic (keyed by device)
//!                                   HTTP POST ─────────►        │
//!                                             (Materializer, one per serve instance)
//!                                                               ▼
//!                                            local log: WAL + segments + offsets
//! ```
//! Offsets of the raw topic are committed to the collector's group only after the append is
//! durable (at-least-once; the log's `(source, seq)` dedupe makes it effectively once). The
//! materializer stores the canonical topic's next offsets in the same WAL record as the
//! events ([`crate::Log::append_at`]) and starts every assigned partition from there.

mod batch;
pub mod canonical;
pub mod collector;
mod group;
pub mod materializer;

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

pub use batch::{DLQ_HEADER_ERROR, DLQ_HEADER_FIELD, Dlq};
pub use canonical::CanonicalProducer;
pub use collector::{Collector, CollectorOptions, CollectorStats};
pub use group::CLOSE_TIMEOUT;
pub use materializer::{Materializer, MaterializerOptions, MaterializerStatus, position_key};

use crate::error::{IngestError, Result, kerr};

/// How to reach the brokers.
#[derive(Debug, Clone, Default)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Further librdkafka properties (`security.protocol`, `sasl.*`, timeouts), applied last.
    pub options: Vec<(String, String)>,
}

impl KafkaConfig {
    /// A config for `brokers` without further options.
    pub fn new(brokers: impl Into<String>) -> KafkaConfig {
        KafkaConfig {
            brokers: brokers.into(),
            options: Vec::new(),
        }
    }

    /// Parses `key=value` options (the `-X` flags).
    pub fn with_options(mut self, options: &[String]) -> Result<KafkaConfig> {
        for o in options {
            let (k, v) = o.split_once('=').ok_or_else(|| {
                IngestError::Config(format!("Kafka option `{o}`: expected key=value"))
            })?;
            self.options
                .push((k.trim().to_string(), v.trim().to_string()));
        }
        Ok(self)
    }

    /// A librdkafka config: `defaults` first, then the brokers and the user's options.
    pub fn client(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut c = ClientConfig::new();
        for (k, v) in defaults {
            c.set(*k, *v);
        }
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.options {
            c.set(k, v);
        }
        c
    }
}

/// A consumer config in `group`: manual commits, from the earliest offset when the group
/// has none, and bounded prefetch (memory stays flat when the log is slower than the topic).
pub(crate) fn consumer_config(cfg: &KafkaConfig, group: &str, eof: bool) -> ClientConfig {
    cfg.client(&[
        ("group.id", group),
        ("enable.auto.commit", "false"),
        ("enable.auto.offset.store", "false"),
        ("auto.offset.reset", "earliest"),
        ("enable.partition.eof", if eof { "true" } else { "false" }),
        ("queued.max.messages.kbytes", "65536"),
    ])
}

/// Subscribes to `topic`, which must exist (a misspelt topic is an error, not a silent wait).
pub(crate) fn subscribe<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
) -> Result<()> {
    partition_count(consumer.client(), topic, Duration::from_secs(10))?;
    consumer
        .subscribe(&[topic])
        .map_err(|e| kerr(&format!("subscribing to {topic}"), e))
}

/// Every message of `topic` from the beginning to its end as of the call (to inspect a
/// dead-letter topic, and for tests).
pub fn read_to_end(cfg: &KafkaConfig, topic: &str) -> Result<Vec<OwnedMessage>> {
    let c: BaseConsumer = consumer_config(cfg, "callstate-reader", true)
        .create()
        .map_err(|e| kerr("creating a reader", e))?;
    let n = partition_count(c.client(), topic, Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    let mut left = BTreeSet::new();
    for p in 0..n {
        let (low, high) = c
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .map_err(|e| kerr(&format!("offsets of {topic}/{p}"), e))?;
        if high > low {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .map_err(|e| kerr("offsets", e))?;
            left.insert(p);
        }
    }
    if left.is_empty() {
        return Ok(Vec::new());
    }
    c.assign(&tpl).map_err(|e| kerr("assigning", e))?;
    let mut out = Vec::new();
    let mut progress = std::time::Instant::now();
    while !left.is_empty() {
        if progress.elapsed() > Duration::from_secs(30) {
            return Err(IngestError::Stalled(format!(
                "reading {topic}: nothing read for 30 s"
            )));
        }
        match c.poll(Duration::from_secs(1)) {
            Some(Ok(m)) => {
                out.push(m.detach());
                progress = std::time::Instant::now();
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                left.remove(&p);
                progress = std::time::Instant::now();
            }
            Some(Err(e)) => tracing::warn!(error = %e, "reading {topic}"),
            None => {}
        }
    }
    Ok(out)
}

/// Partitions of `topic`, or an error naming the topic when it does not exist.
pub(crate) fn partition_count<C: rdkafka::ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<i32> {
    let md = client
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| kerr(&format!("metadata of topic {topic}"), e))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .ok_or_else(|| IngestError::NoTopic(topic.to_string()))?;
    Ok(t.partitions().len() as i32)
}
