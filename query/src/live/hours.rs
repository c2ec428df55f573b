//! The hour index of a legs checkpoint: for every UTC hour, each packed leg active at some
//! instant of it, as (device, where in the hour it starts, where it ends).
//!
//! A fleet snapshot asks every device how many of its legs were active at one instant. At
//! any instant a few hundred of 50,000 devices are in a call, but without this index each
//! device's answer reads a page of its legs from the checkpoint (a fifth of a gigabyte of
//! pages an instant at a year, most of a cold snapshot's time). With it, a snapshot reads the
//! instant's hour (some thousand entries of 5 bytes) and counts every device's packed legs
//! active then from it, reading no device's legs; one device's question searches its entries
//! in the hour (they are by device), and an outage reads a device's legs only when the index
//! says one was going on (or ended) at its instant.
//!
//! In the file: a directory of where each hour's entries start (`u64` per hour, one more at
//! the end), then the entries, each hour's by device, encoded: a byte saying whether the leg
//! began before the hour and goes on after it, with the device's number after the entry
//! before's (under 63, else a varint follows); unless it began before, the second of the hour
//! it starts in (2 bytes); unless it goes on, the seconds from there to its end rounded up (a
//! varint). About 5 bytes where an [`Entry`] is 12 (9 when the start was kept to the µs and
//! the length in µs); an hour's entries are decoded when first read (the last hour a thread
//! read is kept). The tail says where, with the directory's checksum. Offsets are µs from the
//! hour's start, the start clamped to 0 (a leg begun before the hour) and the end to
//! `u32::MAX` (one going on after it). Kept to the second, an entry tells whether its leg is
//! active at an instant except in the second its start or end falls in ([`Coarse`]): at such
//! an instant its device reads its legs (a device or two of a snapshot's thousands of
//! entries), so answers stay exact to the µs. A leg longer than [`LONG`] or of no length is
//! not indexed: its device is listed in `always` and reads its legs. An index that would span
//! more than [`MAX_HOURS`] (legs dated decades apart) is not written; a checkpoint without
//! one (or written before it existed) reads every device's legs, as before.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::sync::Arc;

use callstate_schemas::{US_PER_HOUR, Us};

use super::mapped::Mapped;
use crate::model::varint::{Reader, put};

/// One hour, µs.
pub(super) const HOUR: Us = US_PER_HOUR;

/// Legs longer than this are not indexed (their device reads its legs).
pub(super) const LONG: Us = 24 * HOUR;

/// The most hours an index spans (about 120 years).
pub(super) const MAX_HOURS: i64 = 1 << 20;

/// Entries held in memory at once while the hours are laid out (48 MB).
const CHUNK: usize = 4 << 20;

/// The hour holding `t`.
pub(super) fn hour_of(t: Us) -> i64 {
    t.div_euclid(HOUR)
}

/// A packed leg active at some instant of an hour: its device's number, and its start and
/// end as µs from the hour's start (clamped to the hour: 0 and `u32::MAX`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Entry {
    pub device: u32,
    pub start: u32,
    pub end: u32,
}

// SAFETY: three `u32`, `repr(C)`, no padding.
unsafe impl bytemuck::Zeroable for Entry {}
unsafe impl bytemuck::Pod for Entry {}

impl Entry {
    /// The entry of leg [start, end) in hour `h`, which it overlaps.
    fn of(device: u32, h: i64, start: Us, end: Us) -> Entry {
        let base = h * HOUR;
        let clamp = |t: Us| (t - base).clamp(0, u32::MAX as i64) as u32;
        Entry {
            device,
            start: clamp(start),
            end: clamp(end),
        }
    }
}

/// Where the index is, as the checkpoint's tail records it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct Section {
    /// Byte offset of the directory; the entries follow it.
    pub at: u64,
    /// The first hour.
    pub first: i64,
    /// Hours covered.
    pub hours: u64,
    /// Entries.
    pub entries: u64,
    /// Bytes of the entries, encoded (after the directory).
    pub bytes: u64,
    /// Devices with a leg longer than [`LONG`] or of no length, ascending (not indexed: they
    /// read their legs).
    pub always: Vec<u32>,
    /// CRC-32C of the directory.
    pub crc: u32,
}

/// Collects each device's entries while a checkpoint is written (devices in number order),
/// in a side file; then lays them out by hour.
pub(super) struct Writer {
    side: BufWriter<File>,
    /// Entries per hour.
    counts: BTreeMap<i64, u64>,
    always: Vec<u32>,
    legs: Vec<(i64, Entry)>,
}

impl Writer {
    /// A writer keeping its side file in `side` (created read-write, emptied).
    pub fn new(side: File) -> Writer {
        Writer {
            side: BufWriter::with_capacity(1 << 20, side),
            counts: BTreeMap::new(),
            always: Vec::new(),
            legs: Vec::new(),
        }
    }

    /// Indexes the packed legs of device `device`, given as their (start, end).
    pub fn add(
        &mut self,
        device: u32,
        legs: impl Iterator<Item = (Us, Us)>,
    ) -> std::io::Result<()> {
        self.legs.clear();
        for (start, end) in legs {
            if end < start {
                continue; // never active, never hit
            }
            // a leg of no length is never active but is hit at its instant: not indexed,
            // as one longer than a day
            if end == start || end - start > LONG {
                self.always.push(device);
                return Ok(());
            }
            for h in hour_of(start)..=hour_of(end - 1) {
                self.legs.push((h, Entry::of(device, h, start, end)));
            }
        }
        if self.legs.is_empty() {
            return Ok(());
        }
        self.side
            .write_all(&(self.legs.len() as u32).to_le_bytes())?;
        for (h, e) in &self.legs {
            self.side.write_all(&h.to_le_bytes())?;
            self.side.write_all(bytemuck::bytes_of(e))?;
            *self.counts.entry(*h).or_default() += 1;
        }
        Ok(())
    }

    /// Writes the directory and the entries to `out` at `at` (8-byte aligned), returning
    /// where they are and the bytes written; `None` (nothing written) when the hours span
    /// more than [`MAX_HOURS`].
    pub fn finish(self, out: &mut File, at: u64) -> std::io::Result<Option<(Section, u64)>> {
        self.finish_in_chunks(out, at, CHUNK)
    }

    /// [`finish`](Self::finish), holding about `chunk_len` entries in memory at once.
    fn finish_in_chunks(
        self,
        out: &mut File,
        at: u64,
        chunk_len: usize,
    ) -> std::io::Result<Option<(Section, u64)>> {
        let (first, last) = match (self.counts.first_key_value(), self.counts.last_key_value()) {
            (Some((&a, _)), Some((&b, _))) => (a, b),
            _ => (0, -1), // no entry: an empty directory
        };
        let hours = last - first + 1;
        if hours > MAX_HOURS {
            return Ok(None);
        }
        // how many entries each hour has (to gather them a chunk of hours at a time)
        let mut counts = Vec::with_capacity(hours as usize + 1);
        let mut total = 0u64;
        for h in first..=last {
            counts.push(total);
            total += self.counts.get(&h).copied().unwrap_or(0);
        }
        counts.push(total);
        // the directory (where each hour's encoded entries start) is written last, before them
        let hours = hours as usize;
        let dir_len = 8 * (hours as u64 + 1);
        out.seek(SeekFrom::Start(at + dir_len))?;
        let mut dir: Vec<u64> = Vec::with_capacity(hours + 1);
        let mut bytes = 0u64;
        let mut w = BufWriter::with_capacity(1 << 20, &mut *out);
        // the entries, a chunk of hours at a time, each gathered from the side file (by
        // device within an hour, as the devices were added)
        let mut side = self.side.into_inner().map_err(|e| e.into_error())?;
        let mut h0 = 0usize; // the chunk's first hour, from `first`
        let mut chunk: Vec<Entry> = Vec::new();
        let mut encoded: Vec<u8> = Vec::new();
        while h0 < hours {
            let mut h1 = h0 + 1;
            while h1 < hours && (counts[h1 + 1] - counts[h0]) as usize <= chunk_len {
                h1 += 1;
            }
            let base = counts[h0];
            chunk.clear();
            chunk.resize((counts[h1] - base) as usize, Entry::default());
            let mut next: Vec<u64> = counts[h0..h1].iter().map(|d| d - base).collect();
            side.seek(SeekFrom::Start(0))?;
            let mut r = BufReader::with_capacity(1 << 20, &mut side);
            let mut count = [0u8; 4];
            let mut one = [0u8; 8 + size_of::<Entry>()];
            while r.read_exact(&mut count).is_ok() {
                for _ in 0..u32::from_le_bytes(count) {
                    r.read_exact(&mut one)?;
                    let h = i64::from_le_bytes(one[..8].try_into().expect("8 bytes"));
                    let k = (h - first) as usize;
                    if (h0..h1).contains(&k) {
                        let slot = &mut next[k - h0];
                        chunk[*slot as usize] = bytemuck::pod_read_unaligned(&one[8..]);
                        *slot += 1;
                    }
                }
            }
            for k in h0..h1 {
                dir.push(bytes);
                encoded.clear();
                let (a, b) = (counts[k] - base, counts[k + 1] - base);
                encode(&chunk[a as usize..b as usize], &mut encoded);
                w.write_all(&encoded)?;
                bytes += encoded.len() as u64;
            }
            h0 = h1;
        }
        dir.push(bytes);
        w.flush()?;
        drop(w);
        out.seek(SeekFrom::Start(at))?;
        out.write_all(bytemuck::cast_slice(&dir))?;
        let section = Section {
            at,
            first,
            hours: hours as u64,
            entries: total,
            bytes,
            always: self.always,
            crc: crc_of(&dir),
        };
        Ok(Some((section, dir_len + bytes)))
    }
}

/// Flag bits of an encoded entry: begun before the hour, going on after it; the rest is the
/// device's number after the one before (`DEVICE_MORE`: a varint follows).
const BEFORE: u8 = 1;
const AFTER: u8 = 2;
const DEVICE_MORE: u8 = 63;

/// What an entry's start and end are kept to: the second (µs), rounded outwards.
const GRANULE: u32 = 1_000_000;

/// An entry read back: its device and what its start and end are known within (the first
/// and the last µs from the hour's start each may be; both exact when the leg began before
/// the hour, 0, or goes on after it, `u32::MAX`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Coarse {
    pub device: u32,
    pub start: (u32, u32),
    pub end: (u32, u32),
}

impl Coarse {
    /// Whether the leg is active at `at` µs into the hour; `None` when `at` falls where its
    /// start or end may be (the device then reads its legs).
    fn active(&self, at: u32) -> Option<bool> {
        if at < self.start.0 || at >= self.end.1 {
            Some(false)
        } else if self.start.1 <= at && at < self.end.0 {
            Some(true)
        } else {
            None
        }
    }

    /// Whether it may have started by `at` and not ended before it.
    fn may_span(&self, at: u32) -> bool {
        self.start.0 <= at && at <= self.end.1
    }
}

/// Appends an hour's entries (by device), encoded: the start as its second in the hour (2
/// bytes), the end as the seconds from there to the end's second rounded up (a varint).
fn encode(entries: &[Entry], out: &mut Vec<u8>) {
    let mut device = 0u32;
    for e in entries {
        let step = e.device.wrapping_sub(device);
        let small = step < u32::from(DEVICE_MORE);
        let mut flag = if small { step as u8 } else { DEVICE_MORE } << 2;
        flag |= if e.start == 0 { BEFORE } else { 0 };
        flag |= if e.end == u32::MAX { AFTER } else { 0 };
        out.push(flag);
        if !small {
            put(out, u64::from(step));
        }
        // a start within the hour: under 3,600 seconds
        let second = e.start / GRANULE;
        if e.start != 0 {
            out.extend_from_slice(&(second as u16).to_le_bytes());
        }
        if e.end != u32::MAX {
            put(
                out,
                u64::from(e.end.div_ceil(GRANULE).saturating_sub(second)),
            );
        }
        device = e.device;
    }
}

/// Decodes an hour's entries into `into`; false if they are damaged (`into` holds those
/// read whole before the damage).
fn decode(bytes: &[u8], into: &mut Vec<Coarse>) -> bool {
    fn entries(r: &mut Reader<'_>, into: &mut Vec<Coarse>) -> Option<()> {
        let mut device = 0u32;
        while let Some(flag) = r.next_byte() {
            let step = match flag >> 2 {
                DEVICE_MORE => u32::try_from(r.next_varint()?).ok()?,
                s => u32::from(s),
            };
            device = device.wrapping_add(step);
            let (second, start) = if flag & BEFORE != 0 {
                (0, (0, 0))
            } else {
                let s = u16::from_le_bytes(r.next_bytes(2)?.try_into().expect("2 bytes"));
                let at = (u64::from(s) * u64::from(GRANULE)).min(u64::from(u32::MAX)) as u32;
                (u64::from(s), (at, at.saturating_add(GRANULE - 1)))
            };
            let end = if flag & AFTER != 0 {
                (u32::MAX, u32::MAX)
            } else {
                // the end's second, rounded up: the end is past the second before it
                let up = (second + r.next_varint()?) * u64::from(GRANULE);
                let last = u64::from(u32::MAX - 1);
                let lo = up.saturating_sub(u64::from(GRANULE) - 1).min(last);
                (lo as u32, up.min(last) as u32)
            };
            into.push(Coarse { device, start, end });
        }
        Some(())
    }
    into.clear();
    entries(&mut Reader { bytes, at: 0 }, into).is_some()
}

/// An hour decoded: the mapping's number and the hour, and its entries.
type Decoded = (Option<(u64, i64)>, Vec<Coarse>);

/// Hours a thread keeps decoded: the questions of one instant ask one hour many times, of
/// every piece of the checkpoint in turn (a device's packs, one per piece).
const KEPT: usize = 20;

thread_local! {
    /// The hours this thread decoded last, each with when it was last asked.
    static DECODED: RefCell<(u64, Vec<(u64, Decoded)>)> = const { RefCell::new((0, Vec::new())) };
}

fn crc_of(dir: &[u64]) -> u32 {
    crc32c::crc32c(bytemuck::cast_slice(dir))
}

/// The hour index of a mapped checkpoint.
#[derive(Debug)]
pub(super) struct Hours {
    file: Arc<Mapped>,
    first: i64,
    /// The directory's bytes in the file.
    dir: Range<usize>,
    /// The encoded entries' bytes in the file.
    entries: Range<usize>,
    always: Box<[u32]>,
    /// Devices of the checkpoint.
    devices: usize,
}

/// Per device of an index, at one instant: its packed legs active then, or `None` for a
/// device that must read its legs (one in `always`).
pub(super) type Counts = Vec<Option<u32>>;

impl Hours {
    /// The index `s` places in `file`, for a checkpoint of `devices` devices; what is wrong
    /// with it, if something is.
    pub fn open(file: Arc<Mapped>, s: &Section, devices: usize) -> Result<Hours, String> {
        let len = file.bytes().len();
        let hours = usize::try_from(s.hours).map_err(|_| "too many hours")?;
        let n = usize::try_from(s.bytes).map_err(|_| "too many entries")?;
        let at = usize::try_from(s.at).map_err(|_| "its place is out of range")?;
        let dir = at..at.saturating_add(hours.saturating_add(1).saturating_mul(8));
        let entries = dir.end..dir.end.saturating_add(n);
        if !at.is_multiple_of(8) || entries.end > len || s.hours as i64 > MAX_HOURS {
            return Err("the hour index runs past the end of the file".into());
        }
        let d: &[u64] = bytemuck::try_cast_slice(&file.bytes()[dir.clone()])
            .map_err(|_| "the hour index's directory is misaligned")?;
        if crc_of(d) != s.crc {
            return Err("the hour index's checksum does not match".into());
        }
        if d.windows(2).any(|w| w[0] > w[1]) || d.last() != Some(&s.bytes) {
            return Err("the hour index's directory is out of order".into());
        }
        if s.always.iter().any(|&k| k as usize >= devices) {
            return Err("the hour index names a device the checkpoint has not".into());
        }
        // written in device order: searched, not walked, per device asked
        if s.always.windows(2).any(|w| w[0] >= w[1]) {
            return Err("the hour index's unindexed devices are out of order".into());
        }
        Ok(Hours {
            file,
            first: s.first,
            dir,
            entries,
            always: s.always.clone().into(),
            devices,
        })
    }

    /// Runs `f` on the entries of hour `h` (by device), decoded unless this thread kept them
    /// decoded (the [`KEPT`] hours it asked last). `f` must not ask for an hour itself.
    fn with_hour<R>(&self, h: i64, f: impl FnOnce(&[Coarse]) -> R) -> R {
        DECODED.with(|cache| {
            let (clock, kept) = &mut *cache.borrow_mut();
            *clock += 1;
            let key = (self.file.number, h);
            let k = match kept.iter().position(|(_, d)| d.0 == Some(key)) {
                Some(k) => k,
                None => {
                    let k = if kept.len() < KEPT {
                        kept.push((0, (None, Vec::new())));
                        kept.len() - 1
                    } else {
                        // the one asked longest ago
                        (0..kept.len()).min_by_key(|&k| kept[k].0).unwrap_or(0)
                    };
                    self.decode_hour(h, &mut kept[k].1.1);
                    kept[k].1.0 = Some(key);
                    k
                }
            };
            kept[k].0 = *clock;
            f(&kept[k].1.1)
        })
    }

    /// Decodes the entries of hour `h` into `into` (none for an hour it does not hold; a
    /// damaged hour is logged and reads as none).
    fn decode_hour(&self, h: i64, into: &mut Vec<Coarse>) {
        let bytes = self.file.bytes();
        let dir: &[u64] = bytemuck::cast_slice(&bytes[self.dir.clone()]);
        let j = h - self.first;
        let range = (j >= 0 && (j as usize) + 1 < dir.len())
            .then(|| (dir[j as usize] as usize, dir[j as usize + 1] as usize));
        let encoded = range
            .and_then(|(a, b)| bytes.get(self.entries.clone())?.get(a..b))
            .unwrap_or_default();
        if !decode(encoded, into) {
            tracing::error!(hour = h, "the checkpoint's hour index is damaged there");
        }
    }

    /// Runs `f` on the entries of device `device` in hour `h`.
    fn of_device<R>(&self, h: i64, device: u32, f: impl FnOnce(&[Coarse]) -> R) -> R {
        self.with_hour(h, |all| {
            let a = all.partition_point(|e| e.device < device);
            let b = a + all[a..].partition_point(|e| e.device == device);
            f(&all[a..b])
        })
    }

    /// Whether `device` must read its legs (a leg the index does not hold).
    fn unindexed(&self, device: u32) -> bool {
        self.always.binary_search(&device).is_ok()
    }

    /// The packed legs of `device` active at `t`, if the index knows (not when `t` falls in
    /// the second a leg of it starts or ends).
    pub fn active(&self, device: u32, t: Us) -> Option<u32> {
        if self.unindexed(device) {
            return None;
        }
        let at = (t - hour_of(t) * HOUR) as u32;
        self.of_device(hour_of(t), device, |es| {
            es.iter()
                .try_fold(0u32, |n, e| Some(n + u32::from(e.active(at)?)))
        })
    }

    /// Whether an outage of `device` at `t` may hit a packed leg (one started by `t` and
    /// not ended before it): false only when the index says none does.
    pub fn may_hit(&self, device: u32, t: Us) -> bool {
        if self.unindexed(device) {
            return true;
        }
        let h = hour_of(t);
        let at = (t - h * HOUR) as u32;
        // active at t, or ending at t within the hour
        let within = |e: &Coarse| e.may_span(at);
        // ending at t, where t starts the hour: the last hour's legs ending at its end
        let before = |e: &Coarse| e.end.0 as Us <= HOUR && HOUR <= e.end.1 as Us;
        self.of_device(h, device, |es| es.iter().any(within))
            || (at == 0 && self.of_device(h - 1, device, |es| es.iter().any(before)))
    }

    /// Every device's packed legs active at `t` (`None` for a device that must read its
    /// legs: one in `always`, or with a leg starting or ending in the second of `t`).
    pub fn counts_at(&self, t: Us) -> Counts {
        let mut counts = vec![Some(0u32); self.devices];
        let at = (t - hour_of(t) * HOUR) as u32;
        self.with_hour(hour_of(t), |es| {
            for e in es {
                // an entry naming a device the checkpoint has not is ignored
                let Some(c) = counts.get_mut(e.device as usize) else {
                    continue;
                };
                match e.active(at) {
                    Some(false) => {}
                    Some(true) => *c = c.map(|n| n + 1),
                    None => *c = None,
                }
            }
        });
        for &k in &self.always {
            counts[k as usize] = None;
        }
        counts
    }
}

/// What a question at one instant reads of the hour indexes it meets (one, or two while a new
/// checkpoint is being taken up), each read once.
#[derive(Default)]
pub(super) struct Listed {
    t: Us,
    seen: Vec<(Arc<Hours>, Counts)>,
}

impl Listed {
    /// For questions at `t`.
    pub fn at(t: Us) -> Listed {
        Listed {
            t,
            seen: Vec::new(),
        }
    }

    /// The packed legs of device `device` of `hours` active at the instant, if the index
    /// knows (else the device reads its legs).
    pub fn count(&mut self, hours: &Arc<Hours>, device: u32) -> Option<u32> {
        let counts = match self.seen.iter().position(|(h, _)| Arc::ptr_eq(h, hours)) {
            Some(k) => &self.seen[k].1,
            None => {
                self.seen.push((hours.clone(), hours.counts_at(self.t)));
                &self.seen.last().expect("pushed").1
            }
        };
        counts.get(device as usize).copied().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A leg: start within three days of hour 0 (some before it, some on an hour's start),
    /// length up to four hours, now and then none, an hour, over a day, or ending before it
    /// starts.
    fn leg() -> impl Strategy<Value = (Us, Us)> {
        (
            prop_oneof![
                -HOUR..72 * HOUR,
                (-1..72i64).prop_map(|h| h * HOUR),
                (-3600..72 * 3600i64).prop_map(|s| s * GRANULE as Us),
            ],
            prop_oneof![
                8 => 0..4 * HOUR,
                1 => Just(0),
                1 => Just(HOUR),
                1 => LONG + 1..3 * LONG,
                1 => -HOUR..0,
            ],
        )
            .prop_map(|(s, d)| (s, s + d))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Every device's count at `t` is that of its legs active at `t`, or none (read the
        /// legs) for a device with a leg longer than a day or of no length; one device's
        /// count is the same, and it may be hit at `t` when one of its legs started by `t`
        /// and did not end before it (always, for a device not indexed).
        #[test]
        fn the_index_counts_every_device_s_legs_active_at_any_instant(
            devices in proptest::collection::vec(proptest::collection::vec(leg(), 0..12), 1..9),
            chunk in 1..40usize,
            lead in 0..3u64,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let side = File::options().read(true).write(true).create(true).truncate(true)
                .open(dir.path().join("side")).unwrap();
            let mut out = File::options().read(true).write(true).create(true).truncate(true)
                .open(dir.path().join("out")).unwrap();
            let mut w = Writer::new(side);
            for (k, legs) in devices.iter().enumerate() {
                let mut legs = legs.clone();
                legs.sort();
                w.add(k as u32, legs.into_iter()).unwrap();
            }
            let at = 8 * lead; // the index need not start the file
            out.write_all(&vec![7u8; at as usize]).unwrap();
            let (section, len) = w.finish_in_chunks(&mut out, at, chunk).unwrap().unwrap();
            out.flush().unwrap();
            prop_assert_eq!(out.metadata().unwrap().len(), at + len);
            let file = Arc::new(Mapped::open(&dir.path().join("out")).unwrap());
            let hours = Hours::open(file, &section, devices.len()).unwrap();
            // every leg's start and end ±1 and a second and one µs away, and the hours' edges
            let g = GRANULE as Us;
            let mut instants: Vec<Us> = devices
                .iter()
                .flatten()
                .flat_map(|&(s, e)| [s - 1, s, s + 1, e - 1, e, e + 1, s - g, s + g, e - g, e + g])
                .collect();
            instants.extend((-3..80).flat_map(|h| [h * HOUR - 1, h * HOUR, h * HOUR + HOUR / 2]));
            for t in instants {
                let counts = hours.counts_at(t);
                for (k, legs) in devices.iter().enumerate() {
                    let unindexed = legs.iter().any(|&(s, e)| e == s || e - s > LONG);
                    // the index is unsure within a second of a start or an end
                    let near = legs.iter().any(|&(s, e)| (s - t).abs() < g || (e - t).abs() < g);
                    let active = legs.iter().filter(|&&(s, e)| s <= t && t < e).count() as u32;
                    let got = counts[k];
                    if unindexed || !near {
                        prop_assert_eq!(got, (!unindexed).then_some(active), "device {} at {}", k, t);
                    } else {
                        prop_assert!(got.is_none() || got == Some(active), "device {} at {}", k, t);
                    }
                    prop_assert_eq!(hours.active(k as u32, t), got, "device {} at {}", k, t);
                    let hit = legs.iter().any(|&(s, e)| s <= t && t <= e);
                    let may = hours.may_hit(k as u32, t);
                    prop_assert!(may || !(unindexed || hit), "device {} hit at {}", k, t);
                    prop_assert!(!may || unindexed || hit || near, "device {} not hit at {}", k, t);
                }
            }
        }
    }

    #[test]
    fn an_instant_in_the_second_a_leg_starts_or_ends_reads_the_legs() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str| {
            File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(dir.path().join(name))
                .unwrap()
        };
        let mut out = file("out");
        let mut w = Writer::new(file("side"));
        let s = 10 * HOUR + 10_500_000;
        w.add(0, [(s, s + 60_000_000)].into_iter()).unwrap();
        w.add(1, [(s + 2_000_000, s + 3_000_000)].into_iter())
            .unwrap();
        let (section, _) = w.finish(&mut out, 0).unwrap().unwrap();
        let mapped = Arc::new(Mapped::open(&dir.path().join("out")).unwrap());
        let hours = Hours::open(mapped, &section, 2).unwrap();
        for (t, want) in [
            (s - 600_000, [Some(0), Some(0)]),
            (s - 400_000, [None, Some(0)]), // the start's second
            (s + 1_000_000, [Some(1), Some(0)]),
            (s + 2_400_000, [Some(1), None]),
            (s + 59_600_000, [None, Some(0)]), // the end's second
            (s + 60_600_000, [Some(0), Some(0)]),
        ] {
            assert_eq!(hours.counts_at(t), want, "at {t}");
        }
    }

    #[test]
    fn an_hour_s_entries_read_back_as_written() {
        let e = |device, start, end| Entry { device, start, end };
        let entries = [
            e(0, 0, u32::MAX),
            e(0, 5, 7),
            e(62, 1, 1),
            e(125, 0, 9),
            e(188, 3, 3),
            e(1_000_000, 3_599_999_999, u32::MAX),
            e(u32::MAX, u32::MAX - 1, u32::MAX - 1),
        ];
        let mut bytes = Vec::new();
        encode(&entries, &mut bytes);
        assert!(bytes.len() < entries.len() * 6);
        let mut back = Vec::new();
        assert!(decode(&bytes, &mut back));
        // each start and end within what is read back, known to the second
        let holds = |(lo, hi): (u32, u32), t: u32| lo <= t && t <= hi && hi - lo < GRANULE;
        let read_as = |c: &Coarse, e: &Entry| {
            c.device == e.device && holds(c.start, e.start) && holds(c.end, e.end)
        };
        assert_eq!(back.len(), entries.len());
        for (c, e) in back.iter().zip(&entries) {
            assert!(read_as(c, e), "{e:?} read as {c:?}");
        }
        let whole = back.clone();
        // cut anywhere: what is read whole comes back, in order
        for cut in 0..bytes.len() {
            let complete = decode(&bytes[..cut], &mut back);
            assert!(back.len() < entries.len() || complete);
            assert_eq!(back[..], whole[..back.len()], "cut at {cut}");
        }
    }

    #[test]
    fn a_damaged_index_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let side = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("side"))
            .unwrap();
        let mut out = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let mut w = Writer::new(side);
        w.add(0, [(0, HOUR * 3)].into_iter()).unwrap();
        let (section, _) = w.finish(&mut out, 0).unwrap().unwrap();
        let open = |s: &Section| Hours::open(Arc::new(Mapped::open(&path).unwrap()), s, 1);
        assert!(open(&section).is_ok());
        let bad_crc = Section {
            crc: section.crc ^ 1,
            ..section.clone()
        };
        assert!(open(&bad_crc).unwrap_err().contains("checksum"));
        let past_end = Section {
            bytes: section.bytes + 100,
            ..section.clone()
        };
        assert!(open(&past_end).unwrap_err().contains("past the end"));
        let stranger = Section {
            always: vec![5],
            ..section.clone()
        };
        assert!(open(&stranger).unwrap_err().contains("device"));
        let unordered = Section {
            always: vec![0, 0],
            ..section.clone()
        };
        assert!(open(&unordered).unwrap_err().contains("out of order"));
    }
}
