//! `callstate demo`: a mid-size cluster simulated into a fresh log and served. Live (the
//! default): today so far is backfilled, then the simulation keeps running at the clock's
//! pace and posts to the collector, so dashboards move and failovers are seen as they
//! happen. `--static`: one simulated day, ingested, with its ground truth.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use callstate_log::{Log, LogOptions, LogStats};
use callstate_schemas::{Event, KnownCause, format_instant, parse_duration};
use callstate_server::ServerConfig;
use callstate_sim::scenario::Fault;
use chrono::{DateTime, NaiveTime, Utc};

use crate::cmd_sim::{LogWriter, scenario, summary};
use crate::live_feed;
use crate::out::outln;

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
    /// Address the API listens on afterwards (port 0 picks a free port).
    #[arg(long, env = "CALLSTATE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Stop after ingesting (print CLI commands instead of serving the API); implies
    /// `--static`.
    #[arg(long)]
    pub no_serve: bool,
    /// The fixed simulated day (2026-11-24) with its ground truth, served unchanged, instead
    /// of today going on live.
    #[arg(long = "static")]
    pub fixed: bool,
    /// Simulated seconds per wall-clock second once live (event times run ahead of the clock
    /// above 1).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Crash a CUCM node this long (wall clock) after going live, e.g. `5m`; it comes back
    /// 10 simulated minutes later and its devices re-home.
    #[arg(long)]
    pub fault_in: Option<String>,
}

/// The node `--fault-in` crashes.
const FAULT_NODE: &str = "CL1-cucm2";

const MARKER: &str = "callstate-demo.truth.json";

/// `callstate demo`.
pub fn demo(args: DemoArgs) -> anyhow::Result<()> {
    clear(&args.data)?;
    if args.fixed || args.no_serve {
        static_demo(args)
    } else {
        live_demo(args)
    }
}

/// Removes an earlier demo's directory (refusing any other non-empty one).
fn clear(dir: &std::path::Path) -> anyhow::Result<()> {
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
    Ok(())
}

/// A progress bar on a terminal, hidden otherwise.
fn progress(total: u64) -> ProgressBar {
    if std::io::stderr().is_terminal() {
        ProgressBar::new(total).with_style(
            ProgressStyle::with_template(
                "{spinner} simulated {msg} {wide_bar} {percent}% [{elapsed_precise}, eta {eta}]",
            )
            .expect("valid template"),
        )
    } else {
        ProgressBar::hidden()
    }
}

/// The fixed day, with its ground truth.
fn static_demo(args: DemoArgs) -> anyhow::Result<()> {
    let dir = &args.data;
    let sc = scenario("demo", Some(args.devices), None)?;
    let start = sc.start_time()?;
    let end = sc.end_time()?;
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
    let pb = progress(total);
    let mut n = 0u64;
    let truth = callstate_sim::run(&sc, args.seed, &mut |e: &Event| {
        writer.push(e)?;
        n += 1;
        if n.is_multiple_of(8192) {
            pb.set_position((e.time - start).num_seconds().clamp(0, total as i64) as u64);
            pb.set_message(format!("{} ({n} events)", e.time.format("%H:%M")));
        }
        Ok(())
    })?;
    writer.flush()?;
    log.wait_idle()?;
    pb.finish_and_clear();
    std::fs::write(dir.join(MARKER), serde_json::to_vec(&truth)?)?;

    let stats = LogStats::of(&log.snapshot())?;
    let s = summary(&truth);
    outln!(
        "\nIngested {} events ({} duplicates dropped by the log) into {}.",
        stats.events,
        writer.duplicates,
        dir.display()
    )?;
    outln!(
        "{} devices, {} calls, {} failovers, {} re-homes, {} maintenance window(s).\n",
        s["devices"],
        s["calls"],
        s["failovers"],
        s["rehomes"],
        s["maintenance_windows"]
    )?;
    outln!("What happened (ground truth of the simulator):")?;
    for inc in truth.incidents.iter().filter(|i| !i.devices.is_empty()) {
        let r = &inc.recovery;
        let secs = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.0}s"));
        outln!(
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
        )?;
    }
    for w in &truth.maintenance_windows {
        outln!(
            "  maintenance {} {} {}..{} ({})",
            w.scope,
            w.target,
            w.start.format("%H:%M"),
            w.end.format("%H:%M"),
            w.reason
        )?;
    }
    let exe = std::env::args()
        .next()
        .unwrap_or_else(|| "callstate".into());
    let d = dir.display().to_string();
    let day_from = start.format("%Y-%m-%dT00:00:00Z").to_string();
    let day_to = (start + chrono::Duration::days(1))
        .format("%Y-%m-%dT00:00:00Z")
        .to_string();
    let after = |cause: &str| {
        truth
            .incidents
            .iter()
            .find(|i| i.cause == cause && !i.devices.is_empty())
            .and_then(|i| {
                Some((
                    i.start? + chrono::Duration::seconds(20),
                    i.devices[0].clone(),
                ))
            })
    };
    let at_ts = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let (node_at, node_device) = after(KnownCause::NodeFailure.as_str())
        .map(|(t, dev)| (at_ts(t), dev))
        .unwrap_or_else(|| (day_from.clone(), String::new()));
    let cti_at = after(KnownCause::CtimanagerFailure.as_str())
        .map_or_else(|| day_from.clone(), |(t, _)| at_ts(t));
    outln!("The ground truth is in {}.", dir.join(MARKER).display())?;
    if args.no_serve {
        outln!("\nTry:")?;
        outln!("  {exe} incidents --from {day_from} --to {day_to} --data {d}")?;
        outln!(
            "      # the incidents above, detected from the log: recovery 50/90/100%, failovers, re-homes"
        )?;
        outln!("  {exe} state --at {node_at} --data {d}")?;
        outln!(
            "      # every device 20 s into the node failure: out of service, or on a backup node"
        )?;
        outln!("  {exe} sla --from {day_from} --to {day_to} --group-by node --data {d}")?;
        outln!("      # availability per home node against 99.9%, error budget, outages, MTTR")?;
        outln!(
            "  {exe} sql \"SELECT state, count(*) FROM device_state_at(TIMESTAMP '{cti_at}') GROUP BY state\" --data {d}"
        )?;
        outln!("      # the fleet during the CTIManager failover")?;
        return Ok(());
    }
    let log = Arc::new(log);
    crate::cmd_serve::run(
        log,
        &args.listen,
        ServerConfig::default(),
        None,
        Vec::new(),
        Vec::new(),
        Some(Duration::from_secs(
            crate::cmd_serve::DEFAULT_COMPACT_EVERY_S,
        )),
        crate::cmd_serve::Retention::default(),
        |addr| {
            let u = format!("http://{addr}");
            let _ =
                outln!("\nThe API is up on {u} (Ctrl-C stops it; the data stays in {d}). Try:\n");
            let _ = outln!("  curl -s '{u}/api/v1/incidents?from={day_from}&to={day_to}'");
            let _ = outln!(
                "      # the incidents above, detected from the log: recovery 50/90/100%, failovers, re-homes"
            );
            let _ = outln!(
                "  curl -s '{u}/api/v1/state?at={node_at}&state=out_of_service&format=csv' | head"
            );
            let _ = outln!(
                "      # devices still out of service 20 s into the node failure (JSON adds counts per state)"
            );
            if !node_device.is_empty() {
                let _ = outln!(
                    "  curl -s '{u}/api/v1/devices/{node_device}/timeline?from={day_from}&to={day_to}'"
                );
                let _ = outln!(
                    "      # one affected device: its events and state intervals, failover and re-home"
                );
            }
            let _ = outln!(
                "  curl -s '{u}/api/v1/sla?from={day_from}&to={day_to}&group_by=node&format=csv'"
            );
            let _ = outln!(
                "      # availability per home node against 99.9%, error budget, outages, MTTR"
            );
            let _ = outln!(
                "  curl -s {u}/api/v1/query -H 'Content-Type: text/plain' -d \"SELECT state, count(*) AS devices FROM device_state_at('{cti_at}') GROUP BY state\""
            );
            let _ = outln!("      # SQL: the fleet during the CTIManager failover");
            let _ = outln!("  curl -s {u}/metrics | grep callstate_devices");
            let _ = outln!(
                "      # Prometheus metrics; the API's description is at {u}/api/v1/openapi.json"
            );
        },
    )?;
    Ok(())
}

/// Today so far, backfilled; then live.
fn live_demo(args: DemoArgs) -> anyhow::Result<()> {
    if !(args.speed.is_finite() && args.speed > 0.0) {
        bail!("--speed: {} is not a positive number", args.speed);
    }
    let dir = &args.data;
    let now = Utc::now();
    let midnight = now.date_naive().and_time(NaiveTime::MIN).and_utc();
    let mut sc = scenario("demo", Some(args.devices), None)?;
    sc.start = format_instant(midnight.timestamp_micros());
    sc.duration = "3650d".into();
    if let Some(f) = &args.fault_in {
        let wall = parse_duration(f).map_err(|e| anyhow::anyhow!("--fault-in: {e}"))?;
        let offset =
            (now - midnight).num_microseconds().unwrap_or(0) as f64 + wall as f64 * args.speed;
        sc.faults.push(Fault::NodeCrash {
            at: format!("{}s", (offset / 1e6).round() as i64),
            node: FAULT_NODE.into(),
            down_for: "10m".into(),
        });
    }
    eprintln!(
        "callstate demo: {} devices of cluster CL1, today from 00:00 UTC to now backfilled into {}, then live (seed {}, speed ×{})",
        args.devices,
        dir.display(),
        args.seed,
        args.speed
    );
    let log = Arc::new(Log::open(dir, LogOptions::default())?);
    std::fs::write(
        dir.join(MARKER),
        serde_json::to_vec(
            &serde_json::json!({"live": true, "start": format_instant(midnight.timestamp_micros())}),
        )?,
    )?;
    let pb = progress((now - midnight).num_seconds().max(1) as u64);
    let bar = pb.clone();
    let (mut feed, done) = live_feed::start(
        sc.clone(),
        args.seed,
        log.clone(),
        now,
        args.speed,
        move |t, n| {
            bar.set_position((t - midnight).num_seconds().max(0) as u64);
            bar.set_message(format!("{} ({n} events)", t.format("%H:%M")));
        },
    )?;
    pb.finish_and_clear();
    outln!(
        "\nBackfilled {} events of today, 00:00 to {} UTC ({} duplicates dropped by the log), into {}.",
        done.accepted,
        now.format("%H:%M:%S"),
        done.duplicates,
        dir.display()
    )?;
    outln!("Faults of the day (simulated time, UTC):")?;
    for (at, what) in faults(&sc, midnight)? {
        let when = if at <= now { "happened" } else { "coming " };
        outln!("  {when} {} {what}", at.format("%H:%M:%S"))?;
    }
    let day_from = midnight.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let day_to = (midnight + chrono::Duration::days(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let d = dir.display().to_string();
    let result = crate::cmd_serve::run(
        log,
        &args.listen,
        ServerConfig::default(),
        None,
        Vec::new(),
        Vec::new(),
        Some(Duration::from_secs(
            crate::cmd_serve::DEFAULT_COMPACT_EVERY_S,
        )),
        crate::cmd_serve::Retention::default(),
        |addr| {
            feed.post_to(addr);
            let u = format!("http://{addr}");
            let _ = outln!(
                "\nThe API is up on {u} and live: the simulation runs on at ×{} and posts its events to the collector, POST /api/v1/events (Ctrl-C stops it; the data stays in {d}). Try:\n",
                args.speed
            );
            let _ = outln!("  curl -s '{u}/api/v1/state?format=csv' | head");
            let _ =
                outln!("      # every device now (the answer follows the events as they arrive)");
            let _ = outln!("  curl -s '{u}/api/v1/incidents?from={day_from}&to={day_to}'");
            let _ = outln!(
                "      # today's incidents so far: recovery 50/90/100%, failovers, re-homes; a new one appears as it happens"
            );
            let _ = outln!(
                "  curl -s '{u}/api/v1/sla?from={day_from}&to={day_to}&group_by=node&format=csv'"
            );
            let _ = outln!(
                "      # availability per home node against 99.9% today, error budget, outages, MTTR"
            );
            let _ = outln!("  curl -s {u}/metrics | grep -E 'callstate_(devices|ingest)'");
            let _ = outln!(
                "      # Prometheus metrics; Grafana: see dashboards/ (the API's description is at {u}/api/v1/openapi.json)"
            );
        },
    );
    feed.stop();
    result
}

/// The scenario's faults with their simulated times, in time order.
fn faults(
    sc: &callstate_sim::Scenario,
    start: DateTime<Utc>,
) -> anyhow::Result<Vec<(DateTime<Utc>, String)>> {
    let at = |offset: &str| -> anyhow::Result<DateTime<Utc>> {
        let us = parse_duration(offset).map_err(|e| anyhow::anyhow!("faults: {e}"))?;
        Ok(start + chrono::Duration::microseconds(us))
    };
    let mut out = Vec::new();
    for f in &sc.faults {
        out.push(match f {
            Fault::NodeCrash { at: a, node, down_for } => {
                (at(a)?, format!("node {node} crashes for {down_for}"))
            }
            Fault::CtimanagerCrash { at: a, reconnect_after, .. } => (
                at(a)?,
                format!("the CTIManager of the bridge's provider crashes (reconnect after {reconnect_after})"),
            ),
            Fault::Maintenance { at: a, duration, scope, target, restart, .. } => (
                at(a)?,
                format!(
                    "maintenance of {scope} {target} for {duration}{}",
                    if *restart { ", restarted inside it" } else { "" }
                ),
            ),
            Fault::SiteOutage { at: a, site, duration } => {
                (at(a)?, format!("site {site} loses its network for {duration}"))
            }
            Fault::RollingUpgrade { at: a, per_node, .. } => {
                (at(a)?, format!("rolling upgrade, {per_node} per node"))
            }
            Fault::CollectorSilence { at: a, duration, .. } => {
                (at(a)?, format!("the bridge goes silent for {duration}"))
            }
            Fault::DeviceFlap { at: a, count, .. } => (at(a)?, format!("{count} devices flap")),
            Fault::RegistrationFailure { at: a, count, .. } => {
                (at(a)?, format!("{count} devices fail to register"))
            }
        });
    }
    out.sort_by_key(|x| x.0);
    Ok(out)
}
