//! The poller against each fault a CUCM cluster answers with: rate control (HTTP 500 and 200),
//! refused credentials, Tomcat error pages, cut answers, a node that is down or unreachable,
//! TLS with a private CA. None of them may produce a device event; the cluster's state is kept
//! and a full poll follows.

use std::sync::Arc;
use std::time::Duration;

use callstate_cucm::{Clock, CucmError, Poller};
use callstate_log::{Log, LogOptions};
use callstate_mockcucm::{Inject, MockOptions};
use callstate_query::LogRows;

mod common;

fn device_events(log: &Log) -> usize {
    log.wait_idle().unwrap();
    LogRows::load(&log.snapshot(), None).unwrap().service.len()
}

struct Setup {
    c: common::Cluster,
    log: Arc<Log>,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let c = common::cluster(common::HOUR, 3, MockOptions::default());
    // start once every device has registered
    c.clock.advance(Duration::from_secs(600));
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path().join("data"), LogOptions::default()).unwrap());
    Setup { c, log, _dir: dir }
}

fn poller(s: &Setup, nodes: Vec<String>) -> Poller {
    let cfg = common::config(nodes, s._dir.path());
    Poller::new(cfg, s.c.clock.clone(), s.log.clone()).unwrap()
}

#[tokio::test]
async fn rate_faults_back_off_doubling_emit_nothing_and_a_full_poll_follows() {
    let s = setup();
    let url = common::serve(&s.c.mock, None).await;
    let mut p = poller(&s, vec![url]);
    p.cycle().await.unwrap();
    let first = device_events(&s.log);
    assert_eq!(first, 40, "one event per device on the first poll");
    // two rate faults in a row: HTTP 500, then the HTTP 200 variant
    s.c.mock.inject(Inject::RateControl);
    s.c.mock.inject(Inject::RateControlOk);
    let stop = s.c.clock.now() + chrono::Duration::minutes(5);
    p.run_until(|now| now >= stop).await.unwrap();
    let status = p.status().lock().unwrap().clone();
    assert_eq!(status.rate_faults, 2);
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap()
            .contains("Exceeded allowed rate")
    );
    let log = s.c.mock.stats().recent;
    let faults: Vec<usize> = (0..log.len()).filter(|&i| !log[i].2).collect();
    assert_eq!(faults.len(), 2);
    // 30 s after the first fault, 60 s after the second
    assert!(
        log[faults[0] + 1].0 - log[faults[0]].0 >= 30_000_000,
        "{log:?}"
    );
    assert!(
        log[faults[1] + 1].0 - log[faults[1]].0 >= 60_000_000,
        "{log:?}"
    );
    // the first answer after the faults is a full poll (no StateInfo): all 40 devices again
    assert!(status.full_polls >= 2, "{status:?}");
    // nothing changed in the cluster then (the crash is at 20 min): no device event came of it
    assert_eq!(device_events(&s.log), first);
}

#[tokio::test]
async fn refused_credentials_are_an_auth_error_that_names_the_roles() {
    let s = setup();
    let url = common::serve(&s.c.mock, None).await;
    let mut cfg = common::config(vec![url], s._dir.path());
    cfg.client.password = "wrong".into();
    let mut p = Poller::new(cfg, s.c.clock.clone(), s.log.clone()).unwrap();
    let e = p.cycle().await.unwrap_err();
    assert!(matches!(e, CucmError::Auth { status: 401, .. }), "{e}");
    assert!(e.to_string().contains("roles"), "{e}");
    assert!(!format!("{:?}", common::config(vec![], s._dir.path()).client).contains("secret"));
    assert_eq!(s.c.mock.stats().auth_failures, 1);
    assert_eq!(device_events(&s.log), 0);
}

#[tokio::test]
async fn error_pages_and_cut_answers_fail_the_cycle_without_events() {
    let s = setup();
    let url = common::serve(&s.c.mock, None).await;
    let mut p = poller(&s, vec![url]);
    p.cycle().await.unwrap();
    let before = device_events(&s.log);
    s.c.mock.inject(Inject::Html500);
    let e = p.cycle().await.unwrap_err();
    assert!(matches!(e, CucmError::Http { status: 500, .. }), "{e}");
    s.c.mock.inject(Inject::Truncated);
    let e = p.cycle().await.unwrap_err();
    assert!(matches!(e, CucmError::Wire(_)), "{e}");
    assert_eq!(device_events(&s.log), before);
    // the crash at 20 min: the next good cycles see the failovers
    s.c.clock.advance(Duration::from_secs(12 * 60));
    p.cycle().await.unwrap();
    let status = p.status().lock().unwrap().clone();
    assert_eq!(status.node_gaps.len(), 1);
    assert_eq!(status.node_gaps[0].return_code, "NodeNotResponding");
    assert!(device_events(&s.log) > before, "failovers seen");
}

#[tokio::test]
async fn a_node_that_does_not_answer_fails_over_to_the_next() {
    let s = setup();
    let a = common::serve(&s.c.mock, None).await;
    let b = common::serve(&s.c.mock, None).await;
    // an address where nothing listens, then a node answering 503, then a good one
    let mut p = poller(&s, vec![common::closed_port(), a, b]);
    s.c.mock.inject(Inject::Unavailable);
    p.cycle().await.unwrap();
    assert_eq!(device_events(&s.log), 40);
    // a node down in the scenario makes its own Tomcat unreachable
    let down = common::serve_node(&s.c.mock, "CL1-cucm1").await;
    let up = common::serve_node(&s.c.mock, "CL1-cucm2").await;
    let mut p2 = poller(&s, vec![down, up]);
    s.c.clock.advance(Duration::from_secs(11 * 60)); // cucm1 crashed at 20 min
    p2.cycle().await.unwrap();
}

#[tokio::test]
async fn tls_with_the_cluster_ca_works_without_it_fails_and_insecure_is_explicit() {
    let s = setup();
    let url = common::serve_tls(&s.c.mock).await;
    let ca = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls/ca.pem");
    let mut cfg = common::config(vec![url.clone()], s._dir.path());
    let e = Poller::new(cfg.clone(), s.c.clock.clone(), s.log.clone())
        .unwrap()
        .cycle()
        .await
        .unwrap_err();
    assert!(matches!(e, CucmError::Transport { .. }), "{e}");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    cfg.client.ca_file = Some(ca);
    Poller::new(cfg.clone(), s.c.clock.clone(), s.log.clone())
        .unwrap()
        .cycle()
        .await
        .unwrap();
    cfg.client.ca_file = None;
    cfg.client.insecure = true;
    Poller::new(cfg.clone(), s.c.clock.clone(), s.log.clone())
        .unwrap()
        .cycle()
        .await
        .unwrap();
    cfg.client.insecure = false;
    cfg.client.ca_file = Some(s._dir.path().join("missing.pem"));
    let e = Poller::new(cfg, s.c.clock.clone(), s.log.clone())
        .err()
        .unwrap();
    assert!(matches!(e, CucmError::Config(_)), "{e}");
}

/// Without a watched application user, the CTIManagers' PerfMon counters give the provider
/// events: the CTI connection leaves the crashed CTIManager and appears on the backup.
#[tokio::test]
async fn perfmon_counters_give_the_ctimanager_failover() {
    let c = common::cluster(
        r#"
name = "ctim-hour"
duration = "1h"
[topology]
devices = 40
[[faults]]
kind = "ctimanager_crash"
at = "20m"
reconnect_after = "25s"
"#,
        5,
        MockOptions::default(),
    );
    c.clock.advance(Duration::from_secs(300));
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path().join("data"), LogOptions::default()).unwrap());
    let url = common::serve(&c.mock, None).await;
    let cfg = common::config(vec![url], dir.path());
    let mut p = Poller::new(cfg, c.clock.clone(), log.clone()).unwrap();
    let stop = c.truth.start + chrono::Duration::minutes(40);
    p.run_until(|now| now >= stop).await.unwrap();
    let status = p.status().lock().unwrap().clone();
    assert_eq!(status.ctimanagers.len(), 4, "{:?}", status.ctimanagers);
    assert!(status.ctimanagers.values().all(|s| {
        s.counters
            .as_ref()
            .is_some_and(|c| c.ccm_link_active == Some(4))
    }));
    log.wait_idle().unwrap();
    let rows = LogRows::load(&log.snapshot(), None).unwrap();
    let provider: Vec<(bool, String, i64)> = rows
        .node_events
        .iter()
        .filter_map(|e| match e.kind {
            callstate_schemas::Kind::ProviderInService => {
                Some((true, e.target.to_string(), e.time))
            }
            callstate_schemas::Kind::ProviderOutOfService => {
                Some((false, e.target.to_string(), e.time))
            }
            _ => None,
        })
        .collect();
    let crash = (c.truth.start + chrono::Duration::minutes(20)).timestamp_micros();
    // first the primary in service, then out at the crash (within a cycle), then the backup in
    assert_eq!(provider.len(), 3, "{provider:?}");
    assert!(provider[0].0 && provider[0].2 < crash);
    assert!(!provider[1].0 && provider[1].1 == provider[0].1);
    assert!(
        provider[1].2 >= crash && provider[1].2 - crash <= 2 * 30 * 1_000_000 + 10_000_000,
        "{provider:?}"
    );
    assert!(provider[2].0 && provider[2].1 != provider[0].1 && provider[2].2 >= provider[1].2);
}

/// `--device-class Cti` asks RisPort for that class only: only the route points (class `Cti`)
/// get events.
#[tokio::test]
async fn the_device_class_filter_is_asked_of_risport() {
    let s = setup();
    let url = common::serve(&s.c.mock, None).await;
    let mut cfg = common::config(vec![url], s._dir.path());
    cfg.device_class = "Cti".into();
    let mut p = Poller::new(cfg, s.c.clock.clone(), s.log.clone()).unwrap();
    p.cycle().await.unwrap();
    s.log.wait_idle().unwrap();
    let rows = LogRows::load(&s.log.snapshot(), None).unwrap();
    let route_points =
        s.c.truth
            .device_info
            .values()
            .filter(|d| d.device_type == "cti_route_point")
            .count();
    assert!(route_points > 0);
    assert_eq!(rows.service.len(), route_points);
    assert!(
        rows.service
            .iter()
            .all(|r| r.device_type.as_deref() == Some("cti_route_point"))
    );
}

/// A full disk under the log: the poller's events wait in its outbox (in order, with their
/// sequence numbers) while the log refuses appends, and are all stored once there is room.
#[tokio::test]
async fn a_full_disk_keeps_the_events_until_they_are_stored() {
    let Some(fs) = callstate_testkit::tmpfs::tmpfs_or_skip(16 << 20, "poller disk full") else {
        return;
    };
    let c = common::cluster(common::HOUR, 3, MockOptions::default());
    c.clock.advance(Duration::from_secs(600));
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(fs.path().join("data"), LogOptions::default()).unwrap());
    let url = common::serve(&c.mock, None).await;
    let mut p = Poller::new(
        common::config(vec![url], dir.path()),
        c.clock.clone(),
        log.clone(),
    )
    .unwrap();
    p.cycle().await.unwrap();
    let stored_before = log.snapshot().len();
    // the disk fills; the node crash at 20 min makes devices fail over
    let filler = fs.fill();
    c.clock.advance(Duration::from_secs(12 * 60));
    let e = p.cycle().await.unwrap_err();
    assert!(matches!(e, CucmError::Append(_)), "{e}");
    let waiting = p.status().lock().unwrap().unsent;
    assert!(waiting > 0, "the failovers wait in the outbox");
    assert_eq!(log.snapshot().len(), stored_before, "nothing half-stored");
    // room again: the log resumes, the next cycle stores what waited, then its own events
    std::fs::remove_file(&filler).unwrap();
    std::thread::sleep(Duration::from_millis(1_100));
    c.clock.advance(Duration::from_secs(30));
    p.cycle().await.unwrap();
    log.wait_idle().unwrap();
    let status = p.status().lock().unwrap().clone();
    assert_eq!(status.unsent, 0);
    assert_eq!(
        log.snapshot().len(),
        status.events,
        "every event the poller made is stored, once"
    );
    assert!(log.snapshot().len() >= stored_before + waiting as u64);
}
