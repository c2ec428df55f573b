//! The live state equals a from-scratch derivation of the same log, after every batch
//! (availability included: the live state answers it from daily rollups).
//!
//! Random event streams (late and out of order, re-sent, heartbeats missing for minutes,
//! pool changes, maintenance windows, node events, calls whose ends arrive first) are
//! appended in random batch splits to a real log that rolls segments every few events; after
//! each batch the live state that followed the log is compared with `Derived::load` of the
//! log's snapshot: every device's intervals (homes and silences included), each source's
//! activity, call legs, pool configurations, maintenance windows, node events and incidents.
//! The same comparison is made for what was known at earlier ingest times (`known_at`), and
//! the live state starts over from the log (segments, digests, tail) at a random batch, as
//! after a restart — from a checkpoint of its call legs when one was written at an earlier
//! batch (the legs of the checkpoint mapped, the call events after it paired on top).
//!
//! A longer run: `PROPTEST_CASES=2000 cargo test -p callstate-query --test live_equivalence`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;

use callstate_log::{Log, LogOptions};
use callstate_query::live::AsOfCache;
use callstate_query::model::fleet::Fleet;
use callstate_query::{Derived, Live};
use callstate_schemas::{Body, Cause, DeviceType, Event, Scope};

mod common;

const DEVICES: &[&str] = &["D1", "D2", "D3", "D4"];
const NODES: &[&str] = &["cm1", "cm2", "cm3"];
const POOLS: &[&str] = &["DP-A", "DP-B"];
const SOURCES: &[&str] = &["bridge-1", "bridge-2"];

/// What one generated event says (its time and source are drawn beside it).
#[derive(Debug, Clone)]
enum What {
    InService {
        device: usize,
        node: usize,
        pool: Option<usize>,
        phone: bool,
    },
    OutOfService {
        device: usize,
        node: Option<usize>,
        cause: usize,
    },
    Heartbeat,
    PoolConfig {
        pool: usize,
        primary: usize,
    },
    Maintenance {
        device: usize,
        minutes: i64,
    },
    CallStarted {
        device: usize,
        call: usize,
    },
    CallEnded {
        device: usize,
        call: usize,
        cause: usize,
    },
    NodeDown {
        node: usize,
    },
    NodeUp {
        node: usize,
    },
}

fn what() -> impl Strategy<Value = What> {
    let d = 0..DEVICES.len();
    let n = 0..NODES.len();
    prop_oneof![
        4 => (d.clone(), n.clone(), proptest::option::of(0..POOLS.len()), any::<bool>())
            .prop_map(|(device, node, pool, phone)| What::InService { device, node, pool, phone }),
        3 => (d.clone(), proptest::option::of(n.clone()), 0..3usize)
            .prop_map(|(device, node, cause)| What::OutOfService { device, node, cause }),
        4 => Just(What::Heartbeat),
        1 => (0..POOLS.len(), n.clone()).prop_map(|(pool, primary)| What::PoolConfig { pool, primary }),
        1 => (d.clone(), 1..30i64).prop_map(|(device, minutes)| What::Maintenance { device, minutes }),
        2 => (d.clone(), 0..6usize).prop_map(|(device, call)| What::CallStarted { device, call }),
        2 => (d.clone(), 0..6usize, 0..3usize)
            .prop_map(|(device, call, cause)| What::CallEnded { device, call, cause }),
        1 => n.clone().prop_map(|node| What::NodeDown { node }),
        1 => n.prop_map(|node| What::NodeUp { node }),
    ]
}

/// One step of a stream: a new event at `minute:second` from a source, or a copy of an
/// earlier one (re-sent: the log drops it).
#[derive(Debug, Clone)]
enum Step {
    New {
        source: usize,
        /// Seconds from the start; a stream's times go back and forth.
        at: i64,
        what: What,
    },
    Resend(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        12 => (0..SOURCES.len(), 0..4 * 3600i64, what())
            .prop_map(|(source, at, what)| Step::New { source, at, what }),
        1 => any::<usize>().prop_map(Step::Resend),
    ]
}

/// Two hours before midnight: a stream's days are cut by at least one.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 22, 0, 0).unwrap()
}

fn cause(i: usize) -> Cause {
    Cause::parse(["node_failure", "unregistered", "a cause of its own"][i])
}

/// `at` seconds after t0 stretched `scale` times (1: four hours; 30: five days, whole days
/// of which the live state keeps daily rollups).
fn event(source: usize, seq: u64, at: i64, scale: i64, what: &What) -> Event {
    let time = t0() + chrono::Duration::seconds(at * scale);
    let s = |x: &str| x.to_string();
    let body = match *what {
        What::InService {
            device,
            node,
            pool,
            phone,
        } => Body::DeviceInService {
            device: s(DEVICES[device]),
            device_type: if phone {
                DeviceType::Phone
            } else {
                DeviceType::CtiPort
            },
            node: s(NODES[node]),
            device_pool: pool.map(|p| s(POOLS[p])),
            ctimanager: None,
        },
        What::OutOfService {
            device,
            node,
            cause: c,
        } => Body::DeviceOutOfService {
            device: s(DEVICES[device]),
            cause: cause(c),
            node: node.map(|n| s(NODES[n])),
        },
        What::Heartbeat => Body::CollectorHeartbeat,
        What::PoolConfig { pool, primary } => Body::DevicePoolConfig {
            device_pool: s(POOLS[pool]),
            nodes: (0..NODES.len())
                .map(|k| s(NODES[(primary + k) % NODES.len()]))
                .collect(),
        },
        What::Maintenance { device, minutes } => Body::MaintenanceWindow {
            scope: Scope::Device,
            target: s(DEVICES[device]),
            start: time,
            end: time + chrono::Duration::minutes(minutes * scale),
            reason: s("patching"),
        },
        What::CallStarted { device, call } => Body::CallStarted {
            call_id: format!("call-{call}"),
            device: s(DEVICES[device]),
            address: None,
            calling: None,
            called: None,
        },
        What::CallEnded {
            device,
            call,
            cause: c,
        } => Body::CallEnded {
            call_id: format!("call-{call}"),
            device: s(DEVICES[device]),
            cause: cause(c),
        },
        What::NodeDown { node } => Body::NodeDown {
            node: s(NODES[node]),
            cause: None,
        },
        What::NodeUp { node } => Body::NodeUp {
            node: s(NODES[node]),
            cause: None,
        },
    };
    Event {
        source: s(SOURCES[source]),
        seq,
        time,
        cluster: s("c1"),
        body,
        extra: None,
    }
}

/// The events of a stream, in delivery order.
fn events(steps: &[Step], scale: i64) -> Vec<Event> {
    let mut seqs = [0u64; SOURCES.len()];
    let mut out: Vec<Event> = Vec::new();
    for s in steps {
        match s {
            Step::New { source, at, what } => {
                seqs[*source] += 1;
                out.push(event(*source, seqs[*source], *at, scale, what));
            }
            Step::Resend(k) if !out.is_empty() => {
                let e = out[k % out.len()].clone();
                out.push(e);
            }
            Step::Resend(_) => {}
        }
    }
    out
}

fn same(what: &str, live: &dyn Fleet, scratch: &dyn Fleet) -> Result<(), TestCaseError> {
    let start = t0().timestamp_micros();
    let (a, b) = (
        common::fleet_questions(live, start),
        common::fleet_questions(scratch, start),
    );
    if a != b {
        let k = a
            .iter()
            .zip(&b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len()));
        return Err(TestCaseError::fail(format!(
            "{what}: first difference at line {k}\n live:    {:?}\n scratch: {:?}",
            a.get(k),
            b.get(k)
        )));
    }
    Ok(())
}

/// A source's activity spans.
type Spans = (Arc<str>, Vec<(i64, i64)>);

/// Appends `steps` in batches of `splits` sizes (cycled) to a log rolling every
/// `segment_rows`; a checkpoint of the legs is written before batch `checkpoint`; the live
/// state starts over from the log before batch `restart`.
fn check(
    steps: Vec<Step>,
    scale: i64,
    splits: Vec<usize>,
    segment_rows: usize,
    (checkpoint, restart): (usize, usize),
) -> Result<(), TestCaseError> {
    let events = events(&steps, scale);
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogOptions { segment_rows }).unwrap();
    let mut live = Live::start(&log, Default::default()).unwrap();
    let mut rest: &[Event] = &events;
    let mut splits = splits.into_iter().cycle();
    for batch in 0.. {
        if rest.is_empty() {
            break;
        }
        if batch == checkpoint {
            let written = live.checkpoint().unwrap();
            prop_assert_eq!(written.version, log.version());
        }
        if batch == restart {
            // derived from the snapshot (segments, digests and tail) rather than followed
            drop(live);
            live = Live::start(&log, Default::default()).unwrap();
        }
        let n = splits.next().unwrap_or(1).clamp(1, rest.len());
        let (batch, r) = rest.split_at(n);
        rest = r;
        log.append(batch).unwrap();
        let view = common::caught_up(&live, log.version(), Duration::from_secs(30));
        prop_assert_eq!(view.version, log.version(), "the live state caught up");
        let snap = log.snapshot();
        let scratch = Derived::load(snap, None, Default::default(), true).unwrap();
        same(
            &format!("after {} events", events.len() - rest.len()),
            &*view,
            &scratch,
        )?;
        // the activity of each source (from which silences follow)
        let mut spans: Vec<Spans> = view
            .sources()
            .map(|(s, sp)| (s.clone(), sp.to_vec()))
            .collect();
        spans.sort();
        let mut expected: Vec<Spans> = scratch
            .rows
            .source_spans
            .iter()
            .map(|(s, sp)| (s.clone(), sp.clone()))
            .collect();
        expected.sort();
        prop_assert_eq!(spans, expected);
    }
    // what was known at earlier ingest times: just before and at a sample of the batches'
    let view = live.view();
    let snap = log.snapshot();
    let mut times: Vec<i64> = snap
        .stored_events()
        .unwrap()
        .iter()
        .map(|e| e.ingest_time.timestamp_micros())
        .collect();
    times.sort_unstable();
    times.dedup();
    let step = times.len().div_ceil(6).max(1);
    let cache = AsOfCache::default();
    for &t in times.iter().step_by(step).chain(times.last()) {
        for k in [t - 1, t] {
            let as_of = cache.fleet_at(&view, k).unwrap();
            let scratch = Derived::load(snap.clone(), Some(k), Default::default(), true).unwrap();
            same(&format!("known at {k}"), &*as_of, &scratch)?;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn live_state_equals_a_derivation_from_scratch(
        steps in proptest::collection::vec(step(), 1..120),
        scale in prop_oneof![Just(1i64), Just(30i64)],
        splits in proptest::collection::vec(1..25usize, 1..8),
        segment_rows in 4..40usize,
        checkpoint in 0..12usize,
        restart in 0..12usize,
    ) {
        check(steps, scale, splits, segment_rows, (checkpoint, restart))?;
    }
}
