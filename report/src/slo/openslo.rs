//! SLA targets from OpenSLO v1 `SLO` documents (YAML, one or more per file), so existing SLO
//! definitions carry over. A document names its callstate group with two labels:
//! `callstate/scope` (`device_pool`, `node`, `cluster`, `device`, `device_type`, or `default`)
//! and `callstate/group`; its objective's `target` (or `targetPercent`) becomes the target,
//! and `timeWindow[0].duration` the SLO period.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::Deserialize;

use callstate_query::model::sla::{GroupBy, Targets};
use callstate_query::{QueryError, Result};
use callstate_schemas::{Us, parse_duration};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Doc {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    metadata: Metadata,
    spec: Option<Spec>,
}

#[derive(Debug, Default, Deserialize)]
struct Metadata {
    name: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, LabelValue>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum LabelValue {
    One(String),
    Many(Vec<String>),
}

impl LabelValue {
    fn one(&self) -> Option<&str> {
        match self {
            LabelValue::One(s) => Some(s),
            LabelValue::Many(v) if v.len() == 1 => Some(&v[0]),
            LabelValue::Many(_) => None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    time_window: Vec<TimeWindow>,
    #[serde(default)]
    objectives: Vec<Objective>,
}

#[derive(Debug, Deserialize)]
struct TimeWindow {
    duration: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Objective {
    target: Option<f64>,
    target_percent: Option<f64>,
}

/// Targets and SLO period read from OpenSLO documents.
#[derive(Debug, Clone)]
pub struct OpenSlo {
    /// The targets.
    pub targets: Targets,
    /// The SLO period all documents share, if they give one.
    pub period: Option<Us>,
    /// Documents of other kinds (Service, SLI, AlertPolicy…): read, not used.
    pub skipped: Vec<String>,
}

/// Whether a targets file is OpenSLO YAML (rather than callstate's TOML).
pub fn looks_like_openslo(text: &str) -> bool {
    text.lines()
        .any(|l| l.trim_start().starts_with("apiVersion:") && l.contains("openslo/"))
}

/// Parses OpenSLO v1 documents. Errors name the document (position and name) and the field.
pub fn parse(text: &str) -> Result<OpenSlo> {
    let docs: Vec<Doc> = serde_saphyr::from_multiple(text)
        .map_err(|e| QueryError::bad("OpenSLO", e.to_string().replace('\n', " ")))?;
    let mut targets = Targets {
        default: Targets::default().default,
        targets: BTreeMap::new(),
    };
    let mut period: Option<Us> = None;
    let mut skipped = Vec::new();
    let mut defaults = 0;
    for (k, d) in docs.iter().enumerate() {
        let name = d.metadata.name.clone().unwrap_or_default();
        let at = |field: &str| format!("document {} ({name}): {field}", k + 1);
        match d.api_version.as_deref() {
            Some("openslo/v1") => {}
            other => {
                return Err(QueryError::bad(
                    &at("apiVersion"),
                    format!("{other:?} is not openslo/v1"),
                ));
            }
        }
        if d.kind.as_deref() != Some("SLO") {
            skipped.push(format!(
                "{} {name}",
                d.kind.as_deref().unwrap_or("(no kind)")
            ));
            continue;
        }
        let spec = d
            .spec
            .as_ref()
            .ok_or_else(|| QueryError::bad(&at("spec"), "missing"))?;
        let label = |key: &str| -> Result<Option<&str>> {
            match d.metadata.labels.get(key) {
                None => Ok(None),
                Some(v) => v.one().map(Some).ok_or_else(|| {
                    QueryError::bad(&at(&format!("metadata.labels.{key}")), "one value expected")
                }),
            }
        };
        let scope = label("callstate/scope")?.ok_or_else(|| {
            QueryError::bad(
                &at("metadata.labels"),
                "callstate/scope is missing (device_pool, node, cluster, device, device_type or default)",
            )
        })?;
        let target = match spec.objectives.as_slice() {
            [o] => match (o.target, o.target_percent) {
                (Some(t), None) => t,
                (None, Some(p)) => p / 100.0,
                _ => {
                    return Err(QueryError::bad(
                        &at("spec.objectives[0]"),
                        "exactly one of target and targetPercent",
                    ));
                }
            },
            _ => {
                return Err(QueryError::bad(
                    &at("spec.objectives"),
                    format!(
                        "{} objectives; callstate takes exactly one per SLO",
                        spec.objectives.len()
                    ),
                ));
            }
        };
        if !(0.0..=1.0).contains(&target) {
            return Err(QueryError::bad(
                &at("spec.objectives[0].target"),
                format!("{target} is not between 0 and 1"),
            ));
        }
        if let Some(w) = spec.time_window.first().and_then(|w| w.duration.as_deref()) {
            let p = parse_duration(w)
                .map_err(|e| QueryError::bad(&at("spec.timeWindow[0].duration"), e))?;
            if period.is_some_and(|q| q != p) {
                return Err(QueryError::bad(
                    &at("spec.timeWindow[0].duration"),
                    "differs from an earlier document's; one SLO period per file",
                ));
            }
            period = Some(p);
        }
        if scope == "default" {
            defaults += 1;
            if defaults > 1 {
                return Err(QueryError::bad(
                    &at("metadata.labels.callstate/scope"),
                    "a second default",
                ));
            }
            targets.default = target;
            continue;
        }
        GroupBy::from_str(scope)
            .map_err(|e| QueryError::bad(&at("metadata.labels.callstate/scope"), e))?;
        let group = label("callstate/group")?
            .ok_or_else(|| QueryError::bad(&at("metadata.labels"), "callstate/group is missing"))?;
        let slot = targets.targets.entry(scope.to_string()).or_default();
        if slot.insert(group.to_string(), target).is_some() {
            return Err(QueryError::bad(
                &at("metadata.labels.callstate/group"),
                format!("{scope} {group} has a target already"),
            ));
        }
    }
    Ok(OpenSlo {
        targets,
        period,
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCS: &str = r#"
apiVersion: openslo/v1
kind: SLO
metadata:
  name: fleet
  labels:
    callstate/scope: default
spec:
  service: cucm
  budgetingMethod: Occurrences
  timeWindow:
    - duration: 28d
      isRolling: true
  objectives:
    - displayName: fleet availability
      target: 0.999
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: hq-phones
  labels:
    callstate/scope: device_pool
    callstate/group: DP-HQ
spec:
  service: cucm
  indicatorRef: device-availability
  budgetingMethod: Occurrences
  timeWindow:
    - duration: 28d
      isRolling: true
  objectives:
    - targetPercent: 99.95
---
apiVersion: openslo/v1
kind: Service
metadata:
  name: cucm
spec:
  description: the phones
"#;

    #[test]
    fn slo_documents_become_targets() {
        let o = parse(DOCS).unwrap();
        assert_eq!(o.targets.default, 0.999);
        assert!((o.targets.of(GroupBy::DevicePool, "DP-HQ") - 0.9995).abs() < 1e-12);
        assert_eq!(o.period, Some(28 * 86_400 * 1_000_000));
        assert_eq!(o.skipped, vec!["Service cucm".to_string()]);
        assert!(looks_like_openslo(DOCS));
    }

    #[test]
    fn errors_name_the_document_and_field() {
        let two = DOCS.replace(
            "    - targetPercent: 99.95",
            "    - target: 0.9\n    - target: 0.8",
        );
        let e = parse(&two).unwrap_err().to_string();
        assert!(
            e.starts_with("document 2 (hq-phones): spec.objectives"),
            "{e}"
        );
        let bad = DOCS.replace("callstate/scope: device_pool", "callstate/scope: building");
        let e = parse(&bad).unwrap_err().to_string();
        assert!(
            e.contains("document 2 (hq-phones): metadata.labels.callstate/scope"),
            "{e}"
        );
        let e = parse("apiVersion: openslo/v1\nkind: SLO\nmetadata: [1\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("OpenSLO:"), "{e}");
    }
}
