//! Service-state intervals per device (design.md §2), derived from the log:
//!
//! - events are ordered by `time`, ties by ingest order, so late and out-of-order delivery give
//!   the same intervals as in-order delivery (duplicates never reach here: the log drops them);
//! - a device is `unknown` before its first service event, and while the source that reported
//!   its state has been silent (no event at all, heartbeat included) for more than 90 s;
//! - its home node is the first node of its device pool's latest `device_pool_config`;
//! - coming in service on another node than before is a failover, or a re-home when the new
//!   node is home.

use std::collections::HashMap;
use std::sync::Arc;

use callstate_schemas::{Movement, SILENCE_US, ServiceState, Us};

use super::name::Name;
use super::rows::{LogRows, PoolConfig, ServiceRow};

/// One interval of a device's service state.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceInterval {
    /// Device.
    pub device: Name,
    /// Cluster.
    pub cluster: Name,
    /// Device type (last reported).
    pub device_type: Option<Name>,
    /// Device pool (last reported).
    pub device_pool: Option<Name>,
    /// State.
    pub state: ServiceState,
    /// Node handling the device (in service only).
    pub node: Option<Name>,
    /// Node it was last in service on (for out-of-service and unknown intervals too).
    pub last_node: Option<Name>,
    /// Home node at `valid_from`.
    pub home_node: Option<Name>,
    /// Cause of an out-of-service interval.
    pub cause: Option<Name>,
    /// For in-service intervals that moved the device.
    pub movement: Option<Movement>,
    /// Start (inclusive), µs.
    pub valid_from: Us,
    /// End (exclusive), µs; `None` while it lasts.
    pub valid_to: Option<Us>,
    /// Source that reported the state.
    pub source: Name,
    /// Ingest time of the event that opened it (for `known_at` questions).
    pub known_from: Us,
}

impl ServiceInterval {
    /// Whether `t` falls inside.
    pub fn contains(&self, t: Us) -> bool {
        self.valid_from <= t && self.valid_to.is_none_or(|e| t < e)
    }
    /// `on_home_node` of design.md §2 (in service only).
    pub fn on_home_node(&self) -> Option<bool> {
        match (&self.node, &self.home_node) {
            (Some(n), Some(h)) => Some(n == h),
            _ => None,
        }
    }
}

/// The closed unknown windows of a source whose activity spans (merged across gaps of at
/// most 90 s, by start) are `spans`: from 90 s after a span's end to the next span's start.
pub fn closed_silences(spans: &[(Us, Us)]) -> Vec<(Us, Option<Us>)> {
    spans
        .windows(2)
        .filter(|pair| pair[1].0 - pair[0].1 > SILENCE_US)
        .map(|pair| (pair[0].1 + SILENCE_US, Some(pair[1].0)))
        .collect()
}

/// When a source whose activity spans are `spans` fell silent for good (so far): 90 s after
/// its last event.
pub fn open_silence(spans: &[(Us, Us)]) -> Option<Us> {
    spans.last().map(|last| last.1 + SILENCE_US)
}

/// Unknown windows of every source: gaps of more than 90 s between its events, and the time
/// after its last event plus 90 s (open-ended, `None`).
pub fn silence_windows(rows: &LogRows) -> SilenceWindows {
    rows.source_spans
        .iter()
        .map(|(src, spans)| {
            let mut w = closed_silences(spans);
            w.extend(open_silence(spans).map(|t| (t, None)));
            (src.clone(), w)
        })
        .collect()
}

/// Per pool: (time, ingest_seq, home node) of each configuration, in time order.
pub type PoolHistory = HashMap<Arc<str>, Vec<(Us, u64, Name)>>;
/// Per source: its unknown windows (start, end; `None` = open-ended).
pub type SilenceWindows = HashMap<Arc<str>, Vec<(Us, Option<Us>)>>;

/// Pool configurations by pool, in time order.
pub fn pool_history(configs: &[PoolConfig]) -> PoolHistory {
    let mut out: PoolHistory = HashMap::new();
    for c in configs {
        if let Some(first) = c.nodes.first() {
            out.entry(c.device_pool.clone()).or_default().push((
                c.time,
                c.ingest_seq,
                Name::from(first),
            ));
        }
    }
    for v in out.values_mut() {
        v.sort_by_key(|x| (x.0, x.1));
    }
    out
}

/// The home node of `pool` at `t`: the first node of its latest configuration by then.
pub fn home_at(history: &PoolHistory, pool: &Option<Name>, t: Us) -> Option<Name> {
    let h = history.get(pool.as_ref()?.as_str())?;
    let i = h.partition_point(|x| x.0 <= t);
    // Before the first configuration, the earliest one is the best knowledge there is.
    Some(h[i.saturating_sub(1)].2)
}

/// All devices' intervals, grouped by device (devices sorted by name, intervals by time).
pub fn derive(rows: &LogRows) -> Vec<ServiceInterval> {
    let silences = silence_windows(rows);
    let pools = pool_history(&rows.pool_configs);
    let mut by_device: HashMap<&str, Vec<&ServiceRow>> = HashMap::new();
    for r in &rows.service {
        by_device.entry(&r.device).or_default().push(r);
    }
    let mut devices: Vec<_> = by_device.into_iter().collect();
    devices.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::new();
    for (_, mut events) in devices {
        events.sort_by_key(|r| (r.time, r.ingest_seq));
        derive_device(&events, &silences, &pools, &mut out);
    }
    out
}

/// One device's intervals from its service events (in time, then ingest order), with the
/// unknown windows of their sources cut out.
pub fn derive_device(
    events: &[&ServiceRow],
    silences: &SilenceWindows,
    pools: &PoolHistory,
    out: &mut Vec<ServiceInterval>,
) {
    for i in raw_intervals(events, pools) {
        let windows = silences
            .get(i.source.as_str())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        split_by_silence(i, windows, out);
    }
}

/// One device's intervals from its service events (in time, then ingest order), before any
/// silence is cut out: one per change of (state, node), with home node and movement.
pub fn raw_intervals(events: &[&ServiceRow], pools: &PoolHistory) -> Vec<ServiceInterval> {
    // Raw intervals: one per change of (state, node).
    let mut raw: Vec<ServiceInterval> = Vec::new();
    let mut pool: Option<Name> = None;
    let mut dtype: Option<Name> = None;
    let mut last_node: Option<Name> = None;
    for e in events {
        if e.device_pool.is_some() {
            pool = e.device_pool;
        }
        if e.device_type.is_some() {
            dtype = e.device_type;
        }
        let state = if e.in_service {
            ServiceState::InService
        } else {
            ServiceState::OutOfService
        };
        let node = if e.in_service { e.node } else { None };
        if let Some(cur) = raw.last()
            && cur.state == state
            && cur.node == node
        {
            continue;
        }
        if let Some(cur) = raw.last_mut() {
            cur.valid_to = Some(e.time);
        }
        let home = home_at(pools, &pool, e.time);
        let movement = match (&node, &last_node) {
            (Some(n), Some(prev)) if n != prev => Some(if Some(n) == home.as_ref() {
                Movement::Rehome
            } else {
                Movement::Failover
            }),
            _ => None,
        };
        if !e.in_service && last_node.is_none() {
            last_node = e.node;
        }
        raw.push(ServiceInterval {
            device: e.device,
            cluster: e.cluster,
            device_type: dtype,
            device_pool: pool,
            state,
            node,
            last_node: node.or(last_node),
            home_node: home,
            cause: if e.in_service { None } else { e.cause },
            movement,
            valid_from: e.time,
            valid_to: None,
            source: e.source,
            known_from: e.ingest_time,
        });
        if node.is_some() {
            last_node = node;
        }
    }
    // Device type and pool are device attributes: the latest report applies to every interval.
    for i in &mut raw {
        if dtype.is_some() {
            i.device_type = dtype;
        }
        if i.device_pool.is_none() {
            i.device_pool = pool;
        }
    }
    raw
}

/// Cuts the unknown windows of its source out of an interval (windows by start, disjoint).
pub fn split_by_silence(
    i: ServiceInterval,
    windows: &[(Us, Option<Us>)],
    out: &mut Vec<ServiceInterval>,
) {
    let end = i.valid_to.unwrap_or(Us::MAX);
    let mut cursor = i.valid_from;
    for &(ws, we) in windows {
        let we_ = we.unwrap_or(Us::MAX);
        if we_ <= cursor || ws >= end {
            continue;
        }
        if ws > cursor {
            out.push(ServiceInterval {
                valid_from: cursor,
                valid_to: Some(ws),
                // a movement belongs only to the interval's first piece
                movement: if cursor == i.valid_from {
                    i.movement
                } else {
                    None
                },
                ..i.clone()
            });
        }
        let u_end = we_.min(end);
        out.push(ServiceInterval {
            state: ServiceState::Unknown,
            node: None,
            cause: None,
            movement: None,
            valid_from: ws.max(cursor),
            valid_to: (u_end != Us::MAX).then_some(u_end),
            ..i.clone()
        });
        cursor = u_end;
        if cursor >= end {
            return;
        }
    }
    // The rest keeps the state; a movement belongs only to the interval's first piece.
    let movement = if cursor == i.valid_from {
        i.movement
    } else {
        None
    };
    out.push(ServiceInterval {
        valid_from: cursor,
        movement,
        ..i
    });
}

/// The interval of one device's intervals (in time order) holding `t`; `None` means unknown
/// (before its first event).
pub fn interval_at(iv: &[ServiceInterval], t: Us) -> Option<&ServiceInterval> {
    let k = iv.partition_point(|i| i.valid_from <= t);
    iv.get(k.checked_sub(1)?).filter(|i| i.contains(t))
}

/// Each device's run of intervals, as [`derive`] groups them.
pub fn by_device(intervals: &[ServiceInterval]) -> impl Iterator<Item = &[ServiceInterval]> {
    intervals.chunk_by(|a, b| a.device == b.device)
}

/// Whether a device (its intervals, non-empty) is in the cluster and device pool asked for
/// (`None`: any), by its latest report.
pub fn in_groups(iv: &[ServiceInterval], cluster: Option<&str>, device_pool: Option<&str>) -> bool {
    let last = iv.last().expect("a device has intervals");
    cluster.is_none_or(|c| c == &*last.cluster)
        && device_pool.is_none_or(|d| Some(d) == last.device_pool.as_deref())
}

/// Per-device index over derived intervals.
pub struct DeviceIndex<'a> {
    by_device: HashMap<&'a str, &'a [ServiceInterval]>,
}

impl<'a> DeviceIndex<'a> {
    /// Indexes intervals produced by [`derive`] (grouped by device, in time order).
    pub fn new(intervals: &'a [ServiceInterval]) -> Self {
        DeviceIndex {
            by_device: by_device(intervals)
                .map(|iv| (&*iv[0].device, iv))
                .collect(),
        }
    }

    /// A device's intervals.
    pub fn device(&self, device: &str) -> &'a [ServiceInterval] {
        self.by_device.get(device).copied().unwrap_or(&[])
    }

    /// The interval holding `t` for a device; `None` means unknown (before its first event).
    pub fn at(&self, device: &str, t: Us) -> Option<&'a ServiceInterval> {
        interval_at(self.device(device), t)
    }

    /// Devices known.
    pub fn devices(&self) -> impl Iterator<Item = &&'a str> {
        self.by_device.keys()
    }
}

/// The run of `device` in rows sorted by device.
pub fn device_slice<'a, T, K: std::ops::Deref<Target = str>>(
    rows: &'a [T],
    device: &str,
    key: impl Fn(&T) -> &K,
) -> &'a [T] {
    let a = rows.partition_point(|r| &**key(r) < device);
    let b = a + rows[a..].partition_point(|r| &**key(r) == device);
    &rows[a..b]
}
