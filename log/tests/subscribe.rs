//! Subscriptions: a subscriber sees every acknowledged event exactly once, in ingest order,
//! across concurrent writers, duplicates and rolls.

use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::UInt64Type;
use callstate_log::{Log, LogOptions, Notice};
use callstate_schemas::decode_batch;
use callstate_sim::synthetic;

fn t0() -> chrono::DateTime<chrono::Utc> {
    "2026-11-24T08:00:00Z".parse().unwrap()
}

#[test]
fn a_subscriber_sees_every_acknowledged_event_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(
        Log::open(
            dir.path(),
            LogOptions {
                segment_rows: 1_500,
            },
        )
        .unwrap(),
    );
    let events = synthetic::events(12_000, 60, t0());
    // some events before the subscription: they are in its snapshot, not in its notices
    log.append(&events[..700]).unwrap();
    let (snap, sub) = log.subscribe();
    assert_eq!(snap.len(), 700);

    // three writers, each re-sending some of the others' events (duplicates are not notices)
    let rest = &events[700..];
    let acked: Vec<u64> = std::thread::scope(|s| {
        let writers: Vec<_> = (0..3)
            .map(|w| {
                let log = log.clone();
                s.spawn(move || {
                    let mut mine = Vec::new();
                    for (i, chunk) in rest.chunks(97).enumerate() {
                        if i % 3 == w || i % 7 == w {
                            let r = log.append(chunk).unwrap();
                            for o in r.outcomes {
                                if let callstate_log::Outcome::Accepted(seq) = o {
                                    mine.push(seq);
                                }
                            }
                        }
                    }
                    mine
                })
            })
            .collect();
        writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    log.roll_now().unwrap();
    let mut acked = acked;
    acked.sort_unstable();
    assert_eq!(
        acked.len(),
        rest.len(),
        "every event accepted by one writer"
    );

    let mut seen = Vec::new();
    let mut seen_events = Vec::new();
    let mut rolled = 0;
    for n in sub.drain() {
        match n {
            Notice::Appended(b) => {
                seen.extend(
                    b.column_by_name("ingest_seq")
                        .unwrap()
                        .as_primitive::<UInt64Type>()
                        .values()
                        .iter()
                        .copied(),
                );
                seen_events.extend(decode_batch(&b).unwrap().into_iter().map(|e| e.event));
            }
            Notice::Rolled(meta) => {
                rolled += 1;
                // a roll only moves events the subscriber was already told of
                assert!(seen.last().is_some_and(|&s| s >= meta.max_ingest_seq));
            }
            Notice::Compacted { .. } | Notice::Retired(_) | Notice::Folded { .. } => {
                panic!("nothing compacts here")
            }
        }
    }
    assert!(rolled >= 5, "{rolled} rolls");
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "in ingest order, once"
    );
    assert_eq!(seen, acked, "exactly the acknowledged events");
    // snapshot + notices = the whole log
    let mut all: Vec<_> = snap
        .stored_events()
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    all.extend(seen_events);
    let mut expected = events.clone();
    let key = |e: &callstate_schemas::Event| (e.source.clone(), e.seq);
    all.sort_by_key(key);
    expected.sort_by_key(key);
    assert_eq!(all, expected);

    // a dropped subscription unsubscribes; closing the log ends the others
    let (_, sub2) = log.subscribe();
    drop(sub);
    let later: Vec<_> = (20_000..20_010)
        .map(|i| synthetic::event(i, 60, t0()))
        .collect();
    assert_eq!(log.append(&later).unwrap().accepted, 10);
    drop(log);
    let notices: Vec<_> = std::iter::from_fn(|| sub2.recv()).collect();
    assert_eq!(notices.len(), 1, "one append after the second subscription");
}
