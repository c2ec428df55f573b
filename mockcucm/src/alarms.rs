//! The cluster's remote-syslog stream for a simulated run (`cucm-sources.md` §2): the
//! registration, node, service and CTI alarms CUCM would send, one line each, in time order,
//! with the variants real senders produce (no HOST, 12-hour clocks with the fraction after
//! AM/PM, no year, keys with spaces, unescaped brackets, truncated lines), duplicate frames
//! and OS lines on the same channel. A node that is down sends nothing; phones do not
//! unregister when only their CTI control is lost.

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};

use callstate_schemas::{Body, DeviceType, Event, KnownCause};
use callstate_sim::rng::Rng;

use crate::model::{APP_USER, reason_of};

/// How the stream is rendered.
#[derive(Debug, Clone)]
pub struct AlarmOptions {
    /// Share of alarms written in a lenient variant that loses nothing.
    pub variants: f64,
    /// Share of alarms cut after their reason (the node then comes from HOST).
    pub truncated: f64,
    /// Share of frames sent twice (two destinations, a relay).
    pub duplicates: f64,
    /// OS lines and alarms without a v1 meaning, per alarm.
    pub noise: f64,
    /// The domain of the nodes' host names.
    pub domain: String,
    /// Random seed.
    pub seed: u64,
}

impl Default for AlarmOptions {
    fn default() -> Self {
        AlarmOptions {
            variants: 0.2,
            truncated: 0.02,
            duplicates: 0.02,
            noise: 0.05,
            domain: "clab.example".into(),
            seed: 1,
        }
    }
}

/// One line and the instant CUCM sent it (µs).
pub type AlarmLine = (i64, String);

struct Renderer {
    opts: AlarmOptions,
    cluster: String,
    rng: Rng,
    seqs: HashMap<(String, &'static str), u64>,
    out: Vec<AlarmLine>,
}

impl Renderer {
    fn stamp(&mut self, t: i64, variant: bool) -> String {
        let dt = Utc.timestamp_micros(t).single().unwrap_or_default();
        let form = if variant { self.rng.index(4) } else { 0 };
        match form {
            1 => dt.format("%b %d %Y %I:%M:%S %p.%3f UTC").to_string(),
            2 => dt.format("%b %d %H:%M:%S%.3f UTC").to_string(),
            3 => dt.format("%b %e %Y %H:%M:%S%.3f UTC").to_string(),
            _ => dt.format("%b %d %Y %H:%M:%S%.3f UTC").to_string(),
        }
    }

    /// One alarm from `node`: header fields, tags (name, value), text.
    #[allow(clippy::too_many_arguments)]
    fn alarm(
        &mut self,
        t: i64,
        node: &str,
        app: &'static str,
        sev: u8,
        name: &str,
        tags: &[(&str, String)],
        text: &str,
    ) {
        let variant = self.rng.chance(self.opts.variants);
        let seq = self.next_seq(node, app);
        let pri = 23 * 8 + u32::from(sev);
        let host = if variant && self.rng.chance(0.3) {
            String::new()
        } else if variant && self.rng.chance(0.3) {
            format!("{node}: ")
        } else {
            format!("{node}.{}: ", self.opts.domain)
        };
        let stamp = self.stamp(t, variant);
        let spaced = variant && self.rng.chance(0.5);
        let mut body = String::new();
        let mut tags: Vec<(String, String)> = tags
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.clone()))
            .collect();
        tags.push((
            "AppID".into(),
            if app == "UC_CTI" {
                "Cisco CTIManager"
            } else {
                "Cisco CallManager"
            }
            .into(),
        ));
        tags.push(("ClusterID".into(), self.cluster.clone()));
        tags.push(("NodeID".into(), node.to_string()));
        let truncate = !host.is_empty() && self.rng.chance(self.opts.truncated);
        for (k, v) in &tags {
            let key = match (spaced, k.as_str()) {
                (true, "NodeID") => "Node ID",
                (true, "AppID") => "App ID",
                (true, "ClusterID") => "Cluster ID",
                (true, "Reason") => "Reason code.",
                (true, "LoginUserId") => " Login User Id",
                _ => k.as_str(),
            };
            body.push_str(&format!("[{key}={v}]"));
            if truncate && k == "Reason" {
                // cut inside the next tag, as an 800-octet limit cuts a long alarm
                body.push_str("[IPAddrAt");
                break;
            }
        }
        let sep = if variant && self.rng.chance(0.5) {
            " : "
        } else {
            ": "
        };
        let line = if truncate && body.ends_with("[IPAddrAt") {
            format!("<{pri}>{seq}: {host}{stamp} :  %{app}-{sev}-{name}{sep}%{body}")
        } else {
            format!("<{pri}>{seq}: {host}{stamp} :  %{app}-{sev}-{name}{sep}%{body}: {text}")
        };
        self.out.push((t, line.clone()));
        if self.rng.chance(self.opts.duplicates) {
            self.out.push((t + self.rng.range(1, 50_000), line));
        }
        if self.rng.chance(self.opts.noise) {
            self.noise(t, node);
        }
    }

    fn next_seq(&mut self, node: &str, app: &'static str) -> u64 {
        let s = self.seqs.entry((node.to_string(), app)).or_insert(0);
        *s += 1;
        *s
    }

    fn noise(&mut self, t: i64, node: &str) {
        let stamp = self.stamp(t, false);
        let (cluster, domain) = (self.cluster.clone(), self.opts.domain.clone());
        let line = match self.rng.index(3) {
            0 => format!(
                "<14>{}: : audispd:node={node} type=USER_LOGIN msg=audit({}.120:881):",
                self.rng.range(1, 1_000_000),
                t / 1_000_000
            ),
            1 => format!(
                "<190>{}: {node}.{domain}: {stamp} :  %UC_CTI-6-CtiDeviceOpened: %[DeviceName=CTIPORT1][DeviceId=7][CTIconnectionId=3][AppID=Cisco CTIManager][ClusterID={cluster}][NodeID={node}]: CTI device opened",
                self.next_seq(node, "UC_CTI")
            ),
            _ => format!(
                "<186>{}: {node}.{domain}: {stamp} :  %UC_RTMT-2-RTMT_ALERT: %[AlertName=CallProcessingNodeCpuPegging][AlertDetail=On {stamp} %UC_CALLMANAGER-3-EndPointUnregistered: %[DeviceName=SEPQUOTED][Reason=13]][AppID=Cisco AMC Service][ClusterID={cluster}][NodeID={node}]: RTMT Alert",
                self.next_seq(node, "UC_RTMT")
            ),
        };
        self.out.push((t, line));
    }
}

fn model_of(t: DeviceType) -> u32 {
    match t {
        DeviceType::CtiPort => 72,
        DeviceType::CtiRoutePoint => 73,
        DeviceType::CtiRemoteDevice => 635,
        _ => 592,
    }
}

/// The syslog lines of a run's `events` (any order) for its first cluster, in time order.
pub fn render(events: &[Event], opts: &AlarmOptions) -> Vec<AlarmLine> {
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by_key(|e| (e.time, e.source.clone(), e.seq));
    let cluster = sorted
        .first()
        .map(|e| e.cluster.clone())
        .unwrap_or_default();
    let mut r = Renderer {
        rng: Rng::new(opts.seed, 77),
        opts: opts.clone(),
        cluster: cluster.clone(),
        seqs: HashMap::new(),
        out: Vec::new(),
    };
    let mut down: HashMap<String, bool> = HashMap::new();
    let mut last_node: HashMap<String, String> = HashMap::new();
    let mut types: HashMap<String, DeviceType> = HashMap::new();
    let mut cti_only: HashMap<String, bool> = HashMap::new();
    for e in sorted.into_iter().filter(|e| e.cluster == cluster) {
        let t = e.time.timestamp_micros();
        let is_down = |n: &str, down: &HashMap<String, bool>| down.get(n).copied().unwrap_or(false);
        match &e.body {
            Body::DeviceInService {
                device,
                device_type,
                node,
                ..
            } => {
                types.insert(device.clone(), *device_type);
                let back_same =
                    cti_only.remove(device).unwrap_or(false) && last_node.get(device) == Some(node);
                last_node.insert(device.clone(), node.clone());
                if back_same || is_down(node, &down) {
                    continue;
                }
                let rp = *device_type == DeviceType::CtiRoutePoint;
                let mut tags = vec![("DeviceName", device.clone())];
                if !rp {
                    tags.push(("IPAddress", ip_of(device)));
                }
                tags.push(("Protocol", if rp { "SCCP" } else { "SIP" }.into()));
                if r.rng.chance(r.opts.variants) {
                    tags.push((
                        "Description",
                        format!("Lab [{}] bench", &device[device.len().saturating_sub(2)..]),
                    ));
                }
                tags.push(("PerfMonObjType", "2".into()));
                tags.push(("DeviceType", model_of(*device_type).to_string()));
                let name = if rp {
                    "DeviceRegistered"
                } else {
                    "EndPointRegistered"
                };
                r.alarm(
                    t,
                    node,
                    "UC_CALLMANAGER",
                    6,
                    name,
                    &tags,
                    "Endpoint registered.",
                );
            }
            Body::DeviceOutOfService {
                device,
                cause,
                node,
            } => {
                let dtype = types.get(device).copied().unwrap_or(DeviceType::Phone);
                let known = KnownCause::parse(cause.as_str());
                if known == Some(KnownCause::CtimanagerFailure)
                    && !matches!(dtype, DeviceType::CtiPort | DeviceType::CtiRoutePoint)
                {
                    // CUCM registration does not depend on the CTIManager for phones
                    cti_only.insert(device.clone(), true);
                    continue;
                }
                let Some(node) = node.clone().or_else(|| last_node.get(device).cloned()) else {
                    continue;
                };
                if is_down(&node, &down) {
                    continue;
                }
                let reason = reason_of(known);
                let planned = matches!(reason, 8 | 9 | 15);
                let rp = dtype == DeviceType::CtiRoutePoint;
                let tags = vec![
                    ("DeviceName", device.clone()),
                    ("Protocol", if rp { "SCCP" } else { "SIP" }.into()),
                    ("DeviceType", model_of(dtype).to_string()),
                    ("Reason", reason.to_string()),
                    ("IPAddrAttributes", "0".into()),
                ];
                let name = if rp {
                    "DeviceUnregistered"
                } else {
                    "EndPointUnregistered"
                };
                r.alarm(
                    t,
                    &node,
                    "UC_CALLMANAGER",
                    if planned { 6 } else { 3 },
                    name,
                    &tags,
                    "An endpoint has unregistered",
                );
            }
            Body::NodeDown { node, .. } => {
                // the CallManager service reports its own failure as it goes
                let tags = vec![("HostName", node.clone()), ("Reason", "2".into())];
                r.alarm(
                    t,
                    node,
                    "UC_CALLMANAGER",
                    2,
                    "CallManagerFailure",
                    &tags,
                    "CallManager failure",
                );
                down.insert(node.clone(), true);
            }
            Body::NodeUp { node, .. } => {
                down.insert(node.clone(), false);
                let tags = vec![("CCMVersion", "14.0.1.13900-155".into())];
                r.alarm(
                    t,
                    node,
                    "UC_CALLMANAGER",
                    5,
                    "CallManagerOnline",
                    &tags,
                    "Cisco CallManager service started.",
                );
            }
            Body::ProviderOutOfService { ctimanager, .. } if !is_down(ctimanager, &down) => {
                let tags = vec![
                    ("ServiceName", "Cisco CTIManager".into()),
                    ("Reason", "1".into()),
                ];
                r.alarm(
                    t,
                    ctimanager,
                    "UC_SERVICEMANAGER",
                    2,
                    "ServiceFailed",
                    &tags,
                    "Service terminated.",
                );
            }
            Body::ProviderInService { ctimanager } if !is_down(ctimanager, &down) => {
                let tags = vec![
                    ("LoginUserId", APP_USER.to_string()),
                    ("SeqNumber", "1".into()),
                    ("CTIconnectionId", "7".into()),
                    ("IPAddress", "10.40.0.50".into()),
                ];
                r.alarm(
                    t,
                    ctimanager,
                    "UC_CTI",
                    6,
                    "CtiProviderOpened",
                    &tags,
                    "CTI application opened provider",
                );
            }
            _ => {}
        }
    }
    let mut out = r.out;
    out.sort_by_key(|(t, _)| *t);
    out
}

fn ip_of(device: &str) -> String {
    let h = device
        .bytes()
        .fold(17u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    format!(
        "10.{}.{}.{}",
        40 + (h % 8),
        (h >> 8) % 250,
        (h >> 16) % 250 + 1
    )
}

/// The instant (for tests that follow a clock) of a line, as `DateTime`.
pub fn at(t: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(t).single().unwrap_or_default()
}
