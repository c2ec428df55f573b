//! In-process side of the benchmark harness (`bench/run`): opens a log directory, times the
//! query engine's answers to the benchmark's questions, writes the answers as CSV for the
//! harness to compare with DuckDB's, and prints the timings as JSON.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use serde_json::json;

use callstate_log::Snapshot;
use callstate_query::model::fleet::Fleet;
use callstate_query::model::incidents::{IncidentOptions, detect};
use callstate_query::model::sla::{GroupAvailability, GroupBy, Targets, availability};
use callstate_query::model::state::{state_at, states_at};
use callstate_query::{Cancel, Derived, LogRows};
use callstate_schemas::{format_instant, parse_instant};

/// Times the benchmark's questions in-process.
#[derive(Parser)]
struct Args {
    /// Log data directory.
    #[arg(long)]
    data: PathBuf,
    /// CSV of `device,at` pairs (at: RFC 3339) for the device-state question.
    #[arg(long)]
    pairs: PathBuf,
    /// Instant of the fleet snapshot.
    #[arg(long)]
    at: String,
    /// Window start of availability and incidents.
    #[arg(long)]
    from: String,
    /// Window end.
    #[arg(long)]
    to: String,
    /// Directory for the answers (CSV).
    #[arg(long)]
    out: PathBuf,
}

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

/// Peak resident set of this process so far, bytes (Linux; 0 elsewhere).
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let k = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[k.min(sorted.len() - 1)]
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("")
}

fn availability_csv(rows: &[GroupAvailability], path: &Path) -> anyhow::Result<()> {
    let mut out = String::from(
        "group,devices,in_service_s,out_of_service_s,unknown_s,excluded_s,outages,longest_outage_s\n",
    );
    for r in rows {
        let s = &r.seconds;
        writeln!(
            out,
            "{},{},{},{},{},{},{},{}",
            r.group_key,
            r.devices,
            s.in_service_s,
            s.out_of_service_s,
            s.unknown_s,
            s.excluded_s,
            s.outages,
            s.longest_outage_s
        )?;
    }
    std::fs::write(path, out)?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let instant = |s: &str| Ok::<_, anyhow::Error>(parse_instant(s)?);
    let (at, from, to) = (instant(&a.at)?, instant(&a.from)?, instant(&a.to)?);
    let pairs: Vec<(String, i64)> = std::fs::read_to_string(&a.pairs)
        .with_context(|| a.pairs.display().to_string())?
        .lines()
        .skip(1)
        .map(|l| {
            let (d, t) = l.split_once(',').context("pairs: device,at")?;
            Ok((d.to_string(), instant(t)?))
        })
        .collect::<anyhow::Result<_>>()?;
    std::fs::create_dir_all(&a.out)?;

    // Cold: from the files on disk to the 30-day availability per pool.
    let t = Instant::now();
    let snap = Snapshot::load(&a.data)?;
    let open_s = secs(t);
    let t1 = Instant::now();
    let mut shared = Derived::load(snap, None, Targets::default(), false)?;
    let derive_s = secs(t1);
    let availability_by =
        |shared: &Derived, by| availability(&shared.intervals, &shared.rows.windows, from, to, by);
    let t1 = Instant::now();
    let by_pool = availability_by(&shared, GroupBy::DevicePool);
    let pool_s = secs(t1);
    let cold_sla_s = secs(t);
    let rss_derived = peak_rss();
    let t1 = Instant::now();
    shared.calls = LogRows::load_calls(&shared.snap, None)?;
    let calls_s = secs(t1);
    let rss_calls = peak_rss();
    let shared = shared;
    let cancel = Cancel::new();

    // Warm: the derived state in memory, as `serve` holds it.
    let mut lat = Vec::with_capacity(pairs.len());
    let mut state_out = String::from("device,at,state,node\n");
    for (d, t) in &pairs {
        let t0 = Instant::now();
        let dev = shared
            .device(d)
            .context("a device of the pairs is not in the log")?;
        let row = state_at(&dev, shared.active_calls_known(d, *t), *t);
        lat.push(t0.elapsed().as_secs_f64() * 1e3);
        writeln!(state_out, "{},{},{},{}", d, t, row.state, opt(&row.node))?;
    }
    std::fs::write(a.out.join("state_pairs.csv"), state_out)?;
    lat.sort_by(f64::total_cmp);

    let t1 = Instant::now();
    let fleet = states_at(&shared, at, &cancel)?;
    let fleet_s = secs(t1);
    let mut fleet_out = String::from("device,state,node\n");
    for r in &fleet {
        writeln!(fleet_out, "{},{},{}", r.device, r.state, opt(&r.node))?;
    }
    std::fs::write(a.out.join("fleet.csv"), fleet_out)?;

    let t1 = Instant::now();
    let by_device = availability_by(&shared, GroupBy::Device);
    let device_s = secs(t1);
    let t1 = Instant::now();
    let by_pool_warm = availability_by(&shared, GroupBy::DevicePool);
    let pool_warm_s = secs(t1);
    anyhow::ensure!(by_pool_warm == by_pool, "availability differs between runs");
    availability_csv(&by_device, &a.out.join("availability_device.csv"))?;
    availability_csv(&by_pool, &a.out.join("availability_pool.csv"))?;

    let t1 = Instant::now();
    let found = detect(&shared, from, to, &IncidentOptions::default(), &cancel)?;
    let incidents_s = secs(t1);
    let mut inc_out = String::from("cluster,scope,target,start,devices_affected\n");
    for i in &found {
        let target = if i.scope == "node" { &*i.target } else { "" };
        writeln!(
            inc_out,
            "{},{},{},{},{}",
            i.cluster,
            i.scope,
            target,
            format_instant(i.started_at),
            i.devices_affected
        )?;
    }
    std::fs::write(a.out.join("incidents.csv"), inc_out)?;

    let report = json!({
        "devices": fleet.len(),
        "intervals": shared.intervals.len(),
        "call_legs": shared.calls.len(),
        "incidents": found.len(),
        "open_s": open_s,
        "derive_s": derive_s,
        "call_legs_s": calls_s,
        "sla_pool_cold_s": cold_sla_s,
        "availability_pool_after_derive_s": pool_s,
        "state_p50_ms": percentile(&lat, 0.5),
        "state_p99_ms": percentile(&lat, 0.99),
        "state_pairs": lat.len(),
        "fleet_s": fleet_s,
        "availability_device_s": device_s,
        "availability_pool_s": pool_warm_s,
        "incidents_s": incidents_s,
        "rss_after_derive_bytes": rss_derived,
        "rss_after_call_legs_bytes": rss_calls,
        "rss_peak_bytes": peak_rss(),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
