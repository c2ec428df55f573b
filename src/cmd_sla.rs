//! `callstate availability` and `callstate sla`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use arrow::array::RecordBatch;
use clap::Args;
use serde::Serialize;

use callstate_log::Snapshot;
use callstate_query::model::calendar::report_windows;
use callstate_query::model::fleet::Fleet;
use callstate_query::model::frozen::Edges;
use callstate_query::model::incidents::{IncidentOptions, detect};
use callstate_query::model::sla::{GroupBy, Targets, availability_over, sla_over};
use callstate_query::tables;
use callstate_query::{Cancel, Derived};

use crate::answer::{Format, print};
use crate::cmd_query::parse_instant;
use crate::out::outln;

/// Window and grouping shared by `availability` and `sla`.
#[derive(Args)]
pub struct WindowArgs {
    /// Window start (inclusive): RFC 3339 or epoch milliseconds.
    #[arg(long)]
    pub from: String,
    /// Window end (exclusive).
    #[arg(long)]
    pub to: String,
    /// device, device_pool, node (home node), cluster or device_type.
    #[arg(long, default_value = "device_pool")]
    pub group_by: String,
    /// Split the window into calendar periods: day, week or month.
    #[arg(long)]
    pub period: Option<String>,
    /// IANA time zone of the calendar periods.
    #[arg(long, default_value = "UTC")]
    pub tz: String,
    /// Answer with what had been ingested by then (RFC 3339 or epoch ms).
    #[arg(long)]
    pub known_at: Option<String>,
    /// exact, or hours: an edge inside an hour before the horizon of retention of
    /// intervals (where only hourly rollups are kept) is moved inward to the whole hour
    /// (the rows' window bounds say so), where exact refuses it.
    #[arg(long, default_value = "exact")]
    pub edges: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    #[command(flatten)]
    pub data: crate::DataArgs,
}

/// `callstate sla` arguments.
#[derive(Args)]
pub struct SlaArgs {
    #[command(flatten)]
    pub window: WindowArgs,
    /// SLA targets file (TOML: `default = 0.999`, `[targets.device_pool] "DP-HQ" = 0.9995`).
    #[arg(long)]
    pub targets: Option<PathBuf>,
}

fn emit<T: Serialize>(
    rows: &[T],
    batch: impl FnOnce(&[T]) -> RecordBatch,
    format: Format,
) -> anyhow::Result<()> {
    match format {
        // Exact numbers and nulls, straight from the rows.
        Format::Json => outln!("{}", serde_json::to_string(rows)?)?,
        _ => print(&[batch(rows)], format)?,
    }
    Ok(())
}

struct Prepared {
    derived: Derived,
    windows: Vec<(i64, i64)>,
    by: GroupBy,
}

fn prepare(w: &WindowArgs, data: &Path) -> anyhow::Result<Prepared> {
    let from = parse_instant(&w.from).context("--from")?;
    let to = parse_instant(&w.to).context("--to")?;
    anyhow::ensure!(from < to, "--from must be before --to");
    let by: GroupBy = w.group_by.parse().map_err(anyhow::Error::msg)?;
    let edges: Edges = w
        .edges
        .parse()
        .map_err(anyhow::Error::msg)
        .context("--edges")?;
    let windows = report_windows(from, to, w.period.as_deref(), Some(&w.tz))?;
    let known_at = w.known_at.as_deref().map(parse_instant).transpose()?;
    let derived = Derived::load(Snapshot::load(data)?, known_at, Targets::default(), false)?;
    let windows = derived.availability_windows(windows, edges)?;
    Ok(Prepared {
        derived,
        windows,
        by,
    })
}

/// `callstate availability`.
pub fn availability(w: WindowArgs) -> anyhow::Result<()> {
    let p = prepare(&w, &w.data.data)?;
    let d = &p.derived;
    let out = availability_over(d.devices(), d.windows(), &p.windows, p.by, &Cancel::new())?;
    emit(&out, tables::availability::batch, w.format)
}

/// `callstate sla`.
pub fn sla(args: SlaArgs) -> anyhow::Result<()> {
    let targets = crate::targets::load(args.targets.as_deref())?;
    let w = &args.window;
    let p = prepare(w, &w.data.data)?;
    let d = &p.derived;
    let out = sla_over(
        d.devices(),
        d.windows(),
        &p.windows,
        p.by,
        &targets,
        &Cancel::new(),
    )?;
    emit(&out, tables::sla::batch, w.format)
}

/// `callstate incidents` arguments.
#[derive(Args)]
pub struct IncidentArgs {
    /// Window start (incidents starting in [from, to)).
    #[arg(long)]
    pub from: String,
    /// Window end.
    #[arg(long)]
    pub to: String,
    /// Fewest devices that make an incident.
    #[arg(long, default_value_t = 5)]
    pub min_devices: usize,
    /// Longest gap between consecutive outage starts of one incident, seconds.
    #[arg(long, default_value_t = 60)]
    pub window_s: i64,
    /// Output format (json carries the device lists, failovers and re-homes).
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    #[command(flatten)]
    pub data: crate::DataArgs,
}

/// `callstate incidents`.
pub fn incidents(a: IncidentArgs) -> anyhow::Result<()> {
    let from = parse_instant(&a.from).context("--from")?;
    let to = parse_instant(&a.to).context("--to")?;
    let derived = Derived::load(
        Snapshot::load(&a.data.data)?,
        None,
        Targets::default(),
        true,
    )?;
    let opts = IncidentOptions {
        min_devices: a.min_devices.max(1),
        window_us: a.window_s.max(0) * 1_000_000,
    };
    let found = detect(&derived, from, to, &opts, &Cancel::new())?;
    emit(&found, tables::incidents::batch, a.format)
}
