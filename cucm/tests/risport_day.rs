//! End to end: a simulated day with a node failover, a CTIManager failover and a site outage →
//! mock CUCM (RisPort70 + AXL on loopback) → poller → real log → availability, failovers,
//! re-homes and incidents, against the simulator's truth within the poller's sensing limit.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use callstate_cucm::Poller;
use callstate_log::{Log, LogOptions};
use callstate_mockcucm::{APP_USER, MockOptions};
use callstate_query::model::incidents::{IncidentOptions, detect};
use callstate_query::{Cancel, Derived, LogRows, derive, device_seconds};
use callstate_schemas::{Kind, Movement, ServiceState};

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polled_day_matches_the_truth_within_the_sensing_limit() {
    // the mock caps answers at 250 records (the poller starts with 1000 names per request)
    let opts = MockOptions {
        answer_cap: 250,
        ..MockOptions::default()
    };
    let c = common::cluster(common::DAY, 7, opts);
    let url = common::serve(&c.mock, None).await;
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path().join("data"), LogOptions::default()).unwrap());
    let mut cfg = common::config(vec![url], dir.path());
    cfg.full_poll_every = Duration::from_secs(900);
    cfg.max_requests_per_minute = 12;
    cfg.cti_users = vec![APP_USER.to_string()];
    let mut poller = Poller::new(cfg, c.clock.clone(), log.clone()).unwrap();
    let end = c.truth.end;
    poller.run_until(|now| now >= end).await.unwrap();
    let status = poller.status().lock().unwrap().clone();
    log.wait_idle().unwrap();
    let stats = c.mock.stats();
    eprintln!("poller: {}", serde_json::to_string(&status).unwrap());
    eprintln!("mock: {}", serde_json::to_string(&stats).unwrap());

    // the poller kept within the budget, found the cap and reused its session
    assert_eq!(stats.rate_faults, 0, "paced under the cluster's budget");
    assert!(stats.max_per_minute <= 12, "{}", stats.max_per_minute);
    assert_eq!(status.chunk, 250, "learned the per-answer cap");
    assert!(status.truncations >= 1 && stats.capped_answers >= 1);
    assert!(
        stats.logins <= 2,
        "the session cookie is reused: {} logins",
        stats.logins
    );
    assert!(stats.session_reuses > 1000);
    assert_eq!(status.rejected, 0);
    assert_eq!(status.watched, 600);
    // the crashed node's part of the picture was missing for its 20 minutes, and reported
    let gap = status
        .node_gaps
        .iter()
        .find(|g| g.node == "CL1-cucm1")
        .expect("a gap for cucm1");
    assert!(status.node_gaps.iter().all(|g| g.node == "CL1-cucm1"));
    let crash = c.truth.start + chrono::Duration::hours(6);
    let limit = chrono::Duration::milliseconds((2.0 * status.max_cycle_gap_s * 1000.0) as i64);
    assert!(gap.from >= crash && gap.from - crash <= limit, "{gap:?}");
    let back = gap.to.expect("cucm1 answered again");
    assert!(
        back >= crash + chrono::Duration::minutes(20)
            && back - (crash + chrono::Duration::minutes(20)) <= limit
    );

    // availability per device, from the first full poll to the end
    let rows = LogRows::load(&log.snapshot(), None).unwrap();
    let intervals = derive(&rows);
    let from = c.truth.start.timestamp_micros() + 10 * common::MINUTE;
    let to = c.truth.end.timestamp_micros();
    let (ft, tt) = (
        chrono::DateTime::from_timestamp_micros(from).unwrap(),
        c.truth.end,
    );
    // an outage shorter than two cycle gaps may fall between two polls of its chunk
    let sensing_s = 2.0 * status.max_cycle_gap_s;
    assert!(
        sensing_s <= 120.0,
        "cycles kept their interval: {sensing_s} s"
    );
    let mut by_device: BTreeMap<&str, Vec<&callstate_query::ServiceInterval>> = BTreeMap::new();
    for i in &intervals {
        by_device.entry(&i.device).or_default().push(i);
    }
    let mut pools: BTreeMap<String, (f64, f64, f64)> = BTreeMap::new();
    let mut must_see = 0;
    for (name, info) in &c.truth.device_info {
        let mine: Vec<_> = by_device
            .get(name.as_str())
            .into_iter()
            .flatten()
            .map(|i| (*i).clone())
            .collect();
        let got = device_seconds(&mine, from, to, &[]);
        let want = c.truth.seconds(name, ft, tt);
        let want_out = want.get("out_of_service").copied().unwrap_or(0.0);
        assert_eq!(
            got.unknown_s, 0.0,
            "{name}: never unknown while the poller heartbeats"
        );
        // what the poller cannot see: outages shorter than its sensing limit, outages of a
        // crashed node (RisPort on it does not answer), CTI-only outages of phones (RisPort
        // reports registration, not CTI control)
        let mut may_miss = 0.0;
        let mut outages = 0.0;
        for iv in c.truth.devices.get(name).into_iter().flatten() {
            if iv.state != "out_of_service" || iv.to <= ft {
                continue;
            }
            let dur = (iv.to.min(tt) - iv.from.max(ft))
                .num_microseconds()
                .unwrap() as f64
                / 1e6;
            outages += 1.0;
            let cause = iv.cause.as_deref().unwrap_or("");
            let cti_only = cause == "ctimanager_failure"
                && !matches!(info.device_type.as_str(), "cti_port" | "cti_route_point");
            if dur <= sensing_s + 2.0 || cause == "node_failure" || cti_only {
                may_miss += dur;
            } else {
                must_see += 1;
            }
        }
        // each seen outage is timed by CUCM's TimeStamp (whole seconds): 2 s per outage
        let slack = 2.0 * outages + 1e-6;
        assert!(
            got.out_of_service_s <= want_out + slack
                && got.out_of_service_s >= want_out - may_miss - slack,
            "{name}: polled {} s out of service, truth {want_out} s (may miss {may_miss} s)",
            got.out_of_service_s
        );
        let p = pools.entry(info.device_pool.clone()).or_default();
        p.0 += got.out_of_service_s;
        p.1 += want_out;
        p.2 += may_miss + slack;
    }
    assert!(
        must_see >= 20,
        "the site outage must be seen: {must_see} long outages"
    );
    for (pool, (got, want, tol)) in &pools {
        assert!(
            (got - want).abs() <= *tol,
            "{pool}: polled {got} s out, truth {want} s, tolerance {tol}"
        );
    }

    // failovers and re-homes: each move not followed by another change within the sensing
    // limit is in the log at CUCM's TimeStamp (whole seconds)
    for (moves, kind) in [
        (&c.truth.failovers, Movement::Failover),
        (&c.truth.rehomes, Movement::Rehome),
    ] {
        assert!(!moves.is_empty(), "{kind:?}: the day has some");
        let mut checked = 0;
        for m in moves.iter() {
            let next_change = c.truth.devices[&m.device]
                .iter()
                .find(|i| i.from > m.at)
                .map(|i| i.from);
            if next_change.is_some_and(|n| (n - m.at).num_seconds() as f64 <= sensing_s + 2.0) {
                continue;
            }
            checked += 1;
            let at = m.at.timestamp_micros();
            let found = by_device[m.device.as_str()].iter().any(|i| {
                i.state == ServiceState::InService
                    && i.node.as_deref() == Some(m.to.as_str())
                    && (i.valid_from - at).abs() <= 1_000_000
            });
            assert!(
                found,
                "{kind:?} of {} to {} at {} not in the log",
                m.device, m.to, m.at
            );
            if kind == Movement::Failover {
                let i = by_device[m.device.as_str()]
                    .iter()
                    .find(|i| {
                        (i.valid_from - at).abs() <= 1_000_000 && i.state == ServiceState::InService
                    })
                    .unwrap();
                assert_eq!(i.movement, Some(Movement::Failover), "{}", m.device);
            }
        }
        assert!(
            checked * 10 >= moves.len() * 8,
            "{kind:?}: {checked} of {} checked",
            moves.len()
        );
    }

    // the CTIManager failover: the provider closed on the primary and opened on the backup
    let providers: Vec<_> = rows
        .node_events
        .iter()
        .filter_map(|e| match e.kind {
            Kind::ProviderInService => Some((e.target.to_string(), true, e.time)),
            Kind::ProviderOutOfService => Some((e.target.to_string(), false, e.time)),
            _ => None,
        })
        .collect();
    let ctim_crash = (c.truth.start + chrono::Duration::hours(12)).timestamp_micros();
    assert!(
        providers
            .iter()
            .any(|(_, up, t)| !up && (t - ctim_crash).abs() <= 2_000_000),
        "provider out of service at the crash: {providers:?}"
    );
    assert!(
        providers
            .iter()
            .any(|(_, up, t)| *up && *t > ctim_crash && *t - ctim_crash <= 30_000_000),
        "provider back on the backup: {providers:?}"
    );

    // incidents: the site outage's devices go out together on their nodes
    let derived = Derived::load(log.snapshot(), None, Default::default(), true).unwrap();
    let found = detect(
        &derived,
        from,
        to,
        &IncidentOptions::default(),
        &Cancel::new(),
    )
    .unwrap();
    let site = c
        .truth
        .incidents
        .iter()
        .find(|i| i.scope == "site")
        .expect("the site incident");
    let site_start = site.start.unwrap().timestamp_micros();
    let near: Vec<_> = found
        .iter()
        .filter(|i| (i.started_at - site_start).abs() <= MINUTE_US)
        .collect();
    assert!(!near.is_empty(), "site outage incident found: {found:?}");
    let affected: usize = near.iter().map(|i| i.devices_affected).sum();
    assert!(
        affected * 10 >= site.devices.len() * 9,
        "{affected} of {} devices",
        site.devices.len()
    );
}

const MINUTE_US: i64 = common::MINUTE;
