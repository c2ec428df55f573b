//! [`ServiceEvents`]: a device's service events, packed.
//!
//! The live state keeps every device's `device_in_service` / `device_out_of_service` events
//! only to derive its intervals again (a late event, a silence closed or filled, a pool's new
//! home) and to answer `known_at` questions; both read them all, in order. So they are kept
//! as bytes: each event as the differences of its time, `ingest_seq` and `ingest_time` from
//! the event before (zigzag varints) and its names as indexes into the device's own list of
//! the names it uses (a handful: its sources, cluster, nodes, pools, type and causes). About
//! 20 bytes an event where a [`ServiceRow`] takes 88: a year of the benchmark fleet holds
//! 2.9 M of them.

use callstate_schemas::Us;

use crate::model::Name;
use crate::model::name::index_in;
use crate::model::rows::ServiceRow;
use crate::model::shared_bytes::SharedBytes;
use crate::model::varint::{Reader, put as varint, unzigzag, zigzag};

/// A device's service events in (time, ingest_seq) order.
#[derive(Debug, Clone, Default)]
pub struct ServiceEvents {
    /// The names its events use, each once.
    names: Vec<Name>,
    /// The events, each encoded against the one before ([`ServiceEvents::insert`]): on the
    /// heap, or read in place from a mapped file.
    bytes: SharedBytes,
    /// How many.
    len: usize,
    /// The last event's time, `ingest_seq` and `ingest_time` (the next one's deltas start
    /// there; zeros when empty).
    last: (Us, u64, Us),
}

/// Flag bits of an event's first byte.
const IN_SERVICE: u8 = 1;
const NODE: u8 = 2;
const POOL: u8 = 4;
const TYPE: u8 = 8;
const CAUSE: u8 = 16;

/// The most bytes an event takes: its flags, three varints of 64 bits and seven names.
const MAX_EVENT_BYTES: usize = 1 + 3 * 10 + 7 * 10;

impl ServiceEvents {
    /// The events of `rows`, in (time, ingest_seq) order whatever their order in `rows`.
    pub fn from_rows(mut rows: Vec<ServiceRow>) -> ServiceEvents {
        rows.sort_by_key(|e| (e.time, e.ingest_seq));
        ServiceEvents::from_sorted(&rows.iter().collect::<Vec<_>>())
    }

    /// The events of `rows`, which are in (time, ingest_seq) order.
    pub fn from_sorted(rows: &[&ServiceRow]) -> ServiceEvents {
        let mut s = ServiceEvents::default();
        let mut bytes = Vec::new();
        for r in rows {
            s.encode(r, &mut bytes);
        }
        s.bytes = bytes.into();
        s.names.shrink_to_fit();
        s
    }

    /// How many events.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes it holds on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.heap_bytes() + self.names.capacity() * size_of::<Name>()
    }

    /// Bytes its events take (names list excluded).
    pub fn encoded_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Adds `e` in its place: after every event of the same or an earlier (time,
    /// ingest_seq). An event in order is appended; a late one re-encodes the events.
    pub fn insert(&mut self, e: ServiceRow) {
        if self.len == 0 || (e.time, e.ingest_seq) >= (self.last.0, self.last.1) {
            // room for this one only (devices gain a few events a day): encoded aside, then
            // the bytes grown once to fit it
            let mut one = Vec::with_capacity(MAX_EVENT_BYTES);
            self.encode(&e, &mut one);
            let mut bytes = std::mem::take(&mut self.bytes).into_vec();
            bytes.reserve_exact(one.len());
            bytes.extend_from_slice(&one);
            self.bytes = bytes.into();
            return;
        }
        let mut rows = self.rows();
        let key = (e.time, e.ingest_seq);
        let at = rows.partition_point(|x| (x.time, x.ingest_seq) <= key);
        rows.insert(at, e);
        *self = ServiceEvents::from_rows(rows);
    }

    /// The names its bytes number, in order, and its bytes: what a file of them holds.
    pub fn encoded(&self) -> (&[Name], &[u8]) {
        (&self.names, &self.bytes)
    }

    /// A copy of it reading `bytes`, if they are the same as its own.
    pub fn with_bytes(&self, bytes: SharedBytes) -> Option<ServiceEvents> {
        (*bytes == *self.bytes).then(|| ServiceEvents {
            bytes,
            ..self.clone_without_bytes()
        })
    }

    fn clone_without_bytes(&self) -> ServiceEvents {
        ServiceEvents {
            names: self.names.clone(),
            bytes: SharedBytes::default(),
            len: self.len,
            last: self.last,
        }
    }

    /// Whether its bytes are read from a shared buffer.
    pub fn is_shared(&self) -> bool {
        self.bytes.is_shared()
    }

    /// Its events, in order.
    pub fn rows(&self) -> Vec<ServiceRow> {
        let mut out = Vec::with_capacity(self.len);
        let mut r = Reader {
            bytes: &self.bytes,
            at: 0,
        };
        let mut prev = (0, 0, 0);
        for _ in 0..self.len {
            let e = self.decode(&mut r, prev);
            prev = (e.time, e.ingest_seq, e.ingest_time);
            out.push(e);
        }
        out
    }

    /// Its events ingested by `known_at`, in order.
    pub fn known_at(&self, known_at: Us) -> Vec<ServiceRow> {
        let mut rows = self.rows();
        rows.retain(|e| e.ingest_time <= known_at);
        rows
    }

    fn name(&mut self, n: Name) -> u64 {
        index_in(&mut self.names, n) as u64
    }

    /// Counts `e` as the last event and writes its encoding to `b`.
    fn encode(&mut self, e: &ServiceRow, b: &mut Vec<u8>) {
        let (time, seq, ingest) = self.last;
        let opt = [
            (NODE, e.node),
            (POOL, e.device_pool),
            (TYPE, e.device_type),
            (CAUSE, e.cause),
        ];
        let mut flags = if e.in_service { IN_SERVICE } else { 0 };
        for (bit, n) in opt {
            if n.is_some() {
                flags |= bit;
            }
        }
        let mut names = [0u64; 7];
        let mut k = 0;
        for n in [Some(e.device), Some(e.source), Some(e.cluster)]
            .into_iter()
            .chain(opt.map(|(_, n)| n))
            .flatten()
        {
            names[k] = self.name(n);
            k += 1;
        }
        b.push(flags);
        varint(b, zigzag(e.time.wrapping_sub(time)));
        varint(b, zigzag(e.ingest_seq.wrapping_sub(seq) as i64));
        varint(b, zigzag(e.ingest_time.wrapping_sub(ingest)));
        for &n in &names[..k] {
            varint(b, n);
        }
        self.last = (e.time, e.ingest_seq, e.ingest_time);
        self.len += 1;
    }

    /// The event at `r`, encoded after one of (time, ingest_seq, ingest_time) `prev`.
    fn decode(&self, r: &mut Reader<'_>, prev: (Us, u64, Us)) -> ServiceRow {
        let flags = r.byte();
        let time = prev.0.wrapping_add(unzigzag(r.varint()));
        let ingest_seq = prev.1.wrapping_add(unzigzag(r.varint()) as u64);
        let ingest_time = prev.2.wrapping_add(unzigzag(r.varint()));
        let mut name = || self.names[r.varint() as usize];
        let (device, source, cluster) = (name(), name(), name());
        let mut opt = |bit: u8| (flags & bit != 0).then(&mut name);
        let (node, device_pool, device_type, cause) = (opt(NODE), opt(POOL), opt(TYPE), opt(CAUSE));
        ServiceRow {
            time,
            ingest_seq,
            ingest_time,
            source,
            cluster,
            device,
            in_service: flags & IN_SERVICE != 0,
            node,
            device_pool,
            device_type,
            cause,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn row(time: Us, seq: u64, ingest: Us, names: [Option<u8>; 5], up: bool) -> ServiceRow {
        let n = |k: Option<u8>, what: &str| k.map(|k| Name::new(&format!("{what}{k}")));
        ServiceRow {
            time,
            ingest_seq: seq,
            ingest_time: ingest,
            source: n(Some(names[0].unwrap_or(0) % 3), "bridge").expect("some"),
            cluster: Name::new("CL1"),
            device: Name::new("SEP0001"),
            in_service: up,
            node: n(names[1], "cucm"),
            device_pool: n(names[2], "DP_"),
            device_type: n(names[3], "Cisco "),
            cause: n(names[4], "cause"),
        }
    }

    /// What a plain vector holds after the same inserts.
    fn plain(events: &[ServiceRow]) -> Vec<ServiceRow> {
        let mut v: Vec<ServiceRow> = Vec::new();
        for e in events {
            let key = (e.time, e.ingest_seq);
            let at = v.partition_point(|x| (x.time, x.ingest_seq) <= key);
            v.insert(at, e.clone());
        }
        v
    }

    fn assert_same(a: &[ServiceRow], b: &[ServiceRow]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert_eq!(format!("{x:?}"), format!("{y:?}"));
        }
    }

    fn any_row() -> impl Strategy<Value = ServiceRow> {
        (
            prop_oneof![Just(Us::MIN), Just(Us::MAX), -5i64..5, any::<i64>()],
            prop_oneof![Just(0u64), Just(u64::MAX), 0u64..8, any::<u64>()],
            prop_oneof![Just(Us::MIN), Just(Us::MAX), any::<i64>()],
            proptest::array::uniform5(proptest::option::of(0u8..4)),
            any::<bool>(),
        )
            .prop_map(|(t, s, i, n, up)| row(t, s, i, n, up))
    }

    proptest! {
        #[test]
        fn inserted_in_any_order_they_read_back_as_a_sorted_vector(
            events in proptest::collection::vec(any_row(), 0..40),
            known_at in any::<i64>(),
        ) {
            let mut packed = ServiceEvents::default();
            for e in &events {
                packed.insert(e.clone());
            }
            let want = plain(&events);
            prop_assert_eq!(packed.len(), want.len());
            assert_same(&packed.rows(), &want);
            let mut known = want.clone();
            known.retain(|e| e.ingest_time <= known_at);
            assert_same(&packed.known_at(known_at), &known);
            // built at once from the rows as they came: the same
            assert_same(&ServiceEvents::from_rows(events.clone()).rows(), &want);
        }
    }

    #[test]
    fn a_typical_event_takes_about_twenty_bytes() {
        // a device's day: events minutes apart, ingested seconds after, seqs far apart
        let mut packed = ServiceEvents::default();
        let day = callstate_schemas::US_PER_DAY;
        for k in 0..100i64 {
            let t = 1_780_000_000_000_000 + k * day / 7;
            let up = k % 2 == 0;
            let names = [
                Some(0),
                Some((k % 2) as u8),
                Some(1),
                Some(2),
                (!up).then_some(1),
            ];
            packed.insert(row(
                t,
                40_000_000 + k as u64 * 1_234_567,
                t + 3_000_000,
                names,
                up,
            ));
        }
        assert_eq!(packed.len(), 100);
        assert_eq!(
            packed.heap_bytes(),
            packed.bytes.len() + packed.names.capacity() * size_of::<Name>(),
            "no room kept"
        );
        let per_event = packed.encoded_bytes() / 100;
        assert!((14..=24).contains(&per_event), "{per_event} bytes an event");
    }
}
