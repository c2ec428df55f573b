//! Incidents (design.md §4): device outages that start close together on the same node or
//! CTIManager, with their recovery curve, failovers, re-homes and the calls they hit.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use callstate_schemas::{Kind, KnownCause, Movement, ServiceState, Us, format_instant};

use super::fleet::Fleet;
use super::intervals::ServiceInterval;
use super::name::Name;
use super::ser;
use super::shares::{in_shares, threads_for};
use crate::error::Result;
use crate::exec::Cancel;

/// Detection settings.
#[derive(Debug, Clone)]
pub struct IncidentOptions {
    /// Fewest devices that make an incident.
    pub min_devices: usize,
    /// Longest gap between consecutive outage starts of one incident.
    pub window_us: Us,
}

impl Default for IncidentOptions {
    fn default() -> Self {
        IncidentOptions {
            min_devices: 5,
            window_us: 60 * 1_000_000,
        }
    }
}

/// A device that came back on another node, or went home again.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceMove {
    /// Device.
    pub device: String,
    /// When it came in service there.
    #[serde(serialize_with = "ser::instant")]
    pub at: Us,
    /// Node.
    pub node: String,
    /// Failovers: seconds after the incident's start. Re-homes: seconds after the incident's
    /// first re-home (the home node back, as its idle devices show at once), that is how long
    /// the device's calls held it on the backup node.
    pub lag_s: f64,
}

/// One incident.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    /// Stable id: scope, target and start.
    pub id: String,
    /// Cluster.
    pub cluster: String,
    /// `node` or `ctimanager`.
    pub scope: String,
    /// Node or CTIManager name.
    pub target: String,
    /// Most common cause among the outages.
    pub cause: String,
    /// First outage start.
    #[serde(serialize_with = "ser::instant")]
    pub started_at: Us,
    /// All devices back in service, if they are.
    #[serde(serialize_with = "ser::opt_instant")]
    pub ended_at: Option<Us>,
    /// Devices affected.
    pub devices_affected: usize,
    /// Seconds from start until 50% of the devices were back in service.
    pub recovery_50_s: Option<f64>,
    /// … 90%.
    pub recovery_90_s: Option<f64>,
    /// … 100%.
    pub recovery_100_s: Option<f64>,
    /// Devices that came back on another node.
    pub failovers: Vec<DeviceMove>,
    /// Of those, when they went back to their home node.
    pub rehomes: Vec<DeviceMove>,
    /// Longest re-home lag (see [`DeviceMove::lag_s`]), seconds; null without re-homes.
    pub rehome_lag_max_s: Option<f64>,
    /// Calls active on affected devices when they went out of service; `None` when
    /// retention removed call legs of that time.
    pub calls_active: Option<usize>,
    /// How those calls ended (cause → count; `active` if not ended); `None` as above.
    pub calls_ended: Option<BTreeMap<String, usize>>,
    /// The affected devices.
    pub devices: Vec<String>,
}

/// One device's outage start, with what became of the device after it (computed while its
/// intervals are at hand, so grouping needs nothing more of them).
struct Outage {
    start: Us,
    device: Name,
    cluster: Name,
    cause: Option<Name>,
    /// Back in service: when, and (when on another node than before) where.
    recovery: Option<Us>,
    failover: Option<(Us, Name)>,
    /// Of a failover: when and where it went home again.
    rehome: Option<(Us, Name)>,
}

/// Outages by (cluster, scope, target).
type Scoped = BTreeMap<(String, String, String), Vec<Outage>>;

/// Outage starts of one device (in time order), keyed by scope; re-home blips are planned
/// moves, not outages.
fn outages_of(iv: &[ServiceInterval], out: &mut Scoped) {
    for (k, i) in iv.iter().enumerate() {
        let starts_outage = i.state == ServiceState::OutOfService
            && (k == 0
                || iv[k - 1].state != ServiceState::OutOfService
                || iv[k - 1].valid_to != Some(i.valid_from));
        if !starts_outage || i.cause.as_deref() == Some(KnownCause::Rehome.as_str()) {
            continue;
        }
        let cti = KnownCause::CtimanagerFailure.as_str();
        let (scope, target) = if i.cause.as_deref() == Some(cti) {
            ("ctimanager".to_string(), String::new())
        } else {
            match &i.last_node {
                Some(n) => ("node".to_string(), n.to_string()),
                None => continue,
            }
        };
        let back = iv
            .iter()
            .enumerate()
            .skip(k + 1)
            .find(|(_, i)| i.state == ServiceState::InService);
        let mut failover = None;
        let mut rehome = None;
        if let Some((b, back)) = back
            && back.movement == Some(Movement::Failover)
        {
            failover = Some((back.valid_from, back.node.unwrap_or_else(|| "".into())));
            rehome = iv[b + 1..]
                .iter()
                .find(|i| i.movement == Some(Movement::Rehome))
                .map(|h| (h.valid_from, h.node.unwrap_or_else(|| "".into())));
        }
        out.entry((i.cluster.to_string(), scope, target))
            .or_default()
            .push(Outage {
                start: i.valid_from,
                device: i.device,
                cluster: i.cluster,
                cause: i.cause,
                recovery: back.map(|(_, b)| b.valid_from),
                failover,
                rehome,
            });
    }
}

/// Where incidents are kept from, when retention of intervals keeps the service history from
/// a horizon: an incident starting within `window_us` after it may have begun before it
/// (with outages that ended before it), so only those starting later are whole.
pub fn kept_from(fleet: &dyn Fleet, opts: &IncidentOptions) -> Option<Us> {
    fleet
        .intervals_kept_from()
        .map(|h| h.saturating_add(opts.window_us))
}

/// Detects incidents whose first outage starts in [from, to); refused when `from` is before
/// where they are kept from ([`kept_from`]).
pub fn detect(
    fleet: &dyn Fleet,
    from: Us,
    to: Us,
    opts: &IncidentOptions,
    cancel: &Cancel,
) -> Result<Vec<Incident>> {
    detect_split(fleet, from, to, opts, cancel, None)
}

/// [`detect`] reading the devices' outages on `threads` threads (`None`: one a core, as
/// many devices as the fleet has warrant): the answer does not depend on it.
pub fn detect_split(
    fleet: &dyn Fleet,
    from: Us,
    to: Us,
    opts: &IncidentOptions,
    cancel: &Cancel,
    threads: Option<usize>,
) -> Result<Vec<Incident>> {
    if let Some(k) = kept_from(fleet, opts).filter(|k| from < *k) {
        return Err(crate::error::QueryError::Retired(format!(
            "incidents are kept from {} (retention of intervals keeps the service history \
             from {}; one starting within {} s after it may have begun before it): ask from \
             then on (WHERE started_at >= '{}')",
            callstate_schemas::format_instant(k),
            callstate_schemas::format_instant(k - opts.window_us),
            opts.window_us / 1_000_000,
            callstate_schemas::format_instant(k),
        )));
    }
    let devices: Vec<_> = fleet.devices().collect();
    let threads = threads.unwrap_or_else(|| threads_for(devices.len()));
    let shares = in_shares(&devices, threads, "incidents", |share| {
        let mut by_scope: Scoped = BTreeMap::new();
        for (n, dev) in share.iter().enumerate() {
            if n % 512 == 0 {
                cancel.check()?;
            }
            outages_of(&dev.all(), &mut by_scope);
        }
        Ok(by_scope)
    })?;
    let mut by_scope: Scoped = BTreeMap::new();
    for share in shares {
        for (key, outages) in share {
            by_scope.entry(key).or_default().extend(outages);
        }
    }
    let mut out = Vec::new();
    for ((_, scope, target), mut outages) in by_scope {
        cancel.check()?;
        outages.sort_by(|a, b| (a.start, &a.device).cmp(&(b.start, &b.device)));
        let mut group: Vec<Outage> = Vec::new();
        let flush = |group: &mut Vec<Outage>, out: &mut Vec<Incident>| {
            let mut seen = std::collections::HashSet::new();
            group.retain(|o| seen.insert(o.device));
            if group.len() >= opts.min_devices && group[0].start >= from && group[0].start < to {
                out.push(build(fleet, &scope, &target, group));
            }
            group.clear();
        };
        for o in outages {
            if group
                .last()
                .is_some_and(|l| o.start - l.start > opts.window_us)
            {
                flush(&mut group, &mut out);
            }
            group.push(o);
        }
        flush(&mut group, &mut out);
    }
    out.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
    Ok(out)
}

fn build(fleet: &dyn Fleet, scope: &str, target: &str, group: &[Outage]) -> Incident {
    let start = group[0].start;
    let cluster = group[0].cluster.to_string();
    let target = if scope == "ctimanager" {
        fleet
            .node_events()
            .iter()
            .rev()
            .find(|p| {
                p.kind == Kind::ProviderOutOfService
                    && *p.cluster == *cluster
                    && p.time <= start + 60_000_000
            })
            .map_or_else(|| "unknown".to_string(), |p| p.target.to_string())
    } else {
        target.to_string()
    };
    let mut causes: HashMap<&str, usize> = HashMap::new();
    let mut recoveries = Vec::new();
    let mut failovers = Vec::new();
    let mut rehomes = Vec::new();
    let mut rehome_times = Vec::new();
    let mut calls_active = 0;
    let mut calls_ended: BTreeMap<String, usize> = BTreeMap::new();
    // retention may have removed legs an outage hit
    let calls_known = group.iter().all(|o| fleet.calls_known_at(o.start));
    for o in group {
        let cause = o.cause.as_deref().unwrap_or(KnownCause::Unknown.as_str());
        *causes.entry(cause).or_default() += 1;
        if let Some(t) = o.recovery {
            recoveries.push(t);
        }
        if let Some((at, node)) = &o.failover {
            failovers.push(DeviceMove {
                device: o.device.to_string(),
                at: *at,
                node: node.to_string(),
                lag_s: (at - start) as f64 / 1e6,
            });
            if let Some((at, node)) = &o.rehome {
                rehome_times.push(*at);
                rehomes.push(DeviceMove {
                    device: o.device.to_string(),
                    at: *at,
                    node: node.to_string(),
                    lag_s: 0.0,
                });
            }
        }
        // A call dropped by the outage ends at the outage's own instant.
        if !calls_known {
            continue;
        }
        for how in fleet.calls_hit(&o.device, o.start) {
            calls_active += 1;
            let how = how.as_deref().unwrap_or("active").to_string();
            *calls_ended.entry(how).or_default() += 1;
        }
    }
    let first_rehome = rehome_times.iter().min().copied().unwrap_or(0);
    for (r, t) in rehomes.iter_mut().zip(&rehome_times) {
        r.lag_s = (t - first_rehome) as f64 / 1e6;
    }
    let rehome_lag_max_s = rehomes.iter().map(|r| r.lag_s).reduce(f64::max);
    recoveries.sort_unstable();
    let n = group.len();
    let at = |q: f64| {
        let k = ((q * n as f64).ceil() as usize).max(1);
        recoveries.get(k - 1).map(|t| (*t - start) as f64 / 1e6)
    };
    let mut cause: Vec<(&str, usize)> = causes.into_iter().collect();
    cause.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    Incident {
        id: format!("{cluster}/{scope}/{target}/{}", format_instant(start)),
        cluster,
        scope: scope.to_string(),
        target,
        cause: cause[0].0.to_string(),
        started_at: start,
        ended_at: (recoveries.len() == n).then(|| *recoveries.last().expect("n ≥ 1")),
        devices_affected: n,
        recovery_50_s: at(0.5),
        recovery_90_s: at(0.9),
        recovery_100_s: if recoveries.len() == n { at(1.0) } else { None },
        failovers,
        rehomes,
        rehome_lag_max_s,
        calls_active: calls_known.then_some(calls_active),
        calls_ended: calls_known.then_some(calls_ended),
        devices: group.iter().map(|o| o.device.to_string()).collect(),
    }
}
