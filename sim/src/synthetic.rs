//! A fast, deterministic stream of valid events of every common kind, for load and
//! durability tests of the log. It has no failure semantics: the cluster simulator does.

use callstate_schemas::{
    Body, CallStateKind, Cause, DeviceActivity, DeviceType, Event, KnownCause,
};
use chrono::{DateTime, Duration, Utc};

/// Event `i` (0-based) of a stream over `devices` devices, starting at `start`, one event per
/// millisecond, alternating between two sources with their own dense `seq`.
pub fn event(i: u64, devices: u64, start: DateTime<Utc>) -> Event {
    let d = i % devices.max(1);
    let device = format!("SEP{d:012X}");
    let call_id = format!("call-{}", i / 7);
    let body = match i % 7 {
        0 => Body::DeviceInService {
            device,
            device_type: DeviceType::ALL[(d % 4) as usize],
            node: format!("cucm-sub{}", d % 3 + 1),
            device_pool: Some(format!("DP-{}", d % 10)),
            ctimanager: None,
        },
        1 => Body::CallStarted {
            call_id,
            device,
            address: Some(format!("{}", 1000 + d)),
            calling: Some("+15550001".into()),
            called: None,
        },
        2 => Body::CallState {
            call_id,
            device,
            state: CallStateKind::Connected,
        },
        3 => Body::DeviceState {
            device,
            state: DeviceActivity::Active,
        },
        4 => Body::CallEnded {
            call_id,
            device,
            cause: Cause::Other("normal".into()),
        },
        5 => Body::DeviceOutOfService {
            device,
            cause: KnownCause::NodeFailure.into(),
            node: Some(format!("cucm-sub{}", d % 3 + 1)),
        },
        _ => Body::CollectorHeartbeat,
    };
    Event {
        source: format!("bridge-{}", i % 2),
        seq: i / 2 + 1,
        time: start + Duration::milliseconds(i as i64),
        cluster: "CL1".into(),
        body,
        extra: None,
    }
}

/// The first `n` events of the stream.
pub fn events(n: u64, devices: u64, start: DateTime<Utc>) -> Vec<Event> {
    (0..n).map(|i| event(i, devices, start)).collect()
}

/// Writes the first `n` events as NDJSON.
pub fn write_ndjson(
    w: &mut impl std::io::Write,
    n: u64,
    devices: u64,
    start: DateTime<Utc>,
) -> std::io::Result<()> {
    for i in 0..n {
        serde_json::to_writer(&mut *w, &event(i, devices, start))?;
        w.write_all(b"\n")?;
    }
    Ok(())
}
