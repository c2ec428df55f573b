//! `callstate ingest syslog` (and the `[[syslog]]` receivers of `callstate serve`): CUCM's
//! remote-syslog alarms into v1 events.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;

use callstate_cucm::syslog::{SyslogConfig, SyslogReceiver};
use callstate_cucm::{Clock, WallClock};
use callstate_ingest::Appender;
use callstate_ingest::kafka::{CanonicalProducer, KafkaConfig};
use callstate_log::{Log, LogOptions};

use crate::out::outln;

/// One cluster's receiver settings: flags of `ingest syslog`, or a `[[syslog]]` table of
/// `serve`'s settings file (same names, with underscores).
#[derive(Args, Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogSettings {
    /// `udp://ADDR:PORT` or `tcp://ADDR:PORT` (octet-counted or newline framed); repeatable.
    #[arg(long = "listen", value_name = "URL", required = true)]
    #[serde(default)]
    pub listen: Vec<String>,
    /// Cluster id put on every event (alarms naming another ClusterID are counted).
    #[arg(long, value_name = "ID")]
    pub cluster: String,
    /// Application user whose CTI provider alarms become provider events; repeatable.
    #[arg(long = "cti-user", value_name = "USER")]
    #[serde(default)]
    pub cti_users: Vec<String>,
    /// UDP receive buffer to ask for, bytes; the kernel caps it at net.core.rmem_max
    /// [default: 33554432].
    #[arg(long)]
    pub udp_buffer_bytes: Option<usize>,
    /// Directory of the sequence number, the raw side file and the rejects file
    /// [default: DATA/collectors].
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Demo only: the receiver's clock (its heartbeats) runs N times faster from
    /// --clock-origin, to follow `callstate simulate --syslog-to --speed N`.
    #[arg(long, requires = "clock_origin", hide_short_help = true)]
    pub clock_speed: Option<f64>,
    /// Demo only: see --clock-speed.
    #[arg(long, hide_short_help = true)]
    pub clock_origin: Option<String>,
}

impl SyslogSettings {
    /// The receiver's configuration; `data` is the log directory (for the default state dir).
    pub fn config(&self, data: &Path) -> anyhow::Result<SyslogConfig> {
        if self.cluster.trim().is_empty() {
            bail!("--cluster must name the cluster");
        }
        let dir = self
            .state_dir
            .clone()
            .unwrap_or_else(|| data.join("collectors"));
        let mut cfg = SyslogConfig::new(&self.cluster, self.listen.clone(), &dir);
        cfg.cti_users = self.cti_users.clone();
        if let Some(b) = self.udp_buffer_bytes {
            cfg.udp_buffer_bytes = b;
        }
        Ok(cfg)
    }

    /// The clock: the real one, or the demo's faster one.
    pub fn clock(&self) -> anyhow::Result<Arc<dyn Clock>> {
        Ok(match (self.clock_speed, &self.clock_origin) {
            (Some(speed), Some(origin)) => {
                let origin = callstate_schemas::parse_time(origin)
                    .map_err(|e| anyhow::anyhow!("--clock-origin: {e}"))?;
                Arc::new(WallClock::scaled(origin, speed))
            }
            _ => Arc::new(WallClock::real()),
        })
    }
}

/// Arguments of `callstate ingest syslog`.
#[derive(Args)]
pub struct IngestSyslogArgs {
    #[command(flatten)]
    pub settings: SyslogSettings,
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

/// `callstate ingest syslog`: receives until a signal, then prints its status.
pub fn ingest(args: IngestSyslogArgs) -> anyhow::Result<()> {
    let cfg = args.settings.config(&args.data)?;
    let clock = args.settings.clock()?;
    let mut log = None;
    let out: Arc<dyn Appender> = match &args.canonical_topic {
        Some(t) => {
            let brokers = args.brokers.clone().unwrap_or_default();
            let kafka = KafkaConfig::new(brokers).with_options(&args.kafka_options)?;
            Arc::new(CanonicalProducer::new(&kafka, t)?)
        }
        None => {
            let l = Arc::new(
                Log::open(&args.data, LogOptions::default())
                    .with_context(|| format!("cannot open the log in {}", args.data.display()))?,
            );
            log = Some(l.clone());
            l
        }
    };
    let rx = SyslogReceiver::start(cfg, clock, out)?;
    // one line on stdout for scripts to wait for: where it listens
    outln!("{}", serde_json::json!({"listening": rx.bound()}))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(crate::signal::shutdown_signal());
    let status = rx.stop()?;
    if let Some(l) = log {
        l.wait_idle()?;
    }
    outln!("{}", serde_json::to_string(&status)?)?;
    Ok(())
}
