//! The settings of one poller (one cluster) and where its inventory comes from.

use std::path::PathBuf;
use std::time::Duration;

use crate::client::ClientConfig;

/// Where the watched device names come from.
#[derive(Debug, Clone)]
pub enum Inventory {
    /// AXL `listPhone` with a name pattern (`%` = every device), plus the pools' CUCM groups.
    Axl {
        /// The name pattern.
        pattern: String,
    },
    /// A fixed list of names (no AXL access needed; device types come from RisPort).
    Names(Vec<String>),
}

/// Settings of one poller (one cluster).
#[derive(Debug, Clone)]
pub struct PollerConfig {
    /// Cluster id put on every event.
    pub cluster: String,
    /// `source` of every event (default `risport:<cluster>`).
    pub source: String,
    /// How to reach the cluster.
    pub client: ClientConfig,
    /// Time between the starts of two poll cycles.
    pub interval: Duration,
    /// A full poll (no `StateInfo`) at least this often.
    pub full_poll_every: Duration,
    /// Inventory reload period.
    pub inventory_refresh: Duration,
    /// `DeviceClass` asked for (`Any`, `Phone`, `Cti`, …).
    pub device_class: String,
    /// RisPort requests per minute at most (the cluster's budget, 15 by default, is shared
    /// with RTMT and every other client).
    pub max_requests_per_minute: u32,
    /// Names per `selectCmDeviceExt` (the answer cap is 1000; lowered when truncation is seen).
    pub chunk: usize,
    /// The watched inventory.
    pub inventory: Inventory,
    /// Application users whose CTI providers are watched with `selectCtiItem` (none: skipped).
    pub cti_users: Vec<String>,
    /// Read each node's "Cisco CTI Manager" PerfMon counters every cycle (CTIManager health in
    /// the status; provider events from them when no `cti_users` are watched).
    pub perfmon: bool,
    /// The persisted sequence-number file.
    pub seq_file: PathBuf,
}

impl PollerConfig {
    /// Defaults for `cluster` reached through `client`.
    pub fn new(cluster: &str, client: ClientConfig, seq_file: PathBuf) -> PollerConfig {
        PollerConfig {
            cluster: cluster.to_string(),
            source: format!("risport:{cluster}"),
            client,
            interval: Duration::from_secs(30),
            full_poll_every: Duration::from_secs(300),
            inventory_refresh: Duration::from_secs(900),
            device_class: "Any".into(),
            max_requests_per_minute: 10,
            chunk: 1000,
            inventory: Inventory::Axl {
                pattern: "%".into(),
            },
            cti_users: Vec::new(),
            perfmon: true,
            seq_file,
        }
    }
}
