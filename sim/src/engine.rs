//! The discrete-event simulation: devices register on nodes, calls come and go, failures are
//! injected, and every observable change is emitted as a v1 event while the ground truth is
//! recorded from the same actions.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use chrono::{DateTime, Utc};

use callstate_schemas::{
    Body, CallStateKind, Cause, DeviceActivity, DeviceType, Event, KnownCause, RdChange,
    SILENCE_US, Scope, ServiceState, US_PER_S, Us,
};

use crate::delivery::Delivery;
use crate::error::{SimError, Sink};
use crate::rng::Rng;
use crate::scenario::{Fault, Scenario, parse_duration};
use crate::timed::Timed;
use crate::topology::Topology;
use crate::truth::{
    CallRecord, DeviceInfo, Incident, Interval, Move, Recovery, Silence, StreamStats, Truth, Window,
};

const SEC: Us = US_PER_S;
/// Heartbeat period of a bridge.
const HEARTBEAT: Us = 30 * SEC;
/// Silence after which a source's devices are unknown (design.md §2).
const SILENCE_UNKNOWN: Us = SILENCE_US;

// Reasons a device cannot register, as bits.
const BLOCK_CTIM: u8 = 1;
const BLOCK_NETWORK: u8 = 2;
const BLOCK_FLAP: u8 = 4;
const BLOCK_REGFAIL: u8 = 8;
const BLOCK_REHOME: u8 = 16;

#[derive(Debug, Clone)]
enum Action {
    Heartbeat(usize),
    CallArrival(usize),
    CallAnswer(u64),
    CallConsult(u64),
    CallTransfer(u64),
    CallEnd(u64),
    DeviceDown {
        dev: usize,
        cause: KnownCause,
        block: u8,
        incident: Option<usize>,
        deliver_at: Option<Us>,
    },
    DeviceUp(usize),
    Rehome(usize),
    RehomeUp(usize),
    NodeDown {
        node: usize,
        admin: bool,
    },
    NodeUp(usize),
    CtimCrash {
        cluster: usize,
        reconnect_after: Us,
    },
    ProviderReconnect {
        cluster: usize,
        incident: usize,
    },
    SiteDown {
        site: String,
        until: Us,
    },
    SiteUp(String),
    FlapDown {
        dev: usize,
        remaining: usize,
        period: Us,
        incident: usize,
    },
    FlapUp {
        dev: usize,
        remaining: usize,
        period: Us,
        incident: usize,
    },
    RegFail {
        dev: usize,
        remaining: usize,
        every: Us,
    },
    Announce(usize),
    SilenceStart {
        cluster: usize,
        until: Us,
    },
    SilenceEnd(usize),
    RdUpdate(usize),
}

#[derive(Debug, Default, Clone)]
struct DevState {
    registered: bool,
    node: Option<usize>,
    /// Node it was last in service on.
    last_node: Option<usize>,
    blocks: u8,
    calls: Vec<u64>,
    pending_rehome: bool,
    rehome_waited: bool,
    /// Unregistered to re-home: the next registration goes to the home node.
    go_home: bool,
    /// The incident whose outage the device is in, and when it began.
    outage: Option<(usize, Us)>,
    /// The last incident the device was counted in (a flapping device counts once).
    counted_in: Option<usize>,
    /// Truth intervals: (from, state, node, cause).
    intervals: Vec<(Us, u8, Option<usize>, Option<KnownCause>)>,
}

const IN: u8 = 0;
const OUT: u8 = 1;

struct Call {
    id: String,
    dev: usize,
    record: usize,
    consult: Option<(String, usize)>,
}

struct ClusterState {
    ctim: usize,
    provider_up: bool,
    silent: bool,
    last_bridge_event: Us,
}

struct Sim<'a> {
    topo: Topology,
    sc: &'a Scenario,
    t0: Us,
    end: Us,
    now: Us,
    queue: BinaryHeap<Reverse<Timed<Action>>>,
    order: u64,
    rng: Rng,
    nodes_up: Vec<bool>,
    devs: Vec<DevState>,
    clusters: Vec<ClusterState>,
    calls: BTreeMap<u64, Call>,
    next_call: u64,
    seqs: BTreeMap<String, u64>,
    delivery: Delivery,
    truth_calls: Vec<CallRecord>,
    incidents: Vec<Incident>,
    incident_recoveries: Vec<Vec<Us>>,
    node_incident: Vec<Option<usize>>,
    failovers: Vec<Move>,
    rehomes: Vec<Move>,
    windows: Vec<(Window, usize)>,
    silences: Vec<Silence>,
}

fn ts(us: Us) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).expect("time in range")
}

fn dur(text: &str) -> Us {
    parse_duration(text)
        .expect("validated scenario")
        .num_microseconds()
        .unwrap_or(i64::MAX)
}

fn bad(e: String) -> SimError {
    SimError::Scenario(e)
}

/// [`run`] into memory: every event as delivered (faults of delivery included), in order,
/// and the truth.
pub fn collect(sc: &Scenario, seed: u64) -> Result<(Vec<Event>, Truth), SimError> {
    let mut events = Vec::new();
    let truth = run(sc, seed, &mut |e| {
        events.push(e.clone());
        Ok(())
    })?;
    Ok((events, truth))
}

/// Runs a scenario with a seed; every event goes to `sink` in delivery order.
pub fn run(sc: &Scenario, seed: u64, sink: &mut Sink<'_>) -> Result<Truth, SimError> {
    let t0 = sc.start_time()?.timestamp_micros();
    let end = sc.end_time()?.timestamp_micros();
    let mut topo_rng = Rng::new(seed, 1);
    let topo = Topology::generate(&sc.topology, &mut topo_rng);
    let delivery = Delivery::new(&sc.delivery, Rng::new(seed, 2));
    let n_dev = topo.devices.len();
    let clusters = topo
        .clusters
        .iter()
        .map(|c| ClusterState {
            ctim: c.ctimanagers[0],
            provider_up: true,
            silent: false,
            last_bridge_event: t0,
        })
        .collect();
    let mut sim = Sim {
        nodes_up: vec![true; topo.nodes.len()],
        node_incident: vec![None; topo.nodes.len()],
        devs: vec![DevState::default(); n_dev],
        topo,
        sc,
        t0,
        end,
        now: t0,
        queue: BinaryHeap::new(),
        order: 0,
        rng: Rng::new(seed, 3),
        clusters,
        calls: BTreeMap::new(),
        next_call: 1,
        seqs: BTreeMap::new(),
        delivery,
        truth_calls: Vec::new(),
        incidents: Vec::new(),
        incident_recoveries: Vec::new(),
        failovers: Vec::new(),
        rehomes: Vec::new(),
        windows: Vec::new(),
        silences: Vec::new(),
    };
    sim.start().map_err(bad)?;
    sim.schedule_faults(seed).map_err(bad)?;
    while let Some(Reverse(s)) = sim.queue.pop() {
        if s.at >= end {
            break;
        }
        sim.now = s.at;
        sim.delivery
            .flush_until(s.at, sink)
            .map_err(SimError::Sink)?;
        sim.handle(s.item);
    }
    sim.delivery.flush_all(sink).map_err(SimError::Sink)?;
    Ok(sim.finish(seed))
}

impl Sim<'_> {
    fn at(&mut self, at: Us, action: Action) {
        self.order += 1;
        self.queue.push(Reverse(Timed {
            at,
            order: self.order,
            item: action,
        }));
    }

    fn cluster_name(&self, c: usize) -> String {
        self.topo.clusters[c].name.clone()
    }

    /// Emits an event from the cluster's bridge (dropped while the bridge is silent).
    fn bridge(&mut self, c: usize, body: Body, deliver_at: Option<Us>) {
        if self.clusters[c].silent {
            return;
        }
        self.clusters[c].last_bridge_event = self.now;
        let source = self.topo.clusters[c].bridge.clone();
        self.emit(source, c, body, deliver_at);
    }

    fn emit(&mut self, source: String, c: usize, body: Body, deliver_at: Option<Us>) {
        let seq = self.seqs.entry(source.clone()).or_insert(0);
        *seq += 1;
        let event = Event {
            source,
            seq: *seq,
            time: ts(self.now),
            cluster: self.cluster_name(c),
            body,
            extra: None,
        };
        self.delivery.push(self.now, deliver_at, event);
    }

    fn start(&mut self) -> Result<(), String> {
        for c in 0..self.topo.clusters.len() {
            let ctim = self.topo.nodes[self.clusters[c].ctim].name.clone();
            self.bridge(c, Body::ProviderInService { ctimanager: ctim }, None);
            let pools: Vec<usize> = (0..self.topo.pools.len())
                .filter(|p| self.topo.pools[*p].cluster == c)
                .collect();
            for p in pools {
                let pool = &self.topo.pools[p];
                let body = Body::DevicePoolConfig {
                    device_pool: pool.name.clone(),
                    nodes: pool
                        .group
                        .iter()
                        .map(|n| self.topo.nodes[*n].name.clone())
                        .collect(),
                };
                self.bridge(c, body, None);
            }
            self.at(self.t0 + HEARTBEAT, Action::Heartbeat(c));
        }
        for d in 0..self.topo.devices.len() {
            let up = self.t0 + self.rng.range(0, 10 * SEC);
            self.at(up, Action::DeviceUp(d));
            let first_call = up + self.interarrival(d, up);
            self.at(first_call, Action::CallArrival(d));
            if self.topo.devices[d].device_type == DeviceType::CtiRemoteDevice
                && self.rng.chance(0.2)
            {
                let when = self.t0 + self.rng.range(SEC, self.end - self.t0 - SEC);
                self.at(when, Action::RdUpdate(d));
            }
        }
        Ok(())
    }

    /// Mean seconds between calls for a device type in business hours.
    fn mean_interarrival_s(t: DeviceType) -> f64 {
        match t {
            DeviceType::Phone => 45.0 * 60.0,
            DeviceType::CtiPort => 150.0,
            DeviceType::CtiRoutePoint => 40.0,
            DeviceType::CtiRemoteDevice => 2.0 * 3600.0,
            DeviceType::Other => 3600.0,
        }
    }

    fn interarrival(&mut self, d: usize, at: Us) -> Us {
        let hour = ((at / SEC).rem_euclid(86_400)) / 3600;
        let load = if (8..18).contains(&hour) { 1.0 } else { 0.12 };
        let mean = Self::mean_interarrival_s(self.topo.devices[d].device_type)
            / (load * self.sc.traffic.scale.max(1e-9));
        ((self.rng.exp(mean).max(0.5)) * SEC as f64) as Us
    }

    fn capacity(t: DeviceType) -> usize {
        match t {
            DeviceType::CtiRoutePoint => 12,
            _ => 1,
        }
    }

    fn set_state(&mut self, d: usize, state: u8, node: Option<usize>, cause: Option<KnownCause>) {
        let now = self.now;
        let iv = &mut self.devs[d].intervals;
        if let Some(last) = iv.last_mut() {
            if last.1 == state && last.2 == node {
                return;
            }
            if last.0 == now {
                *last = (now, state, node, cause);
                return;
            }
        }
        iv.push((now, state, node, cause));
    }

    fn handle(&mut self, action: Action) {
        match action {
            Action::Heartbeat(c) => {
                self.bridge(c, Body::CollectorHeartbeat, None);
                self.at(self.now + HEARTBEAT, Action::Heartbeat(c));
            }
            Action::CallArrival(d) => self.call_arrival(d),
            Action::CallAnswer(id) => self.call_answer(id),
            Action::CallConsult(id) => self.call_consult(id),
            Action::CallTransfer(id) => self.call_transfer(id),
            Action::CallEnd(id) => self.end_call(id, "normal"),
            Action::DeviceDown {
                dev,
                cause,
                block,
                incident,
                deliver_at,
            } => self.device_down(dev, cause, block, incident, deliver_at),
            Action::DeviceUp(d) => self.device_up(d),
            Action::Rehome(d) => self.rehome(d),
            Action::RehomeUp(d) => {
                self.devs[d].blocks &= !BLOCK_REHOME;
                self.device_up(d);
            }
            Action::NodeDown { node, admin } => self.node_down(node, admin),
            Action::NodeUp(n) => self.node_up(n),
            Action::CtimCrash {
                cluster,
                reconnect_after,
            } => self.ctim_crash(cluster, reconnect_after),
            Action::ProviderReconnect { cluster, incident } => {
                self.provider_reconnect(cluster, incident)
            }
            Action::SiteDown { site, until } => self.site_down(&site, until),
            Action::SiteUp(site) => {
                for d in self.site_devices(&site) {
                    self.devs[d].blocks &= !BLOCK_NETWORK;
                    let delay = self.register_delay(d);
                    self.at(self.now + delay, Action::DeviceUp(d));
                }
            }
            Action::FlapDown {
                dev,
                remaining,
                period,
                incident,
            } => {
                if self.devs[dev].registered {
                    self.device_down(
                        dev,
                        KnownCause::Unregistered,
                        BLOCK_FLAP,
                        Some(incident),
                        None,
                    );
                }
                self.at(
                    self.now + period / 3,
                    Action::FlapUp {
                        dev,
                        remaining,
                        period,
                        incident,
                    },
                );
            }
            Action::FlapUp {
                dev,
                remaining,
                period,
                incident,
            } => {
                self.devs[dev].blocks &= !BLOCK_FLAP;
                self.device_up(dev);
                if remaining > 1 {
                    self.at(
                        self.now + period - period / 3,
                        Action::FlapDown {
                            dev,
                            remaining: remaining - 1,
                            period,
                            incident,
                        },
                    );
                }
            }
            Action::RegFail {
                dev,
                remaining,
                every,
            } => {
                if remaining == 0 {
                    self.devs[dev].blocks &= !BLOCK_REGFAIL;
                    self.device_up(dev);
                } else {
                    let c = self.topo.devices[dev].cluster;
                    let device = self.topo.devices[dev].name.clone();
                    self.bridge(
                        c,
                        Body::DeviceRegistrationFailed {
                            device,
                            cause: Cause::Other("registration_rejected".into()),
                        },
                        None,
                    );
                    self.at(
                        self.now + every,
                        Action::RegFail {
                            dev,
                            remaining: remaining - 1,
                            every,
                        },
                    );
                }
            }
            Action::Announce(w) => {
                let (win, c) = self.windows[w].clone();
                let source = self.topo.clusters[c].ops.clone();
                let body = Body::MaintenanceWindow {
                    scope: Scope::parse(&win.scope).unwrap_or(Scope::Node),
                    target: win.target,
                    start: win.start,
                    end: win.end,
                    reason: win.reason,
                };
                self.emit(source, c, body, None);
            }
            Action::SilenceStart { cluster, until } => {
                let last = self.clusters[cluster].last_bridge_event;
                self.clusters[cluster].silent = true;
                let unknown_from =
                    (until - last > SILENCE_UNKNOWN).then(|| ts(last + SILENCE_UNKNOWN));
                self.silences.push(Silence {
                    source: self.topo.clusters[cluster].bridge.clone(),
                    cluster: self.cluster_name(cluster),
                    from: ts(self.now),
                    to: ts(until),
                    unknown_from,
                });
                self.at(until, Action::SilenceEnd(cluster));
            }
            Action::SilenceEnd(c) => self.silence_end(c),
            Action::RdUpdate(d) => {
                let c = self.topo.devices[d].cluster;
                let dev = &self.topo.devices[d];
                let body = Body::RemoteDestinationChanged {
                    device: dev.name.clone(),
                    remote_destination: dev.remote_destinations[0].clone(),
                    change: RdChange::Updated,
                    active: Some(self.rng.chance(0.5)),
                };
                self.bridge(c, body, None);
            }
        }
    }

    // ---- calls ----

    fn call_arrival(&mut self, d: usize) {
        let next = self.now + self.interarrival(d, self.now);
        self.at(next, Action::CallArrival(d));
        let dt = self.topo.devices[d].device_type;
        if !self.devs[d].registered || self.devs[d].calls.len() >= Self::capacity(dt) {
            return;
        }
        let n = self.next_call;
        self.next_call += 1;
        let c = self.topo.devices[d].cluster;
        let id = format!("{}-{n}", self.cluster_name(c));
        let dev = self.topo.devices[d].name.clone();
        let address = self.topo.devices[d].lines.first().cloned();
        let calling = format!("+1408555{:04}", self.rng.range(0, 9999));
        self.bridge(
            c,
            Body::CallStarted {
                call_id: id.clone(),
                device: dev.clone(),
                address: address.clone(),
                calling: Some(calling),
                called: address,
            },
            None,
        );
        let record = self.truth_calls.len();
        self.truth_calls.push(CallRecord {
            call_id: id.clone(),
            device: dev.clone(),
            start: ts(self.now),
            end: None,
            cause: None,
            consult_for: None,
        });
        self.devs[d].calls.push(n);
        self.calls.insert(
            n,
            Call {
                id: id.clone(),
                dev: d,
                record,
                consult: None,
            },
        );
        if dt == DeviceType::CtiRoutePoint {
            // A route point redirects the call within a few seconds.
            let after = self.rng.range(SEC / 2, 3 * SEC);
            self.at(self.now + after, Action::CallEnd(n));
            return;
        }
        self.bridge(
            c,
            Body::CallState {
                call_id: id,
                device: dev.clone(),
                state: CallStateKind::Alerting,
            },
            None,
        );
        if dt == DeviceType::Phone {
            self.bridge(
                c,
                Body::DeviceState {
                    device: dev,
                    state: DeviceActivity::Alerting,
                },
                None,
            );
        }
        let ring = match dt {
            DeviceType::Phone | DeviceType::CtiRemoteDevice => self.rng.range(2 * SEC, 12 * SEC),
            _ => self.rng.range(SEC / 5, SEC),
        };
        self.at(self.now + ring, Action::CallAnswer(n));
    }

    fn call_answer(&mut self, n: u64) {
        let Some(call) = self.calls.get(&n) else {
            return;
        };
        let (d, id) = (call.dev, call.id.clone());
        let c = self.topo.devices[d].cluster;
        let dev = self.topo.devices[d].name.clone();
        let dt = self.topo.devices[d].device_type;
        self.bridge(
            c,
            Body::CallState {
                call_id: id,
                device: dev.clone(),
                state: CallStateKind::Connected,
            },
            None,
        );
        self.bridge(
            c,
            Body::DeviceState {
                device: dev,
                state: DeviceActivity::Active,
            },
            None,
        );
        let median = match dt {
            DeviceType::CtiPort => 90.0,
            _ => 150.0,
        };
        let talk = (self.rng.lognormal(median, 0.8).clamp(5.0, 3.0 * 3600.0) * SEC as f64) as Us;
        let transfers = matches!(dt, DeviceType::Phone | DeviceType::CtiPort)
            && self.rng.chance(self.sc.traffic.transfer_ratio);
        if transfers {
            self.at(self.now + talk / 2, Action::CallConsult(n));
        } else {
            self.at(self.now + talk, Action::CallEnd(n));
        }
    }

    fn call_consult(&mut self, n: u64) {
        let Some(call) = self.calls.get(&n) else {
            return;
        };
        let (d, id) = (call.dev, call.id.clone());
        let c = self.topo.devices[d].cluster;
        let dev = self.topo.devices[d].name.clone();
        let consult = format!("{id}-c");
        let target = format!("{}", 200_000 + self.rng.range(0, 9_999));
        self.bridge(
            c,
            Body::CallState {
                call_id: id.clone(),
                device: dev.clone(),
                state: CallStateKind::Held,
            },
            None,
        );
        self.bridge(
            c,
            Body::CallStarted {
                call_id: consult.clone(),
                device: dev.clone(),
                address: self.topo.devices[d].lines.first().cloned(),
                calling: self.topo.devices[d].lines.first().cloned(),
                called: Some(target.clone()),
            },
            None,
        );
        self.bridge(
            c,
            Body::CallState {
                call_id: consult.clone(),
                device: dev.clone(),
                state: CallStateKind::Connected,
            },
            None,
        );
        let record = self.truth_calls.len();
        self.truth_calls.push(CallRecord {
            call_id: consult.clone(),
            device: dev,
            start: ts(self.now),
            end: None,
            cause: None,
            consult_for: Some(id),
        });
        if let Some(call) = self.calls.get_mut(&n) {
            call.consult = Some((consult, record));
        }
        let wait = self.rng.range(5 * SEC, 25 * SEC);
        self.at(self.now + wait, Action::CallTransfer(n));
    }

    fn call_transfer(&mut self, n: u64) {
        let Some(call) = self.calls.get(&n) else {
            return;
        };
        let Some((consult, _)) = call.consult.clone() else {
            return;
        };
        let (d, id) = (call.dev, call.id.clone());
        let c = self.topo.devices[d].cluster;
        let dev = self.topo.devices[d].name.clone();
        let to = format!("{}", 200_000 + self.rng.range(0, 9_999));
        self.bridge(
            c,
            Body::TransferCompleted {
                call_id: id,
                consult_call_id: consult,
                device: dev,
                transferred_to: Some(to),
            },
            None,
        );
        self.end_call(n, "transferred");
    }

    /// Ends a call (and its consultation call) on its device.
    fn end_call(&mut self, n: u64, cause: &str) {
        let Some(call) = self.calls.remove(&n) else {
            return;
        };
        let d = call.dev;
        let c = self.topo.devices[d].cluster;
        let dev = self.topo.devices[d].name.clone();
        let mut legs = vec![(call.id.clone(), call.record)];
        legs.extend(call.consult.clone());
        for (id, record) in legs.into_iter().rev() {
            self.bridge(
                c,
                Body::CallEnded {
                    call_id: id,
                    device: dev.clone(),
                    cause: Cause::parse(cause),
                },
                None,
            );
            let r = &mut self.truth_calls[record];
            r.end = Some(ts(self.now));
            r.cause = Some(cause.to_string());
        }
        self.devs[d].calls.retain(|x| *x != n);
        if self.devs[d].calls.is_empty() {
            if self.topo.devices[d].device_type != DeviceType::CtiRoutePoint {
                self.bridge(
                    c,
                    Body::DeviceState {
                        device: dev,
                        state: DeviceActivity::Idle,
                    },
                    None,
                );
            }
            if self.devs[d].pending_rehome {
                self.devs[d].pending_rehome = false;
                self.devs[d].rehome_waited = true;
                self.at(self.now + 2 * SEC, Action::Rehome(d));
            }
        }
    }

    // ---- registration ----

    fn register_delay(&mut self, d: usize) -> Us {
        match self.topo.devices[d].device_type {
            DeviceType::Phone => 15 * SEC + (self.rng.exp(15.0) * SEC as f64) as Us,
            _ => 3 * SEC + (self.rng.exp(5.0) * SEC as f64) as Us,
        }
    }

    fn device_down(
        &mut self,
        d: usize,
        cause: KnownCause,
        block: u8,
        incident: Option<usize>,
        deliver_at: Option<Us>,
    ) {
        self.devs[d].blocks |= block;
        if !self.devs[d].registered {
            return;
        }
        let node = self.devs[d].node;
        self.devs[d].registered = false;
        self.devs[d].node = None;
        let c = self.topo.devices[d].cluster;
        let dev = self.topo.devices[d].name.clone();
        self.bridge(
            c,
            Body::DeviceOutOfService {
                device: dev.clone(),
                cause: cause.into(),
                node: node.map(|n| self.topo.nodes[n].name.clone()),
            },
            deliver_at,
        );
        for line in self.topo.devices[d].lines.clone() {
            self.bridge(
                c,
                Body::AddressOutOfService {
                    device: dev.clone(),
                    address: line,
                },
                deliver_at,
            );
        }
        self.set_state(d, OUT, None, Some(cause));
        if let Some(i) = incident
            && self.devs[d].outage.is_none()
            && self.devs[d].counted_in != Some(i)
        {
            self.devs[d].outage = Some((i, self.now));
            self.devs[d].counted_in = Some(i);
            let inc = &mut self.incidents[i];
            inc.start = Some(inc.start.map_or(ts(self.now), |s| s.min(ts(self.now))));
            inc.devices.push(dev);
            let active = self.devs[d].calls.clone();
            // Call legs: a consultation in progress is a second leg on the device.
            let legs = |c: &Call| 1 + usize::from(c.consult.is_some());
            inc.calls_active += active
                .iter()
                .map(|n| self.calls.get(n).map_or(1, legs))
                .sum::<usize>();
            let drop_p = match cause {
                KnownCause::NodeFailure => self.sc.traffic.drop_on_node_failure,
                KnownCause::Network => 1.0,
                _ => 0.0,
            };
            for n in active {
                let k = self.calls.get(&n).map_or(1, legs);
                if self.rng.chance(drop_p) {
                    self.incidents[i].calls_dropped += k;
                    self.end_call(n, cause.as_str());
                } else {
                    self.incidents[i].calls_preserved += k;
                }
            }
        }
        if block == 0 {
            let delay = self.register_delay(d);
            self.at(self.now + delay, Action::DeviceUp(d));
        }
    }

    /// Tries to bring a device in service: on the node it was on if that is up (a
    /// re-registration does not move it), else on the first up node of its CUCM group.
    fn device_up(&mut self, d: usize) {
        let s = &self.devs[d];
        if s.registered || s.blocks != 0 {
            return;
        }
        let group = &self.topo.pools[self.topo.devices[d].pool].group;
        let home = group[0];
        let target = match s.last_node {
            _ if s.go_home && self.nodes_up[home] => Some(home),
            Some(n) if self.nodes_up[n] => Some(n),
            _ => group.iter().copied().find(|n| self.nodes_up[*n]),
        };
        let Some(node) = target else {
            return; // waits for a node of its group to come up
        };
        self.register(d, node);
    }

    fn register(&mut self, d: usize, node: usize) {
        let home = self.topo.home(d);
        let prev = self.devs[d].last_node;
        {
            let s = &mut self.devs[d];
            s.registered = true;
            s.node = Some(node);
            s.last_node = Some(node);
            s.go_home = false;
        }
        let c = self.topo.devices[d].cluster;
        let dev = self.topo.devices[d].clone();
        let ctim = self.topo.nodes[self.clusters[c].ctim].name.clone();
        let pool = self.topo.pools[dev.pool].name.clone();
        self.bridge(
            c,
            Body::DeviceInService {
                device: dev.name.clone(),
                device_type: dev.device_type,
                node: self.topo.nodes[node].name.clone(),
                device_pool: Some(pool),
                ctimanager: Some(ctim),
            },
            None,
        );
        for line in &dev.lines {
            self.bridge(
                c,
                Body::AddressInService {
                    device: dev.name.clone(),
                    address: line.clone(),
                },
                None,
            );
        }
        if prev.is_none() {
            for rd in &dev.remote_destinations {
                self.bridge(
                    c,
                    Body::RemoteDestinationChanged {
                        device: dev.name.clone(),
                        remote_destination: rd.clone(),
                        change: RdChange::Added,
                        active: Some(true),
                    },
                    None,
                );
            }
        }
        self.set_state(d, IN, Some(node), None);
        if let Some(prev) = prev.filter(|p| *p != node) {
            let m = Move {
                device: dev.name.clone(),
                at: ts(self.now),
                from: self.topo.nodes[prev].name.clone(),
                to: self.topo.nodes[node].name.clone(),
                waited_for_calls: node == home && self.devs[d].rehome_waited,
            };
            if node == home {
                if let Some(i) = self.node_incident[home] {
                    self.incidents[i].rehomes.push(m.clone());
                }
                self.rehomes.push(m);
            } else {
                if let Some((i, _)) = self.devs[d].outage {
                    self.incidents[i].failovers.push(m.clone());
                }
                self.failovers.push(m);
            }
        }
        self.devs[d].rehome_waited = false;
        if let Some((i, _)) = self.devs[d].outage.take() {
            self.incident_recoveries[i].push(self.now);
        }
        if node != home && self.nodes_up[home] && !self.devs[d].pending_rehome {
            // Home came back while this device was out: it re-homes like the others.
            let delay = 10 * SEC + (self.rng.exp(45.0) * SEC as f64) as Us;
            self.at(self.now + delay, Action::Rehome(d));
        }
        self.devs[d].blocks &= !BLOCK_REHOME;
    }

    fn rehome(&mut self, d: usize) {
        let home = self.topo.home(d);
        let s = &self.devs[d];
        if !s.registered || s.node == Some(home) || !self.nodes_up[home] || s.blocks != 0 {
            return;
        }
        if !s.calls.is_empty() {
            self.devs[d].pending_rehome = true;
            return;
        }
        // Unregister from the backup node and register on home a moment later.
        let waited = self.devs[d].rehome_waited;
        self.device_down(d, KnownCause::Rehome, BLOCK_REHOME, None, None);
        self.devs[d].rehome_waited = waited;
        self.devs[d].go_home = true;
        let gap = self.rng.range(SEC / 2, 2 * SEC);
        self.at(self.now + gap, Action::RehomeUp(d));
    }

    // ---- failures ----

    fn new_incident(&mut self, cause: &str, scope: &str, target: &str, c: usize) -> usize {
        let id = format!("INC-{:03}", self.incidents.len() + 1);
        self.incidents.push(Incident {
            id,
            cause: cause.into(),
            scope: scope.into(),
            target: target.into(),
            cluster: self.cluster_name(c),
            start: None,
            end: None,
            devices: Vec::new(),
            recovery: Recovery::default(),
            failovers: Vec::new(),
            rehomes: Vec::new(),
            calls_active: 0,
            calls_dropped: 0,
            calls_preserved: 0,
        });
        self.incident_recoveries.push(Vec::new());
        self.incidents.len() - 1
    }

    fn node_down(&mut self, n: usize, admin: bool) {
        if !self.nodes_up[n] {
            return;
        }
        self.nodes_up[n] = false;
        let c = self.topo.nodes[n].cluster;
        let name = self.topo.nodes[n].name.clone();
        let cause = if admin {
            KnownCause::Admin
        } else {
            KnownCause::NodeFailure
        };
        let source = self.topo.clusters[c].syslog.clone();
        self.emit(
            source,
            c,
            Body::NodeDown {
                node: name.clone(),
                cause: Some(cause.into()),
            },
            None,
        );
        let i = self.new_incident(cause.as_str(), "node", &name, c);
        self.node_incident[n] = Some(i);
        for d in 0..self.devs.len() {
            if self.devs[d].node == Some(n) {
                let jitter = self.rng.range(0, 3 * SEC);
                self.at(
                    self.now + jitter,
                    Action::DeviceDown {
                        dev: d,
                        cause,
                        block: 0,
                        incident: Some(i),
                        deliver_at: None,
                    },
                );
            }
        }
    }

    fn node_up(&mut self, n: usize) {
        if self.nodes_up[n] {
            return;
        }
        self.nodes_up[n] = true;
        let c = self.topo.nodes[n].cluster;
        let source = self.topo.clusters[c].syslog.clone();
        let name = self.topo.nodes[n].name.clone();
        self.emit(
            source,
            c,
            Body::NodeUp {
                node: name,
                cause: None,
            },
            None,
        );
        for d in 0..self.devs.len() {
            let group = &self.topo.pools[self.topo.devices[d].pool].group;
            if !group.contains(&n) {
                continue;
            }
            let s = &self.devs[d];
            if s.registered && self.topo.home(d) == n && s.node != Some(n) {
                let delay = 10 * SEC + (self.rng.exp(45.0) * SEC as f64) as Us;
                self.at(self.now + delay, Action::Rehome(d));
            } else if !s.registered && s.blocks == 0 {
                let delay = self.register_delay(d);
                self.at(self.now + delay, Action::DeviceUp(d));
            }
        }
    }

    fn ctim_crash(&mut self, c: usize, reconnect_after: Us) {
        if !self.clusters[c].provider_up {
            return;
        }
        self.clusters[c].provider_up = false;
        let ctim = self.topo.nodes[self.clusters[c].ctim].name.clone();
        self.bridge(
            c,
            Body::ProviderOutOfService {
                ctimanager: ctim.clone(),
                cause: Some(KnownCause::CtimanagerFailure.into()),
            },
            None,
        );
        let i = self.new_incident(
            KnownCause::CtimanagerFailure.as_str(),
            "ctimanager",
            &ctim,
            c,
        );
        let reconnect = self.now + reconnect_after;
        for d in 0..self.devs.len() {
            if self.topo.devices[d].cluster == c && self.devs[d].registered {
                let jitter = self.rng.range(0, SEC);
                // JTAPI delivers these out-of-service events after it has reconnected.
                let deliver = reconnect + self.rng.range(SEC / 10, 3 * SEC);
                self.at(
                    self.now + jitter,
                    Action::DeviceDown {
                        dev: d,
                        cause: KnownCause::CtimanagerFailure,
                        block: BLOCK_CTIM,
                        incident: Some(i),
                        deliver_at: Some(deliver),
                    },
                );
            }
        }
        self.at(
            reconnect,
            Action::ProviderReconnect {
                cluster: c,
                incident: i,
            },
        );
    }

    fn provider_reconnect(&mut self, c: usize, _incident: usize) {
        let [a, b] = self.topo.clusters[c].ctimanagers;
        let backup = if self.clusters[c].ctim == a { b } else { a };
        self.clusters[c].ctim = backup;
        self.clusters[c].provider_up = true;
        let name = self.topo.nodes[backup].name.clone();
        self.bridge(c, Body::ProviderInService { ctimanager: name }, None);
        let mut k = 0;
        for d in 0..self.devs.len() {
            if self.devs[d].blocks & BLOCK_CTIM != 0 {
                self.devs[d].blocks &= !BLOCK_CTIM;
                // Out-of-service events are delivered first; devices come back after them.
                let delay = 4 * SEC + self.rng.range(0, 2 * SEC) + k * 2_000;
                k += 1;
                self.at(self.now + delay, Action::DeviceUp(d));
            }
        }
    }

    fn site_devices(&self, site: &str) -> Vec<usize> {
        (0..self.devs.len())
            .filter(|d| self.topo.pools[self.topo.devices[*d].pool].site == site)
            .collect()
    }

    fn site_down(&mut self, site: &str, until: Us) {
        let devices = self.site_devices(site);
        let Some(&first) = devices.first() else {
            return;
        };
        let c = self.topo.devices[first].cluster;
        let i = self.new_incident(KnownCause::Network.as_str(), "site", site, c);
        for d in devices {
            let jitter = self.rng.range(0, 5 * SEC);
            self.at(
                self.now + jitter,
                Action::DeviceDown {
                    dev: d,
                    cause: KnownCause::Network,
                    block: BLOCK_NETWORK,
                    incident: Some(i),
                    deliver_at: None,
                },
            );
        }
        self.at(until, Action::SiteUp(site.to_string()));
    }

    fn silence_end(&mut self, c: usize) {
        self.clusters[c].silent = false;
        // The bridge reconnects and resynchronizes: provider, then every device's state.
        let ctim = self.topo.nodes[self.clusters[c].ctim].name.clone();
        self.bridge(
            c,
            Body::ProviderInService {
                ctimanager: ctim.clone(),
            },
            None,
        );
        for d in 0..self.devs.len() {
            if self.topo.devices[d].cluster != c {
                continue;
            }
            let dev = self.topo.devices[d].clone();
            let body = match self.devs[d].node {
                Some(n) if self.devs[d].registered => Body::DeviceInService {
                    device: dev.name,
                    device_type: dev.device_type,
                    node: self.topo.nodes[n].name.clone(),
                    device_pool: Some(self.topo.pools[dev.pool].name.clone()),
                    ctimanager: Some(ctim.clone()),
                },
                _ => Body::DeviceOutOfService {
                    device: dev.name,
                    cause: KnownCause::Unknown.into(),
                    node: None,
                },
            };
            self.bridge(c, body, None);
        }
    }
}

impl Sim<'_> {
    fn schedule_faults(&mut self, seed: u64) -> Result<(), String> {
        for (i, f) in self.sc.faults.clone().iter().enumerate() {
            self.schedule_fault(f)
                .map_err(|e| format!("faults[{i}]: {e}"))?;
        }
        let n = self.sc.random.faults as i64;
        if n > 0 {
            let mut r = Rng::new(seed, 4);
            // One fault per slot of the run, so that their effects do not overlap.
            let slot = (self.end - self.t0) / (n + 1);
            for k in 0..n {
                let at = slot * k + slot / 2 + r.range(0, slot / 4);
                let secs = |us: i64| format!("{}s", us / SEC);
                let span = slot / 3;
                let fault = match r.index(7) {
                    0 => Fault::NodeCrash {
                        at: secs(at),
                        node: self.topo.nodes[r.index(self.topo.nodes.len())].name.clone(),
                        down_for: secs(r.range(span / 4, span)),
                    },
                    1 => Fault::CtimanagerCrash {
                        at: secs(at),
                        cluster: Some(
                            self.topo.clusters[r.index(self.topo.clusters.len())]
                                .name
                                .clone(),
                        ),
                        reconnect_after: secs(r.range(10 * SEC, 60 * SEC)),
                    },
                    2 => Fault::SiteOutage {
                        at: secs(at),
                        site: self.topo.pools[r.index(self.topo.pools.len())].site.clone(),
                        duration: secs(r.range(span / 6, span / 2)),
                    },
                    3 => Fault::DeviceFlap {
                        at: secs(at),
                        count: r.range(5, 20) as usize,
                        flaps: r.range(2, 6) as usize,
                        period: secs(r.range(30 * SEC, 120 * SEC)),
                    },
                    4 => Fault::RegistrationFailure {
                        at: secs(at),
                        count: r.range(5, 15) as usize,
                        attempts: r.range(1, 4) as usize,
                        retry_every: secs(r.range(20 * SEC, 60 * SEC)),
                    },
                    5 => Fault::CollectorSilence {
                        at: secs(at),
                        duration: secs(r.range(2 * 60 * SEC, 6 * 60 * SEC)),
                        cluster: Some(
                            self.topo.clusters[r.index(self.topo.clusters.len())]
                                .name
                                .clone(),
                        ),
                    },
                    _ => Fault::Maintenance {
                        at: secs(at),
                        duration: secs(span.max(20 * 60 * SEC).min(slot - slot / 8)),
                        scope: "node".into(),
                        target: self.topo.nodes[r.index(self.topo.nodes.len())].name.clone(),
                        restart: true,
                        reason: "random maintenance".into(),
                    },
                };
                self.schedule_fault(&fault)?;
            }
        }
        Ok(())
    }

    fn pick_devices(&mut self, count: usize) -> Vec<usize> {
        let mut chosen: Vec<usize> = Vec::new();
        let n = self.devs.len();
        while chosen.len() < count.min(n) {
            let d = self.rng.index(n);
            if !chosen.contains(&d) {
                chosen.push(d);
            }
        }
        chosen
    }

    fn schedule_fault(&mut self, f: &Fault) -> Result<(), String> {
        let t0 = self.t0;
        let cluster_of = |topo: &Topology, name: &Option<String>| {
            topo.cluster(name.as_deref())
                .ok_or_else(|| format!("no cluster `{}`", name.clone().unwrap_or_default()))
        };
        match f {
            Fault::NodeCrash { at, node, down_for } => {
                let n = self
                    .topo
                    .node(node)
                    .ok_or_else(|| format!("no node `{node}`"))?;
                let at = t0 + dur(at);
                self.at(
                    at,
                    Action::NodeDown {
                        node: n,
                        admin: false,
                    },
                );
                self.at(at + dur(down_for), Action::NodeUp(n));
            }
            Fault::CtimanagerCrash {
                at,
                cluster,
                reconnect_after,
            } => {
                let c = cluster_of(&self.topo, cluster)?;
                self.at(
                    t0 + dur(at),
                    Action::CtimCrash {
                        cluster: c,
                        reconnect_after: dur(reconnect_after),
                    },
                );
            }
            Fault::SiteOutage { at, site, duration } => {
                if !self.topo.pools.iter().any(|p| &p.site == site) {
                    return Err(format!("no site `{site}`"));
                }
                let at = t0 + dur(at);
                self.at(
                    at,
                    Action::SiteDown {
                        site: site.clone(),
                        until: at + dur(duration),
                    },
                );
            }
            Fault::DeviceFlap {
                at,
                count,
                flaps,
                period,
            } => {
                let i =
                    self.new_incident(KnownCause::Unregistered.as_str(), "device", "devices", 0);
                for d in self.pick_devices(*count) {
                    let jitter = self.rng.range(0, 10 * SEC);
                    self.at(
                        t0 + dur(at) + jitter,
                        Action::FlapDown {
                            dev: d,
                            remaining: (*flaps).max(1),
                            period: dur(period).max(3 * SEC),
                            incident: i,
                        },
                    );
                }
            }
            Fault::RegistrationFailure {
                at,
                count,
                attempts,
                retry_every,
            } => {
                let i =
                    self.new_incident(KnownCause::Unregistered.as_str(), "device", "devices", 0);
                let every = dur(retry_every).max(SEC);
                for d in self.pick_devices(*count) {
                    let at = t0 + dur(at) + self.rng.range(0, 10 * SEC);
                    self.at(
                        at,
                        Action::DeviceDown {
                            dev: d,
                            cause: KnownCause::Unregistered,
                            block: BLOCK_REGFAIL,
                            incident: Some(i),
                            deliver_at: None,
                        },
                    );
                    self.at(
                        at + every,
                        Action::RegFail {
                            dev: d,
                            remaining: *attempts,
                            every,
                        },
                    );
                }
            }
            Fault::Maintenance {
                at,
                duration,
                scope,
                target,
                restart,
                reason,
            } => {
                let c = match scope.as_str() {
                    "cluster" => self.topo.cluster(Some(target)),
                    "node" => self.topo.node(target).map(|n| self.topo.nodes[n].cluster),
                    "device_pool" => self
                        .topo
                        .pools
                        .iter()
                        .find(|p| &p.name == target)
                        .map(|p| p.cluster),
                    "device" => self
                        .topo
                        .devices
                        .iter()
                        .find(|d| &d.name == target)
                        .map(|d| d.cluster),
                    other => return Err(format!("unknown maintenance scope `{other}`")),
                }
                .ok_or_else(|| format!("no {scope} `{target}`"))?;
                let start = t0 + dur(at);
                let end = start + dur(duration);
                self.windows.push((
                    Window {
                        scope: scope.clone(),
                        target: target.clone(),
                        start: ts(start),
                        end: ts(end),
                        reason: reason.clone(),
                    },
                    c,
                ));
                let w = self.windows.len() - 1;
                self.at((start - 3600 * SEC).max(t0), Action::Announce(w));
                if *restart {
                    let n = self
                        .topo
                        .node(target)
                        .ok_or("restart needs scope = \"node\"")?;
                    let len = end - start;
                    self.at(
                        start + (2 * 60 * SEC).min(len / 10),
                        Action::NodeDown {
                            node: n,
                            admin: true,
                        },
                    );
                    self.at(end - (10 * 60 * SEC).min(len / 4), Action::NodeUp(n));
                }
            }
            Fault::RollingUpgrade {
                at,
                cluster,
                per_node,
            } => {
                let c = cluster_of(&self.topo, cluster)?;
                let step = dur(per_node);
                for (k, n) in self.topo.clusters[c].nodes.clone().into_iter().enumerate() {
                    let start = dur(at) + step * k as i64;
                    self.schedule_fault(&Fault::Maintenance {
                        at: format!("{}ms", start / 1000),
                        duration: format!("{}ms", step / 1000),
                        scope: "node".into(),
                        target: self.topo.nodes[n].name.clone(),
                        restart: true,
                        reason: "rolling upgrade".into(),
                    })?;
                }
            }
            Fault::CollectorSilence {
                at,
                duration,
                cluster,
            } => {
                let c = cluster_of(&self.topo, cluster)?;
                let at = t0 + dur(at);
                self.at(
                    at,
                    Action::SilenceStart {
                        cluster: c,
                        until: at + dur(duration),
                    },
                );
            }
        }
        Ok(())
    }

    fn finish(mut self, seed: u64) -> Truth {
        let end = self.end;
        let mut devices = BTreeMap::new();
        for (d, s) in self.devs.iter().enumerate() {
            let iv = &s.intervals;
            let mut out: Vec<Interval> = Vec::with_capacity(iv.len());
            for (k, (from, state, node, cause)) in iv.iter().enumerate() {
                let to = iv.get(k + 1).map_or(end, |n| n.0);
                if *from >= end || to <= *from {
                    continue;
                }
                out.push(Interval {
                    from: ts(*from),
                    to: ts(to),
                    state: if *state == IN {
                        ServiceState::InService
                    } else {
                        ServiceState::OutOfService
                    }
                    .as_str()
                    .into(),
                    node: node.map(|n| self.topo.nodes[n].name.clone()),
                    cause: cause.map(|c| c.as_str().to_string()),
                });
            }
            let cluster = self.topo.devices[d].cluster;
            for sil in &self.silences {
                if let (Some(from), true) = (
                    sil.unknown_from,
                    sil.cluster == self.topo.clusters[cluster].name,
                ) {
                    out = overlay_unknown(out, from, sil.to.min(ts(end)));
                }
            }
            if !out.is_empty() {
                devices.insert(self.topo.devices[d].name.clone(), out);
            }
        }
        for (i, inc) in self.incidents.iter_mut().enumerate() {
            let mut rec = self.incident_recoveries[i].clone();
            rec.sort();
            let n = inc.devices.len();
            let start = inc.start.map(|s| s.timestamp_micros());
            let at = |q: f64| -> Option<f64> {
                let k = ((q * n as f64).ceil() as usize).max(1);
                match (start, rec.get(k - 1)) {
                    (Some(s), Some(t)) if n > 0 => Some((*t - s) as f64 / SEC as f64),
                    _ => None,
                }
            };
            inc.recovery = Recovery {
                p50_s: at(0.5),
                p90_s: at(0.9),
                p100_s: if rec.len() >= n { at(1.0) } else { None },
            };
            inc.end = if n > 0 && rec.len() >= n {
                rec.last().map(|t| ts(*t))
            } else {
                None
            };
        }
        let pools = self
            .topo
            .pools
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.group
                        .iter()
                        .map(|n| self.topo.nodes[*n].name.clone())
                        .collect(),
                )
            })
            .collect();
        let device_info = self
            .topo
            .devices
            .iter()
            .enumerate()
            .map(|(d, dev)| {
                let pool = &self.topo.pools[dev.pool];
                (
                    dev.name.clone(),
                    DeviceInfo {
                        device_type: dev.device_type.as_str().into(),
                        cluster: self.topo.clusters[dev.cluster].name.clone(),
                        device_pool: pool.name.clone(),
                        site: pool.site.clone(),
                        home: self.topo.nodes[self.topo.home(d)].name.clone(),
                    },
                )
            })
            .collect();
        let stream: StreamStats = self.delivery.stats.clone();
        Truth {
            scenario: self.sc.name.clone(),
            seed,
            start: ts(self.t0),
            end: ts(end),
            pools,
            device_info,
            devices,
            failovers: self.failovers,
            rehomes: self.rehomes,
            calls: self.truth_calls,
            incidents: self.incidents,
            maintenance_windows: self.windows.into_iter().map(|(w, _)| w).collect(),
            silences: self.silences,
            stream,
        }
    }
}

/// Replaces [from, to) of a device's intervals with `unknown`.
fn overlay_unknown(iv: Vec<Interval>, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Interval> {
    if from >= to {
        return iv;
    }
    let mut out = Vec::with_capacity(iv.len() + 2);
    let mut inserted = false;
    for i in iv {
        if i.to <= from || i.from >= to {
            if i.from >= to && !inserted {
                inserted = true;
                out.push(unknown(from, to));
            }
            out.push(i);
            continue;
        }
        if i.from < from {
            out.push(Interval {
                to: from,
                ..i.clone()
            });
        }
        if !inserted {
            inserted = true;
            out.push(unknown(from, to));
        }
        if i.to > to {
            out.push(Interval { from: to, ..i });
        }
    }
    if !inserted && out.last().is_some_and(|l| l.to <= from) {
        out.push(unknown(from, to));
    }
    out
}

fn unknown(from: DateTime<Utc>, to: DateTime<Utc>) -> Interval {
    Interval {
        from,
        to,
        state: ServiceState::Unknown.as_str().into(),
        node: None,
        cause: None,
    }
}
