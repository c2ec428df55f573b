//! The cluster's CDR files for a simulated run (`cucm-sources.md` §3), as the billing server
//! would push them: one file per node per minute of call ends, `cdr_CLUSTER_NN_yyyymmddhhmm_SEQ`,
//! the 133-column header pair, one end-of-call record per call leg with the caller on a PSTN
//! trunk, and a consultation transfer as its three records (original and consultation split
//! off with cause 393216 on behalf of Transfer, the final record joined on behalf of Transfer).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use callstate_schemas::{Body, CallStateKind, Event, KnownCause};

/// The 133-column names and types lines.
const HEADER: &str = include_str!("cdr_header.txt");
/// The trunk the simulated callers and transfer targets are on.
pub const TRUNK: &str = "SIP_TRUNK_PSTN";

/// The CDR cause value of a simulated call end (its Q.850 value).
pub fn cause_value(cause: &str) -> i64 {
    match (cause, KnownCause::parse(cause)) {
        (_, Some(KnownCause::NodeFailure)) => 41,
        (_, Some(KnownCause::Network)) => 38,
        ("normal", _) => 16,
        ("transferred", _) => 393_216,
        _ => 31,
    }
}

#[derive(Debug, Default, Clone)]
struct Leg {
    device: String,
    start: Option<DateTime<Utc>>,
    connect: Option<DateTime<Utc>>,
    end: Option<(DateTime<Utc>, String)>,
    calling: String,
    called: String,
    node: usize,
}

/// One record's fields by name (the rest default to 0 / empty).
struct Row(BTreeMap<&'static str, String>);

impl Row {
    fn new() -> Row {
        Row(BTreeMap::new())
    }
    fn int(mut self, k: &'static str, v: i64) -> Row {
        self.0.insert(k, v.to_string());
        self
    }
    fn text(mut self, k: &'static str, v: &str) -> Row {
        self.0.insert(k, format!("\"{}\"", v.replace('"', "\"\"")));
        self
    }
}

fn ip_int(device: &str) -> i64 {
    let h = device
        .bytes()
        .fold(17u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let bytes = [
        10u8,
        40 + (h % 8) as u8,
        ((h >> 8) % 250) as u8,
        ((h >> 16) % 250 + 1) as u8,
    ];
    i64::from(u32::from_le_bytes(bytes) as i32)
}

/// What was written.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Written {
    /// Files.
    pub files: Vec<PathBuf>,
    /// Records.
    pub records: usize,
}

/// Writes the CDR files of a run's `events` (its first cluster) into `dir`.
pub fn write(events: &[Event], dir: &Path) -> std::io::Result<Written> {
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by_key(|e| (e.time, e.source.clone(), e.seq));
    let cluster = sorted
        .first()
        .map(|e| e.cluster.clone())
        .unwrap_or_default();
    let mut nodes: Vec<String> = Vec::new();
    let mut device_node: HashMap<String, usize> = HashMap::new();
    let mut legs: BTreeMap<(String, String), Leg> = BTreeMap::new();
    let mut transfers: Vec<(String, String, String, String, DateTime<Utc>)> = Vec::new();
    for e in sorted.iter().filter(|e| e.cluster == cluster) {
        match &e.body {
            Body::DeviceInService { device, node, .. } => {
                let n = nodes.iter().position(|x| x == node).unwrap_or_else(|| {
                    nodes.push(node.clone());
                    nodes.len() - 1
                });
                device_node.insert(device.clone(), n);
            }
            Body::CallStarted {
                call_id,
                device,
                calling,
                called,
                ..
            } => {
                let l = legs.entry((call_id.clone(), device.clone())).or_default();
                l.device = device.clone();
                l.start = Some(e.time);
                l.calling = calling.clone().unwrap_or_default();
                l.called = called.clone().unwrap_or_default();
                l.node = device_node.get(device).copied().unwrap_or(0);
            }
            Body::CallState {
                call_id,
                device,
                state: CallStateKind::Connected,
            } => {
                if let Some(l) = legs.get_mut(&(call_id.clone(), device.clone())) {
                    l.connect.get_or_insert(e.time);
                }
            }
            Body::CallEnded {
                call_id,
                device,
                cause,
            } => {
                if let Some(l) = legs.get_mut(&(call_id.clone(), device.clone())) {
                    l.end = Some((e.time, cause.as_str().to_string()));
                }
            }
            Body::TransferCompleted {
                call_id,
                consult_call_id,
                device,
                transferred_to,
            } => {
                transfers.push((
                    call_id.clone(),
                    consult_call_id.clone(),
                    device.clone(),
                    transferred_to.clone().unwrap_or_default(),
                    e.time,
                ));
            }
            _ => {}
        }
    }
    let mut next_leg: i64 = 88_000_000;
    let mut leg_id = || {
        next_leg += 1;
        next_leg
    };
    let mut global: i64 = 0;
    // (node, minute of disconnect) → rows
    let mut files: BTreeMap<(usize, String), Vec<Row>> = BTreeMap::new();
    let mut put = |node: usize, disconnect: DateTime<Utc>, row: Row| {
        files
            .entry((node, disconnect.format("%Y%m%d%H%M").to_string()))
            .or_default()
            .push(row);
    };
    let base = |g: i64,
                node: usize,
                o_leg: i64,
                d_leg: i64,
                start: DateTime<Utc>,
                connect: Option<DateTime<Utc>>,
                end: DateTime<Utc>| {
        let duration = connect.map_or(0, |c| (end - c).num_seconds().max(0));
        Row::new()
            .int("cdrRecordType", 1)
            .int("globalCallID_callManagerId", node as i64 + 1)
            .int("globalCallID_callId", g)
            .int("origLegCallIdentifier", o_leg)
            .int("destLegIdentifier", d_leg)
            .int("dateTimeOrigination", start.timestamp())
            .int("dateTimeConnect", connect.map_or(0, |c| c.timestamp()))
            // CUCM tears a call down when it notices the end: never before it (a call dropped
            // by an outage ends at or after the outage, as the incident reports count it)
            .int(
                "dateTimeDisconnect",
                (end.timestamp_micros() + 999_999).div_euclid(1_000_000),
            )
            .int("duration", duration)
            .int("origNodeId", node as i64 + 1)
            .int("destNodeId", node as i64 + 1)
    };
    let mut in_transfer: BTreeSet<(String, String)> = BTreeSet::new();
    for (orig_id, consult_id, device, target, at) in &transfers {
        let (Some(o), Some(c)) = (
            legs.get(&(orig_id.clone(), device.clone())),
            legs.get(&(consult_id.clone(), device.clone())),
        ) else {
            continue;
        };
        in_transfer.insert((orig_id.clone(), device.clone()));
        in_transfer.insert((consult_id.clone(), device.clone()));
        let (l1, l2, l3, l4) = (leg_id(), leg_id(), leg_id(), leg_id());
        let node = o.node;
        let split = |r: Row| {
            r.int("origCause_value", 393_216)
                .int("destCause_value", 393_216)
                .int("origCallTerminationOnBehalfOf", 10)
                .int("destCallTerminationOnBehalfOf", 10)
                .text("globalCallId_ClusterID", &cluster)
        };
        global += 1;
        let original = split(base(
            global,
            node,
            l1,
            l2,
            o.start.unwrap_or(*at),
            o.connect,
            *at,
        ))
        .text("origDeviceName", TRUNK)
        .text("destDeviceName", device)
        .text("callingPartyNumber", &o.calling)
        .text("originalCalledPartyNumber", &o.called)
        .text("finalCalledPartyNumber", &o.called)
        .int("destIpAddr", ip_int(device));
        put(node, *at, original);
        global += 1;
        let consult = split(base(
            global,
            node,
            l3,
            l4,
            c.start.unwrap_or(*at),
            c.connect,
            *at,
        ))
        .text("origDeviceName", device)
        .text("destDeviceName", TRUNK)
        .text("callingPartyNumber", &c.calling)
        .text("originalCalledPartyNumber", target)
        .text("finalCalledPartyNumber", target)
        .int("origIpAddr", ip_int(device));
        put(node, *at, consult);
        // the transferred party and the target talk on: a minute, as far as this file knows
        let end = *at + chrono::Duration::seconds(60);
        global += 1;
        let final_ = base(global, node, l1, l4, *at, Some(*at), end)
            .text("origDeviceName", TRUNK)
            .text("destDeviceName", TRUNK)
            .text("callingPartyNumber", &o.calling)
            .text("originalCalledPartyNumber", target)
            .text("finalCalledPartyNumber", target)
            .int("joinOnBehalfOf", 10)
            .int("destCause_value", 16)
            .int("destCallTerminationOnBehalfOf", 12)
            .text("globalCallId_ClusterID", &cluster);
        put(node, end, final_);
    }
    for ((call_id, device), l) in &legs {
        if in_transfer.contains(&(call_id.clone(), device.clone())) {
            continue;
        }
        let (Some(start), Some((end, cause))) = (l.start, l.end.clone()) else {
            continue; // still active at the end of the run: CUCM writes a record at call end
        };
        global += 1;
        let consult = call_id.ends_with("-c");
        let (o, d) = (leg_id(), leg_id());
        let mut r = base(global, l.node, o, d, start, l.connect, end)
            .int("destCause_value", cause_value(&cause))
            .int("destCallTerminationOnBehalfOf", 12)
            .text("globalCallId_ClusterID", &cluster)
            .text("callingPartyNumber", &l.calling)
            .text("originalCalledPartyNumber", &l.called)
            .text("finalCalledPartyNumber", &l.called);
        r = if consult {
            r.text("origDeviceName", device)
                .text("destDeviceName", TRUNK)
                .int("origIpAddr", ip_int(device))
        } else {
            r.text("origDeviceName", TRUNK)
                .text("destDeviceName", device)
                .int("destIpAddr", ip_int(device))
        };
        put(l.node, end, r);
    }
    std::fs::create_dir_all(dir)?;
    let names: Vec<&str> = HEADER
        .lines()
        .next()
        .unwrap_or("")
        .split(',')
        .map(|n| n.trim_matches('"'))
        .collect();
    let types: Vec<&str> = HEADER.lines().nth(1).unwrap_or("").split(',').collect();
    let mut written = Written::default();
    let mut seqs: HashMap<usize, u64> = HashMap::new();
    for ((node, minute), rows) in files {
        let seq = seqs.entry(node).or_insert(1000 * (node as u64 + 1));
        *seq += 1;
        let path = dir.join(format!("cdr_{cluster}_{:02}_{minute}_{seq}", node + 1));
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
        f.write_all(HEADER.as_bytes())?;
        if !HEADER.ends_with('\n') {
            f.write_all(b"\n")?;
        }
        for row in &rows {
            let fields: Vec<String> = names
                .iter()
                .zip(&types)
                .map(|(n, t)| {
                    row.0.get(n).cloned().unwrap_or_else(|| {
                        if t.starts_with("INTEGER") {
                            "0".into()
                        } else {
                            "\"\"".into()
                        }
                    })
                })
                .collect();
            f.write_all(fields.join(",").as_bytes())?;
            f.write_all(b"\n")?;
        }
        f.flush()?;
        written.records += rows.len();
        written.files.push(path);
    }
    Ok(written)
}
