//! The SQL surface (tables and table functions) against the simulator's truth.

use arrow::array::{AsArray, RecordBatch};
use callstate_query::session::context;
use callstate_sim::Truth;
use datafusion::prelude::SessionContext;

mod common;

async fn setup(name: &str, devices: usize) -> (tempfile::TempDir, SessionContext, Truth) {
    let (events, truth) = common::simulate(name, devices, 17);
    let (dir, log) = common::log_with(&events, 30_000);
    let ctx = context(&log.snapshot(), None).await.unwrap();
    (dir, ctx, truth)
}

async fn query(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_state_at_and_active_calls_match_the_truth() {
    let (_dir, ctx, truth) = setup("demo", 150).await;
    for at in [
        "2026-11-24T02:02:30Z",
        "2026-11-24T10:15:20Z",
        "2026-11-24T15:40:20Z",
        "2026-11-24T17:00:00Z",
    ] {
        let t = callstate_schemas::parse_time(at).unwrap();
        let rows = common::strings(&query(&ctx, &format!("SELECT device, state, node, active_calls FROM device_state_at(TIMESTAMP '{at}') ORDER BY device")).await);
        assert_eq!(rows.len(), truth.device_info.len());
        for r in rows {
            let d = r[0].as_deref().unwrap();
            let (state, node) = truth.state_at(d, t);
            assert_eq!(r[1].as_deref(), Some(state), "{d} at {at}");
            assert_eq!(r[2].as_deref(), node, "{d} at {at}");
            let calls = truth
                .calls
                .iter()
                .filter(|c| c.device == d && c.start <= t && c.end.is_none_or(|e| e > t))
                .count();
            assert_eq!(
                r[3].as_deref(),
                Some(calls.to_string().as_str()),
                "{d} calls at {at}"
            );
        }
    }
    // filters and epoch-millisecond arguments, as Grafana sends them
    let t_ms = callstate_schemas::parse_time("2026-11-24T10:15:20Z")
        .unwrap()
        .timestamp_millis();
    let pool = truth
        .device_info
        .values()
        .next()
        .unwrap()
        .device_pool
        .clone();
    let n = query(
        &ctx,
        &format!("SELECT count(*) FROM device_state_at({t_ms}) WHERE device_pool = '{pool}'"),
    )
    .await;
    let want = truth
        .device_info
        .values()
        .filter(|d| d.device_pool == pool)
        .count() as u64;
    assert_eq!(
        n[0].column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0) as u64,
        want
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn availability_sla_incidents_calls_and_transfers_tables() {
    let (_dir, ctx, truth) = setup("demo", 150).await;
    // availability per device = the truth's seconds
    let rows = common::strings(&query(&ctx, "SELECT group_key, in_service_s, out_of_service_s, unknown_s FROM availability('2026-11-24T09:00:00Z', '2026-11-24T12:00:00Z')").await);
    assert_eq!(rows.len(), truth.device_info.len());
    let (f, t) = (
        callstate_schemas::parse_time("2026-11-24T09:00:00Z").unwrap(),
        callstate_schemas::parse_time("2026-11-24T12:00:00Z").unwrap(),
    );
    for r in rows {
        let want = truth.seconds(r[0].as_deref().unwrap(), f, t);
        for (k, col) in [("in_service", 1), ("out_of_service", 2), ("unknown", 3)] {
            let got: f64 = r[col].as_deref().unwrap().parse().unwrap();
            assert!(
                (got - want.get(k).copied().unwrap_or(0.0)).abs() < 1e-3,
                "{r:?} {want:?}"
            );
        }
    }
    // SLA per node: the failed node's pools breach nothing at 99.9% over a day but have outages
    let sla = common::strings(&query(&ctx, "SELECT group_key, outages, met FROM sla(TIMESTAMP '2026-11-24T00:00:00Z', TIMESTAMP '2026-11-25T00:00:00Z', 'node') ORDER BY 1").await);
    assert_eq!(sla.len(), 4);
    assert!(sla.iter().all(|r| r[1].as_deref() != Some("0")));
    // calendar periods in a time zone: the UTC day is two Kolkata days, per node
    let monthly = common::strings(&query(&ctx, "SELECT window_start, window_end, group_key FROM sla(TIMESTAMP '2026-11-24T00:00:00Z', TIMESTAMP '2026-11-25T00:00:00Z', 'node', 'day', 'Asia/Kolkata') ORDER BY 1, 3").await);
    assert_eq!(monthly.len(), 8);
    assert_eq!(monthly[0][1].as_deref(), Some("2026-11-24T18:30:00Z"));
    assert_eq!(monthly[4][0].as_deref(), Some("2026-11-24T18:30:00Z"));
    // incidents, calls and transfers
    let inc = common::strings(
        &query(
            &ctx,
            "SELECT scope, target, devices_affected FROM incidents ORDER BY started_at",
        )
        .await,
    );
    let want: Vec<_> = truth
        .incidents
        .iter()
        .filter(|i| i.devices.len() >= 5)
        .collect();
    assert_eq!(inc.len(), want.len());
    for (g, w) in inc.iter().zip(want) {
        assert_eq!(g[1].as_deref(), Some(w.target.as_str()));
        assert_eq!(g[2].as_deref(), Some(w.devices.len().to_string().as_str()));
    }
    let calls = query(&ctx, "SELECT count(*) AS n FROM calls").await;
    assert_eq!(
        calls[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0) as usize,
        truth.calls.len()
    );
    let transfers = query(&ctx, "SELECT count(*) AS n FROM transfers").await;
    let want = truth
        .calls
        .iter()
        .filter(|c| c.consult_for.is_some() && c.cause.as_deref() == Some("transferred"))
        .count();
    assert_eq!(
        transfers[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0) as usize,
        want
    );
    // bad arguments are planning errors naming the problem
    for (sql, msg) in [
        ("SELECT * FROM sla(1, 2, 'building')", "group_by"),
        ("SELECT * FROM availability('yesterday', 2)", "from"),
        ("SELECT * FROM device_state_at()", "ts is required"),
        (
            "SELECT * FROM sla(1, 2, 'node', 'fortnight')",
            "unknown period",
        ),
        (
            "SELECT * FROM sla(1, 2, 'node', 'day', 'Mars/Olympus')",
            "unknown time zone",
        ),
        (
            "SELECT * FROM availability(1, 2, 'node', NULL, 'minutes')",
            "edges",
        ),
    ] {
        let e = match ctx.sql(sql).await {
            Ok(df) => df.collect().await.unwrap_err(),
            Err(e) => e,
        };
        assert!(e.to_string().contains(msg), "{sql}: {e}");
    }
}

/// `availability` and `sla` with `known_at`: the CTIManager failover's out-of-service events
/// arrive late, so before they were ingested the outage did not show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn availability_and_sla_as_known_then() {
    let (events, truth) = common::simulate("ctimanager-failover", 80, 8);
    let inc = truth
        .incidents
        .iter()
        .find(|i| i.cause == "ctimanager_failure")
        .unwrap();
    let crash = inc.start.unwrap();
    let cut = events
        .iter()
        .position(|e| {
            e.time >= crash && matches!(&e.body, callstate_schemas::Body::DeviceOutOfService { .. })
        })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = callstate_log::Log::open(dir.path(), Default::default()).unwrap();
    log.append(&events[..cut]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let known_at = chrono::Utc::now();
    std::thread::sleep(std::time::Duration::from_millis(5));
    log.append(&events[cut..]).unwrap();
    let ctx = context(&log.snapshot(), None).await.unwrap();
    let (from, to) = (
        (crash - chrono::Duration::minutes(5)).to_rfc3339(),
        (crash + chrono::Duration::minutes(5)).to_rfc3339(),
    );
    let k = known_at.to_rfc3339();
    let out_s = |sql: String| {
        let ctx = ctx.clone();
        async move {
            let b = query(&ctx, &sql).await;
            let v = common::strings(&b);
            assert_eq!(v.len(), 1, "{sql}");
            v[0][0].as_deref().unwrap().parse::<f64>().unwrap()
        }
    };
    let now = out_s(format!(
        "SELECT out_of_service_s FROM availability('{from}', '{to}', 'cluster')"
    ))
    .await;
    let then = out_s(format!(
        "SELECT out_of_service_s FROM availability('{from}', '{to}', 'cluster', '{k}')"
    ))
    .await;
    assert!(now > 0.0, "the outage is in the log");
    assert_eq!(then, 0.0, "not known before its events were ingested");
    let used_now = out_s(format!(
        "SELECT budget_used_s FROM sla('{from}', '{to}', 'cluster')"
    ))
    .await;
    let used_then = out_s(format!(
        "SELECT budget_used_s FROM sla('{from}', '{to}', 'cluster', NULL, NULL, '{k}')"
    ))
    .await;
    assert_eq!((used_now, used_then), (now, then));
    // the interval table as known then: every device's intervals from the events ingested by
    // `known_at`, so no out-of-service interval of the crash, and as many intervals now as the
    // current table has
    let count = |sql: String| {
        let ctx = ctx.clone();
        async move {
            let b = query(&ctx, &sql).await;
            common::strings(&b)[0][0]
                .as_deref()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        }
    };
    let crash_s = crash.to_rfc3339();
    let oos = "state = 'out_of_service' AND cause = 'ctimanager_failure'";
    let oos_now = count(format!(
        "SELECT count(DISTINCT device) FROM device_intervals WHERE {oos} AND valid_from >= '{crash_s}'"
    ))
    .await;
    let oos_then = count(format!(
        "SELECT count(*) FROM device_intervals_at('{k}') WHERE {oos} AND valid_from >= '{crash_s}'"
    ))
    .await;
    let expected_now = truth
        .devices
        .values()
        .filter(|iv| {
            iv.iter().any(|i| {
                i.state == "out_of_service"
                    && i.cause.as_deref() == Some("ctimanager_failure")
                    && i.from >= crash
            })
        })
        .count() as u64;
    assert!(oos_now > 0);
    assert_eq!(oos_now, expected_now);
    assert_eq!(oos_then, 0);
    let late_known = count(format!(
        "SELECT count(*) FROM device_intervals_at('{k}') WHERE known_from > '{k}'"
    ))
    .await;
    assert_eq!(late_known, 0, "nothing ingested after known_at");
    let all_now = count("SELECT count(*) FROM device_intervals".into()).await;
    let all_late = count(format!(
        "SELECT count(*) FROM device_intervals_at('{}')",
        chrono::Utc::now().to_rfc3339()
    ))
    .await;
    assert_eq!(all_now, all_late);
}
