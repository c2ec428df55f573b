//! The canonical topic: every accepted event, keyed by device so that one device's events
//! stay in one partition (and one materializer). Events without a device (provider,
//! node, device pool, maintenance, heartbeat) concern every device, so they are written to
//! every partition; a materializer holding several partitions drops the copies as duplicates.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use callstate_schemas::Event;

use super::batch::{enqueue, wait_all};
use callstate_log::{AppendResult, Outcome};

use super::{KafkaConfig, partition_count};
use crate::appender::Appender;
use crate::error::{Result, kerr};

/// How often the partition count is re-read (a topic may grow).
const METADATA_REFRESH: Duration = Duration::from_secs(30);

/// Produces events to the canonical topic: idempotent, `acks=all`; an append returns once
/// every event is durable in Kafka. A full producer queue blocks the caller (back-pressure).
pub struct CanonicalProducer {
    producer: FutureProducer,
    topic: String,
    partitions: Mutex<(i32, Instant)>,
}

impl CanonicalProducer {
    /// Connects and reads the topic's partition count (the topic must exist).
    pub fn new(cfg: &KafkaConfig, topic: &str) -> Result<CanonicalProducer> {
        let producer: FutureProducer = cfg
            .client(&[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                // The Java client's partitioner: a device's partition is the same from any client.
                ("partitioner", "murmur2_random"),
                ("linger.ms", "5"),
                ("message.timeout.ms", "30000"),
                // Bounded buffering: beyond this, appends wait.
                ("queue.buffering.max.kbytes", "65536"),
            ])
            .create()
            .map_err(|e| kerr("creating the canonical-topic producer", e))?;
        let n = partition_count(producer.client(), topic, Duration::from_secs(10))?;
        Ok(CanonicalProducer {
            producer,
            topic: topic.to_string(),
            partitions: Mutex::new((n, Instant::now())),
        })
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    fn partitions(&self) -> i32 {
        let mut p = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        if p.1.elapsed() > METADATA_REFRESH {
            match partition_count(self.producer.client(), &self.topic, Duration::from_secs(5)) {
                Ok(n) => *p = (n, Instant::now()),
                Err(e) => tracing::warn!(error = %e, "keeping the last partition count"),
            }
        }
        p.0
    }

    /// Produces `events` and waits until all are durable.
    pub fn send(&self, events: &[Event]) -> Result<()> {
        let n = self.partitions();
        let mut pending = Vec::with_capacity(events.len());
        for e in events {
            let value = e.to_json();
            let record = FutureRecord::to(&self.topic).payload(value.as_str());
            match e.body.device() {
                Some(d) => pending.push(enqueue(&self.producer, record.key(d))?),
                None => {
                    for p in 0..n {
                        let r = FutureRecord::to(&self.topic)
                            .payload(value.as_str())
                            .key(e.source.as_str())
                            .partition(p);
                        pending.push(enqueue(&self.producer, r)?);
                    }
                }
            }
        }
        wait_all(pending, "canonical topic")
    }

    /// Waits for anything still in flight.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.producer
            .flush(timeout)
            .map_err(|e| kerr("flushing the canonical-topic producer", e))
    }
}

impl Appender for CanonicalProducer {
    fn append(&self, events: &[Event]) -> Result<AppendResult> {
        self.send(events)?;
        Ok(AppendResult {
            outcomes: vec![Outcome::Queued; events.len()],
            accepted: events.len(),
            duplicates: 0,
            conflicts: 0,
        })
    }
}
