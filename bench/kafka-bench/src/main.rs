//! Kafka measurement (bench/kafka): events/s from the canonical topic to a queryable log (the
//! materializer into a fresh data directory), next to the raw consume rate of the same topic
//! with a plain rdkafka consumer in the same run. Uses librdkafka's mock cluster in this
//! process unless `--brokers` names a broker with the topic created; prints JSON.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use callstate_ingest::kafka::{
    CanonicalProducer, KafkaConfig, Materializer, MaterializerOptions, position_key,
};
use callstate_log::{Log, LogOptions};
use callstate_schemas::Event;

#[derive(Parser)]
struct Args {
    /// Bootstrap brokers; without them, librdkafka's mock cluster (in this process, on
    /// loopback) with the topic created.
    #[arg(long)]
    brokers: Option<String>,
    /// The canonical topic (created, empty).
    #[arg(long, default_value = "callstate.events")]
    topic: String,
    /// NDJSON events to load into the topic first.
    #[arg(long)]
    events: PathBuf,
    /// Load at most this many events (the mock cluster keeps 5 MiB per partition).
    #[arg(long)]
    limit: Option<u64>,
    /// Scratch directory for the materialized log.
    #[arg(long)]
    scratch: PathBuf,
}

fn high_watermarks(brokers: &str, topic: &str) -> anyhow::Result<Vec<i64>> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let n = md.topics()[0].partitions().len() as i32;
    (0..n)
        .map(|p| Ok(c.fetch_watermarks(topic, p, Duration::from_secs(10))?.1))
        .collect()
}

/// Reads every message of the topic once with a plain consumer: (messages, bytes, seconds).
fn raw_consume(brokers: &str, topic: &str, hw: &[i64]) -> anyhow::Result<(u64, u64, f64)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "bench-raw")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..hw.len() as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    c.assign(&tpl)?;
    let want: i64 = hw.iter().sum();
    let (mut n, mut bytes) = (0u64, 0u64);
    let t = Instant::now();
    while (n as i64) < want {
        match c.poll(Duration::from_secs(10)) {
            Some(Ok(m)) => {
                n += 1;
                bytes += m.payload().map_or(0, <[u8]>::len) as u64;
            }
            Some(Err(e)) => anyhow::bail!("raw consumer: {e}"),
            None => anyhow::bail!("raw consumer: no message for 10 s at {n} of {want}"),
        }
    }
    Ok((n, bytes, t.elapsed().as_secs_f64()))
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let mock = match &a.brokers {
        Some(_) => None,
        None => {
            let m = rdkafka::mocking::MockCluster::new(1)?;
            m.create_topic(&a.topic, 6, 1)?;
            m.create_topic(&format!("{}.dlq", a.topic), 1, 1)?;
            Some(m)
        }
    };
    let brokers = a
        .brokers
        .clone()
        .unwrap_or_else(|| mock.as_ref().expect("mock").bootstrap_servers());
    let cfg = KafkaConfig::new(&brokers);

    // Load the topic (reported on its own, not part of either figure).
    let reader = BufReader::new(std::fs::File::open(&a.events).context("events file")?);
    let producer = CanonicalProducer::new(&cfg, &a.topic)?;
    let now = chrono::Utc::now();
    let t = Instant::now();
    let mut chunk = Vec::with_capacity(50_000);
    let mut events = 0u64;
    for line in reader.lines().take(a.limit.unwrap_or(u64::MAX) as usize) {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        chunk.push(Event::from_json(&line, now).map_err(|e| anyhow::anyhow!("{e}"))?);
        if chunk.len() == chunk.capacity() {
            producer.send(&chunk)?;
            events += chunk.len() as u64;
            chunk.clear();
        }
    }
    producer.send(&chunk)?;
    events += chunk.len() as u64;
    let produce_s = t.elapsed().as_secs_f64();
    let hw = high_watermarks(&brokers, &a.topic)?;
    let messages: i64 = hw.iter().sum();

    let (raw_n, raw_bytes, raw_s) = raw_consume(&brokers, &a.topic, &hw)?;

    // Topic → queryable: a fresh log and the materializer, until every partition's stored
    // position is at the end (everything durable, visible to the next query).
    let dir = a.scratch.join("materialized");
    let _ = std::fs::remove_dir_all(&dir);
    let log = Arc::new(Log::open(&dir, LogOptions::default())?);
    let t = Instant::now();
    let m = Materializer::start(
        &cfg,
        MaterializerOptions::new(&a.topic, "bench-materializer"),
        log.clone(),
    )?;
    // When the group assigned the partitions (messages read by then): the group join is a
    // one-off cost; fetching, parsing and storing all come after it.
    let mut assigned: Option<(Instant, u64)> = None;
    loop {
        if assigned.is_none() {
            let s = m.status();
            if !s.assigned.is_empty() {
                assigned = Some((Instant::now(), s.messages));
            }
        }
        let p = log.positions();
        if (0..hw.len()).all(|i| p.get(&position_key(&a.topic, i as i32)) == Some(&hw[i])) {
            break;
        }
        if let Some(f) = m.status().failed {
            anyhow::bail!("materializer failed: {f}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let mat_s = t.elapsed().as_secs_f64();
    let (assigned_at, assigned_n) = assigned.unwrap_or((t, 0));
    let join_s = assigned_at.duration_since(t).as_secs_f64();
    let steady_rate = (messages as u64 - assigned_n) as f64 / (mat_s - join_s);
    let status = m.stop();
    let stored = log.snapshot().len();
    let (raw2_n, _, raw2_s) = raw_consume(&brokers, &a.topic, &hw)?;
    let raw_rate = (raw_n as f64 / raw_s).max(raw2_n as f64 / raw2_s);
    let mat_rate = messages as f64 / mat_s;
    println!(
        "{}",
        serde_json::json!({
            "events": events,
            "messages": messages,
            "partitions": hw.len(),
            "produce_s": produce_s,
            "raw_consume_s": [raw_s, raw2_s],
            "raw_bytes": raw_bytes,
            "raw_messages_per_s": raw_rate,
            "materialize_s": mat_s,
            "materialize_messages_per_s": mat_rate,
            "materialize_events_per_s": stored as f64 / mat_s,
            "stored_events": stored,
            "duplicates_dropped": status.duplicates,
            "ratio_materialize_to_raw": mat_rate / raw_rate,
            "materialize_join_s": join_s,
            "materialize_steady_messages_per_s": steady_rate,
            "ratio_steady_to_raw": steady_rate / raw_rate,
            "broker": if mock.is_some() { "librdkafka mock cluster" } else { brokers.as_str() },
        })
    );
    Ok(())
}
