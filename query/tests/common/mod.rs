//! Shared setup of the query tests: simulate a scenario, store its stream in a real log.

#![allow(dead_code)]

use callstate_log::{Log, LogOptions};
use callstate_schemas::Event;
use callstate_sim::{Scenario, Truth};

/// A built-in scenario with `devices` per cluster, run with `seed`: its stream and truth.
pub fn simulate(name: &str, devices: usize, seed: u64) -> (Vec<Event>, Truth) {
    let mut sc = Scenario::load(name).unwrap();
    sc.topology.devices = devices;
    simulate_scenario(&sc, seed)
}

/// A scenario run with `seed`: its stream and truth.
pub fn simulate_scenario(sc: &Scenario, seed: u64) -> (Vec<Event>, Truth) {
    callstate_sim::collect(sc, seed).unwrap()
}

/// A fresh log on disk holding `events`, appended in batches of 4,096 (with segments of
/// `segment_rows`, so reads cover segments and the WAL tail).
pub fn log_with(events: &[Event], segment_rows: usize) -> (tempfile::TempDir, Log) {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogOptions { segment_rows }).unwrap();
    for chunk in events.chunks(4_096) {
        log.append(chunk).unwrap();
    }
    log.wait_idle().unwrap();
    (dir, log)
}

/// A fresh log on disk fed `events` in batches of 4,096 while the live state follows it (so
/// the live state is built incrementally, batch by batch), and the from-scratch derivation
/// of the same log: the two fleets every question can be asked of.
pub fn both_fleets(
    events: &[Event],
    segment_rows: usize,
) -> (
    tempfile::TempDir,
    Log,
    callstate_query::Derived,
    std::sync::Arc<callstate_query::View>,
) {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogOptions { segment_rows }).unwrap();
    let live = callstate_query::Live::start(&log, Default::default()).unwrap();
    for chunk in events.chunks(4_096) {
        log.append(chunk).unwrap();
    }
    log.wait_idle().unwrap();
    let view = caught_up(&live, log.version(), std::time::Duration::from_secs(60));
    assert_eq!(view.version, log.version(), "the live state caught up");
    let derived =
        callstate_query::Derived::load(log.snapshot(), None, Default::default(), true).unwrap();
    (dir, log, derived, view)
}

/// The live state once it holds `version`, waited for at most `max_wait` (on a runtime of
/// its own: the wait is async, as the server's handlers need it).
pub fn caught_up(
    live: &callstate_query::Live,
    version: u64,
    max_wait: std::time::Duration,
) -> std::sync::Arc<callstate_query::View> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(live.view_at_least(version, max_wait))
}

/// Rows as strings (for easy comparison), column by column.
pub fn strings(batches: &[arrow::array::RecordBatch]) -> Vec<Vec<Option<String>>> {
    use arrow::array::{Array, AsArray};
    let mut out = Vec::new();
    for b in batches {
        let cols: Vec<_> = b
            .columns()
            .iter()
            .map(|c| arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            out.push(
                cols.iter()
                    .map(|c| {
                        let s = c.as_string::<i32>();
                        s.is_valid(r).then(|| s.value(r).to_string())
                    })
                    .collect(),
            );
        }
    }
    out
}

/// Every call question of a fleet: each device's legs, then the calls active and hit around
/// each leg's start and end; then, at each of those instants and at every hour's start (±1
/// µs), the calls active on every device as a fleet snapshot counts them (in one pass).
pub fn call_questions(f: &dyn callstate_query::model::fleet::Fleet) -> Vec<String> {
    call_questions_from(f, i64::MIN)
}

/// The call questions that retention of the legs that started and ended before `kept_from`
/// leaves answerable: those of [`call_questions`] about the legs it keeps, at instants from
/// `kept_from` on.
pub fn call_questions_from(
    f: &dyn callstate_query::model::fleet::Fleet,
    kept_from: i64,
) -> Vec<String> {
    let kept = |c: &&callstate_query::model::rows::CallRow| {
        !(c.start < kept_from && c.end.is_some_and(|e| e < kept_from))
    };
    let mut out = Vec::new();
    let mut instants = std::collections::BTreeSet::new();
    for legs in f.calls() {
        for c in legs.iter().filter(kept) {
            for t in [Some(c.start), c.end].into_iter().flatten() {
                instants.extend([t - 1, t, t + 1]);
            }
        }
    }
    const HOUR: i64 = 3_600_000_000;
    if let (Some(&a), Some(&b)) = (instants.first(), instants.last()) {
        for h in a.div_euclid(HOUR)..=b.div_euclid(HOUR) + 1 {
            instants.extend([h * HOUR - 1, h * HOUR, h * HOUR + 1]);
        }
    }
    for &t in instants.range(kept_from..) {
        let active: Vec<(&str, u64)> = f
            .devices_with_active_calls(t)
            .filter(|(_, n)| *n > 0)
            .map(|(d, n)| (d.name(), n))
            .collect();
        out.push(format!("fleet {t} {active:?}"));
    }
    for legs in f.calls() {
        for c in legs.iter().filter(kept) {
            out.push(format!("call {c:?}"));
        }
        let device = &legs[0].device;
        for c in legs.iter().filter(kept) {
            for t in [Some(c.start), c.end].into_iter().flatten() {
                for t in [t - 1, t, t + 1].into_iter().filter(|&t| t >= kept_from) {
                    out.push(format!("active {device} {t} {}", f.active_calls(device, t)));
                    let mut hit = f.calls_hit(device, t);
                    hit.sort();
                    out.push(format!("hit {device} {t} {hit:?}"));
                }
            }
        }
    }
    out
}

/// Everything two fleets are compared on, in a form that prints a readable difference: every
/// device's intervals, the call questions, the pools, windows and node events, availability
/// per device over days from the one before `start` and windows cut mid-day, and incidents.
pub fn fleet_questions(f: &dyn callstate_query::model::fleet::Fleet, start: i64) -> Vec<String> {
    let mut out = Vec::new();
    for d in f.devices() {
        for i in d.all().iter() {
            out.push(format!("interval {i:?}"));
        }
    }
    out.extend(call_questions(f));
    let mut rest: Vec<String> = f
        .pool_configs()
        .iter()
        .map(|p| {
            format!(
                "pool {} {} {} {:?}",
                p.time, p.ingest_seq, p.device_pool, p.nodes
            )
        })
        .chain(f.windows().iter().map(|w| format!("window {w:?}")))
        .chain(f.node_events().iter().map(|n| format!("node {n:?}")))
        .collect();
    rest.sort();
    out.extend(rest);
    // availability per device over whole days, a week, and windows cut mid-day (as a
    // calendar month in a time zone is): the live state reads daily rollups, the derivation
    // from scratch intervals alone; the answers are the same to the last bit
    let day = 86_400_000_000i64;
    let first = start.div_euclid(day) * day - day;
    let mut windows: Vec<(i64, i64)> = (0..8)
        .map(|k| (first + k * day, first + (k + 1) * day))
        .collect();
    windows.push((first, first + 8 * day));
    windows.push((
        first + 23 * 3_600_000_000,
        first + 5 * day + 23 * 3_600_000_000,
    ));
    windows.push((start + 5_820_000_000, start + 3 * day + 18_000_000_001));
    windows.push((start + 600_000_000, start + 900_000_000));
    let rows = callstate_query::model::sla::availability_over(
        f.devices(),
        f.windows(),
        &windows,
        callstate_query::model::sla::GroupBy::Device,
        &callstate_query::Cancel::new(),
    )
    .unwrap();
    out.extend(rows.iter().map(|r| format!("availability {r:?}")));
    let found = callstate_query::model::incidents::detect(
        f,
        i64::MIN,
        i64::MAX,
        &callstate_query::model::incidents::IncidentOptions::default(),
        &callstate_query::Cancel::new(),
    )
    .unwrap();
    out.extend(found.iter().map(|i| format!("incident {i:?}")));
    out
}
