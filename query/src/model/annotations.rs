//! Control events as annotations for dashboards: node and CTIManager up/down, and
//! maintenance windows.

use callstate_schemas::{Kind, Us};

use super::rows::{MaintenanceRow, NodeEvent};

/// One annotation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Annotation {
    /// When (a maintenance window's start).
    pub time: Us,
    /// Until when (`time` but for maintenance windows).
    pub time_end: Us,
    /// The event kind.
    pub kind: Kind,
    /// Cluster.
    pub cluster: String,
    /// Node, CTIManager or the window's target.
    pub target: String,
    /// A line for people.
    pub text: String,
}

/// Node and CTIManager events in [from, to) and maintenance windows overlapping it, of
/// `cluster` (any without), by time, each once.
pub fn annotations(
    node_events: &[NodeEvent],
    windows: &[MaintenanceRow],
    from: Us,
    to: Us,
    cluster: Option<&str>,
) -> Vec<Annotation> {
    let cluster_ok = |c: &str| cluster.is_none_or(|w| w == c);
    let mut out: Vec<Annotation> = Vec::new();
    for e in node_events {
        if e.time >= from && e.time < to && cluster_ok(&e.cluster) {
            let cause = e
                .cause
                .as_deref()
                .map_or_else(String::new, |c| format!(" ({c})"));
            out.push(Annotation {
                time: e.time,
                time_end: e.time,
                kind: e.kind,
                cluster: e.cluster.to_string(),
                target: e.target.to_string(),
                text: format!("{} {}{cause}", e.kind.as_str().replace('_', " "), e.target),
            });
        }
    }
    for w in windows {
        if w.start < to && w.end > from && cluster_ok(&w.cluster) {
            let reason = w
                .reason
                .as_deref()
                .map_or_else(String::new, |r| format!(": {r}"));
            out.push(Annotation {
                time: w.start,
                time_end: w.end,
                kind: Kind::MaintenanceWindow,
                cluster: w.cluster.to_string(),
                target: w.target.to_string(),
                text: format!("maintenance {} {}{reason}", w.scope, w.target),
            });
        }
    }
    out.sort();
    out.dedup();
    out
}
