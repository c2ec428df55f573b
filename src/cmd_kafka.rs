//! `callstate ingest kafka` (the Kafka collector) and `callstate kafka produce` (NDJSON lines
//! into a topic: a stand-in bridge for tests, demos and replays).

use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use callstate_ingest::Appender;
use callstate_ingest::kafka::{CanonicalProducer, Collector, CollectorOptions, KafkaConfig};
use callstate_log::{Log, LogOptions};

use crate::out::outln;

/// How to reach Kafka.
#[derive(Args, Debug, Clone, Default)]
pub struct KafkaArgs {
    /// Bootstrap brokers (`host:port,...`).
    #[arg(long, env = "CALLSTATE_KAFKA_BROKERS")]
    pub brokers: String,
    /// A librdkafka property `key=value` (security.protocol, sasl.*, timeouts); repeatable.
    #[arg(short = 'X', long = "kafka-option", value_name = "KEY=VALUE")]
    pub options: Vec<String>,
}

impl KafkaArgs {
    /// The client settings.
    pub fn config(&self) -> anyhow::Result<KafkaConfig> {
        Ok(KafkaConfig::new(&self.brokers).with_options(&self.options)?)
    }
}

/// Arguments of `callstate ingest kafka`.
#[derive(Args)]
pub struct IngestKafkaArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// The bridges' topic (v1 events: one JSON event or NDJSON lines per message).
    #[arg(long)]
    pub topic: String,
    /// Consumer group; offsets are committed there after each durable append.
    #[arg(long, default_value = "callstate-collector")]
    pub group: String,
    /// Dead-letter topic for rejected values (reason in the `callstate-error` header)
    /// [default: TOPIC.dlq].
    #[arg(long)]
    pub dlq_topic: Option<String>,
    /// Data directory of the embedded log (unless --canonical-topic).
    #[arg(long, env = "CALLSTATE_DATA", default_value = "callstate-data")]
    pub data: PathBuf,
    /// Append to the Kafka-backed log instead: its canonical topic (`callstate serve
    /// --kafka-topic` materializes it).
    #[arg(long)]
    pub canonical_topic: Option<String>,
    /// Stop once every assigned partition is read to its end.
    #[arg(long)]
    pub until_end: bool,
    /// Most messages per durable append.
    #[arg(long, default_value_t = 16_384)]
    pub batch_max: usize,
    /// Events that make the embedded log write a Parquet segment.
    #[arg(long, default_value_t = LogOptions::default().segment_rows)]
    pub segment_rows: usize,
}

/// Sets the flag on SIGINT/SIGTERM.
fn stop_on_signal() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("callstate-signals".into())
        .spawn(move || {
            rt.block_on(crate::signal::shutdown_signal());
            flag.store(true, Ordering::Relaxed);
        })?;
    Ok(stop)
}

/// `callstate ingest kafka`.
pub fn ingest(args: IngestKafkaArgs) -> anyhow::Result<()> {
    let cfg = args.kafka.config()?;
    let mut log = None;
    let sink: Arc<dyn Appender> = match &args.canonical_topic {
        Some(t) => Arc::new(CanonicalProducer::new(&cfg, t)?),
        None => {
            let l = Arc::new(
                Log::open(
                    &args.data,
                    LogOptions {
                        segment_rows: args.segment_rows,
                    },
                )
                .with_context(|| format!("cannot open the log in {}", args.data.display()))?,
            );
            log = Some(l.clone());
            l
        }
    };
    let mut opts = CollectorOptions::new(&args.topic, &args.group);
    if let Some(d) = args.dlq_topic {
        opts.dlq_topic = d;
    }
    opts.until_end = args.until_end;
    opts.batch_max = args.batch_max.max(1);
    let mut collector = Collector::new(&cfg, opts, sink)?;
    let stop = stop_on_signal()?;
    let result = collector.run(&stop, |s| {
        tracing::info!(
            messages = s.messages,
            accepted = s.accepted,
            "batch committed"
        )
    });
    if let Some(l) = log {
        l.wait_idle()?;
    }
    let stats = result.context("the Kafka collector stopped")?;
    outln!("{}", serde_json::to_string(&stats)?)?;
    Ok(())
}

/// Arguments of `callstate kafka produce`.
#[derive(Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Topic to write to.
    #[arg(long)]
    pub topic: String,
    /// NDJSON file or `-` (stdin): one message per non-blank line, keyed by device (else source).
    #[arg(default_value = "-")]
    pub path: String,
}

/// `callstate kafka produce`: every line is sent as it is (invalid ones too: the collector
/// dead-letters them); returns once all are durable.
pub fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    use rdkafka::producer::{
        BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer,
    };
    use std::sync::atomic::AtomicU64;

    /// Counts messages that could not be delivered.
    struct Counting(AtomicU64);
    impl rdkafka::ClientContext for Counting {}
    impl ProducerContext for Counting {
        type DeliveryOpaque = ();
        fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
            if let Err((e, _)) = result {
                tracing::error!(error = %e, "message not delivered");
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    let cfg = args.kafka.config()?;
    let client = cfg.client(&[
        ("enable.idempotence", "true"),
        ("acks", "all"),
        ("partitioner", "murmur2_random"),
        ("linger.ms", "10"),
    ]);
    let producer: ThreadedProducer<Counting> = client
        .create_with_context(Counting(AtomicU64::new(0)))
        .context("creating the producer")?;
    let input: Box<dyn io::Read> = if args.path == "-" {
        Box::new(io::stdin())
    } else {
        Box::new(
            std::fs::File::open(&args.path)
                .with_context(|| format!("cannot open {}", args.path))?,
        )
    };
    let mut sent = 0u64;
    let now = chrono::Utc::now();
    for line in BufReader::new(input).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let key = callstate_schemas::Event::from_json(&line, now)
            .ok()
            .map(|e| e.body.device().unwrap_or(&e.source).to_string());
        let mut record = BaseRecord::<str, str>::to(&args.topic).payload(line.as_str());
        if let Some(k) = &key {
            record = record.key(k.as_str());
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    r,
                )) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(e).context("producing"),
            }
        }
        sent += 1;
    }
    producer
        .flush(Duration::from_secs(60))
        .context("waiting for every message to be delivered")?;
    let failed = producer.context().0.load(Ordering::Relaxed);
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {sent} messages were not delivered to {}",
            args.topic
        );
    }
    outln!(
        "{}",
        serde_json::json!({ "produced": sent, "topic": args.topic })
    )?;
    Ok(())
}
