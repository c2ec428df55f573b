//! `callstate ingest syslog` (and the `[[syslog]]` receivers of `callstate serve`): CUCM's
//! remote-syslog alarms into v1 events.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::bail;
use clap::Args;
use serde::Deserialize;

use callstate_cucm::Clock;
use callstate_cucm::syslog::{SyslogConfig, SyslogReceiver};

use crate::collector::OutputArgs;
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
        crate::collector::clock(self.clock_speed, self.clock_origin.as_deref())
    }
}

/// Arguments of `callstate ingest syslog`.
#[derive(Args)]
pub struct IngestSyslogArgs {
    #[command(flatten)]
    pub settings: SyslogSettings,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `callstate ingest syslog`: receives until a signal, then prints its status.
pub fn ingest(args: IngestSyslogArgs) -> anyhow::Result<()> {
    let cfg = args.settings.config(&args.output.data)?;
    let clock = args.settings.clock()?;
    let (out, log) = args.output.open()?;
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
