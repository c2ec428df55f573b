//! The SLA targets file every command reads (`serve`, `sla`, `report`, `slo rules`):
//! callstate's TOML, or OpenSLO v1 YAML when it says `apiVersion: openslo/v1`.

use std::path::Path;

use anyhow::Context;

use callstate_query::model::sla::Targets;
use callstate_report::slo::openslo;
use callstate_schemas::Us;

/// The targets, and the SLO period the file sets, if any.
pub fn load_with_period(path: &Path) -> anyhow::Result<(Targets, Option<Us>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if openslo::looks_like_openslo(&text) {
        let o = openslo::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        for s in &o.skipped {
            eprintln!("{}: not an SLO, not used: {s}", path.display());
        }
        Ok((o.targets, o.period))
    } else {
        let t =
            Targets::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok((t, None))
    }
}

/// The targets of a file, or the default (99.9 % everywhere) without one.
pub fn load(path: Option<&Path>) -> anyhow::Result<Targets> {
    Ok(match path {
        None => Targets::default(),
        Some(p) => load_with_period(p)?.0,
    })
}
