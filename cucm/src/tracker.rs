//! What the poller knows of each device and provider, and the v1 events a RisPort answer
//! implies (`cucm-sources.md` §1.8 and §1.11): newest record per device across nodes, nothing
//! from nodes that did not answer, nothing from stale records or absence, CUCM's TimeStamp as
//! the event time when it is newer than what is known and not in the future.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value, json};

use callstate_schemas::{Body, Cause, DeviceType};

use crate::cti::CtiAnswer;
use crate::reasons::{is_catalogued, unregistration_cause};
use crate::risport::{DeviceRecord, RegStatus, SelectAnswer};

/// A CUCM TimeStamp more than this past the poll time is not trusted (the poll time is used).
const FUTURE_SLACK_S: i64 = 300;

/// An event the poller will send: time, body, extra fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// Event time.
    pub time: DateTime<Utc>,
    /// Kind and fields.
    pub body: Body,
    /// Extra fields (raw RisPort values, `observed_at`).
    pub extra: Map<String, Value>,
}

/// A watched device: what AXL (or the names file) says of it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Watched {
    /// The name as configured.
    pub name: String,
    /// Type from the AXL product, when known.
    pub device_type: Option<DeviceType>,
    /// Device pool.
    pub device_pool: Option<String>,
}

/// The v1 type of an AXL product name.
pub fn type_of_product(product: &str, class: &str) -> Option<DeviceType> {
    match product.trim() {
        "CTI Port" => Some(DeviceType::CtiPort),
        "CTI Route Point" => Some(DeviceType::CtiRoutePoint),
        "CTI Remote Device" => Some(DeviceType::CtiRemoteDevice),
        "" => None,
        _ if class.eq_ignore_ascii_case("Phone") => Some(DeviceType::Phone),
        _ => Some(DeviceType::Other),
    }
}

fn type_of_record(r: &DeviceRecord) -> DeviceType {
    match r.model {
        Some(72) => DeviceType::CtiPort,
        Some(73) => DeviceType::CtiRoutePoint,
        Some(635) => DeviceType::CtiRemoteDevice,
        _ if r.class == "Phone" => DeviceType::Phone,
        _ => DeviceType::Other,
    }
}

#[derive(Debug, Clone)]
struct Known {
    in_service: bool,
    node: String,
    timestamp: u32,
}

/// Counts of what the tracker saw (the poller's status).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct TrackerCounts {
    /// Records older than the device's known state (stale duplicates on nodes it left).
    pub stale_records: u64,
    /// Newer TimeStamp with unchanged state and node: re-registered between polls, unobserved.
    pub unobserved_flaps: u64,
    /// Records of devices outside the watched inventory.
    pub unwatched_records: u64,
    /// Records with `Status` Unknown.
    pub unknown_status: u64,
    /// Unregistration reasons outside the catalog.
    pub uncatalogued_reasons: u64,
}

/// Device and provider state as the poller knows it.
#[derive(Debug, Default)]
pub struct Tracker {
    watched: HashMap<String, Watched>,
    devices: HashMap<String, Known>,
    providers: BTreeMap<(String, String), (bool, u32)>,
    ctimanagers: BTreeMap<String, i64>,
    /// What was seen.
    pub counts: TrackerCounts,
}

impl Tracker {
    /// Replaces the watched inventory (a device that left it is forgotten without an event).
    pub fn set_inventory(&mut self, watched: Vec<Watched>) {
        self.watched = watched
            .into_iter()
            .map(|w| (w.name.to_ascii_lowercase(), w))
            .collect();
        let w = &self.watched;
        self.devices.retain(|k, _| w.contains_key(k));
    }

    /// Watched device names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.watched.values().map(|w| w.name.clone()).collect();
        v.sort();
        v
    }

    /// Devices whose state is known.
    pub fn known(&self) -> usize {
        self.devices.len()
    }

    /// Whether a device (by any case) was returned with a record in `answer`.
    pub fn returned(answer: &SelectAnswer) -> std::collections::HashSet<String> {
        answer
            .nodes
            .iter()
            .filter(|n| n.answered())
            .flat_map(|n| n.devices.iter().map(|d| d.name.to_ascii_lowercase()))
            .collect()
    }

    /// The events an answer implies, at poll time `now`.
    pub fn apply(&mut self, answer: &SelectAnswer, now: DateTime<Utc>) -> Vec<Pending> {
        let mut by_device: HashMap<String, Vec<(&DeviceRecord, &str)>> = HashMap::new();
        for node in answer.nodes.iter().filter(|n| n.answered()) {
            for r in &node.devices {
                let key = r.name.to_ascii_lowercase();
                if !self.watched.contains_key(&key) {
                    self.counts.unwatched_records += 1;
                    continue;
                }
                by_device
                    .entry(key)
                    .or_default()
                    .push((r, node.name.as_str()));
            }
        }
        let mut keys: Vec<String> = by_device.keys().cloned().collect();
        keys.sort();
        let mut out = Vec::new();
        for key in keys {
            let mut recs = by_device.remove(&key).unwrap_or_default();
            // oldest first; at equal TimeStamps a Registered record wins (it comes last)
            recs.sort_by_key(|(r, _)| {
                (
                    r.timestamp.unwrap_or(0),
                    r.status.in_service() == Some(true),
                )
            });
            let first_sighting = !self.devices.contains_key(&key);
            if first_sighting {
                // one event, from the newest record that says something
                if let Some(&(r, node)) = recs
                    .iter()
                    .rev()
                    .find(|(r, _)| r.status.in_service().is_some())
                {
                    out.push(self.event(&key, r, node, now, None));
                    self.remember(&key, r, node);
                }
                continue;
            }
            // an unregistration and a registration with the same TimeStamp are one move
            let moved_at: Vec<u32> = recs
                .iter()
                .filter(|(r, _)| r.status.in_service() == Some(true))
                .map(|(r, _)| r.timestamp.unwrap_or(0))
                .collect();
            for (r, node) in recs {
                let known = self.devices.get(&key).expect("known").clone();
                if r.status.in_service() == Some(false)
                    && moved_at.contains(&r.timestamp.unwrap_or(0))
                {
                    self.counts.stale_records += 1;
                    continue;
                }
                let ts = r.timestamp.unwrap_or(0);
                if ts < known.timestamp || (ts == known.timestamp && node != known.node) {
                    self.counts.stale_records += 1;
                    continue;
                }
                let Some(in_service) = r.status.in_service() else {
                    self.counts.unknown_status += 1;
                    continue;
                };
                let changed = in_service != known.in_service || (in_service && node != known.node);
                if changed {
                    out.push(self.event(&key, r, node, now, Some(known.timestamp)));
                    self.remember(&key, r, node);
                } else if ts > known.timestamp {
                    self.counts.unobserved_flaps += 1;
                    self.remember(&key, r, node);
                }
            }
        }
        out
    }

    fn remember(&mut self, key: &str, r: &DeviceRecord, node: &str) {
        self.devices.insert(
            key.to_string(),
            Known {
                in_service: r.status.in_service() == Some(true),
                node: node.to_string(),
                timestamp: r.timestamp.unwrap_or(0),
            },
        );
    }

    fn event(
        &mut self,
        key: &str,
        r: &DeviceRecord,
        node: &str,
        now: DateTime<Utc>,
        known_ts: Option<u32>,
    ) -> Pending {
        let w = &self.watched[key];
        let time = event_time(r.timestamp, known_ts, now);
        let mut extra = Map::new();
        extra.insert(
            "observed_at".into(),
            json!(callstate_schemas::time::format_time(&now)),
        );
        if let Some(ts) = r.timestamp {
            extra.insert("risport_timestamp".into(), json!(ts));
        }
        for (k, v) in [
            ("ip", &r.ip),
            ("protocol", &r.protocol),
            ("login_user", &r.login_user),
            ("load_id", &r.load),
        ] {
            if let Some(v) = v {
                extra.insert(k.into(), json!(v));
            }
        }
        let body = if r.status.in_service() == Some(true) {
            if r.status == RegStatus::PartiallyRegistered {
                extra.insert("partial".into(), json!(true));
            }
            Body::DeviceInService {
                device: w.name.clone(),
                device_type: w.device_type.unwrap_or_else(|| type_of_record(r)),
                node: node.to_string(),
                device_pool: w.device_pool.clone(),
                ctimanager: None,
            }
        } else {
            let cause = if r.status == RegStatus::Rejected && r.reason == 0 {
                "rejected"
            } else {
                let (cause, planned) = unregistration_cause(r.reason);
                if planned {
                    extra.insert("planned".into(), json!(true));
                }
                cause
            };
            if !is_catalogued(r.reason) {
                self.counts.uncatalogued_reasons += 1;
            }
            extra.insert("reason_code".into(), json!(r.reason));
            Body::DeviceOutOfService {
                device: w.name.clone(),
                cause: Cause::parse(cause),
                node: Some(node.to_string()),
            }
        };
        Pending { time, body, extra }
    }

    /// The provider events a `selectCtiItem` answer implies for the watched users.
    pub fn apply_providers(
        &mut self,
        answer: &CtiAnswer,
        users: &[String],
        now: DateTime<Utc>,
    ) -> Vec<Pending> {
        let mut out = Vec::new();
        let mut seen: BTreeMap<(String, String), (bool, u32, Option<u32>)> = BTreeMap::new();
        for p in &answer.providers {
            if !users.iter().any(|u| u.eq_ignore_ascii_case(&p.user)) {
                continue;
            }
            let open = match p.status.as_str() {
                "Open" => true,
                "Closed" | "OpenFailed" => false,
                _ => continue,
            };
            let key = (p.node.clone(), p.user.to_ascii_lowercase());
            let ts = p.timestamp.unwrap_or(0);
            // several connections of one user on one node: the newest counts
            if seen.get(&key).is_none_or(|(_, t, _)| ts >= *t) {
                seen.insert(key, (open, ts, p.reason));
            }
        }
        // a provider that was open on a node that answered but no longer lists it: closed
        for (key, (open, ts)) in &self.providers {
            if *open && answer.answered.contains(&key.0) && !seen.contains_key(key) {
                let now_s = u32::try_from(now.timestamp()).unwrap_or(u32::MAX);
                seen.insert(key.clone(), (false, now_s.max(*ts), None));
            }
        }
        for (key, (open, ts, reason)) in seen {
            let prev = self.providers.get(&key).copied();
            if prev.is_some_and(|(was, t)| was == open || ts < t) {
                continue;
            }
            let mut extra = Map::new();
            extra.insert(
                "observed_at".into(),
                json!(callstate_schemas::time::format_time(&now)),
            );
            extra.insert("application_user".into(), json!(key.1));
            let body = if open {
                Body::ProviderInService {
                    ctimanager: key.0.clone(),
                }
            } else {
                if let Some(r) = reason {
                    extra.insert("app_status_reason".into(), json!(r));
                }
                Body::ProviderOutOfService {
                    ctimanager: key.0.clone(),
                    cause: None,
                }
            };
            out.push(Pending {
                time: event_time(Some(ts), prev.map(|p| p.1), now),
                body,
                extra,
            });
            self.providers.insert(key, (open, ts));
        }
        out.sort_by_key(|p| p.time);
        out
    }
}

impl Tracker {
    /// Provider events from a CTIManager's PerfMon counters (`counters` none: the CTI Manager
    /// object could not be read on a node that answers, i.e. the service is down), when no
    /// application user is watched with `selectCtiItem`: its CTI connections going from none
    /// to some is `provider_in_service`, from some to none (or the service gone)
    /// `provider_out_of_service`, at the poll time (PerfMon has no timestamps). A CTIManager
    /// with no connection from the start says nothing (an idle backup is not out of service).
    pub fn apply_ctimanager(
        &mut self,
        node: &str,
        counters: Option<&crate::perfmon::CtiManagerCounters>,
        emit: bool,
        now: DateTime<Utc>,
    ) -> Vec<Pending> {
        let (connections, down) = match counters {
            Some(c) if c.ccm_link_active == Some(0) => (0, true),
            Some(c) => match c.cti_connections {
                Some(n) => (n, false),
                None => return Vec::new(),
            },
            None => (0, true),
        };
        let before = self.ctimanagers.insert(node.to_string(), connections);
        if !emit {
            return Vec::new();
        }
        let mut extra = Map::new();
        extra.insert(
            "observed_at".into(),
            json!(callstate_schemas::time::format_time(&now)),
        );
        extra.insert("observed_by".into(), json!("perfmon"));
        extra.insert("cti_connections".into(), json!(connections));
        let body = match (before.unwrap_or(0) > 0, connections > 0) {
            (false, true) => Body::ProviderInService {
                ctimanager: node.to_string(),
            },
            (true, false) => Body::ProviderOutOfService {
                ctimanager: node.to_string(),
                cause: down.then_some(Cause::Known(
                    callstate_schemas::KnownCause::CtimanagerFailure,
                )),
            },
            _ => return Vec::new(),
        };
        vec![Pending {
            time: now,
            body,
            extra,
        }]
    }
}

/// CUCM's TimeStamp when it is newer than the known one and not more than 5 min past the poll
/// time; else the poll time.
fn event_time(ts: Option<u32>, known: Option<u32>, now: DateTime<Utc>) -> DateTime<Utc> {
    match ts {
        Some(ts)
            if ts > 0
                && known.is_none_or(|k| ts > k)
                && i64::from(ts) <= now.timestamp() + FUTURE_SLACK_S =>
        {
            Utc.timestamp_opt(i64::from(ts), 0).single().unwrap_or(now)
        }
        _ => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cti::Provider;
    use crate::risport::NodeAnswer;

    fn rec(name: &str, status: RegStatus, reason: u32, ts: u32) -> DeviceRecord {
        DeviceRecord {
            name: name.into(),
            class: "Phone".into(),
            model: Some(592),
            status,
            reason,
            timestamp: Some(ts),
            protocol: None,
            ip: None,
            login_user: None,
            load: None,
            description: None,
        }
    }

    fn answer(nodes: Vec<(&str, &str, Vec<DeviceRecord>)>) -> SelectAnswer {
        SelectAnswer {
            total_found: None,
            nodes: nodes
                .into_iter()
                .map(|(n, code, devices)| NodeAnswer {
                    name: n.into(),
                    return_code: code.into(),
                    no_change: false,
                    devices,
                })
                .collect(),
            state_info: String::new(),
        }
    }

    fn tracker() -> Tracker {
        let mut t = Tracker::default();
        t.set_inventory(vec![
            Watched {
                name: "SEP1".into(),
                device_type: Some(DeviceType::Phone),
                device_pool: Some("DP1".into()),
            },
            Watched {
                name: "CTIPORT1".into(),
                ..Watched::default()
            },
        ]);
        t
    }

    const T0: u32 = 1_800_000_000;

    fn at(s: u32) -> DateTime<Utc> {
        Utc.timestamp_opt(i64::from(s), 0).unwrap()
    }

    fn kinds(p: &[Pending]) -> Vec<(String, i64)> {
        p.iter()
            .map(|p| {
                let what = match &p.body {
                    Body::DeviceInService { device, node, .. } => format!("in {device} {node}"),
                    Body::DeviceOutOfService {
                        device,
                        cause,
                        node,
                    } => {
                        format!(
                            "out {device} {} {}",
                            node.as_deref().unwrap_or("-"),
                            cause.as_str()
                        )
                    }
                    other => format!("{other:?}"),
                };
                (what, p.time.timestamp())
            })
            .collect()
    }

    #[test]
    fn duplicates_across_nodes_keep_the_newest_record() {
        let mut t = tracker();
        let a = answer(vec![
            (
                "ucm-a1",
                "Ok",
                vec![rec("SEP1", RegStatus::UnRegistered, 28, T0)],
            ),
            (
                "ucm-a2",
                "Ok",
                vec![rec("sep1", RegStatus::Registered, 0, T0 + 5)],
            ),
        ]);
        let now = at(T0 + 30);
        assert_eq!(
            kinds(&t.apply(&a, now)),
            vec![("in SEP1 ucm-a2".into(), i64::from(T0 + 5))]
        );
        // the same answer again: nothing; the stale record on ucm-a1 never counts
        assert!(t.apply(&a, now).is_empty());
        assert!(t.counts.stale_records >= 1);
    }

    #[test]
    fn moves_outages_and_what_must_not_produce_events() {
        let mut t = tracker();
        let now = at(T0 + 30);
        let first = answer(vec![(
            "ucm-a1",
            "Ok",
            vec![rec("SEP1", RegStatus::Registered, 0, T0)],
        )]);
        assert_eq!(t.apply(&first, now).len(), 1);
        // a node that does not answer: nothing, whatever it would have said
        let gone = answer(vec![
            ("ucm-a1", "NodeNotResponding", vec![]),
            ("ucm-a2", "Ok", vec![]),
        ]);
        assert!(t.apply(&gone, at(T0 + 60)).is_empty());
        // Status Unknown: nothing
        let unknown = answer(vec![(
            "ucm-a1",
            "Ok",
            vec![rec("SEP1", RegStatus::Unknown, 0, T0 + 70)],
        )]);
        assert!(t.apply(&unknown, at(T0 + 90)).is_empty());
        // unregistered on a1 at +100, registered on a2 at +130, both newer: both, in order
        let both = answer(vec![
            (
                "ucm-a1",
                "Ok",
                vec![rec("SEP1", RegStatus::UnRegistered, 13, T0 + 100)],
            ),
            (
                "ucm-a2",
                "Ok",
                vec![rec("SEP1", RegStatus::Registered, 0, T0 + 130)],
            ),
        ]);
        assert_eq!(
            kinds(&t.apply(&both, at(T0 + 150))),
            vec![
                ("out SEP1 ucm-a1 network".into(), i64::from(T0 + 100)),
                ("in SEP1 ucm-a2".into(), i64::from(T0 + 130)),
            ]
        );
        // re-registered on the same node between polls: no event, counted
        let flap = answer(vec![(
            "ucm-a2",
            "Ok",
            vec![rec("SEP1", RegStatus::Registered, 0, T0 + 200)],
        )]);
        assert!(t.apply(&flap, at(T0 + 210)).is_empty());
        assert_eq!(t.counts.unobserved_flaps, 1);
        // an unregistration and a registration with the same TimeStamp are one move
        let mv = answer(vec![
            (
                "ucm-a2",
                "Ok",
                vec![rec("SEP1", RegStatus::UnRegistered, 28, T0 + 300)],
            ),
            (
                "ucm-a1",
                "Ok",
                vec![rec("SEP1", RegStatus::Registered, 0, T0 + 300)],
            ),
        ]);
        assert_eq!(
            kinds(&t.apply(&mv, at(T0 + 310))),
            vec![("in SEP1 ucm-a1".into(), i64::from(T0 + 300))]
        );
        // a TimeStamp far in the future is not trusted: the poll time is used
        let future = answer(vec![(
            "ucm-a1",
            "Ok",
            vec![rec("SEP1", RegStatus::Rejected, 0, T0 + 9_999)],
        )]);
        assert_eq!(
            kinds(&t.apply(&future, at(T0 + 400))),
            vec![("out SEP1 ucm-a1 rejected".into(), i64::from(T0 + 400))]
        );
        // devices outside the inventory: nothing
        let other = answer(vec![(
            "ucm-a1",
            "Ok",
            vec![rec("SEPX", RegStatus::Registered, 0, T0 + 500)],
        )]);
        assert!(t.apply(&other, at(T0 + 510)).is_empty());
        assert_eq!(t.counts.unwatched_records, 1);
    }

    #[test]
    fn device_types_come_from_the_inventory_then_the_model() {
        let mut t = tracker();
        let mut r = rec("CTIPORT1", RegStatus::PartiallyRegistered, 0, T0);
        r.model = Some(72);
        let a = answer(vec![
            ("ucm-a1", "Ok", vec![r]),
            (
                "ucm-a2",
                "Ok",
                vec![rec("SEP1", RegStatus::Registered, 0, T0)],
            ),
        ]);
        let p = t.apply(&a, at(T0 + 1));
        let types: Vec<_> = p
            .iter()
            .map(|p| match &p.body {
                Body::DeviceInService {
                    device_type,
                    device_pool,
                    ..
                } => (device_type.as_str(), device_pool.clone()),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(
            types,
            vec![("cti_port", None), ("phone", Some("DP1".into()))]
        );
        assert_eq!(p[0].extra.get("partial"), Some(&json!(true)));
    }

    #[test]
    fn providers_open_close_and_move() {
        let mut t = tracker();
        let users = vec!["jtapi".to_string()];
        let prov = |node: &str, status: &str, ts: u32| Provider {
            node: node.into(),
            user: "JTAPI".into(),
            status: status.into(),
            reason: None,
            timestamp: Some(ts),
        };
        let a = CtiAnswer {
            providers: vec![prov("ucm-a1", "Open", T0)],
            answered: vec!["ucm-a1".into(), "ucm-a2".into()],
            missing: vec![],
        };
        let p = t.apply_providers(&a, &users, at(T0 + 5));
        assert!(
            matches!(&p[..], [Pending { body: Body::ProviderInService { ctimanager }, .. }] if ctimanager == "ucm-a1")
        );
        assert!(t.apply_providers(&a, &users, at(T0 + 35)).is_empty());
        // closed on a1 at +60, open on a2 at +85
        let b = CtiAnswer {
            providers: vec![
                prov("ucm-a1", "Closed", T0 + 60),
                prov("ucm-a2", "Open", T0 + 85),
            ],
            answered: vec!["ucm-a1".into(), "ucm-a2".into()],
            missing: vec![],
        };
        let p = t.apply_providers(&b, &users, at(T0 + 90));
        let got: Vec<_> = p
            .iter()
            .map(|p| (format!("{:?}", p.body), p.time.timestamp()))
            .collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].0.contains("ProviderOutOfService") && got[0].1 == i64::from(T0 + 60));
        assert!(got[1].0.contains("ProviderInService") && got[1].1 == i64::from(T0 + 85));
        // a node that does not answer says nothing about its providers
        let c = CtiAnswer {
            providers: vec![],
            answered: vec!["ucm-a1".into()],
            missing: vec!["ucm-a2".into()],
        };
        assert!(t.apply_providers(&c, &users, at(T0 + 120)).is_empty());
    }
}
