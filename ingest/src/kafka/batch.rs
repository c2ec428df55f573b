//! What the collector and the materializer share: polling a bounded batch, parsing message
//! values into events, the dead-letter topic, and the offsets a batch ends at.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use callstate_log::Outcome;
use callstate_schemas::Event;

use super::KafkaConfig;
use crate::error::{IngestError, Result, kerr};
use crate::frontend::{self, Reject};

/// Header of a dead-lettered message: why it was rejected.
pub const DLQ_HEADER_ERROR: &str = "callstate-error";
/// Header of a dead-lettered message: the field at fault, when one is.
pub const DLQ_HEADER_FIELD: &str = "callstate-field";

/// A polled batch.
pub(crate) struct Polled {
    pub messages: Vec<OwnedMessage>,
    /// Partitions that reported their end during this poll.
    pub eof: Vec<i32>,
}

/// Polls up to `max` messages: waits up to `idle` for the first, then up to `linger` more.
/// Broker errors are transient for librdkafka (it reconnects): they are logged, not fatal.
pub(crate) fn poll_batch<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    max: usize,
    linger: Duration,
    idle: Duration,
) -> Polled {
    let mut out = Polled {
        messages: Vec::new(),
        eof: Vec::new(),
    };
    let mut first: Option<Instant> = None;
    while out.messages.len() < max {
        let timeout = match first {
            None => idle,
            Some(t) => match linger.checked_sub(t.elapsed()) {
                Some(left) => left,
                None => break,
            },
        };
        match consumer.poll(timeout) {
            None => break,
            Some(Ok(m)) => {
                out.messages.push(m.detach());
                first.get_or_insert_with(Instant::now);
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                out.eof.push(p);
                if first.is_none() {
                    break;
                }
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "Kafka consumer error (librdkafka retries)");
                if first.is_none() {
                    break;
                }
            }
        }
    }
    out
}

/// One rejected message, or line of a message.
#[derive(Debug, Clone)]
pub(crate) struct Rejected {
    /// Index of the message in the batch.
    pub message: usize,
    /// Why (its origin names topic, partition and offset; line 0: the whole message).
    pub reject: Reject,
}

/// The events of a batch and what was rejected.
pub(crate) struct Parsed {
    pub events: Vec<Event>,
    /// Per event: (message index, line, raw text).
    origin: Vec<(usize, u64, Box<[u8]>)>,
    pub rejects: Vec<Rejected>,
}

/// Where a message came from, as rejects name it: `topic/partition@offset`.
pub(crate) fn origin(m: &OwnedMessage) -> String {
    format!("{}/{}@{}", m.topic(), m.partition(), m.offset())
}

impl Parsed {
    /// Adds a reject for every event the append refused as a conflict.
    pub fn add_conflicts(&mut self, messages: &[OwnedMessage], outcomes: &[Outcome]) {
        for ((e, (message, line, raw)), o) in self.events.iter().zip(&self.origin).zip(outcomes) {
            if *o == Outcome::Conflict {
                let at = origin(&messages[*message]);
                self.rejects.push(Rejected {
                    message: *message,
                    reject: Reject::conflict(&at, *line, &e.source, e.seq, raw),
                });
            }
        }
    }
}

/// Parses message values: one v1 event each, or several as NDJSON lines (split, capped and
/// validated by the shared front end).
pub(crate) fn parse(messages: &[OwnedMessage]) -> Parsed {
    let now = Utc::now();
    let mut out = Parsed {
        events: Vec::with_capacity(messages.len()),
        origin: Vec::with_capacity(messages.len()),
        rejects: Vec::new(),
    };
    for (i, m) in messages.iter().enumerate() {
        let at = origin(m);
        let whole = |reason: &str, value: &[u8]| Rejected {
            message: i,
            reject: Reject::new(&at, 0, None, reason.into(), value),
        };
        let Some(value) = m.payload() else {
            out.rejects.push(whole("empty message (no value)", b""));
            continue;
        };
        let p = frontend::parse_lines(&at, value, now);
        if p.events.is_empty() && p.rejects.is_empty() {
            out.rejects
                .push(whole("empty message (blank value)", value));
            continue;
        }
        for ((e, line), raw) in p.events.into_iter().zip(p.lines).zip(p.raws) {
            out.events.push(e);
            out.origin.push((i, line, raw));
        }
        out.rejects.extend(
            p.rejects
                .into_iter()
                .map(|reject| Rejected { message: i, reject }),
        );
    }
    out
}

/// Next offset per partition after a batch (what to commit or store).
pub(crate) fn next_offsets(messages: &[OwnedMessage]) -> BTreeMap<(String, i32), i64> {
    let mut out = BTreeMap::new();
    for m in messages {
        let e = out
            .entry((m.topic().to_string(), m.partition()))
            .or_insert(0);
        *e = (*e).max(m.offset() + 1);
    }
    out
}

/// The offsets of [`next_offsets`] as a list to commit.
pub(crate) fn offset_list(next: &BTreeMap<(String, i32), i64>) -> Result<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
            .map_err(|e| kerr("offsets", e))?;
    }
    Ok(tpl)
}

/// The dead-letter topic: rejected values with the reason in headers.
pub struct Dlq {
    producer: FutureProducer,
    topic: String,
}

impl Dlq {
    /// A producer for `topic` (idempotent, acks=all).
    pub fn new(cfg: &KafkaConfig, topic: &str) -> Result<Dlq> {
        let producer = cfg
            .client(&[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("message.timeout.ms", "60000"),
            ])
            .create()
            .map_err(|e| kerr("creating the dead-letter producer", e))?;
        Ok(Dlq {
            producer,
            topic: topic.to_string(),
        })
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Sends every reject and waits until all are durable.
    pub(crate) fn send(&self, rejects: &[Rejected], messages: &[OwnedMessage]) -> Result<()> {
        let mut pending = Vec::with_capacity(rejects.len());
        for r in rejects {
            let m = &messages[r.message];
            let partition = m.partition().to_string();
            let offset = m.offset().to_string();
            let line = r.reject.line.to_string();
            let mut headers = OwnedHeaders::new()
                .insert(Header {
                    key: DLQ_HEADER_ERROR,
                    value: Some(r.reject.reason.as_str()),
                })
                .insert(Header {
                    key: "callstate-source-topic",
                    value: Some(m.topic()),
                })
                .insert(Header {
                    key: "callstate-source-partition",
                    value: Some(partition.as_str()),
                })
                .insert(Header {
                    key: "callstate-source-offset",
                    value: Some(offset.as_str()),
                })
                .insert(Header {
                    key: "callstate-line",
                    value: Some(line.as_str()),
                });
            if let Some(f) = &r.reject.field {
                headers = headers.insert(Header {
                    key: DLQ_HEADER_FIELD,
                    value: Some(f.as_str()),
                });
            }
            let mut record = FutureRecord::to(&self.topic)
                .payload(r.reject.raw.as_bytes())
                .headers(headers);
            if let Some(k) = m.key() {
                record = record.key(k);
            }
            pending.push(enqueue(&self.producer, record)?);
        }
        wait_all(pending, "dead-letter topic")
    }
}

/// Longest wait for room in a full producer queue before an append fails.
const QUEUE_FULL_WAIT: Duration = Duration::from_secs(60);

/// Enqueues a record, waiting while the producer's queue is full (back-pressure), for at
/// most [`QUEUE_FULL_WAIT`] (then the brokers have been unreachable for long: an error).
pub(crate) fn enqueue<'a, K, P>(
    producer: &FutureProducer,
    mut record: FutureRecord<'a, K, P>,
) -> Result<rdkafka::producer::DeliveryFuture>
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    let start = Instant::now();
    loop {
        match producer.send_result(record) {
            Ok(f) => return Ok(f),
            Err((
                KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                r,
            )) if start.elapsed() < QUEUE_FULL_WAIT => {
                record = r;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(kerr("producing", e)),
        }
    }
}

/// Waits for every delivery; the first failure is the error.
pub(crate) fn wait_all(pending: Vec<rdkafka::producer::DeliveryFuture>, what: &str) -> Result<()> {
    let mut first_err = None;
    for f in pending {
        let r = futures::executor::block_on(f);
        let err = match r {
            Ok(Ok(_)) => continue,
            Ok(Err((e, _))) => kerr(&format!("delivery to the {what}"), e),
            Err(_) => IngestError::Stalled(format!("delivery to the {what}: producer gone")),
        };
        first_err.get_or_insert(err);
    }
    first_err.map_or(Ok(()), Err)
}
