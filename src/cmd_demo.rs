//! `callstate demo`: a realistic day of a mid-size cluster, simulated into a fresh log.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use callstate_ingest::{Log, LogOptions, LogStats};
use callstate_schemas::Event;

use crate::cmd_sim::{LogWriter, scenario, summary};

/// Arguments of `callstate demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// Data directory for the demo log (re-created on every run).
    #[arg(long, default_value = "callstate-demo")]
    pub data: PathBuf,
    /// Simulation seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Devices in the cluster.
    #[arg(long, default_value_t = 3000)]
    pub devices: usize,
}

const MARKER: &str = "callstate-demo.truth.json";

/// `callstate demo`.
pub fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let dir = &args.data;
    if dir.exists() {
        let is_demo = dir.join(MARKER).exists();
        let empty = std::fs::read_dir(dir)?.next().is_none();
        if !is_demo && !empty {
            bail!(
                "{} exists and is not a demo directory; choose another --data",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    let sc = scenario("demo", Some(args.devices), None)?;
    let start = sc.start_time().map_err(anyhow::Error::msg)?;
    let end = sc.end_time().map_err(anyhow::Error::msg)?;
    eprintln!(
        "callstate demo: simulating {} devices of cluster CL1 from {} to {} (seed {}), into {}",
        args.devices,
        start,
        end,
        args.seed,
        dir.display()
    );
    let log = Log::open(dir, LogOptions::default())?;
    let mut writer = LogWriter::new(&log);
    let total = (end - start).num_seconds().max(1) as u64;
    let pb = if std::io::stderr().is_terminal() {
        ProgressBar::new(total).with_style(
            ProgressStyle::with_template(
                "{spinner} simulated {msg} {wide_bar} {percent}% [{elapsed_precise}, eta {eta}]",
            )
            .expect("valid template"),
        )
    } else {
        ProgressBar::hidden()
    };
    let mut n = 0u64;
    let truth = callstate_sim::run(&sc, args.seed, &mut |e: &Event| {
        writer.push(e)?;
        n += 1;
        if n.is_multiple_of(8192) {
            pb.set_position((e.time - start).num_seconds().clamp(0, total as i64) as u64);
            pb.set_message(format!("{} ({n} events)", e.time.format("%H:%M")));
        }
        Ok(())
    })
    .map_err(anyhow::Error::msg)?;
    writer.flush()?;
    log.wait_idle()?;
    pb.finish_and_clear();
    std::fs::write(dir.join(MARKER), serde_json::to_vec(&truth)?)?;

    let stats = LogStats::of(&log.snapshot())?;
    let s = summary(&truth);
    println!(
        "\nIngested {} events ({} duplicates dropped by the log) into {}.",
        stats.events,
        writer.duplicates,
        dir.display()
    );
    println!(
        "{} devices, {} calls, {} failovers, {} re-homes, {} maintenance window(s).\n",
        s["devices"], s["calls"], s["failovers"], s["rehomes"], s["maintenance_windows"]
    );
    println!("What happened (ground truth of the simulator):");
    for inc in truth.incidents.iter().filter(|i| !i.devices.is_empty()) {
        let r = &inc.recovery;
        let secs = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.0}s"));
        println!(
            "  {} {} {} at {}: {} devices out; back 50% {} / 90% {} / 100% {}; {} failed over, {} re-homed ({} waited for calls); calls {} active, {} dropped",
            inc.id,
            inc.cause,
            inc.target,
            inc.start
                .map(|t| t.format("%H:%M:%S").to_string())
                .unwrap_or_default(),
            inc.devices.len(),
            secs(r.p50_s),
            secs(r.p90_s),
            secs(r.p100_s),
            inc.failovers.len(),
            inc.rehomes.len(),
            inc.rehomes.iter().filter(|m| m.waited_for_calls).count(),
            inc.calls_active,
            inc.calls_dropped,
        );
    }
    for w in &truth.maintenance_windows {
        println!(
            "  maintenance {} {} {}..{} ({})",
            w.scope,
            w.target,
            w.start.format("%H:%M"),
            w.end.format("%H:%M"),
            w.reason
        );
    }
    let exe = std::env::args()
        .next()
        .unwrap_or_else(|| "callstate".into());
    let d = dir.display();
    println!("\nTry:");
    println!("  {exe} incidents --from 2026-11-24T00:00:00Z --to 2026-11-25T00:00:00Z --data {d}");
    println!(
        "      # the three incidents above, detected from the log: recovery 50/90/100%, failovers, re-homes"
    );
    println!("  {exe} state --at 2026-11-24T10:15:20Z --data {d}");
    println!(
        "      # every device 20 s into the node failure: out of service, or on a backup node"
    );
    println!(
        "  {exe} sla --from 2026-11-24T00:00:00Z --to 2026-11-25T00:00:00Z --group-by node --data {d}"
    );
    println!("      # availability per home node against 99.9%, error budget, outages, MTTR");
    println!(
        "  {exe} sql \"SELECT state, count(*) FROM device_state_at(TIMESTAMP '2026-11-24T15:40:20Z') GROUP BY state\" --data {d}"
    );
    println!("      # the fleet during the CTIManager failover");
    println!("The ground truth is in {}.", dir.join(MARKER).display());
    Ok(())
}
