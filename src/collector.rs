//! What the CUCM collectors' commands share: where they write (the embedded log or the
//! Kafka canonical topic) and the demo clock that follows a sped-up simulation.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use callstate_cucm::{Clock, WallClock};
use callstate_ingest::Appender;
use callstate_ingest::kafka::{CanonicalProducer, KafkaConfig};
use callstate_log::{Log, LogOptions};

/// A collector's destination, and the log when it is the embedded one (to wait for on exit).
pub type Output = (Arc<dyn Appender>, Option<Arc<Log>>);

/// Where a collector writes.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Data directory of the embedded log.
    #[arg(long, env = "CALLSTATE_DATA", default_value = "callstate-data")]
    pub data: PathBuf,
    /// Write to this canonical Kafka topic instead of the embedded log.
    #[arg(long, requires = "brokers")]
    pub canonical_topic: Option<String>,
    /// Kafka bootstrap brokers (`host:port,...`), with --canonical-topic.
    #[arg(long, env = "CALLSTATE_KAFKA_BROKERS")]
    pub brokers: Option<String>,
    /// A librdkafka property `key=value`; repeatable.
    #[arg(short = 'X', long = "kafka-option", value_name = "KEY=VALUE")]
    pub kafka_options: Vec<String>,
}

impl OutputArgs {
    /// Opens the destination.
    pub fn open(&self) -> anyhow::Result<Output> {
        Ok(match &self.canonical_topic {
            Some(t) => {
                let brokers = self.brokers.clone().unwrap_or_default();
                let kafka = KafkaConfig::new(brokers).with_options(&self.kafka_options)?;
                (Arc::new(CanonicalProducer::new(&kafka, t)?), None)
            }
            None => {
                let l = Arc::new(
                    Log::open(&self.data, LogOptions::default()).with_context(|| {
                        format!("cannot open the log in {}", self.data.display())
                    })?,
                );
                (l.clone(), Some(l))
            }
        })
    }
}

/// The real clock, or (demo) one running `speed` times faster from `origin`.
pub fn clock(speed: Option<f64>, origin: Option<&str>) -> anyhow::Result<Arc<dyn Clock>> {
    Ok(match (speed, origin) {
        (Some(speed), Some(origin)) => {
            let origin = callstate_schemas::parse_time(origin)
                .map_err(|e| anyhow::anyhow!("--clock-origin: {e}"))?;
            Arc::new(WallClock::scaled(origin, speed))
        }
        _ => Arc::new(WallClock::real()),
    })
}
