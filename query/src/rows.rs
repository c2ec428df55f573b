//! The rows of the log the state engine needs, read from a snapshot (segments and the
//! unrolled tail), optionally limited to what was known at an ingest time.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use arrow::array::{Array, AsArray, ListArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, TimestampMicrosecondType, UInt64Type};

use callstate_ingest::Snapshot;

/// Microseconds since the epoch, UTC.
pub type Us = i64;

/// A `device_in_service` / `device_out_of_service` event.
#[derive(Debug, Clone)]
pub struct ServiceRow {
    /// Event time.
    pub time: Us,
    /// Position in ingest order (ties of `time`).
    pub ingest_seq: u64,
    /// When the log accepted it.
    pub ingest_time: Us,
    /// Reporting source.
    pub source: Arc<str>,
    /// Cluster.
    pub cluster: Arc<str>,
    /// Device.
    pub device: Arc<str>,
    /// In service (true) or out of service.
    pub in_service: bool,
    /// Node (in service: handling node; out of service: the node it was on, if given).
    pub node: Option<Arc<str>>,
    /// Device pool, when the event carries it.
    pub device_pool: Option<Arc<str>>,
    /// Device type, when the event carries it.
    pub device_type: Option<Arc<str>>,
    /// Cause (out of service).
    pub cause: Option<Arc<str>>,
}

/// A `device_pool_config` event.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Event time.
    pub time: Us,
    /// Ingest order.
    pub ingest_seq: u64,
    /// Pool.
    pub device_pool: Arc<str>,
    /// CUCM group, primary first.
    pub nodes: Vec<Arc<str>>,
}

/// A `maintenance_window` event.
#[derive(Debug, Clone)]
pub struct MaintenanceRow {
    /// Event time (when it was announced).
    pub time: Us,
    /// Cluster.
    pub cluster: Arc<str>,
    /// `cluster`, `node`, `device_pool` or `device`.
    pub scope: Arc<str>,
    /// Target name.
    pub target: Arc<str>,
    /// Window start.
    pub start: Us,
    /// Window end.
    pub end: Us,
    /// Reason.
    pub reason: Option<Arc<str>>,
}

/// A call leg on a device: `call_started` and, if seen, its `call_ended`.
#[derive(Debug, Clone)]
pub struct CallRow {
    /// Call id.
    pub call_id: Arc<str>,
    /// Device.
    pub device: Arc<str>,
    /// Start.
    pub start: Us,
    /// End, if ended.
    pub end: Option<Us>,
    /// How it ended.
    pub end_cause: Option<Arc<str>>,
}

/// A `provider_out_of_service` event.
#[derive(Debug, Clone)]
pub struct ProviderDown {
    /// Event time.
    pub time: Us,
    /// Cluster.
    pub cluster: Arc<str>,
    /// CTIManager the provider was on.
    pub ctimanager: Arc<str>,
}

/// What the state engine reads from the log.
#[derive(Debug, Default)]
pub struct LogRows {
    /// Calls (legs per device), by start.
    pub calls: Vec<CallRow>,
    /// Provider outages.
    pub provider_down: Vec<ProviderDown>,
    /// Service events.
    pub service: Vec<ServiceRow>,
    /// Pool configurations.
    pub pool_configs: Vec<PoolConfig>,
    /// Maintenance windows.
    pub windows: Vec<MaintenanceRow>,
    /// Event times of every event, per source (for the silence rule).
    pub source_times: HashMap<Arc<str>, Vec<Us>>,
}

/// Interns strings so that repeated names share one allocation (a fast hasher: this is
/// called for most string cells of the log).
#[derive(Default)]
struct Interner(hashbrown::HashMap<Box<str>, Arc<str>>);

impl Interner {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.0.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.0.insert(s.into(), a.clone());
        a
    }
}

const COLUMNS: &[&str] = &[
    "time",
    "kind",
    "cluster",
    "device",
    "device_type",
    "node",
    "device_pool",
    "cause",
    "nodes",
    "scope",
    "target",
    "window_start",
    "window_end",
    "reason",
    "source",
    "ingest_time",
    "ingest_seq",
    "call_id",
    "ctimanager",
];

fn strings(b: &RecordBatch, name: &str) -> io::Result<StringArray> {
    let c = b
        .column_by_name(name)
        .ok_or_else(|| io::Error::other(format!("column {name} missing")))?;
    let c = arrow::compute::cast(c, &DataType::Utf8).map_err(io::Error::other)?;
    Ok(c.as_string::<i32>().clone())
}

fn opt(a: &StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

impl LogRows {
    /// Reads a snapshot; with `known_at`, only events ingested at or before it count.
    pub fn load(snap: &Snapshot, known_at: Option<Us>) -> io::Result<LogRows> {
        Self::load_with(snap, known_at, true)
    }

    /// Like [`LogRows::load`]; without `calls`, call events are skipped (availability and SLA
    /// do not need them).
    pub fn load_with(snap: &Snapshot, known_at: Option<Us>, calls: bool) -> io::Result<LogRows> {
        let mut rows = LogRows::default();
        let mut names = Interner::default();
        let columns: Vec<&str> = COLUMNS
            .iter()
            .copied()
            .filter(|c| calls || *c != "call_id")
            .collect();
        for b in snap.read_batches(Some(&columns))? {
            rows.add_batch(&b, known_at, &mut names, calls)?;
        }
        for t in rows.source_times.values_mut() {
            t.sort_unstable();
        }
        rows.pair_calls();
        Ok(rows)
    }

    /// Pairs `call_started` and `call_ended` rows (pushed as separate rows) into call legs.
    fn pair_calls(&mut self) {
        let mut legs: HashMap<(Arc<str>, Arc<str>), CallRow> = HashMap::new();
        for r in std::mem::take(&mut self.calls) {
            let key = (r.call_id.clone(), r.device.clone());
            let leg = legs.entry(key).or_insert_with(|| CallRow {
                end: None,
                end_cause: None,
                ..r.clone()
            });
            match r.end {
                None => leg.start = r.start,
                Some(e) => {
                    leg.end = Some(e);
                    leg.end_cause = r.end_cause;
                }
            }
        }
        let mut calls: Vec<CallRow> = legs.into_values().collect();
        calls.sort_by(|a, b| {
            (a.start, &a.device, &a.call_id).cmp(&(b.start, &b.device, &b.call_id))
        });
        self.calls = calls;
        self.provider_down.sort_by_key(|p| p.time);
    }

    fn add_batch(
        &mut self,
        b: &RecordBatch,
        known_at: Option<Us>,
        names: &mut Interner,
        calls: bool,
    ) -> io::Result<()> {
        let col = |n: &str| {
            b.column_by_name(n)
                .ok_or_else(|| io::Error::other(format!("column {n} missing")))
        };
        let time = col("time")?
            .as_primitive::<TimestampMicrosecondType>()
            .clone();
        let itime = col("ingest_time")?
            .as_primitive::<TimestampMicrosecondType>()
            .clone();
        let iseq = col("ingest_seq")?.as_primitive::<UInt64Type>().clone();
        let wstart = col("window_start")?
            .as_primitive::<TimestampMicrosecondType>()
            .clone();
        let wend = col("window_end")?
            .as_primitive::<TimestampMicrosecondType>()
            .clone();
        let nodes = col("nodes")?.as_any().downcast_ref::<ListArray>().cloned();
        let kind = strings(b, "kind")?;
        let source = strings(b, "source")?;
        let cluster = strings(b, "cluster")?;
        let device = strings(b, "device")?;
        let device_type = strings(b, "device_type")?;
        let node = strings(b, "node")?;
        let pool = strings(b, "device_pool")?;
        let cause = strings(b, "cause")?;
        let scope = strings(b, "scope")?;
        let target = strings(b, "target")?;
        let reason = strings(b, "reason")?;
        let call_id = if calls {
            strings(b, "call_id")?
        } else {
            StringArray::new_null(b.num_rows())
        };
        let ctimanager = strings(b, "ctimanager")?;
        for i in 0..b.num_rows() {
            if known_at.is_some_and(|k| itime.value(i) > k) {
                continue;
            }
            let src = names.get(source.value(i));
            self.source_times
                .entry(src.clone())
                .or_default()
                .push(time.value(i));
            let mut get = |a: &StringArray| opt(a, i).map(|s| names.get(s));
            match kind.value(i) {
                k @ ("device_in_service" | "device_out_of_service") => {
                    let (Some(dev), Some(cl)) = (get(&device), get(&cluster)) else {
                        continue;
                    };
                    self.service.push(ServiceRow {
                        time: time.value(i),
                        ingest_seq: iseq.value(i),
                        ingest_time: itime.value(i),
                        source: src,
                        cluster: cl,
                        device: dev,
                        in_service: k == "device_in_service",
                        node: get(&node),
                        device_pool: get(&pool),
                        device_type: get(&device_type),
                        cause: get(&cause),
                    });
                }
                "device_pool_config" => {
                    let (Some(p), Some(list)) = (get(&pool), nodes.as_ref()) else {
                        continue;
                    };
                    if list.is_null(i) {
                        continue;
                    }
                    let l = list.value(i);
                    let l = l.as_string::<i32>();
                    self.pool_configs.push(PoolConfig {
                        time: time.value(i),
                        ingest_seq: iseq.value(i),
                        device_pool: p,
                        nodes: l.iter().flatten().map(|s| names.get(s)).collect(),
                    });
                }
                k @ ("call_started" | "call_ended") if calls => {
                    let (Some(id), Some(dev)) = (get(&call_id), get(&device)) else {
                        continue;
                    };
                    let started = k == "call_started";
                    self.calls.push(CallRow {
                        call_id: id,
                        device: dev,
                        start: time.value(i),
                        end: (!started).then(|| time.value(i)),
                        end_cause: if started { None } else { get(&cause) },
                    });
                }
                "provider_out_of_service" => {
                    let (Some(cl), Some(c)) = (get(&cluster), get(&ctimanager)) else {
                        continue;
                    };
                    self.provider_down.push(ProviderDown {
                        time: time.value(i),
                        cluster: cl,
                        ctimanager: c,
                    });
                }
                "maintenance_window" => {
                    let (Some(sc), Some(tg), Some(cl)) = (get(&scope), get(&target), get(&cluster))
                    else {
                        continue;
                    };
                    if wstart.is_null(i) || wend.is_null(i) {
                        continue;
                    }
                    self.windows.push(MaintenanceRow {
                        time: time.value(i),
                        cluster: cl,
                        scope: sc,
                        target: tg,
                        start: wstart.value(i),
                        end: wend.value(i),
                        reason: get(&reason),
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }
}
