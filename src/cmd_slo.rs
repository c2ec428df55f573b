//! `callstate slo`: SLO alerting rules from the SLA targets (callstate TOML or OpenSLO YAML).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use callstate_query::model::sla::Targets;
use callstate_report::slo::objectives::DEFAULT_PERIOD;
use callstate_report::slo::{Objectives, grafana, prometheus};
use callstate_schemas::parse_positive_duration;

/// `callstate slo` actions.
#[derive(Subcommand)]
pub enum SloAction {
    /// Prometheus recording and alerting rules (multi-window, multi-burn-rate) per target.
    Rules(RulesArgs),
    /// The same alerts as Grafana alert-rule provisioning over the Infinity datasource.
    GrafanaAlerts(OutArgs),
}

/// Where the rules go.
#[derive(Args)]
pub struct OutArgs {
    /// Output file (default: standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `callstate slo rules` arguments.
#[derive(Args)]
pub struct RulesArgs {
    /// SLA targets: callstate TOML or OpenSLO v1 YAML (default: 99.9 % everywhere).
    #[arg(long)]
    pub targets: Option<PathBuf>,
    /// SLO period of the availability and budget recordings (default: the OpenSLO
    /// documents' timeWindow, else 30d).
    #[arg(long)]
    pub period: Option<String>,
    #[command(flatten)]
    pub out: OutArgs,
}

fn write(out: &OutArgs, text: &str) -> anyhow::Result<()> {
    match &out.out {
        None => crate::out::outln!("{}", text.trim_end())?,
        Some(p) => {
            std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?
        }
    }
    Ok(())
}

/// `callstate slo …`.
pub fn slo(action: SloAction) -> anyhow::Result<()> {
    match action {
        SloAction::Rules(a) => {
            let (targets, from_file) = match &a.targets {
                None => (Targets::default(), None),
                Some(p) => crate::targets::load_with_period(p)?,
            };
            let period = match &a.period {
                Some(p) => {
                    parse_positive_duration(p).map_err(|e| anyhow::anyhow!("--period: {e}"))?
                }
                None => from_file.unwrap_or(DEFAULT_PERIOD),
            };
            let o = Objectives::of(&targets, period);
            for n in &o.not_alertable {
                eprintln!(
                    "targets.{n}: no SLI per device or device type; the report honours it, no alert rule can"
                );
            }
            write(&a.out, &prometheus::to_yaml(&o))
        }
        SloAction::GrafanaAlerts(out) => write(&out, &grafana::to_yaml()),
    }
}
