//! The derived tables are DataFusion providers that work only when a query executes, and use
//! the filters they are given: planning or `EXPLAIN` derives nothing, `device = …` and
//! `device IN (…)` look devices up instead of walking the fleet, and every pushed filter
//! (device, cluster, pool, time bounds) gives the same rows as the same filter DataFusion
//! alone applies.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;

use callstate_log::Snapshot;
use callstate_query::model::fleet::{DeviceHistory, Fleet, SharedFleet};
use callstate_query::model::rows::{CallRow, MaintenanceRow, NodeEvent, PoolConfig};
use callstate_query::model::sla::Targets;
use callstate_query::session::context_for;
use callstate_query::{Live, LiveSource, Source};
use callstate_schemas::Us;

mod common;

/// The live state, counting what is asked of it.
#[derive(Default)]
struct Counts {
    /// Fleets handed out (each one a derivation's start).
    fleets: AtomicUsize,
    /// Devices walked through `devices()`.
    walked: AtomicUsize,
    /// Devices looked up by name.
    looked_up: AtomicUsize,
}

#[derive(Debug)]
struct Counting {
    inner: LiveSource,
    counts: Arc<Counts>,
}

impl std::fmt::Debug for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Counts")
    }
}

struct CountedFleet {
    inner: SharedFleet,
    counts: Arc<Counts>,
}

impl Fleet for CountedFleet {
    fn devices(&self) -> Box<dyn Iterator<Item = DeviceHistory<'_>> + '_> {
        Box::new(self.inner.devices().inspect(|_| {
            self.counts.walked.fetch_add(1, Ordering::Relaxed);
        }))
    }
    fn device(&self, name: &str) -> Option<DeviceHistory<'_>> {
        self.counts.looked_up.fetch_add(1, Ordering::Relaxed);
        self.inner.device(name)
    }
    fn calls_of(&self, device: &str) -> Cow<'_, [CallRow]> {
        self.inner.calls_of(device)
    }
    fn calls(&self) -> Box<dyn Iterator<Item = Cow<'_, [CallRow]>> + '_> {
        self.inner.calls()
    }
    fn windows(&self) -> &[MaintenanceRow] {
        self.inner.windows()
    }
    fn node_events(&self) -> &[NodeEvent] {
        self.inner.node_events()
    }
    fn pool_configs(&self) -> &[PoolConfig] {
        self.inner.pool_configs()
    }
    fn targets(&self) -> &Targets {
        self.inner.targets()
    }
}

impl Counting {
    fn counted(&self, f: SharedFleet) -> SharedFleet {
        self.counts.fleets.fetch_add(1, Ordering::Relaxed);
        Arc::new(CountedFleet {
            inner: f,
            counts: self.counts.clone(),
        })
    }
}

impl Source for Counting {
    fn fleet(&self) -> callstate_query::Result<SharedFleet> {
        Ok(self.counted(self.inner.fleet()?))
    }
    fn fleet_at(&self, known_at: Us) -> callstate_query::Result<SharedFleet> {
        Ok(self.counted(self.inner.fleet_at(known_at)?))
    }
    fn snapshot(&self) -> &Snapshot {
        self.inner.snapshot()
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    _log: callstate_log::Log,
    _live: Live,
    ctx: SessionContext,
    counts: Arc<Counts>,
}

async fn setup() -> Setup {
    let (events, _) = common::simulate("node-failover", 30, 3);
    let (dir, log) = common::log_with(&events, 20_000);
    let live = Live::start(&log, Targets::default()).unwrap();
    let counts = Arc::new(Counts::default());
    let source = Counting {
        inner: LiveSource {
            view: live.view(),
            as_of: live.as_of().clone(),
        },
        counts: counts.clone(),
    };
    let ctx = context_for(Arc::new(source), None).await.unwrap();
    Setup {
        _dir: dir,
        _log: log,
        _live: live,
        ctx,
        counts,
    }
}

async fn rows(ctx: &SessionContext, sql: &str) -> Vec<String> {
    let batches: Vec<RecordBatch> = ctx
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut out: Vec<String> = common::strings(&batches)
        .into_iter()
        .map(|row| {
            let cells: Vec<&str> = row.iter().map(|c| c.as_deref().unwrap_or("∅")).collect();
            cells.join("|")
        })
        .collect();
    out.sort();
    out
}

const FROM: &str = "TIMESTAMP '2026-11-24T00:00:00Z'";
const TO: &str = "TIMESTAMP '2026-11-25T00:00:00Z'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planning_and_explain_derive_nothing() {
    let s = setup().await;
    let queries = [
        "SELECT * FROM device_intervals".to_string(),
        "SELECT * FROM calls".to_string(),
        "SELECT * FROM incidents".to_string(),
        format!("SELECT * FROM device_state_at({FROM})"),
        format!("SELECT * FROM device_intervals_at({FROM})"),
        format!("SELECT * FROM availability({FROM}, {TO}, 'device_pool')"),
        format!("SELECT * FROM sla({FROM}, {TO}, 'node', 'day', 'Europe/Paris')"),
    ];
    for q in &queries {
        let explained = rows(&s.ctx, &format!("EXPLAIN {q}")).await;
        assert!(!explained.is_empty());
        assert_eq!(
            s.counts.fleets.load(Ordering::Relaxed),
            0,
            "EXPLAIN {q} derived"
        );
    }
    for q in &queries {
        let before = s.counts.fleets.load(Ordering::Relaxed);
        rows(&s.ctx, q).await;
        assert!(
            s.counts.fleets.load(Ordering::Relaxed) > before,
            "{q} ran without deriving"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_filters_select_the_same_rows() {
    let s = setup().await;
    let devices = rows(&s.ctx, "SELECT DISTINCT device FROM device_intervals").await;
    assert!(devices.len() >= 30, "{devices:?}");
    let (d1, d2) = (&devices[3], &devices[17]);
    // `trim(x) = …` is the same filter, but not one a provider can use
    let cases = [
        (format!("device = '{d1}'"), format!("trim(device) = '{d1}'")),
        (
            format!("device IN ('{d1}', '{d2}', 'no-such-device')"),
            format!("trim(device) IN ('{d1}', '{d2}', 'no-such-device')"),
        ),
        (
            format!("'{d2}' = device OR device = '{d1}'"),
            format!("'{d2}' = trim(device) OR trim(device) = '{d1}'"),
        ),
        ("cluster = 'c1'".into(), "trim(cluster) = 'c1'".into()),
        (
            "device_pool = 'DP-HQ'".into(),
            "trim(device_pool) = 'DP-HQ'".into(),
        ),
    ];
    for table in [
        "device_intervals".to_string(),
        "calls".to_string(),
        format!("device_state_at({FROM} + INTERVAL '10 hours')"),
    ] {
        for (pushed, not_pushed) in &cases {
            if table == "calls" && !pushed.contains("device ") && !pushed.contains("= device") {
                continue; // calls have no cluster or pool columns
            }
            let a = rows(&s.ctx, &format!("SELECT * FROM {table} WHERE {pushed}")).await;
            let b = rows(&s.ctx, &format!("SELECT * FROM {table} WHERE {not_pushed}")).await;
            assert_eq!(a, b, "{table} WHERE {pushed}");
        }
    }
    // time bounds on the table's time column
    for (table, column) in [
        ("device_intervals", "valid_from"),
        ("calls", "started_at"),
        ("incidents", "started_at"),
    ] {
        for bound in [
            format!("{column} >= {FROM} + INTERVAL '9 hours'"),
            format!("{column} < {FROM} + INTERVAL '11 hours'"),
            format!(
                "{column} BETWEEN {FROM} + INTERVAL '9 hours' AND {FROM} + INTERVAL '9 hours 30 minutes'"
            ),
            format!("{FROM} + INTERVAL '10 hours' > {column}"),
        ] {
            let a = rows(&s.ctx, &format!("SELECT * FROM {table} WHERE {bound}")).await;
            let b = rows(
                &s.ctx,
                &format!(
                    "SELECT * FROM {table} WHERE {}",
                    bound.replace(column, &format!("({column} + INTERVAL '0 seconds')"))
                ),
            )
            .await;
            assert_eq!(a, b, "{table} WHERE {bound}");
        }
    }
    // a device list is looked up, not found by walking the fleet
    let walked = s.counts.walked.load(Ordering::Relaxed);
    let looked = s.counts.looked_up.load(Ordering::Relaxed);
    let one = rows(
        &s.ctx,
        &format!("SELECT * FROM device_intervals WHERE device IN ('{d1}', '{d2}')"),
    )
    .await;
    assert!(!one.is_empty());
    assert_eq!(s.counts.walked.load(Ordering::Relaxed), walked);
    assert_eq!(s.counts.looked_up.load(Ordering::Relaxed), looked + 2);
}
