//! The burn-rate alerts as Grafana alert-rule provisioning over the Infinity datasource
//! (uid `callstate`), for teams without Prometheus: each rule reads
//! `GET /api/v1/slo/burn` over the long and short windows of the SRE workbook's pairs; burn
//! rates already divide by each group's own target, so one rule per scope and severity
//! covers every objective.

use serde_json::{Value, json};

use super::objectives::{SCOPES, SEVERITIES, num};

/// The datasource uid the provisioning addresses (dashboards/provisioning/datasources).
pub const DATASOURCE_UID: &str = "callstate";

fn infinity(ref_id: &str, window: &str, scope: &str) -> Value {
    json!({
        "refId": ref_id,
        "relativeTimeRange": {"from": 600, "to": 0},
        "datasourceUid": DATASOURCE_UID,
        "model": {
            "refId": ref_id,
            "type": "json",
            "source": "url",
            "parser": "backend",
            "format": "table",
            "url": "/api/v1/slo/burn",
            "url_options": {
                "method": "GET",
                "data": "",
                "params": [
                    {"key": "window", "value": window},
                    {"key": "scope", "value": scope}
                ]
            },
            "root_selector": "",
            "columns": [
                {"selector": "group", "text": "group", "type": "string"},
                {"selector": "burn_rate", "text": "burn_rate", "type": "number"}
            ],
            "filters": []
        }
    })
}

/// The provisioning document (Grafana's file provisioning, `apiVersion: 1`).
pub fn provisioning() -> Value {
    let mut rules = Vec::new();
    for scope in SCOPES {
        let scope = scope.as_str();
        for severity in SEVERITIES {
            let mut data = Vec::new();
            let mut terms = Vec::new();
            for (k, a) in severity.pairs().enumerate() {
                let (l, s) = (format!("L{k}"), format!("S{k}"));
                data.push(infinity(&l, a.long, scope));
                data.push(infinity(&s, a.short, scope));
                let f = num(a.factor);
                terms.push(format!("(${l} > {f} && ${s} > {f})"));
            }
            data.push(json!({
                "refId": "BURN",
                "datasourceUid": "__expr__",
                "model": {"refId": "BURN", "type": "math", "expression": terms.join(" || ")}
            }));
            let (name, pending) = (severity.name, severity.pending);
            rules.push(json!({
                "uid": format!("callstate-burn-{name}-{}", scope.replace('_', "-")),
                "title": format!("callstate error budget burn ({name}): {scope}"),
                "condition": "BURN",
                "data": data,
                "noDataState": "OK",
                "execErrState": "Error",
                "for": pending,
                "labels": {"severity": name, "scope": scope},
                "annotations": {
                    "summary": format!("{scope} {{{{ $labels.group }}}} is burning its availability error budget"),
                    "description": format!("Burn rate above {} (callstate /api/v1/slo/burn; maintenance windows excluded).", severity.condition())
                }
            }));
        }
    }
    json!({
        "apiVersion": 1,
        "groups": [{
            "orgId": 1,
            "name": "callstate-slo",
            "folder": "callstate",
            "interval": "1m",
            "rules": rules
        }]
    })
}

/// The provisioning document as YAML.
pub fn to_yaml() -> String {
    let body = serde_saphyr::to_string(&provisioning()).expect("provisioning serializes");
    format!(
        "# Grafana alert rules for callstate's availability SLOs (Infinity datasource uid `{DATASOURCE_UID}`),\n# written by `callstate slo grafana-alerts`. Burn rates come from GET /api/v1/slo/burn.\n{body}"
    )
}
