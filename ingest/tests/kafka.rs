//! The Kafka collector and the Kafka-backed log against librdkafka's in-process mock cluster
//! (a real Kafka protocol peer on loopback, with fault injection): nothing lost, nothing stored
//! twice, rejects dead-lettered with their reason, offsets committed only after the append.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use callstate_ingest::kafka::{
    CanonicalProducer, Collector, CollectorOptions, DLQ_HEADER_ERROR, DLQ_HEADER_FIELD,
    KafkaConfig, Materializer, MaterializerOptions, position_key, read_to_end,
};
use callstate_log::{Log, LogOptions, Snapshot};
use callstate_schemas::Event;
use callstate_sim::synthetic;
use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

fn t0() -> DateTime<Utc> {
    "2026-11-24T08:00:00Z".parse().unwrap()
}

fn mock(topics: &[(&str, i32)]) -> MockCluster<'static, DefaultProducerContext> {
    let m = MockCluster::new(1).unwrap();
    for (t, n) in topics {
        m.create_topic(t, *n, 1).unwrap();
    }
    m
}

fn producer(brokers: &str) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.timeout.ms", "120000")
        .create()
        .unwrap()
}

/// Sends values (keyed by their device or source when they parse) and waits for them.
fn send(p: &ThreadedProducer<DefaultProducerContext>, topic: &str, values: &[String]) {
    for v in values {
        let key = Event::from_json(v, Utc::now())
            .ok()
            .map(|e| e.body.device().unwrap_or(&e.source).to_string())
            .unwrap_or_default();
        p.send(BaseRecord::to(topic).payload(v.as_str()).key(key.as_str()))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    p.flush(Duration::from_secs(60)).unwrap();
}

fn json(events: &[Event]) -> Vec<String> {
    events.iter().map(Event::to_json).collect()
}

/// Stored events keyed by (source, seq); panics on a key stored twice.
fn stored(dir: &Path) -> BTreeMap<(String, u64), Event> {
    let mut out = BTreeMap::new();
    for s in Snapshot::load(dir).unwrap().stored_events().unwrap() {
        let key = (s.event.source.clone(), s.event.seq);
        assert!(
            out.insert(key.clone(), s.event).is_none(),
            "{key:?} stored twice"
        );
    }
    out
}

fn keyed(events: &[Event]) -> BTreeMap<(String, u64), Event> {
    events
        .iter()
        .map(|e| ((e.source.clone(), e.seq), e.clone()))
        .collect()
}

/// The longest a test here may take: a Kafka client that hangs fails its test, with this
/// message, instead of holding up the whole run.
const TEST_LIMIT: Duration = Duration::from_secs(300);

/// Runs a test's body on its own thread; fails when it has not finished within `limit`.
fn within(limit: Duration, body: impl FnOnce() + Send + 'static) {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        body();
        let _ = tx.send(());
    });
    match rx.recv_timeout(limit) {
        Ok(()) => t.join().unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = t.join() {
                std::panic::resume_unwind(panic)
            }
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("the test did not finish within {} s", limit.as_secs())
        }
    }
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn open(dir: &Path) -> Arc<Log> {
    Arc::new(Log::open(dir, LogOptions { segment_rows: 700 }).unwrap())
}

fn header(m: &rdkafka::message::OwnedMessage, key: &str) -> Option<String> {
    let h = m.headers()?;
    h.iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).to_string())
}

/// Committed offsets of a group, per partition.
fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    (0..partitions)
        .map(|p| match got.find_partition(topic, p).unwrap().offset() {
            Offset::Offset(o) => o,
            other => panic!("partition {p}: {other:?}"),
        })
        .collect()
}

fn high_watermarks(brokers: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    (0..partitions)
        .map(|p| {
            c.fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap()
                .1
        })
        .collect()
}

fn run_collector(cfg: &KafkaConfig, opts: CollectorOptions, log: Arc<Log>) -> u64 {
    let mut c = Collector::new(cfg, opts, log).unwrap();
    let stats = c.run(&AtomicBool::new(false), |_| {}).unwrap();
    stats.duplicates
}

#[test]
fn collector_stores_valid_events_once_dead_letters_the_rest_and_commits_after_append() {
    within(TEST_LIMIT, || {
        let m = mock(&[("raw", 3), ("raw.dlq", 1)]);
        let brokers = m.bootstrap_servers();
        let events = synthetic::events(3_000, 40, t0());
        let mut values = json(&events);
        // re-delivered by a bridge after a failover: duplicates
        values.extend(json(&events[100..300]));
        // bad values: not JSON, a missing field, a conflict, and a message of two lines of which
        // the second is bad
        values.push("{not json".into());
        values.push(r#"{"source":"bridge-9","seq":1,"time":"2026-11-24T08:00:00Z","kind":"node_down","node":"sub1"}"#.into());
        let mut conflict = events[7].clone();
        conflict.cluster = "CL-OTHER".into();
        values.push(conflict.to_json());
        let extra = synthetic::event(5_000, 40, t0());
        values.push(format!(
        "{}\n{}",
        extra.to_json(),
        r#"{"source":"bridge-9","seq":2,"time":"yesterday","cluster":"CL1","kind":"collector_heartbeat"}"#
    ));
        send(&producer(&brokers), "raw", &values);

        // the first commits time out: the collector retries them
        m.request_errors(
            RDKafkaApiKey::OffsetCommit,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT; 2],
        );
        let dir = tempfile::tempdir().unwrap();
        let cfg = KafkaConfig::new(&brokers);
        let mut opts = CollectorOptions::new("raw", "collectors");
        opts.until_end = true;
        opts.batch_max = 500;
        let log = open(dir.path());
        let mut c = Collector::new(&cfg, opts, log.clone()).unwrap();
        let stats = c.run(&AtomicBool::new(false), |_| {}).unwrap();
        drop(c);
        log.wait_idle().unwrap();

        let mut want = keyed(&events);
        want.insert((extra.source.clone(), extra.seq), extra.clone());
        assert_eq!(stored(dir.path()), want);
        assert_eq!(stats.accepted, want.len() as u64);
        assert_eq!(stats.duplicates, 200);
        assert_eq!(stats.rejected, 4);
        assert_eq!(stats.messages, values.len() as u64);

        let dlq = read_to_end(&KafkaConfig::new(brokers.to_string()), "raw.dlq").unwrap();
        assert_eq!(dlq.len(), 4);
        let reasons: Vec<(Option<String>, String)> = dlq
            .iter()
            .map(|m| {
                (
                    header(m, DLQ_HEADER_FIELD),
                    header(m, DLQ_HEADER_ERROR).expect("every dead letter has its reason"),
                )
            })
            .collect();
        assert!(
            reasons
                .iter()
                .any(|(f, e)| f.is_none() && e.contains("invalid JSON")),
            "{reasons:?}"
        );
        assert!(
            reasons.iter().any(|(f, _)| f.as_deref() == Some("cluster")),
            "{reasons:?}"
        );
        assert!(
            reasons
                .iter()
                .any(|(f, e)| f.as_deref() == Some("seq") && e.contains("different content")),
            "{reasons:?}"
        );
        assert!(
            reasons.iter().any(|(f, _)| f.as_deref() == Some("time")),
            "{reasons:?}"
        );
        let two_lines = dlq
            .iter()
            .find(|m| header(m, DLQ_HEADER_FIELD).as_deref() == Some("time"))
            .unwrap();
        assert_eq!(header(two_lines, "callstate-line").as_deref(), Some("2"));
        assert!(header(two_lines, "callstate-source-offset").is_some());

        // everything consumed is committed, and only after it was appended
        assert_eq!(
            committed(&brokers, "collectors", "raw", 3),
            high_watermarks(&brokers, "raw", 3)
        );
    });
}

#[test]
fn collector_rereads_what_it_could_not_commit_and_stores_it_once() {
    within(TEST_LIMIT, || {
        let m = mock(&[("raw", 2), ("raw.dlq", 1)]);
        let brokers = m.bootstrap_servers();
        let events = synthetic::events(2_000, 30, t0());
        send(&producer(&brokers), "raw", &json(&events));
        let dir = tempfile::tempdir().unwrap();
        let cfg = KafkaConfig::new(&brokers);
        let mut opts = CollectorOptions::new("raw", "g");
        opts.until_end = true;

        // Every commit of the first run fails: the appends are durable, the offsets are not
        // (as after a crash between the two).
        m.request_errors(
            RDKafkaApiKey::OffsetCommit,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE; 200],
        );
        let first = run_collector(&cfg, opts.clone(), open(dir.path()));
        assert_eq!(first, 0);
        assert_eq!(stored(dir.path()), keyed(&events));
        m.clear_request_errors(RDKafkaApiKey::OffsetCommit);

        // The restart reads it all again; every event is a duplicate, none is stored twice.
        let second = run_collector(&cfg, opts, open(dir.path()));
        assert_eq!(second, events.len() as u64);
        assert_eq!(stored(dir.path()), keyed(&events));
        assert_eq!(
            committed(&brokers, "g", "raw", 2),
            high_watermarks(&brokers, "raw", 2)
        );
    });
}

#[test]
fn collector_rides_out_a_broker_outage() {
    within(TEST_LIMIT, || {
        let m = mock(&[("raw", 2), ("raw.dlq", 1)]);
        let brokers = m.bootstrap_servers();
        let events = synthetic::events(4_000, 30, t0());
        let p = producer(&brokers);
        send(&p, "raw", &json(&events[..2_000]));

        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        let stop = Arc::new(AtomicBool::new(false));
        let cfg = KafkaConfig::new(&brokers);
        let mut c = Collector::new(&cfg, CollectorOptions::new("raw", "g"), log.clone()).unwrap();
        let stop2 = stop.clone();
        let worker = std::thread::spawn(move || c.run(&stop2, |_| {}).unwrap());
        wait_for("the first half", Duration::from_secs(60), || {
            log.snapshot().len() == 2_000
        });

        m.broker_down(1).unwrap();
        // the bridge keeps producing; librdkafka holds the messages until the broker is back
        for v in json(&events[2_000..]) {
            p.send(BaseRecord::<str, str>::to("raw").payload(v.as_str()))
                .map_err(|(e, _)| e)
                .unwrap();
        }
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(log.snapshot().len(), 2_000);
        m.broker_up(1).unwrap();
        p.flush(Duration::from_secs(60)).unwrap();
        wait_for("the second half", Duration::from_secs(60), || {
            log.snapshot().len() == 4_000
        });
        stop.store(true, Ordering::Relaxed);
        let stats = worker.join().unwrap();
        assert_eq!(stats.accepted, 4_000);
        drop(log);
        assert_eq!(stored(dir.path()), keyed(&events));
    });
}

/// Devices whose every event is in a log.
fn complete_devices(
    dir: &Path,
    by_device: &BTreeMap<String, BTreeSet<(String, u64)>>,
) -> BTreeSet<String> {
    let have: BTreeSet<(String, u64)> = stored(dir).into_keys().collect();
    by_device
        .iter()
        .filter(|(_, keys)| keys.is_subset(&have))
        .map(|(d, _)| d.clone())
        .collect()
}

#[test]
fn materializers_split_the_canonical_topic_and_resume_exactly_from_their_positions() {
    within(TEST_LIMIT, || {
        let m = mock(&[("canon", 4), ("canon.dlq", 1)]);
        let brokers = m.bootstrap_servers();
        let mut cfg = KafkaConfig::new(&brokers);
        cfg.options
            .push(("session.timeout.ms".into(), "6000".into()));
        cfg.options
            .push(("heartbeat.interval.ms".into(), "500".into()));
        let events = synthetic::events(3_000, 40, t0());
        let canonical = CanonicalProducer::new(&cfg, "canon").unwrap();
        canonical.send(&events).unwrap();

        let mut by_device: BTreeMap<String, BTreeSet<(String, u64)>> = BTreeMap::new();
        let mut shared = BTreeSet::new();
        for e in &events {
            match e.body.device() {
                Some(d) => by_device.entry(d.to_string()).or_default(),
                None => &mut shared,
            }
            .insert((e.source.clone(), e.seq));
        }
        // device-less events are in every partition
        let in_topic = read_to_end(&KafkaConfig::new(brokers.to_string()), "canon").unwrap();
        assert_eq!(
            in_topic.len(),
            by_device.values().map(BTreeSet::len).sum::<usize>() + 4 * shared.len()
        );

        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let opts = MaterializerOptions::new("canon", "serve");
        let a_log = open(a_dir.path());
        let a = Materializer::start(&cfg, opts.clone(), a_log.clone()).unwrap();
        wait_for("A to consume", Duration::from_secs(60), || {
            a.status().messages > 0
        });
        let b_log = open(b_dir.path());
        let b = Materializer::start(&cfg, opts.clone(), b_log.clone()).unwrap();
        // both hold partitions, together all four, and each is complete for its devices
        wait_for("the split", Duration::from_secs(90), || {
            let (sa, sb) = (a.status(), b.status());
            if sa.assigned.is_empty() || sb.assigned.is_empty() {
                return false;
            }
            let mut all: Vec<i32> = sa.assigned.iter().chain(&sb.assigned).copied().collect();
            all.sort_unstable();
            all == [0, 1, 2, 3]
                && complete_devices(a_dir.path(), &by_device)
                    .union(&complete_devices(b_dir.path(), &by_device))
                    .count()
                    == by_device.len()
        });
        let (sa, sb) = (a.stop(), b.stop());
        assert!(sa.failed.is_none() && sb.failed.is_none());
        for dir in [a_dir.path(), b_dir.path()] {
            // every device-less event in both, each stored once (copies dropped)
            let have: BTreeSet<(String, u64)> = stored(dir).into_keys().collect();
            assert!(shared.is_subset(&have));
        }
        let positions_before = a_log.positions();
        drop((a_log, b_log));

        // More events while no instance runs; then A restarts alone and takes every partition:
        // it resumes its own partitions at its stored positions and reads B's from the start.
        let more = synthetic::events(3_500, 40, t0());
        canonical.send(&more[3_000..]).unwrap();
        let hw = high_watermarks(&brokers, "canon", 4);
        let a_log = open(a_dir.path());
        assert_eq!(
            a_log.positions(),
            positions_before,
            "positions survive a restart"
        );
        let a = Materializer::start(&cfg, opts, a_log.clone()).unwrap();
        wait_for("A to catch up", Duration::from_secs(90), || {
            let p = a_log.positions();
            (0..4).all(|i| p.get(&position_key("canon", i)) == Some(&hw[i as usize]))
        });
        let status = a.stop();
        let expected_reads: i64 = (0..4)
            .map(|i| {
                hw[i as usize]
                    - positions_before
                        .get(&position_key("canon", i))
                        .copied()
                        .unwrap_or(0)
            })
            .sum();
        assert_eq!(
            status.messages as i64, expected_reads,
            "nothing re-read, nothing skipped"
        );
        drop(a_log);
        assert_eq!(stored(a_dir.path()), keyed(&more));
    });
}

#[test]
fn a_full_producer_queue_makes_the_writer_wait_instead_of_buffering_without_bound() {
    within(TEST_LIMIT, || {
        let m = mock(&[("canon", 2), ("canon.dlq", 1)]);
        let brokers = m.bootstrap_servers();
        let mut cfg = KafkaConfig::new(&brokers);
        // a queue of 20 messages stands for the 64 MiB bound of production
        cfg.options
            .push(("queue.buffering.max.messages".into(), "20".into()));
        let canonical = Arc::new(CanonicalProducer::new(&cfg, "canon").unwrap());
        let events = synthetic::events(300, 10, t0());

        m.broker_down(1).unwrap();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let writer = {
            let (canonical, events) = (canonical.clone(), events.clone());
            std::thread::spawn(move || {
                let r = canonical.send(&events);
                let _ = done_tx.send(());
                r
            })
        };
        // The queue fills at 20 messages and the append waits: it neither fails nor takes the
        // other 280 events into memory while the broker is away.
        assert!(
            done_rx.recv_timeout(Duration::from_secs(3)).is_err(),
            "the append returned while the broker was down"
        );
        m.broker_up(1).unwrap();
        writer.join().unwrap().unwrap();

        // everything arrived once: device events once, device-less ones in both partitions
        let shared = events.iter().filter(|e| e.body.device().is_none()).count();
        let in_topic = read_to_end(&KafkaConfig::new(brokers.to_string()), "canon").unwrap();
        assert_eq!(in_topic.len(), events.len() - shared + 2 * shared);
    });
}
