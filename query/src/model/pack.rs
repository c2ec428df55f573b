//! [`IntervalPack`]: one device's intervals encoded, 14–20 bytes an interval (the list of
//! names and the marks included) where a [`ServiceInterval`] takes 72. A year of 50,000 devices holds some three million intervals.
//!
//! Each interval is encoded against the one before: a flag byte (state, movement, whether
//! it ends), a bit mask of the nine names that changed and each changed name's number in the
//! pack's list of names, then its start after the previous end, its length and its ingest
//! time after its start, as zigzag varints. Every [`STRIDE`]th interval starts afresh (all its
//! names, its start after 0) and is marked with its start and byte offset, so that the
//! interval at an instant or the intervals of a window decode from the mark before them,
//! not from the first.

use std::borrow::Cow;

use callstate_schemas::{Movement, ServiceState, Us};

use super::intervals::ServiceInterval;
use super::name::{Name, index_in};
use super::shared_bytes::SharedBytes;
use super::varint::{Reader, put, unzigzag, zigzag};

/// Intervals between marks.
const STRIDE: usize = 16;

/// Flag bits of an interval's first byte (after the state's two bits).
const FAILOVER: u8 = 1 << 2;
const REHOME: u8 = 2 << 2;
const MOVEMENT: u8 = 3 << 2;
const ENDS: u8 = 1 << 4;

/// The names of an interval, in the order they are encoded.
type Names = [Option<Name>; 9];

/// A field of an interval holding a name, numbered in the order they are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Its cluster.
    Cluster = 1,
    /// Its device pool.
    DevicePool = 4,
}

fn names_of(i: &ServiceInterval) -> Names {
    [
        Some(i.device),
        Some(i.cluster),
        Some(i.source),
        i.device_type,
        i.device_pool,
        i.node,
        i.last_node,
        i.home_node,
        i.cause,
    ]
}

/// A mark: where an interval encoded afresh starts.
#[derive(Debug, Clone, Copy)]
struct Mark {
    valid_from: Us,
    at: u32,
}

/// A device's intervals (in time order, none overlapping another), encoded.
#[derive(Debug, Clone, Default)]
pub struct IntervalPack {
    /// The names its intervals use, each once.
    names: Box<[Name]>,
    /// For each name, the fields it was in (bit `f` for the `f`th of [`names_of`]).
    fields: Box<[u16]>,
    /// Its intervals, encoded (on the heap, or read in place from a mapped file).
    bytes: SharedBytes,
    /// One every [`STRIDE`] intervals, from the first.
    marks: Box<[Mark]>,
    len: usize,
    /// The last interval, decoded (the device's attributes, asked of every device).
    last: Option<ServiceInterval>,
    /// The home node of the last interval that has one.
    last_home: Option<Name>,
}

impl IntervalPack {
    /// `intervals` (in time order, each ending by the next one's start) encoded.
    pub fn new(intervals: &[ServiceInterval]) -> IntervalPack {
        debug_assert!(intervals.windows(2).all(|w| {
            w[0].valid_from <= w[1].valid_from
                && w[0].valid_to.is_some_and(|e| e <= w[1].valid_from)
        }));
        let (mut names, mut fields): (Vec<Name>, Vec<u16>) = Default::default();
        // a name's index in the list plus one; 0 for none (and the field it was in, noted)
        let mut number = |f: usize, n: Option<Name>| {
            n.map_or(0, |n| {
                let k = index_in(&mut names, n);
                fields.resize(names.len(), 0);
                fields[k] |= 1 << f;
                k as u64 + 1
            })
        };
        let mut bytes = Vec::with_capacity(intervals.len() * 14);
        let mut marks = Vec::with_capacity(intervals.len().div_ceil(STRIDE));
        let (mut prev, mut prev_end): (Names, Us) = ([None; 9], 0);
        for (k, i) in intervals.iter().enumerate() {
            if k.is_multiple_of(STRIDE) {
                marks.push(Mark {
                    valid_from: i.valid_from,
                    at: u32::try_from(bytes.len()).expect("a device's intervals under 4 GiB"),
                });
                (prev, prev_end) = ([None; 9], 0);
            }
            let mut flags = i.state.index() as u8;
            flags |= match i.movement {
                None => 0,
                Some(Movement::Failover) => FAILOVER,
                Some(Movement::Rehome) => REHOME,
            };
            if i.valid_to.is_some() {
                flags |= ENDS;
            }
            bytes.push(flags);
            let now = names_of(i);
            let changed = (0..9).filter(|&f| now[f] != prev[f]);
            put(&mut bytes, changed.clone().fold(0, |m, f| m | 1 << f));
            for f in changed {
                put(&mut bytes, number(f, now[f]));
            }
            put(&mut bytes, zigzag(i.valid_from.wrapping_sub(prev_end)));
            if let Some(e) = i.valid_to {
                put(&mut bytes, zigzag(e.wrapping_sub(i.valid_from)));
            }
            put(&mut bytes, zigzag(i.known_from.wrapping_sub(i.valid_from)));
            prev = now;
            prev_end = i.valid_to.unwrap_or(i.valid_from);
        }
        IntervalPack {
            names: names.into(),
            fields: fields.into(),
            bytes: bytes.into(),
            marks: marks.into(),
            len: intervals.len(),
            last: intervals.last().cloned(),
            last_home: intervals.iter().rev().find_map(|i| i.home_node),
        }
    }

    /// How many intervals.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes its intervals take encoded (the list of names and the marks excluded).
    pub fn encoded_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Bytes it holds on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.heap_bytes()
            + self.names.len() * (size_of::<Name>() + size_of::<u16>())
            + self.marks.len() * size_of::<Mark>()
    }

    /// The names its bytes number, in order, and its bytes: what a file of them holds.
    pub fn encoded(&self) -> (&[Name], &[u8]) {
        (&self.names, &self.bytes)
    }

    /// A copy of it reading `bytes`, if they are the same as its own.
    pub fn with_bytes(&self, bytes: SharedBytes) -> Option<IntervalPack> {
        (*bytes == *self.bytes).then(|| IntervalPack {
            bytes,
            ..self.clone_without_bytes()
        })
    }

    fn clone_without_bytes(&self) -> IntervalPack {
        IntervalPack {
            names: self.names.clone(),
            fields: self.fields.clone(),
            bytes: SharedBytes::default(),
            marks: self.marks.clone(),
            len: self.len,
            last: self.last.clone(),
            last_home: self.last_home,
        }
    }

    /// Whether its bytes are read from a shared buffer.
    pub fn is_shared(&self) -> bool {
        self.bytes.is_shared()
    }

    /// The last interval.
    pub fn last(&self) -> Option<&ServiceInterval> {
        self.last.as_ref()
    }

    /// The home node of the last interval that has one.
    pub fn last_home(&self) -> Option<Name> {
        self.last_home
    }

    /// The first interval's start.
    pub fn first_from(&self) -> Option<Us> {
        self.marks.first().map(|m| m.valid_from)
    }

    /// Whether some interval has `name` in its field `field`, read from its list of names.
    pub fn has(&self, field: Field, name: &str) -> bool {
        let k = self.names.iter().position(|n| n.as_str() == name);
        k.is_some_and(|k| self.fields[k] & (1 << field as u16) != 0)
    }

    /// Every interval, decoded.
    pub fn to_vec(&self) -> Vec<ServiceInterval> {
        self.decode_from(0).collect()
    }

    /// The intervals from the mark `m` on.
    fn decode_from(&self, m: usize) -> Decoder<'_> {
        let (at, k) = match self.marks.get(m) {
            Some(mark) => (mark.at as usize, m * STRIDE),
            None => (self.bytes.len(), self.len),
        };
        Decoder {
            pack: self,
            r: Reader {
                bytes: &self.bytes,
                at,
            },
            k,
            prev: [None; 9],
            prev_end: 0,
        }
    }

    /// The last mark starting by `t` (or the first): every interval before it starts and,
    /// none overlapping the next, ends by `t`.
    fn mark_before(&self, t: Us) -> usize {
        self.marks
            .partition_point(|m| m.valid_from <= t)
            .saturating_sub(1)
    }

    /// The last interval starting by `t`; `None` when none does.
    pub fn starting_by(&self, t: Us) -> Option<ServiceInterval> {
        let mut dec = self.decode_from(self.mark_before(t));
        let mut found = None;
        while let Some(i) = dec.next_if(|i| i.valid_from <= t) {
            found = Some(i);
        }
        found
    }

    /// The first interval.
    pub fn first(&self) -> Option<ServiceInterval> {
        self.decode_from(0).next()
    }

    /// The intervals that do not end by `from` and start before `to`.
    pub fn overlapping(&self, from: Us, to: Us) -> Vec<ServiceInterval> {
        let mut dec = self.decode_from(self.mark_before(from));
        while dec
            .next_if(|i| i.valid_to.is_some_and(|e| e <= from))
            .is_some()
        {}
        let mut out = Vec::new();
        while let Some(i) = dec.next_if(|i| i.valid_from < to) {
            out.push(i);
        }
        out
    }
}

/// Decodes a pack's intervals in order, from a mark.
struct Decoder<'p> {
    pack: &'p IntervalPack,
    r: Reader<'p>,
    /// The number of the next interval.
    k: usize,
    prev: Names,
    prev_end: Us,
}

impl Decoder<'_> {
    /// The next interval if `keep` says so (not consumed otherwise).
    fn next_if(&mut self, keep: impl Fn(&ServiceInterval) -> bool) -> Option<ServiceInterval> {
        let saved = (self.r.at, self.k, self.prev, self.prev_end);
        let i = self.next()?;
        if keep(&i) {
            return Some(i);
        }
        (self.r.at, self.k, self.prev, self.prev_end) = saved;
        None
    }
}

impl Iterator for Decoder<'_> {
    type Item = ServiceInterval;

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.pack.len - self.k.min(self.pack.len);
        (left, Some(left))
    }

    fn next(&mut self) -> Option<ServiceInterval> {
        if self.k >= self.pack.len {
            return None;
        }
        if self.k.is_multiple_of(STRIDE) {
            (self.prev, self.prev_end) = ([None; 9], 0);
        }
        let r = &mut self.r;
        let flags = r.byte();
        let mut changed = r.varint();
        while changed != 0 {
            let f = changed.trailing_zeros() as usize;
            changed &= changed - 1;
            self.prev[f] = match r.varint() {
                0 => None,
                n => Some(self.pack.names[n as usize - 1]),
            };
        }
        let valid_from = self.prev_end.wrapping_add(unzigzag(r.varint()));
        let valid_to = (flags & ENDS != 0).then(|| valid_from.wrapping_add(unzigzag(r.varint())));
        let known_from = valid_from.wrapping_add(unzigzag(r.varint()));
        let n = self.prev;
        let named = |f: usize| n[f].expect("device, cluster and source are always encoded");
        self.prev_end = valid_to.unwrap_or(valid_from);
        self.k += 1;
        Some(ServiceInterval {
            device: named(0),
            cluster: named(1),
            source: named(2),
            device_type: n[3],
            device_pool: n[4],
            node: n[5],
            last_node: n[6],
            home_node: n[7],
            cause: n[8],
            state: ServiceState::ALL[usize::from(flags & 3)],
            movement: match flags & MOVEMENT {
                FAILOVER => Some(Movement::Failover),
                REHOME => Some(Movement::Rehome),
                _ => None,
            },
            valid_from,
            valid_to,
            known_from,
        })
    }
}

/// A device's stored intervals: a slice of decoded ones (a from-scratch derivation, a view
/// as of an ingest time) or a pack (the live state's devices).
#[derive(Debug, Clone, Copy)]
pub enum Stored<'a> {
    /// Decoded, in time order.
    Slice(&'a [ServiceInterval]),
    /// Encoded.
    Packed(&'a IntervalPack),
}

impl<'a> From<&'a [ServiceInterval]> for Stored<'a> {
    fn from(s: &'a [ServiceInterval]) -> Self {
        Stored::Slice(s)
    }
}

impl<'a> From<&'a Vec<ServiceInterval>> for Stored<'a> {
    fn from(s: &'a Vec<ServiceInterval>) -> Self {
        Stored::Slice(s)
    }
}

impl<'a> From<&'a IntervalPack> for Stored<'a> {
    fn from(p: &'a IntervalPack) -> Self {
        Stored::Packed(p)
    }
}

impl<'a> Stored<'a> {
    /// Whether there are none.
    pub fn is_empty(self) -> bool {
        match self {
            Stored::Slice(s) => s.is_empty(),
            Stored::Packed(p) => p.is_empty(),
        }
    }

    /// The last one.
    pub fn last(self) -> Option<&'a ServiceInterval> {
        match self {
            Stored::Slice(s) => s.last(),
            Stored::Packed(p) => p.last(),
        }
    }

    /// The first one's start.
    pub fn first_from(self) -> Option<Us> {
        match self {
            Stored::Slice(s) => s.first().map(|i| i.valid_from),
            Stored::Packed(p) => p.first_from(),
        }
    }

    /// The home node of the last one that has one.
    pub fn last_home(self) -> Option<Name> {
        match self {
            Stored::Slice(s) => s.iter().rev().find_map(|i| i.home_node),
            Stored::Packed(p) => p.last_home(),
        }
    }

    /// All of them.
    pub fn all(self) -> Cow<'a, [ServiceInterval]> {
        match self {
            Stored::Slice(s) => Cow::Borrowed(s),
            Stored::Packed(p) => Cow::Owned(p.to_vec()),
        }
    }

    /// Whether one of them has `name` in its field `field` (a pack tells without decoding).
    pub fn has(self, field: Field, name: &str) -> bool {
        match self {
            Stored::Slice(s) => s
                .iter()
                .any(|i| names_of(i)[field as usize].is_some_and(|n| n.as_str() == name)),
            Stored::Packed(p) => p.has(field, name),
        }
    }

    /// The first one.
    pub fn first(self) -> Option<Cow<'a, ServiceInterval>> {
        match self {
            Stored::Slice(s) => s.first().map(Cow::Borrowed),
            Stored::Packed(p) => p.first().map(Cow::Owned),
        }
    }

    /// The last one starting by `t`.
    pub fn starting_by(self, t: Us) -> Option<Cow<'a, ServiceInterval>> {
        match self {
            Stored::Slice(s) => {
                let k = s.partition_point(|i| i.valid_from <= t);
                s.get(k.checked_sub(1)?).map(Cow::Borrowed)
            }
            Stored::Packed(p) => p.starting_by(t).map(Cow::Owned),
        }
    }

    /// Those that do not end by `from` and start before `to`.
    pub fn overlapping(self, from: Us, to: Us) -> Cow<'a, [ServiceInterval]> {
        match self {
            Stored::Slice(iv) => {
                let a = iv.partition_point(|i| i.valid_to.is_some_and(|e| e <= from));
                // from `a` on (an empty window may end before the interval before `a` starts)
                let b = a + iv[a..].partition_point(|i| i.valid_from < to);
                Cow::Borrowed(&iv[a..b])
            }
            Stored::Packed(p) => Cow::Owned(p.overlapping(from, to)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn interval(k: usize, from: Us, to: Option<Us>, known: Us, pick: [u8; 6]) -> ServiceInterval {
        let n = |v: u8, what: &str| (v > 0).then(|| Name::new(&format!("{what}{v}")));
        ServiceInterval {
            device: Name::new("SEP00AA"),
            cluster: n(pick[0] % 2 + 1, "CL").expect("some"),
            device_type: n(pick[1] % 2, "type"),
            device_pool: n(pick[2] % 3, "DP"),
            state: ServiceState::ALL[k % 3],
            node: n(pick[3] % 3, "cucm"),
            last_node: n(pick[4] % 3, "cucm"),
            home_node: n(pick[5] % 3, "cucm"),
            cause: n(pick[0] % 3, "cause"),
            movement: [None, Some(Movement::Failover), Some(Movement::Rehome)][k % 3],
            valid_from: from,
            valid_to: to,
            source: n(pick[1] % 2 + 1, "bridge").expect("some"),
            known_from: known,
        }
    }

    /// Intervals in time order from gaps and lengths (the last open when `open`).
    fn intervals(spans: &[(i64, i64, i64, [u8; 6])], open: bool) -> Vec<ServiceInterval> {
        let mut t: Us = -1_000_000;
        let mut out = Vec::new();
        for (k, &(gap, len, lag, pick)) in spans.iter().enumerate() {
            let from = t + gap;
            let to = if open && k + 1 == spans.len() {
                None
            } else {
                Some(from + len)
            };
            out.push(interval(k, from, to, from.wrapping_add(lag), pick));
            t = from + len;
        }
        out
    }

    fn span() -> impl Strategy<Value = (i64, i64, i64, [u8; 6])> {
        (
            prop_oneof![Just(0i64), 0i64..1_000, 0i64..100_000_000_000],
            prop_oneof![Just(0i64), 1i64..1_000, 1i64..10_000_000_000],
            prop_oneof![
                Just(i64::MIN / 4),
                -5i64..5,
                any::<i32>().prop_map(i64::from)
            ],
            proptest::array::uniform6(any::<u8>()),
        )
    }

    proptest! {
        #[test]
        fn a_pack_answers_as_the_slice_it_was_packed_from(
            spans in proptest::collection::vec(span(), 0..60),
            open in any::<bool>(),
            asks in proptest::collection::vec((any::<u16>(), any::<u16>()), 1..12),
        ) {
            let iv = intervals(&spans, open);
            let pack = IntervalPack::new(&iv);
            let (s, p) = (Stored::Slice(&iv), Stored::Packed(&pack));
            prop_assert_eq!(&pack.to_vec(), &iv);
            prop_assert_eq!(p.last(), s.last());
            prop_assert_eq!(p.first_from(), s.first_from());
            prop_assert_eq!(p.last_home(), s.last_home());
            prop_assert_eq!(p.is_empty(), s.is_empty());
            let end = iv.last().map_or(0, |i| i.valid_to.unwrap_or(i.valid_from));
            // instants before, at and between the intervals' ends
            let at = |x: u16| {
                let span = end.wrapping_add(3_000_000).wrapping_sub(-2_000_000).max(1);
                -2_000_000 + (i64::from(x) * span / 65_536)
            };
            for (a, b) in asks {
                let (t, u) = (at(a), at(b));
                prop_assert_eq!(p.starting_by(t), s.starting_by(t));
                prop_assert_eq!(p.first(), s.first());
                for t in iv.iter().flat_map(|i| [i.valid_from, i.valid_to.unwrap_or(0)]).take(6) {
                    prop_assert_eq!(p.starting_by(t), s.starting_by(t));
                }
                let (from, to) = (t.min(u), t.max(u));
                prop_assert_eq!(p.overlapping(from, to), s.overlapping(from, to));
                prop_assert_eq!(p.overlapping(from, from), s.overlapping(from, from));
                // every name of the intervals (and one of none) in the two fields asked
                let named = iv.iter().flat_map(|i| names_of(i).into_iter().flatten());
                for n in named.map(|n| n.as_str()).chain(["nowhere"]).take(12) {
                    for f in [Field::Cluster, Field::DevicePool] {
                        let want = iv.iter().any(|i| match f {
                            Field::Cluster => &*i.cluster == n,
                            Field::DevicePool => i.device_pool.as_deref() == Some(n),
                        });
                        prop_assert_eq!(p.has(f, n), want, "{:?} {}", f, n);
                        prop_assert_eq!(s.has(f, n), want);
                    }
                }
            }
        }
    }

    #[test]
    fn a_typical_interval_takes_about_a_dozen_bytes() {
        // a device's year: an outage every few days, back on another node then home
        let day = callstate_schemas::US_PER_DAY;
        let spans: Vec<_> = (0..300)
            .map(|k| {
                (
                    0,
                    day * 3 + k * 7_919_000,
                    2_500_000,
                    [1, 1, 1, (k % 2) as u8 + 1, 1, 1],
                )
            })
            .collect();
        let iv = intervals(&spans, true);
        let pack = IntervalPack::new(&iv);
        let per = pack.encoded_bytes() / iv.len();
        assert!((8..=16).contains(&per), "{per} bytes an interval");
        assert!(size_of::<ServiceInterval>() >= 64);
    }
}
