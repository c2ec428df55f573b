//! The objectives alerts are written for: per SLI scope, the default target for every group
//! without an override, and one objective per override; and the burn-rate alerts of Google's
//! SRE workbook (multi-window, multi-burn-rate).

use std::collections::BTreeSet;

use callstate_query::model::sla::{GroupBy, Targets};
use callstate_schemas::{US_PER_DAY, US_PER_S, Us};

/// The groupings exported as SLIs (`scope` label of the SLI counters).
pub const SCOPES: [GroupBy; 3] = [GroupBy::DevicePool, GroupBy::Node, GroupBy::Cluster];

/// One objective: a target for a set of groups of one scope.
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    /// Scope (`device_pool`, `node`, `cluster`).
    pub scope: GroupBy,
    /// `Some(group)`: that group only; `None`: every group of the scope but `except`.
    pub group: Option<String>,
    /// Groups with their own objective (only for the default one).
    pub except: Vec<String>,
    /// Target availability (0.999).
    pub target: f64,
}

impl Objective {
    /// A name for alert and rule identifiers: `device_pool` or `device_pool:DP-HQ`.
    pub fn name(&self) -> String {
        match &self.group {
            Some(g) => format!("{}:{g}", self.scope.as_str()),
            None => self.scope.as_str().to_string(),
        }
    }

    /// The error budget: 1 − target.
    pub fn budget(&self) -> f64 {
        1.0 - self.target
    }
}

/// Every objective of a targets file, and the overrides no SLI is exported for.
#[derive(Debug, Clone, PartialEq)]
pub struct Objectives {
    /// By scope, default first, then overrides by group.
    pub list: Vec<Objective>,
    /// `group_by.group` of overrides on scopes without SLI counters (device, device_type):
    /// the SLA report honours them; alert rules cannot.
    pub not_alertable: Vec<String>,
    /// The SLO period (error budget window), microseconds.
    pub period: Us,
}

/// The default SLO period: 30 days.
pub const DEFAULT_PERIOD: Us = 30 * US_PER_DAY;

impl Objectives {
    /// The objectives of `targets` over `period`.
    pub fn of(targets: &Targets, period: Us) -> Objectives {
        let mut list = Vec::new();
        for scope in SCOPES {
            let overrides = targets.targets.get(scope.as_str());
            let except: Vec<String> = overrides
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            list.push(Objective {
                scope,
                group: None,
                except,
                target: targets.default,
            });
            for (g, t) in overrides.into_iter().flatten() {
                list.push(Objective {
                    scope,
                    group: Some(g.clone()),
                    except: Vec::new(),
                    target: *t,
                });
            }
        }
        let alertable: BTreeSet<&str> = SCOPES.iter().map(|s| s.as_str()).collect();
        let not_alertable = targets
            .targets
            .iter()
            .filter(|(by, _)| !alertable.contains(by.as_str()))
            .flat_map(|(by, m)| m.keys().map(move |g| format!("{by}.{g}")))
            .collect();
        Objectives {
            list,
            not_alertable,
            period,
        }
    }
}

/// A multi-window burn-rate alert: fires when the error rate over both windows is above
/// `factor` times the budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnAlert {
    /// The long window (`1h`).
    pub long: &'static str,
    /// The short window (`5m`), which makes the alert stop soon after the burn does.
    pub short: &'static str,
    /// Burn rate (14.4 = a 30-day budget gone in ~2 days).
    pub factor: f64,
    /// `page` or `ticket`.
    pub severity: &'static str,
}

/// The SRE workbook's four pairs: 1h/5m at 14.4×, 6h/30m at 6× (page); 1d/2h at 3×,
/// 3d/6h at 1× (ticket).
pub const BURN_ALERTS: [BurnAlert; 4] = [
    BurnAlert {
        long: "1h",
        short: "5m",
        factor: 14.4,
        severity: "page",
    },
    BurnAlert {
        long: "6h",
        short: "30m",
        factor: 6.0,
        severity: "page",
    },
    BurnAlert {
        long: "1d",
        short: "2h",
        factor: 3.0,
        severity: "ticket",
    },
    BurnAlert {
        long: "3d",
        short: "6h",
        factor: 1.0,
        severity: "ticket",
    },
];

/// How urgently a group of burn-rate pairs alerts: its pairs, the Prometheus alert name and
/// how long the condition must hold (the same for Prometheus and Grafana rules).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Severity {
    /// `page` or `ticket` (the `severity` label; [`BurnAlert::severity`] of its pairs).
    pub name: &'static str,
    /// The Prometheus alert name.
    pub alert: &'static str,
    /// Pending time before firing.
    pub pending: &'static str,
}

/// Page (the fast pairs) and ticket (the slow ones).
pub const SEVERITIES: [Severity; 2] = [
    Severity {
        name: "page",
        alert: "CallstateErrorBudgetBurnFast",
        pending: "2m",
    },
    Severity {
        name: "ticket",
        alert: "CallstateErrorBudgetBurnSlow",
        pending: "15m",
    },
];

impl Severity {
    /// Its pairs, in [`BURN_ALERTS`] order.
    pub fn pairs(&self) -> impl Iterator<Item = &'static BurnAlert> + '_ {
        BURN_ALERTS.iter().filter(|a| a.severity == self.name)
    }

    /// Its firing condition in words: `14.4× over 1h and 5m, or 6× over 6h and 30m`.
    pub fn condition(&self) -> String {
        self.pairs()
            .map(|a| format!("{}× over {} and {}", num(a.factor), a.long, a.short))
            .collect::<Vec<_>>()
            .join(", or ")
    }
}

/// A number without float noise (`0.001`, not `0.0010000000000000009`).
pub fn num(v: f64) -> String {
    let s = format!("{v:.12}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// Every window the alerts read, shortest first.
pub fn windows() -> Vec<&'static str> {
    let mut w: Vec<&'static str> = BURN_ALERTS.iter().flat_map(|a| [a.long, a.short]).collect();
    w.sort_by_key(|w| callstate_schemas::parse_duration(w).unwrap_or(0));
    w.dedup();
    w
}

/// A duration in Prometheus' notation (`30d`, `6h`, `90s`).
pub fn prom_duration(us: Us) -> String {
    let s = us / US_PER_S;
    for (unit, n) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if s >= n && s % n == 0 {
            return format!("{}{unit}", s / n);
        }
    }
    format!("{}s", s.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_are_their_own_objectives_and_leave_the_default() {
        let t = Targets::from_toml(
            "default = 0.999\n[targets.device_pool]\nDP-HQ = 0.9995\n[targets.device_type]\nCTI-Port = 0.99\n",
        )
        .unwrap();
        let o = Objectives::of(&t, DEFAULT_PERIOD);
        assert_eq!(o.list.len(), 4);
        assert_eq!(o.list[0].except, vec!["DP-HQ".to_string()]);
        assert_eq!(o.list[1].name(), "device_pool:DP-HQ");
        assert_eq!(o.not_alertable, vec!["device_type.CTI-Port".to_string()]);
        assert_eq!(windows(), vec!["5m", "30m", "1h", "2h", "6h", "1d", "3d"]);
        assert_eq!(prom_duration(DEFAULT_PERIOD), "30d");
        assert_eq!(prom_duration(90 * US_PER_S), "90s");
    }
}
