//! What availability is grouped by and what it is held to: [`GroupBy`] and SLA [`Targets`]
//! (design.md §3).

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What availability is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// Each device.
    Device,
    /// Device pool.
    DevicePool,
    /// Home node (the devices that belong to a node; their time on a backup node counts too).
    Node,
    /// Cluster.
    Cluster,
    /// Device type.
    DeviceType,
}

impl FromStr for GroupBy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "device" => GroupBy::Device,
            "device_pool" => GroupBy::DevicePool,
            "node" => GroupBy::Node,
            "cluster" => GroupBy::Cluster,
            "device_type" => GroupBy::DeviceType,
            _ => {
                return Err(format!(
                    "unknown group_by `{s}`; expected device, device_pool, node, cluster or device_type"
                ));
            }
        })
    }
}

impl GroupBy {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Device => "device",
            GroupBy::DevicePool => "device_pool",
            GroupBy::Node => "node",
            GroupBy::Cluster => "cluster",
            GroupBy::DeviceType => "device_type",
        }
    }
}

/// SLA targets: a default, and overrides per group (`[targets.device_pool] "DP-HQ" = 0.9995`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    /// Target for groups without an override (0.999 = 99.9%).
    #[serde(default = "default_target")]
    pub default: f64,
    /// Overrides: group_by name → group → target.
    #[serde(default)]
    pub targets: BTreeMap<String, BTreeMap<String, f64>>,
}

fn default_target() -> f64 {
    0.999
}

impl Default for Targets {
    fn default() -> Self {
        Targets {
            default: default_target(),
            targets: BTreeMap::new(),
        }
    }
}

impl Targets {
    /// Parses a targets file (TOML).
    pub fn from_toml(text: &str) -> crate::error::Result<Targets> {
        use crate::error::QueryError;
        let t: Targets = toml::from_str(text).map_err(|e| QueryError::bad("targets", e))?;
        for (by, groups) in &t.targets {
            GroupBy::from_str(by).map_err(|e| QueryError::bad(&format!("targets.{by}"), e))?;
            for (g, v) in groups {
                if !(0.0..=1.0).contains(v) {
                    let name = format!("targets.{by}.{g}");
                    return Err(QueryError::bad(
                        &name,
                        format!("{v} is not between 0 and 1"),
                    ));
                }
            }
        }
        if !(0.0..=1.0).contains(&t.default) {
            let why = format!("{} is not between 0 and 1", t.default);
            return Err(QueryError::bad("default", why));
        }
        Ok(t)
    }

    /// The target of a group.
    pub fn of(&self, by: GroupBy, group: &str) -> f64 {
        self.targets
            .get(by.as_str())
            .and_then(|m| m.get(group))
            .copied()
            .unwrap_or(self.default)
    }
}
