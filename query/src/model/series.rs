//! The fleet over time: devices per state (or per node) at every step of a window.

use std::borrow::Cow;
use std::collections::BTreeMap;

use callstate_schemas::{ServiceState, Us};

use super::intervals::ServiceInterval;
use super::name::Name;

/// Most points a series may have (steps × groups are bounded by it per group).
pub const MAX_STEPS: i64 = 11_000;

/// Grouping of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesBy {
    /// Per state (every state present at every step, 0 if none).
    State,
    /// Per node, devices in service there.
    Node,
}

impl std::str::FromStr for SeriesBy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "state" => Ok(SeriesBy::State),
            "node" => Ok(SeriesBy::Node),
            other => Err(format!("`{other}` is not one of state, node")),
        }
    }
}

/// One point: how many devices were in a group at an instant.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesPoint {
    /// The instant.
    pub time: Us,
    /// The state, or the node.
    pub group_key: String,
    /// Devices.
    pub devices: u64,
}

/// Devices per group at `from`, `from + step`, … before `to`. `devices` yields each device's
/// intervals (in time order).
pub fn state_series<'a>(
    devices: impl Iterator<Item = Cow<'a, [ServiceInterval]>>,
    from: Us,
    to: Us,
    step: Us,
    by: SeriesBy,
) -> Vec<SeriesPoint> {
    let steps = ((to - from) + step - 1) / step;
    let mut counts: Vec<BTreeMap<Name, u64>> = vec![BTreeMap::new(); steps as usize];
    let states: Vec<Name> = ServiceState::NAMES.iter().map(|&s| Name::new(s)).collect();
    let key_of = |s: ServiceState| &states[s.index()];
    for iv in devices {
        // walk the steps and the device's intervals together
        let mut k = 0;
        for (s, c) in counts.iter_mut().enumerate() {
            let t = from + s as Us * step;
            while k + 1 < iv.len() && iv[k + 1].valid_from <= t {
                k += 1;
            }
            let i = iv.get(k).filter(|i| i.contains(t));
            let key = match (by, i) {
                (SeriesBy::State, None) => key_of(ServiceState::Unknown),
                (SeriesBy::State, Some(i)) => key_of(i.state),
                (SeriesBy::Node, Some(i)) if i.state == ServiceState::InService => match &i.node {
                    Some(n) => n,
                    None => continue,
                },
                (SeriesBy::Node, _) => continue,
            };
            *c.entry(*key).or_default() += 1;
        }
    }
    let all_groups: Vec<Name> = match by {
        SeriesBy::State => states.clone(),
        SeriesBy::Node => {
            let mut g: Vec<Name> = counts.iter().flat_map(|c| c.keys().cloned()).collect();
            g.sort();
            g.dedup();
            g
        }
    };
    let mut out = Vec::with_capacity(counts.len() * all_groups.len());
    for (s, c) in counts.iter().enumerate() {
        let time = from + s as Us * step;
        // every group at every step, so that a series drops to 0 instead of breaking off
        for g in &all_groups {
            out.push(SeriesPoint {
                time,
                group_key: g.to_string(),
                devices: c.get(g).copied().unwrap_or(0),
            });
        }
    }
    out
}
