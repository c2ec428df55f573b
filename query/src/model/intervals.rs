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

/// Drops one device's intervals (`iv[start..]`, in time order) that end by `horizon`: with
/// retention of intervals history is kept from the horizon, and the intervals before it are
/// not derived from all they were derived from ([`seeds`]). The one holding the horizon is
/// kept whole (its start and movement are those of the whole history).
pub fn clip_from(iv: &mut Vec<ServiceInterval>, start: usize, horizon: Us) {
    let ended = iv[start..].partition_point(|i| i.valid_to.is_some_and(|e| e <= horizon));
    iv.drain(start..start + ended);
}

/// The rows that stand, in a base (retention of intervals), for one device's service events
/// before `horizon` (`events` in time, then ingest order; those from the horizon on are not
/// looked at): from them and the events after, [`raw_intervals`] gives the same intervals
/// ending after the horizon as from every event. They are
/// - when the interval holding the horizon was opened in service after the device had been
///   on a node, an out-of-service row on that node at the same instant, just before it in
///   ingest order (its empty interval ends before the horizon; it gives the next one its
///   movement, failover or re-home, as the whole history does);
/// - the event that opened the interval holding the horizon, with the pool and type carried
///   to it and, out of service, the node the device was last on as its node;
/// - when a later event before the horizon carried another pool or type, the last one, with
///   the pool and type carried to it (it opens no interval: its state and node are the
///   same).
///
/// Nothing else of the history before matters from the horizon on: the home node comes from
/// the pools' configurations (kept whole), the silences from the sources' spans.
pub fn seeds(events: &[&ServiceRow], horizon: Us) -> Vec<ServiceRow> {
    let events = &events[..events.partition_point(|e| e.time < horizon)];
    let (mut pool, mut dtype, mut last_node) = (None, None, None);
    let mut run: Option<(bool, Option<Name>)> = None;
    let mut opened: Option<(Option<Name>, ServiceRow)> = None;
    for e in events {
        if e.device_pool.is_some() {
            pool = e.device_pool;
        }
        if e.device_type.is_some() {
            dtype = e.device_type;
        }
        let node = if e.in_service { e.node } else { None };
        if run == Some((e.in_service, node)) {
            continue;
        }
        run = Some((e.in_service, node));
        let before = last_node;
        if !e.in_service && last_node.is_none() {
            last_node = e.node;
        }
        let row = ServiceRow {
            node: if e.in_service { e.node } else { last_node },
            device_pool: pool,
            device_type: dtype,
            ..(*e).clone()
        };
        opened = Some((before, row));
        if node.is_some() {
            last_node = node;
        }
    }
    let Some((before, first)) = opened else {
        return Vec::new();
    };
    let moved = before.filter(|_| first.in_service).map(|n| ServiceRow {
        ingest_seq: first.ingest_seq.saturating_sub(1),
        in_service: false,
        node: Some(n),
        cause: None,
        ..first.clone()
    });
    let last = events.last().expect("an event opened the run");
    let carried = (first.device_pool != pool || first.device_type != dtype).then(|| ServiceRow {
        node: first.node,
        device_pool: pool,
        device_type: dtype,
        ..(*last).clone()
    });
    moved
        .into_iter()
        .chain(std::iter::once(first))
        .chain(carried)
        .collect()
}

/// All devices' intervals, grouped by device (devices sorted by name, intervals by time);
/// with a horizon of retention ([`LogRows::horizon`]), from it on.
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
        let start = out.len();
        derive_device(&events, &silences, &pools, &mut out);
        if let Some(h) = rows.horizon {
            clip_from(&mut out, start, h);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// (time step, in service, node, pool, type, cause) of one event.
    type Step = (i64, bool, Option<u8>, Option<u8>, Option<u8>, u8);

    fn row(k: usize, t: Us, (_, in_service, node, pool, dtype, cause): Step) -> ServiceRow {
        let name = |prefix: &str, v: Option<u8>| v.map(|v| Name::from(&*format!("{prefix}{v}")));
        ServiceRow {
            time: t,
            ingest_seq: k as u64 + 1,
            ingest_time: 1_000 + k as i64,
            source: Name::from(if k.is_multiple_of(3) { "a" } else { "b" }),
            cluster: Name::from("c"),
            device: Name::from("d"),
            in_service,
            // in service, a device is always on a node (the event requires one)
            node: name("n", if in_service { node.or(Some(0)) } else { node }),
            device_pool: name("p", pool),
            device_type: name("t", dtype),
            cause: name("cause", Some(cause)),
        }
    }

    proptest! {
        /// A device's seeds before a horizon and its events after it give the same intervals
        /// from the horizon on as all its events: pools and types changing within a run,
        /// out-of-service events with and without a node, ties at the horizon, and a pool's
        /// home moving between the run's start and the horizon.
        #[test]
        fn seeds_and_the_events_after_give_the_intervals_from_the_horizon(
            steps in proptest::collection::vec(
                (0i64..3, any::<bool>(), proptest::option::of(0u8..3),
                 proptest::option::of(0u8..2), proptest::option::of(0u8..2), 0u8..2),
                1..40),
            horizon in 0i64..90,
            moves in proptest::collection::vec((0i64..90, 0u8..3), 0..4),
        ) {
            let mut t = 0;
            let rows: Vec<ServiceRow> = steps
                .iter()
                .enumerate()
                .map(|(k, s)| {
                    t += s.0;
                    row(k, t, *s)
                })
                .collect();
            let mut pools: PoolHistory = HashMap::new();
            for p in 0..2u8 {
                let mut v: Vec<(Us, u64, Name)> = vec![(0, 0, Name::from(&*format!("n{p}")))];
                v.extend(moves.iter().enumerate().map(|(k, (at, n))| {
                    (*at, k as u64 + 1, Name::from(&*format!("n{n}")))
                }));
                v.sort_by_key(|x| (x.0, x.1));
                pools.insert(Arc::from(format!("p{p}")), v);
            }
            let all: Vec<&ServiceRow> = rows.iter().collect();
            let mut want = raw_intervals(&all, &pools);
            clip_from(&mut want, 0, horizon);
            let seeded = seeds(&all, horizon);
            prop_assert!(seeded.len() <= 3);
            let mut kept: Vec<&ServiceRow> = seeded.iter().collect();
            kept.extend(all.iter().copied().filter(|r| r.time >= horizon));
            let mut got = raw_intervals(&kept, &pools);
            clip_from(&mut got, 0, horizon);
            prop_assert_eq!(got, want);
        }
    }
}
