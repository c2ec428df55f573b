//! Prometheus recording and alerting rules for the objectives: error ratios of the SLI
//! counters over each alert window, availability and error budget left over the SLO period,
//! and the SRE workbook's multi-window, multi-burn-rate alerts. Time inside maintenance
//! windows is counted as `excluded`, never in the ratio, so planned work neither burns budget
//! nor pages.

use std::collections::BTreeMap;

use serde::Serialize;

use callstate_schemas::ServiceState;

use super::objectives::{
    BurnAlert, Objective, Objectives, SEVERITIES, num, prom_duration, windows,
};

/// The SLI counter family.
pub const METRIC: &str = "callstate_sli_device_seconds_total";

/// Name of the error-ratio recording over `window`.
pub fn error_ratio(window: &str) -> String {
    format!("callstate:sli_error_ratio:rate{window}")
}

/// Name of the availability recording over the SLO period.
pub fn availability(period: &str) -> String {
    format!("callstate:sli_availability:ratio_rate{period}")
}

/// Name of the error-budget-left recording over the SLO period.
pub fn budget_left(period: &str) -> String {
    format!("callstate:slo_error_budget_remaining:ratio_rate{period}")
}

/// A rules file.
#[derive(Debug, Serialize)]
pub struct RuleFile {
    /// Rule groups.
    pub groups: Vec<RuleGroup>,
}

/// A rule group.
#[derive(Debug, Serialize)]
pub struct RuleGroup {
    /// Name.
    pub name: String,
    /// Rules.
    pub rules: Vec<Rule>,
}

/// A recording or alerting rule.
#[derive(Debug, Serialize)]
pub struct Rule {
    /// Recorded series name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// Alert name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// PromQL.
    pub expr: String,
    /// Pending time before firing.
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    /// Labels added.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A PromQL double-quoted string.
fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// RE2 special characters escaped.
fn regex_escape(s: &str) -> String {
    let mut o = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            o.push('\\');
        }
        o.push(c);
    }
    o
}

/// The label matchers selecting an objective's groups.
pub fn matchers(o: &Objective) -> String {
    let scope = format!("scope={}", quote(o.scope.as_str()));
    match (&o.group, o.except.is_empty()) {
        (Some(g), _) => format!("{{{scope},group={}}}", quote(g)),
        (None, true) => format!("{{{scope}}}"),
        (None, false) => {
            let re: Vec<String> = o.except.iter().map(|g| regex_escape(g)).collect();
            format!("{{{scope},group!~{}}}", quote(&re.join("|")))
        }
    }
}

fn recording(record: String, expr: String) -> Rule {
    Rule {
        record: Some(record),
        alert: None,
        expr,
        for_: None,
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
    }
}

fn pair(a: &BurnAlert, m: &str, budget: f64) -> String {
    let t = num(a.factor * budget);
    format!(
        "({long}{m} > {t} and {short}{m} > {t})",
        long = error_ratio(a.long),
        short = error_ratio(a.short),
    )
}

fn alerts(o: &Objective, period: &str) -> Vec<Rule> {
    let m = matchers(o);
    let mut out = Vec::new();
    for severity in SEVERITIES {
        let expr = severity
            .pairs()
            .map(|a| pair(a, &m, o.budget()))
            .collect::<Vec<_>>()
            .join("\nor\n");
        let labels = BTreeMap::from([
            ("severity".to_string(), severity.name.to_string()),
            ("objective".to_string(), o.name()),
            ("slo_target".to_string(), num(o.target)),
        ]);
        let annotations = BTreeMap::from([
            (
                "summary".to_string(),
                "{{ $labels.scope }} {{ $labels.group }} is burning its availability error budget"
                    .to_string(),
            ),
            (
                "description".to_string(),
                format!(
                    "Objective {} % over {period}: out-of-service device-time spends the error budget faster than it can last: above {}. Maintenance windows are excluded.",
                    num(o.target * 100.0),
                    severity.condition()
                ),
            ),
        ]);
        out.push(Rule {
            record: None,
            alert: Some(severity.alert.to_string()),
            expr,
            for_: Some(severity.pending.to_string()),
            labels,
            annotations,
        });
    }
    out
}

/// The rules of `objectives`.
pub fn rules(objectives: &Objectives) -> RuleFile {
    let period = prom_duration(objectives.period);
    let by = "sum by (scope, group)";
    let (up, down) = (
        ServiceState::InService.as_str(),
        ServiceState::OutOfService.as_str(),
    );
    let counted = format!("{METRIC}{{state=~\"{up}|{down}\"}}");
    let out = format!("{METRIC}{{state=\"{down}\"}}");
    let mut sli: Vec<Rule> = windows()
        .into_iter()
        .map(|w| {
            recording(
                error_ratio(w),
                format!("{by} (rate({out}[{w}]))\n/\n{by} (rate({counted}[{w}]))"),
            )
        })
        .collect();
    sli.push(recording(
        availability(&period),
        format!("1 - (\n  {by} (increase({out}[{period}]))\n  /\n  {by} (increase({counted}[{period}]))\n)"),
    ));
    for o in &objectives.list {
        let mut r = recording(
            budget_left(&period),
            format!(
                "1 - (1 - {}{}) / {}",
                availability(&period),
                matchers(o),
                num(o.budget())
            ),
        );
        r.labels.insert("objective".into(), o.name());
        r.labels.insert("slo_target".into(), num(o.target));
        sli.push(r);
    }
    let alerting = objectives
        .list
        .iter()
        .flat_map(|o| alerts(o, &period))
        .collect();
    RuleFile {
        groups: vec![
            RuleGroup {
                name: "callstate-sli".into(),
                rules: sli,
            },
            RuleGroup {
                name: "callstate-slo-alerts".into(),
                rules: alerting,
            },
        ],
    }
}

/// The rules as YAML, with a header saying where they come from.
pub fn to_yaml(objectives: &Objectives) -> String {
    let body = serde_saphyr::to_string(&rules(objectives)).expect("rules serialize");
    let mut head = String::from(
        "# Prometheus rules for callstate's availability SLOs, written by `callstate slo rules`.\n# SLI: callstate_sli_device_seconds_total (scraped from callstate's /metrics).\n",
    );
    for n in &objectives.not_alertable {
        head.push_str(&format!(
            "# not alerted on: targets.{n} (no SLI is exported per device or device type)\n"
        ));
    }
    head + &body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slo::objectives::DEFAULT_PERIOD;
    use callstate_query::model::sla::Targets;

    #[test]
    fn an_override_is_left_out_of_the_default_objective() {
        let t = Targets::from_toml("default = 0.999\n[targets.device_pool]\n\"DP.HQ\" = 0.9995\n")
            .unwrap();
        let o = Objectives::of(&t, DEFAULT_PERIOD);
        assert_eq!(
            matchers(&o.list[0]),
            r#"{scope="device_pool",group!~"DP\\.HQ"}"#
        );
        assert_eq!(
            matchers(&o.list[1]),
            r#"{scope="device_pool",group="DP.HQ"}"#
        );
        assert_eq!(num(14.4 * (1.0 - 0.999)), "0.0144");
        let y = to_yaml(&o);
        assert!(y.contains("callstate:sli_error_ratio:rate3d"), "{y}");
        assert!(y.contains("CallstateErrorBudgetBurnFast"), "{y}");
    }
}
