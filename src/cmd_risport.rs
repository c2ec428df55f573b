//! `callstate ingest risport` (and the `[[risport]]` pollers of `callstate serve`): the
//! RisPort70 poller's settings, resolved into a [`PollerConfig`] and run until a signal.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;

use callstate_cucm::client::ClientConfig;
use callstate_cucm::{Clock, Inventory, Poller, PollerConfig};
use callstate_ingest::Appender;

use crate::collector::OutputArgs;
use crate::out::outln;

/// Where the password comes from when no file is given.
pub const PASSWORD_ENV: &str = "CALLSTATE_CUCM_PASSWORD";

/// One cluster's poller settings: flags of `ingest risport`, or a `[[risport]]` table of
/// `serve`'s settings file (same names, with underscores).
#[derive(Args, Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RisportSettings {
    /// Node address (`https://HOST:8443`); repeat for fail-over of the poller itself.
    #[arg(long = "cucm", value_name = "URL", required = true)]
    #[serde(default)]
    pub cucm: Vec<String>,
    /// Cluster id put on every event.
    #[arg(long, value_name = "ID")]
    pub cluster: String,
    /// Application user (read-only roles, docs/cucm.md).
    #[arg(long, env = "CALLSTATE_CUCM_USER")]
    pub user: String,
    /// File holding the user's password [default: the CALLSTATE_CUCM_PASSWORD environment
    /// variable]. Never given on the command line, never logged.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// PEM file of the CA (or the self-signed certificate) of the cluster's Tomcat.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate (explicit opt-in; prefer --ca-file).
    #[arg(long)]
    #[serde(default)]
    pub insecure: bool,
    /// Time between the starts of two poll cycles [default: 30s].
    #[arg(long)]
    pub interval: Option<String>,
    /// A full poll at least this often [default: 5m].
    #[arg(long)]
    pub full_poll_every: Option<String>,
    /// RisPort `DeviceClass` to ask for: Any, Phone, Cti, … [default: Any].
    #[arg(long)]
    pub device_class: Option<String>,
    /// RisPort requests per minute at most; the cluster's budget (15 by default) is shared
    /// with RTMT and every other client [default: 10].
    #[arg(long)]
    pub max_requests_per_minute: Option<u32>,
    /// Device names to watch, one per line (no AXL access needed) [default: AXL listPhone].
    #[arg(long)]
    pub names_file: Option<PathBuf>,
    /// AXL `listPhone` name pattern (`%` = every device) [default: %].
    #[arg(long)]
    pub axl_pattern: Option<String>,
    /// Application user whose CTI provider is watched with selectCtiItem; repeatable.
    #[arg(long = "cti-user", value_name = "USER")]
    #[serde(default)]
    pub cti_users: Vec<String>,
    /// Do not read the nodes' "Cisco CTI Manager" PerfMon counters (CTIManager health; provider
    /// events from them when no --cti-user is given).
    #[arg(long)]
    #[serde(default)]
    pub no_perfmon: bool,
    /// Directory of the persisted sequence numbers [default: DATA/collectors].
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Demo only: the poller's clock runs N times faster from --clock-origin, to follow
    /// `callstate simulate --serve-cucm --speed N` (give the origin it printed).
    #[arg(long, requires = "clock_origin", hide_short_help = true)]
    pub clock_speed: Option<f64>,
    /// Demo only: see --clock-speed.
    #[arg(long, hide_short_help = true)]
    pub clock_origin: Option<String>,
}

fn duration(name: &str, v: &Option<String>, default: Duration) -> anyhow::Result<Duration> {
    match v {
        None => Ok(default),
        Some(t) => {
            let us = callstate_schemas::time::parse_positive_duration(t)
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            Ok(Duration::from_micros(us as u64))
        }
    }
}

impl RisportSettings {
    /// The poller's configuration; `data` is the log directory (for the default state dir).
    pub fn config(&self, data: &Path) -> anyhow::Result<PollerConfig> {
        if self.cucm.is_empty() {
            bail!("no CUCM node address: give --cucm https://HOST:8443");
        }
        if self.cluster.trim().is_empty() {
            bail!("--cluster must name the cluster");
        }
        let password = match &self.password_file {
            Some(p) => std::fs::read_to_string(p)
                .with_context(|| format!("cannot read the password file {}", p.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
            None => std::env::var(PASSWORD_ENV).map_err(|_| {
                anyhow::anyhow!("no password: give --password-file or set {PASSWORD_ENV}")
            })?,
        };
        let client = ClientConfig {
            nodes: self.cucm.clone(),
            user: self.user.clone(),
            password,
            ca_file: self.ca_file.clone(),
            insecure: self.insecure,
            timeout: Duration::from_secs(30),
        };
        let state_dir = self
            .state_dir
            .clone()
            .unwrap_or_else(|| data.join("collectors"));
        let seq = state_dir.join(format!("risport-{}.seq", self.cluster));
        let mut cfg = PollerConfig::new(&self.cluster, client, seq);
        cfg.interval = duration("interval", &self.interval, cfg.interval)?;
        cfg.full_poll_every = duration(
            "full_poll_every",
            &self.full_poll_every,
            cfg.full_poll_every,
        )?;
        if let Some(c) = &self.device_class {
            cfg.device_class = c.clone();
        }
        if let Some(n) = self.max_requests_per_minute {
            if n == 0 {
                bail!("max_requests_per_minute must be at least 1");
            }
            cfg.max_requests_per_minute = n;
        }
        cfg.inventory = match &self.names_file {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read the names file {}", p.display()))?;
                let names: Vec<String> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_string)
                    .collect();
                if names.is_empty() {
                    bail!("the names file {} lists no device", p.display());
                }
                Inventory::Names(names)
            }
            None => Inventory::Axl {
                pattern: self.axl_pattern.clone().unwrap_or_else(|| "%".into()),
            },
        };
        cfg.cti_users = self.cti_users.clone();
        cfg.perfmon = !self.no_perfmon;
        Ok(cfg)
    }

    /// The clock: the real one, or the demo's faster one.
    pub fn clock(&self) -> anyhow::Result<Arc<dyn Clock>> {
        crate::collector::clock(self.clock_speed, self.clock_origin.as_deref())
    }
}

/// Runs a poller until `stop` completes, logging its status after every cycle.
pub async fn run(
    cfg: PollerConfig,
    clock: Arc<dyn Clock>,
    out: Arc<dyn Appender>,
    once: bool,
    stop: impl std::future::Future<Output = ()>,
    started: impl FnOnce(Arc<std::sync::Mutex<callstate_cucm::PollerStatus>>),
) -> anyhow::Result<callstate_cucm::PollerStatus> {
    let cluster = cfg.cluster.clone();
    let mut poller = Poller::new(cfg, clock, out)?;
    let status = poller.status();
    started(status.clone());
    if once {
        poller.cycle().await?;
    } else {
        let logger = status.clone();
        let mut last = 0;
        let watch = async {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let s = logger.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if s.cycles != last {
                    last = s.cycles;
                    tracing::info!(cluster = %cluster, status = %serde_json::to_string(&s).unwrap_or_default(), "risport");
                }
            }
        };
        tokio::select! {
            r = poller.run_until(|_| false) => r?,
            _ = stop => {},
            _ = watch => {},
        }
    }
    let s = status.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(s)
}

/// Arguments of `callstate ingest risport`.
#[derive(Args)]
pub struct IngestRisportArgs {
    #[command(flatten)]
    pub settings: RisportSettings,
    #[command(flatten)]
    pub output: OutputArgs,
    /// One poll cycle (inventory, every chunk, providers), then exit.
    #[arg(long)]
    pub once: bool,
}

/// `callstate ingest risport`.
pub fn ingest(args: IngestRisportArgs) -> anyhow::Result<()> {
    let cfg = args.settings.config(&args.output.data)?;
    let clock = args.settings.clock()?;
    let (out, log) = args.output.open()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let status = rt.block_on(run(
        cfg,
        clock,
        out,
        args.once,
        crate::signal::shutdown_signal(),
        |_| {},
    ));
    if let Some(l) = log {
        l.wait_idle()?;
    }
    let status = status?;
    outln!("{}", serde_json::to_string(&status)?)?;
    Ok(())
}
