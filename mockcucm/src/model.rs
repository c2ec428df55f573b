//! What a CUCM cluster's RIS database would hold during a simulated run: per device, its
//! registration records on each node over time; per node, when it was down; per CTIManager,
//! when the watched application's provider was open. Built from the simulator's ground truth
//! and its node and provider events, so the mock answers what really happened.

use std::collections::HashMap;

use callstate_schemas::{Body, DeviceType, Event, KnownCause, ServiceState};

use callstate_sim::Scenario;
use callstate_sim::SimError;
use callstate_sim::Truth;

/// The application user whose CTI provider the simulated JTAPI application opens.
pub const APP_USER: &str = "jtapi-callstate";

/// The `StatusReason`/`Reason` CUCM gives for a simulated cause (§0.1).
pub fn reason_of(cause: Option<KnownCause>) -> u32 {
    match cause {
        Some(KnownCause::NodeFailure | KnownCause::Network) => 13,
        Some(KnownCause::Admin) => 9,
        Some(KnownCause::Unregistered | KnownCause::CtimanagerFailure) => 10,
        Some(KnownCause::Rehome) => 28,
        _ => 1,
    }
}

/// One registration record: a device's status on a node from `at` (µs, scenario time).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rec {
    /// From.
    pub at: i64,
    /// Node index.
    pub node: usize,
    /// Registered or not.
    pub registered: bool,
    /// `StatusReason` (0 when registered).
    pub reason: u32,
}

/// A device as CUCM knows it.
#[derive(Debug, Clone)]
pub struct MockDevice {
    /// Name.
    pub name: String,
    /// Type.
    pub device_type: DeviceType,
    /// Device pool.
    pub pool: String,
    /// Records in time order.
    pub recs: Vec<Rec>,
}

impl MockDevice {
    /// The newest record at `t`.
    pub fn current(&self, t: i64) -> Option<&Rec> {
        let k = self.recs.partition_point(|r| r.at <= t);
        k.checked_sub(1).map(|k| &self.recs[k])
    }

    /// The newest record on `node` at `t`.
    pub fn on_node(&self, node: usize, t: i64) -> Option<&Rec> {
        let k = self.recs.partition_point(|r| r.at <= t);
        self.recs[..k].iter().rev().find(|r| r.node == node)
    }
}

/// The cluster's registration history.
#[derive(Debug, Clone)]
pub struct CucmModel {
    /// Cluster id.
    pub cluster: String,
    /// Node names.
    pub nodes: Vec<String>,
    /// Per node: down intervals `[from, to)`, µs.
    pub down: Vec<Vec<(i64, i64)>>,
    /// Devices, sorted by name.
    pub devices: Vec<MockDevice>,
    /// Lower-case name → index.
    pub by_name: HashMap<String, usize>,
    /// Device pools and their CUCM groups.
    pub pools: Vec<(String, Vec<String>)>,
    /// Provider changes: (at µs, CTIManager, open).
    pub providers: Vec<(i64, String, bool)>,
    /// Scenario start, µs.
    pub start: i64,
    /// Scenario end, µs.
    pub end: i64,
}

impl CucmModel {
    /// Runs the scenario and builds the model of its first cluster.
    pub fn simulate(sc: &Scenario, seed: u64) -> Result<(CucmModel, Truth), SimError> {
        let mut events = Vec::new();
        let truth = callstate_sim::run(sc, seed, &mut |e: &Event| {
            if matches!(
                e.body,
                Body::NodeDown { .. }
                    | Body::NodeUp { .. }
                    | Body::ProviderInService { .. }
                    | Body::ProviderOutOfService { .. }
            ) {
                events.push(e.clone());
            }
            Ok(())
        })?;
        Ok((CucmModel::from_truth(&truth, &events), truth))
    }

    /// The model of the first cluster of a run: `events` are its node and provider events.
    pub fn from_truth(truth: &Truth, events: &[Event]) -> CucmModel {
        let cluster = truth
            .device_info
            .values()
            .map(|d| d.cluster.clone())
            .min()
            .unwrap_or_else(|| "CL1".into());
        let mut nodes: Vec<String> = truth
            .pools
            .iter()
            .filter(|(p, _)| p.starts_with(&format!("{cluster}-")))
            .flat_map(|(_, g)| g.iter().cloned())
            .collect();
        nodes.sort();
        nodes.dedup();
        let idx = |n: &str| nodes.iter().position(|x| x == n);
        let start = truth.start.timestamp_micros();
        let end = truth.end.timestamp_micros();
        let mut down: Vec<Vec<(i64, i64)>> = vec![Vec::new(); nodes.len()];
        let mut providers = Vec::new();
        let mut sorted: Vec<&Event> = events.iter().filter(|e| e.cluster == cluster).collect();
        sorted.sort_by_key(|e| e.time);
        for e in sorted {
            let t = e.time.timestamp_micros();
            match &e.body {
                Body::NodeDown { node, .. } => {
                    if let Some(n) = idx(node) {
                        down[n].push((t, end));
                    }
                }
                Body::NodeUp { node, .. } => {
                    if let Some(last) = idx(node).and_then(|n| down[n].last_mut()) {
                        last.1 = t;
                    }
                }
                Body::ProviderInService { ctimanager } => {
                    providers.push((t, ctimanager.clone(), true))
                }
                Body::ProviderOutOfService { ctimanager, .. } => {
                    providers.push((t, ctimanager.clone(), false))
                }
                _ => {}
            }
        }
        let mut devices = Vec::new();
        for (name, info) in &truth.device_info {
            if info.cluster != cluster {
                continue;
            }
            let device_type = DeviceType::parse(&info.device_type).unwrap_or(DeviceType::Other);
            let home = idx(&info.home).unwrap_or(0);
            let mut recs: Vec<Rec> = Vec::new();
            let mut last: Option<(usize, bool)> = None;
            // CUCM registration does not depend on the CTIManager for phones: their CTI-only
            // outages leave no record (the poller cannot see them; docs/cucm.md)
            let cti_registered =
                matches!(device_type, DeviceType::CtiPort | DeviceType::CtiRoutePoint);
            let mut skipped_cti_outage = false;
            for iv in truth.devices.get(name).into_iter().flatten() {
                let at = iv.from.timestamp_micros();
                let cause = iv.cause.as_deref().and_then(KnownCause::parse);
                match ServiceState::parse(&iv.state) {
                    Some(ServiceState::InService) => {
                        let node = iv.node.as_deref().and_then(idx).unwrap_or(home);
                        if skipped_cti_outage && last == Some((node, true)) {
                            skipped_cti_outage = false;
                            continue;
                        }
                        skipped_cti_outage = false;
                        if let Some((prev, true)) = last
                            && prev != node
                        {
                            // registering elsewhere leaves the old node's record unregistered
                            recs.push(Rec {
                                at,
                                node: prev,
                                registered: false,
                                reason: 28,
                            });
                        }
                        recs.push(Rec {
                            at,
                            node,
                            registered: true,
                            reason: 0,
                        });
                        last = Some((node, true));
                    }
                    Some(ServiceState::OutOfService) => {
                        if !cti_registered && cause == Some(KnownCause::CtimanagerFailure) {
                            skipped_cti_outage = true;
                            continue;
                        }
                        let node = last.map_or(home, |l| l.0);
                        recs.push(Rec {
                            at,
                            node,
                            registered: false,
                            reason: reason_of(cause),
                        });
                        last = Some((node, false));
                    }
                    _ => {}
                }
            }
            devices.push(MockDevice {
                name: name.clone(),
                device_type,
                pool: info.device_pool.clone(),
                recs,
            });
        }
        devices.sort_by(|a, b| a.name.cmp(&b.name));
        let by_name = devices
            .iter()
            .enumerate()
            .map(|(i, d)| (d.name.to_ascii_lowercase(), i))
            .collect();
        let pools = truth
            .pools
            .iter()
            .filter(|(_, g)| g.iter().all(|n| idx(n).is_some()))
            .map(|(p, g)| (p.clone(), g.clone()))
            .collect();
        CucmModel {
            cluster,
            nodes,
            down,
            devices,
            by_name,
            pools,
            providers,
            start,
            end,
        }
    }

    /// Whether node `n` is down at `t`.
    pub fn is_down(&self, n: usize, t: i64) -> bool {
        self.down[n].iter().any(|&(a, b)| a <= t && t < b)
    }

    /// When node `n`'s RIS subsystem last started, at `t` (epoch seconds).
    pub fn subsystem_start(&self, n: usize, t: i64) -> i64 {
        self.down[n]
            .iter()
            .filter(|&&(_, b)| b <= t)
            .map(|&(_, b)| b)
            .max()
            .unwrap_or(self.start - 86_400_000_000)
            / 1_000_000
    }

    /// The provider's state on CTIManager `node` at `t`: `(open, since µs)`.
    pub fn provider(&self, node: &str, t: i64) -> Option<(bool, i64)> {
        self.providers
            .iter()
            .rev()
            .find(|(at, n, _)| *at <= t && n == node)
            .map(|&(at, _, open)| (open, at))
    }
}
