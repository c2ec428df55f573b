//! `callstate report`: the monthly SLA report as one self-contained HTML file.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use callstate_log::Snapshot;
use callstate_query::model::sla::GroupBy;
use callstate_query::{Cancel, Derived};
use callstate_report::{Month, ReportOptions, build, html};

use crate::cmd_query::parse_instant;

/// `callstate report` arguments.
#[derive(Args)]
pub struct ReportArgs {
    /// Report period (only `month`, for now).
    #[arg(long, default_value = "month")]
    pub period: String,
    /// The month, `YYYY-MM`.
    #[arg(long)]
    pub month: String,
    /// IANA time zone of the month and its days.
    #[arg(long, default_value = "UTC")]
    pub tz: String,
    /// Groups inside each cluster: device_pool, node or device_type.
    #[arg(long, default_value = "device_pool")]
    pub group_by: String,
    /// SLA targets: callstate TOML or OpenSLO v1 YAML (see docs/slo.md).
    #[arg(long)]
    pub targets: Option<PathBuf>,
    /// Report what had been ingested by then (RFC 3339 or epoch ms).
    #[arg(long)]
    pub known_at: Option<String>,
    /// Where to write the HTML (`-`: standard output).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub data: crate::DataArgs,
}

/// `callstate report`.
pub fn report(a: ReportArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.period == "month",
        "--period: `{}` is not supported; the report covers a calendar month (--period month)",
        a.period
    );
    let month = Month::parse(&a.month, &a.tz)?;
    let by: GroupBy = a
        .group_by
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--group-by: {e}"))?;
    let targets = crate::targets::load(a.targets.as_deref())?;
    let known_at = a.known_at.as_deref().map(parse_instant).transpose()?;
    let derived = Derived::load(Snapshot::load(&a.data.data)?, known_at, targets, true)?;
    let now = chrono::Utc::now().timestamp_micros();
    let r = build(
        &derived,
        &ReportOptions::new(month, by, now),
        &Cancel::new(),
    )?;
    let page = html::render(&r);
    if a.out.as_os_str() == "-" {
        crate::out::outln!("{page}")?;
    } else {
        std::fs::write(&a.out, page)
            .with_context(|| format!("cannot write {}", a.out.display()))?;
        eprintln!(
            "report {} ({}): {} cluster(s) written to {}",
            r.month,
            r.tz,
            r.clusters.len(),
            a.out.display()
        );
    }
    Ok(())
}
