//! The simulator against its own rules: determinism, valid events, re-home only without
//! active calls, every outage recovered, delivery faults in the stream but not in the truth,
//! and a stream that, replayed in time order, tells the truth.

use std::collections::{BTreeMap, HashSet};

use callstate_schemas::{Body, Event};
use callstate_sim::{BUILT_IN, Scenario, Truth, run};
use chrono::{DateTime, Duration, Utc};

fn small(name: &str, devices: usize) -> Scenario {
    let mut sc = Scenario::load(name).unwrap();
    sc.topology.devices = devices;
    sc
}

fn simulate(sc: &Scenario, seed: u64) -> (Vec<Event>, Truth) {
    callstate_sim::collect(sc, seed).unwrap()
}

fn ndjson(sc: &Scenario, seed: u64) -> Vec<u8> {
    let mut out = Vec::new();
    run(sc, seed, &mut |e| {
        serde_json::to_writer(&mut out, e)?;
        out.push(b'\n');
        Ok(())
    })
    .unwrap();
    out
}

#[test]
fn same_seed_gives_byte_identical_output() {
    let mut sc = small("chaos", 150);
    sc.duration = "8h".into();
    let a = ndjson(&sc, 11);
    let b = ndjson(&sc, 11);
    assert!(a.len() > 10_000);
    assert!(a == b, "same seed, different bytes");
    assert!(ndjson(&sc, 12) != a, "another seed should differ");
}

/// State of every device at `t` according to the stream, replayed in event-time order.
/// (event time, in service, node) of a device's service events, in time order.
type ServiceEvents = Vec<(DateTime<Utc>, bool, Option<String>)>;

struct Replay {
    by_device: BTreeMap<String, ServiceEvents>,
}

impl Replay {
    fn new(events: &[Event]) -> Replay {
        let mut seen = HashSet::new();
        let mut by_device: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for e in events {
            if !seen.insert((e.source.clone(), e.seq)) {
                continue;
            }
            let entry = match &e.body {
                Body::DeviceInService { device, node, .. } => {
                    Some((device, true, Some(node.clone())))
                }
                Body::DeviceOutOfService { device, .. } => Some((device, false, None)),
                _ => None,
            };
            if let Some((d, up, node)) = entry {
                by_device
                    .entry(d.clone())
                    .or_default()
                    .push((e.time, up, node, e.seq));
            }
        }
        Replay {
            by_device: by_device
                .into_iter()
                .map(|(d, mut v)| {
                    v.sort_by_key(|x| (x.0, x.3));
                    (d, v.into_iter().map(|(t, u, n, _)| (t, u, n)).collect())
                })
                .collect(),
        }
    }

    fn state_at(&self, device: &str, t: DateTime<Utc>) -> (&'static str, Option<&str>) {
        let Some(v) = self.by_device.get(device) else {
            return ("unknown", None);
        };
        let i = v.partition_point(|x| x.0 <= t);
        if i == 0 {
            return ("unknown", None);
        }
        let (_, up, node) = &v[i - 1];
        if *up {
            ("in_service", node.as_deref())
        } else {
            ("out_of_service", None)
        }
    }
}

fn check_rules(name: &str, events: &[Event], truth: &Truth) {
    // every event is valid v1 and survives the wire format
    for e in events {
        let back = Event::from_json(&e.to_json(), truth.end)
            .unwrap_or_else(|err| panic!("{name}: {err}: {}", e.to_json()));
        assert_eq!(&back, e);
    }

    // duplicates are in the stream, not in the truth
    let distinct: HashSet<(String, u64)> =
        events.iter().map(|e| (e.source.clone(), e.seq)).collect();
    assert_eq!(distinct.len() as u64, truth.stream.distinct, "{name}");
    assert_eq!(events.len() as u64, truth.stream.events, "{name}");
    assert_eq!(
        events.len() as u64 - truth.stream.distinct,
        truth.stream.duplicates,
        "{name}"
    );

    // re-home never while a call is active: at the moment the device left the backup node
    type Span = (DateTime<Utc>, Option<DateTime<Utc>>);
    let mut calls: BTreeMap<&str, Vec<Span>> = BTreeMap::new();
    for c in &truth.calls {
        calls
            .entry(c.device.as_str())
            .or_default()
            .push((c.start, c.end));
    }
    for r in &truth.rehomes {
        let iv = &truth.devices[&r.device];
        let k = iv
            .iter()
            .position(|i| i.from == r.at)
            .expect("rehome starts an interval");
        let left = &iv[k - 1];
        assert_eq!(left.state, "out_of_service", "{name}: {r:?}");
        assert_eq!(left.cause.as_deref(), Some("rehome"), "{name}: {r:?}");
        let t = left.from;
        for (s, e) in calls.get(r.device.as_str()).into_iter().flatten() {
            assert!(
                !(*s <= t && e.is_none_or(|e| e > t)),
                "{name}: {} re-homed at {t} during a call {s}..{e:?}",
                r.device
            );
        }
        assert_eq!(
            Some(r.to.as_str()),
            truth.device_info[&r.device].home.as_str().into()
        );
    }

    // every out-of-service interval is followed by in service, unless the run ends first
    for (d, iv) in &truth.devices {
        for (k, i) in iv.iter().enumerate() {
            assert!(i.from < i.to, "{name} {d}: empty interval");
            if let Some(next) = iv.get(k + 1) {
                assert_eq!(i.to, next.from, "{name} {d}: gap");
            }
            if i.state == "out_of_service" {
                let recovered = iv[k + 1..].iter().any(|n| n.state == "in_service");
                assert!(
                    recovered || i.to == truth.end,
                    "{name} {d}: never back in service after {}",
                    i.from
                );
            }
            if i.state == "in_service" {
                assert!(i.node.is_some());
            }
        }
    }

    // the stream, replayed in event-time order, tells the truth at any instant
    let replay = Replay::new(events);
    let span = (truth.end - truth.start).num_seconds();
    let mut checked = 0;
    for k in 0..400 {
        let t = truth.start + Duration::seconds((span * k / 400) + 7);
        for d in truth.device_info.keys().step_by(3) {
            let want = truth.state_at(d, t);
            if want.0 == "unknown" {
                continue;
            }
            assert_eq!(replay.state_at(d, t), want, "{name}: {d} at {t}");
            checked += 1;
        }
    }
    assert!(checked > 1000, "{name}: only {checked} checks");
}

#[test]
fn every_built_in_scenario_follows_the_rules() {
    for name in BUILT_IN {
        let sc = small(name, 300);
        let (events, truth) = simulate(&sc, 5);
        assert!(!events.is_empty(), "{name}");
        check_rules(name, &events, &truth);
    }
}

#[test]
fn node_failover_fails_over_and_busy_devices_rehome_later() {
    let (events, truth) = simulate(&small("node-failover", 500), 3);
    let inc: Vec<_> = truth
        .incidents
        .iter()
        .filter(|i| !i.devices.is_empty())
        .collect();
    assert_eq!(inc.len(), 1);
    let inc = inc[0];
    assert_eq!(
        (inc.cause.as_str(), inc.scope.as_str(), inc.target.as_str()),
        ("node_failure", "node", "CL1-cucm1")
    );
    let homed_there = truth
        .device_info
        .values()
        .filter(|d| d.home == "CL1-cucm1")
        .count();
    assert_eq!(
        inc.devices.len(),
        homed_there,
        "every device on the failed node is affected"
    );
    assert_eq!(inc.failovers.len(), inc.devices.len());
    assert!(
        inc.failovers
            .iter()
            .all(|m| m.from == "CL1-cucm1" && m.to != "CL1-cucm1")
    );
    assert_eq!(
        inc.rehomes.len(),
        inc.devices.len(),
        "all re-home by the end of the day"
    );
    let node_up = events
        .iter()
        .find(|e| matches!(&e.body, Body::NodeUp { node, .. } if node == "CL1-cucm1"))
        .unwrap()
        .time;
    assert!(
        inc.rehomes.iter().all(|r| r.at > node_up),
        "no re-home before the node is back"
    );
    assert!(
        inc.rehomes.iter().any(|r| r.waited_for_calls),
        "some busy device waits for its calls"
    );
    let r = &inc.recovery;
    assert!(r.p50_s.unwrap() <= r.p90_s.unwrap() && r.p90_s.unwrap() <= r.p100_s.unwrap());
    assert!(inc.calls_active == inc.calls_dropped + inc.calls_preserved);
}

#[test]
fn ctimanager_failover_delivers_out_of_service_late_and_out_of_order() {
    let (events, truth) = simulate(&small("ctimanager-failover", 300), 3);
    let inc = truth
        .incidents
        .iter()
        .find(|i| i.cause == "ctimanager_failure")
        .unwrap();
    assert_eq!(
        inc.devices.len(),
        truth.device_info.len(),
        "every observed device goes out"
    );
    assert!(truth.stream.replayed > 0);
    let pos_oos = events
        .iter()
        .position(|e| matches!(&e.body, Body::DeviceOutOfService { cause, .. } if cause.as_str() == "ctimanager_failure"))
        .unwrap();
    let pos_reconnect = events
        .iter()
        .rposition(|e| matches!(&e.body, Body::ProviderInService { .. }))
        .unwrap();
    assert!(
        pos_oos > pos_reconnect,
        "out-of-service events arrive after the reconnection"
    );
    assert!(
        events[pos_oos].time < events[pos_reconnect].time,
        "but happened before it"
    );
    // and the provider moved to the backup CTIManager
    match &events[pos_reconnect].body {
        Body::ProviderInService { ctimanager } => assert_eq!(ctimanager, "CL1-cucm2"),
        _ => unreachable!(),
    }
}

#[test]
fn rolling_upgrade_and_site_outage() {
    let (_, truth) = simulate(&small("rolling-upgrade", 300), 3);
    assert_eq!(truth.maintenance_windows.len(), 4);
    let admin: Vec<_> = truth
        .incidents
        .iter()
        .filter(|i| i.cause == "admin")
        .collect();
    assert_eq!(admin.len(), 4);
    for (inc, w) in admin.iter().zip(&truth.maintenance_windows) {
        assert_eq!(inc.target, w.target);
        let start = inc.start.unwrap();
        assert!(
            w.start <= start && start < w.end,
            "outage inside its window"
        );
    }

    let (_, truth) = simulate(&small("site-outage", 300), 3);
    let inc = truth.incidents.iter().find(|i| i.scope == "site").unwrap();
    let at_site = truth
        .device_info
        .values()
        .filter(|d| d.site == "CL1-S2")
        .count();
    assert_eq!(inc.devices.len(), at_site);
    assert_eq!(
        inc.calls_dropped, inc.calls_active,
        "a network loss drops every call"
    );
    assert!(inc.recovery.p100_s.unwrap() >= 15.0 * 60.0);
}

#[test]
fn chaos_has_delivery_faults_and_unknown_periods() {
    let mut sc = small("chaos", 200);
    sc.faults
        .push(callstate_sim::scenario::Fault::CollectorSilence {
            at: "3h".into(),
            duration: "4m".into(),
            cluster: Some("CL2".into()),
        });
    let (events, truth) = simulate(&sc, 9);
    assert!(truth.stream.duplicates > 0 && truth.stream.late > 0 && truth.stream.reordered > 0);
    let out_of_order = events.windows(2).filter(|w| w[1].time < w[0].time).count();
    assert!(out_of_order > 0);
    let sil = truth.silences.iter().find(|s| s.cluster == "CL2").unwrap();
    let from = sil.unknown_from.expect("4 minutes is more than 90 s");
    assert!(events.iter().all(|e| e.source != sil.source
        || e.time <= from - Duration::seconds(90)
        || e.time >= sil.to));
    let mid = from + (sil.to - from) / 2;
    let d = truth
        .device_info
        .iter()
        .find(|(_, i)| i.cluster == "CL2")
        .unwrap()
        .0;
    assert_eq!(truth.state_at(d, mid).0, "unknown");
    check_rules("chaos+silence", &events, &truth);
}
