//! `callstate ingest cdr`: the CDR files the billing server pushes into a directory.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Args;

use callstate_cucm::cdr::{CdrCollector, CdrConfig};

use crate::collector::OutputArgs;
use crate::out::outln;

/// Arguments of `callstate ingest cdr`.
#[derive(Args)]
pub struct IngestCdrArgs {
    /// The directory the billing server pushes `cdr_*` files to (SFTP/FTP target).
    #[arg(long)]
    pub dir: PathBuf,
    /// Cluster id put on every event (files naming another cluster are counted).
    #[arg(long, value_name = "ID")]
    pub cluster: String,
    /// Process the files there now (all taken as complete), then exit.
    #[arg(long)]
    pub once: bool,
    /// Seconds a file's size must stay the same before it is taken [default: 3].
    #[arg(long, default_value_t = 3.0)]
    pub settle_s: f64,
    /// Directory of the processed-file list and the rejects file [default: DATA/collectors].
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `callstate ingest cdr`.
pub fn ingest(args: IngestCdrArgs) -> anyhow::Result<()> {
    if args.cluster.trim().is_empty() {
        anyhow::bail!("--cluster must name the cluster");
    }
    if !(args.settle_s.is_finite() && args.settle_s >= 0.0) {
        anyhow::bail!(
            "--settle-s must be a number of seconds, not {}",
            args.settle_s
        );
    }
    let state = args
        .state_dir
        .clone()
        .unwrap_or_else(|| args.output.data.join("collectors"));
    let mut cfg = CdrConfig::new(&args.cluster, args.dir.clone(), &state);
    cfg.settle = std::time::Duration::from_secs_f64(args.settle_s);
    let (out, log) = args.output.open()?;
    let mut c = CdrCollector::new(cfg, out)?;
    if args.once {
        c.scan(true)?;
    } else {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(crate::signal::shutdown_signal());
            }
            flag.store(true, Ordering::Relaxed);
        });
        c.run(&stop)?;
    }
    if let Some(l) = log {
        l.wait_idle()?;
    }
    let status = c.status().lock().unwrap_or_else(|p| p.into_inner()).clone();
    outln!("{}", serde_json::to_string(&status)?)?;
    Ok(())
}
