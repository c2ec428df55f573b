//! A rollup's units, encoded: runs of units in one state, and single units that were not,
//! back to back in one byte string. A run is a varint of its length and kind (`n << 2 |
//! kind`); a mixed unit's tally ([`Tally::pack`](super::tally::Tally::pack)'s eight
//! fields) follows as a byte marking its non-zero fields and those fields as varints. A year
//! of the benchmark fleet: 2.5 M runs, half of them mixed hours, in about a quarter of the
//! 16 bytes a run and 32 a mixed tally they took as structures.
//!
//! Runs are contiguous, so a run's first unit is where the one before ended: questions read
//! them in order, from the first or from a [`Cursor`] a question before left.

use super::shared_bytes::SharedBytes;
use super::varint::{Reader, put};

/// What a run of units was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Wholly in the state numbered so (0, 1 or 2: its place in `ServiceState::ALL`).
    Pure(u8),
    /// One unit, with its tally's fields.
    Mixed([u32; 8]),
}

const MIXED: u64 = 3;

/// A run: its first unit, its length in units and what it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Its first unit.
    pub first: i64,
    /// Units in it (1 for a mixed one).
    pub n: i64,
    /// What it was.
    pub kind: Kind,
}

impl Run {
    /// The unit after its last.
    pub fn end(&self) -> i64 {
        self.first + self.n
    }
}

/// Where a run is: its offset in the bytes and its first unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    at: usize,
    unit: i64,
}

impl Cursor {
    /// The first unit of the run it is at.
    pub fn unit(&self) -> i64 {
        self.unit
    }
}

/// Contiguous runs of units, encoded: built on the heap, then read from there or in place
/// from a file of derived state ([`from_parts`](Self::from_parts)).
#[derive(Debug, Clone, Default)]
pub struct UnitRuns {
    first: i64,
    end: i64,
    runs: u32,
    /// The runs written by [`finish`](Self::finish).
    bytes: SharedBytes,
    /// The runs pushed since.
    building: Vec<u8>,
    /// A run in one state not written yet (the next may continue it): its state and length.
    open: Option<(u8, i64)>,
}

/// Where [`UnitRuns`] lie: the units covered [first, end), and how many runs their bytes
/// hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Extent {
    /// The first unit covered.
    pub first: i64,
    /// The unit after the last covered.
    pub end: i64,
    /// Runs.
    pub runs: u32,
}

impl UnitRuns {
    /// Appends `n` units (at least one) from `end()` on; pure runs of one state join.
    pub fn push(&mut self, unit: i64, n: i64, kind: Kind) {
        debug_assert!(n > 0 && (self.is_empty() || unit == self.end));
        if self.is_empty() {
            self.first = unit;
        }
        self.end = unit + n;
        match kind {
            Kind::Pure(s) => match &mut self.open {
                Some((open, m)) if *open == s => *m += n,
                _ => {
                    self.flush();
                    self.open = Some((s, n));
                }
            },
            Kind::Mixed(fields) => {
                debug_assert_eq!(n, 1, "a mixed run is one unit");
                self.flush();
                put(&mut self.building, (1 << 2) | MIXED);
                let mask = fields
                    .iter()
                    .enumerate()
                    .fold(0u8, |m, (k, f)| m | (u8::from(*f != 0) << k));
                self.building.push(mask);
                for f in fields.into_iter().filter(|f| *f != 0) {
                    put(&mut self.building, u64::from(f));
                }
                self.runs += 1;
            }
        }
    }

    /// Writes the open run; to call when the last is pushed (runs pushed after are not read
    /// until it is called again).
    pub fn finish(&mut self) {
        self.flush();
        let building = std::mem::take(&mut self.building);
        self.bytes = if self.bytes.is_empty() {
            building.into()
        } else {
            let mut all = std::mem::take(&mut self.bytes).into_vec();
            all.extend_from_slice(&building);
            all.into()
        };
    }

    fn flush(&mut self) {
        if let Some((s, n)) = self.open.take() {
            put(&mut self.building, ((n as u64) << 2) | u64::from(s));
            self.runs += 1;
        }
    }

    /// Where they lie, and their bytes (those [`finish`](Self::finish)ed).
    pub fn parts(&self) -> (Extent, &[u8]) {
        let extent = Extent {
            first: self.first,
            end: self.end,
            runs: self.runs,
        };
        (extent, &self.bytes)
    }

    /// Appends the units [d0, d1) of `other` (which must cover them, from `end()` on when
    /// these cover any) as runs of their own; [`finish`](Self::finish) to call after.
    pub fn extend_from(&mut self, other: &UnitRuns, d0: i64, d1: i64) {
        let mut c = other.start();
        while let Some(run) = other.read(&mut c) {
            let (a, b) = (run.first.max(d0), run.end().min(d1));
            if a < b {
                self.push(a, b - a, run.kind);
            }
            if run.end() >= d1 {
                break;
            }
        }
    }

    /// The runs of `extent` whose bytes are `bytes` (read where they are: on the heap or in
    /// place in a file's buffer).
    pub fn from_parts(extent: Extent, bytes: SharedBytes) -> UnitRuns {
        UnitRuns {
            first: extent.first,
            end: extent.end,
            runs: extent.runs,
            bytes,
            building: Vec::new(),
            open: None,
        }
    }

    /// Whether its bytes are read in place from a shared buffer.
    pub fn is_shared(&self) -> bool {
        self.bytes.is_shared()
    }

    /// The units covered, [first, end).
    pub fn covered(&self) -> (i64, i64) {
        (self.first, self.end)
    }

    /// Runs held.
    pub fn len(&self) -> usize {
        self.runs as usize
    }

    /// Whether it covers no unit.
    pub fn is_empty(&self) -> bool {
        self.end == self.first
    }

    /// Bytes on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.heap_bytes() + self.building.capacity()
    }

    /// The cursor at the first run.
    pub fn start(&self) -> Cursor {
        Cursor {
            at: 0,
            unit: self.first,
        }
    }

    /// The run at `c`, moving `c` to the next; `None` after the last (of those written).
    pub fn read(&self, c: &mut Cursor) -> Option<Run> {
        if c.at >= self.bytes.len() {
            return None;
        }
        let mut r = Reader {
            bytes: &self.bytes,
            at: c.at,
        };
        let head = r.varint();
        let (n, k) = ((head >> 2) as i64, head & 3);
        let kind = if k == MIXED {
            let mask = r.byte();
            let mut fields = [0u32; 8];
            for (i, f) in fields.iter_mut().enumerate() {
                if mask & (1 << i) != 0 {
                    *f = r.varint() as u32;
                }
            }
            Kind::Mixed(fields)
        } else {
            Kind::Pure(k as u8)
        };
        let run = Run {
            first: c.unit,
            n,
            kind,
        };
        *c = Cursor {
            at: r.at,
            unit: run.end(),
        };
        Some(run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kind() -> impl Strategy<Value = (i64, Kind)> {
        prop_oneof![
            (1..100_000i64, 0..3u8).prop_map(|(n, s)| (n, Kind::Pure(s))),
            Just((i64::from(u32::MAX) + 7, Kind::Pure(1))),
            proptest::array::uniform8(prop_oneof![Just(0u32), any::<u32>()])
                .prop_map(|f| (1, Kind::Mixed(f))),
        ]
    }

    proptest! {
        #[test]
        fn runs_read_back_joined_where_one_state_goes_on(
            first in -1_000_000i64..1_000_000,
            pushed in proptest::collection::vec(kind(), 0..40),
        ) {
            let mut runs = UnitRuns::default();
            let mut want: Vec<Run> = Vec::new();
            let mut unit = first;
            for &(n, kind) in &pushed {
                runs.push(unit, n, kind);
                match (want.last_mut(), kind) {
                    (Some(last), Kind::Pure(_)) if last.kind == kind => last.n += n,
                    _ => want.push(Run { first: unit, n, kind }),
                }
                unit += n;
            }
            runs.finish();
            let mut c = runs.start();
            let mut got = Vec::new();
            while let Some(r) = runs.read(&mut c) {
                got.push(r);
            }
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(runs.len(), want.len());
            let covered = if pushed.is_empty() { (0, 0) } else { (first, unit) };
            prop_assert_eq!(runs.covered(), covered);
            prop_assert_eq!(runs.is_empty(), pushed.is_empty());
        }
    }

    #[test]
    fn runs_read_in_place_from_a_shared_buffer_read_as_on_the_heap() {
        let mut runs = UnitRuns::default();
        runs.push(-5, 3, Kind::Pure(2));
        runs.push(-2, 1, Kind::Mixed([1, 0, 7, 0, 0, 0, 0, 9]));
        runs.push(-1, 40, Kind::Pure(0));
        runs.finish();
        let (extent, bytes) = runs.parts();
        let file = [b"head".as_slice(), bytes, b"tail"].concat();
        let buffer: super::super::shared_bytes::Buffer = std::sync::Arc::new(file);
        let range = 4..4 + bytes.len();
        let read = UnitRuns::from_parts(extent, SharedBytes::shared(buffer, range));
        assert!(read.is_shared() && !runs.is_shared());
        assert_eq!(read.heap_bytes(), 0);
        assert_eq!((read.covered(), read.len()), (runs.covered(), runs.len()));
        let all = |r: &UnitRuns| {
            let mut c = r.start();
            std::iter::from_fn(move || r.read(&mut c)).collect::<Vec<_>>()
        };
        assert_eq!(all(&read), all(&runs));
        assert_eq!(all(&read).len(), 3);
    }

    #[test]
    fn a_quiet_run_takes_a_byte_and_a_mixed_hour_a_few() {
        let mut runs = UnitRuns::default();
        runs.push(10, 20, Kind::Pure(0));
        let mut fields = [0u32; 8];
        fields[0] = 3_500_000_000;
        fields[1] = 100_000_000;
        fields[4] = 100_000_000;
        runs.push(30, 1, Kind::Mixed(fields));
        runs.finish();
        // 1 + (1 + 1 + 5 + 4 + 4)
        assert_eq!(runs.heap_bytes(), 16);
    }
}
