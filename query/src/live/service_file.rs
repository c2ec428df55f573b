//! Every device's service events, intervals and hourly rollup as encoded, beside the log
//! (`<log>/derived/service.bin` and the older pieces it builds on: a chain,
//! [`service_chain`](super::service_chain)), so that the live state reads them in place from
//! the mapped files (the kernel's page cache) instead of holding them on its heap. This is
//! one file of the chain: its format.
//!
//! A start still derives every device's events and intervals from the log; a device whose
//! events and intervals come out byte for byte as the file holds them (the same names in the
//! same order, the same bytes) then reads the file's, and its heap copies are freed. The file
//! is thus never trusted: an old, foreign or partly stale one only holds fewer devices that
//! match. A rollup is a function of the intervals it was built from and of the maintenance
//! windows it records (a question whose windows differ builds it again): a device that
//! reads its intervals from the file reads the rollup written with them, its bytes checked
//! against their CRC-32C, instead of building it at the first question. After a start that
//! found the file missing or stale, and with every checkpoint of the legs, it is written
//! again from a published version (every device's rollup built first, with that version's
//! windows), whose devices the applier then moves to it (those not changed since).
//!
//! The file: a header ([`Header`]); per device its encoded events, intervals and rollup runs,
//! back to back; then the table: the older pieces the file builds on when it is the head
//! (each file's name, id and checksum), every name once (length-prefixed strings), every digest of
//! windows once (8 bytes each), then per device its name's number, and for its events and
//! for its intervals the numbers of the names their bytes number and the bytes' length (they
//! follow one another), then whether it has a rollup and, if it has, the rollup's names (a
//! mask of places among its intervals' names) and sources (places, with the latest end each
//! reported), its windows' digest's number, the units covered, runs, CRC-32C and bytes'
//! length; varints but for the CRC. The header and the table are checksummed; the events and
//! intervals are compared with the derived ones.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use callstate_schemas::Us;

use crate::error::{QueryError, Result};
use crate::model::Name;
use crate::model::rollup::{Exclusions, Rollup, RollupHead};
use crate::model::shared_bytes::SharedBytes;
use crate::model::unit_runs::Extent;
use crate::model::varint::{Reader, put, unzigzag, zigzag};

use super::derived_files::io;
use super::device::Device;
use super::mapped::{InOrder, Mapped};
use super::view::View;

/// The file's place under the log's directory.
pub const FILE: &str = "derived/service.bin";

/// `CSSERV04` was one file: no id, no list of older pieces.
const MAGIC: [u8; 8] = *b"CSSERV05";

/// The header's bytes.
const HEADER: usize = 8 * 8;

/// The file's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    /// This file's id (a new one at every write).
    piece: u64,
    /// The last `ingest_seq` of the version written.
    version: u64,
    /// Its latest ingest time.
    last_ingest_time: Us,
    devices: u64,
    table_at: u64,
    table_len: u64,
}

impl Header {
    /// The header's bytes with `checksum` (CRC-32C of them with a zero checksum and the
    /// table).
    fn bytes(&self, checksum: u64) -> [u8; HEADER] {
        let mut b = [0u8; HEADER];
        b[..8].copy_from_slice(&MAGIC);
        let fields = [
            self.piece,
            self.version,
            self.last_ingest_time as u64,
            self.devices,
            self.table_at,
            self.table_len,
            checksum,
        ];
        for (k, f) in fields.iter().enumerate() {
            b[8 + 8 * k..16 + 8 * k].copy_from_slice(&f.to_le_bytes());
        }
        b
    }

    fn checksum(&self, table: &[u8]) -> u64 {
        u64::from(crc32c::crc32c_append(crc32c::crc32c(&self.bytes(0)), table))
    }

    fn read(b: &[u8]) -> Option<(Header, u64)> {
        let b = b.get(..HEADER)?;
        if b[..8] != MAGIC {
            return None;
        }
        let f = |k: usize| u64::from_le_bytes(b[8 + 8 * k..16 + 8 * k].try_into().expect("8"));
        let h = Header {
            piece: f(0),
            version: f(1),
            last_ingest_time: f(2) as Us,
            devices: f(3),
            table_at: f(4),
            table_len: f(5),
        };
        Some((h, f(6)))
    }
}

/// The id of the piece whose file `bytes` is (its header's), if it is one.
pub(super) fn piece_of(bytes: &[u8]) -> Option<u64> {
    Header::read(bytes).map(|(h, _)| h.piece)
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// The version written.
    pub version: u64,
    /// Devices written (into the new head).
    pub devices: u64,
    /// Devices with a rollup written.
    pub rollups: u64,
    /// The bytes on disk: the head's and those of the pieces it builds on.
    pub bytes: u64,
    /// The bytes this write wrote (the head).
    pub written_bytes: u64,
    /// The files: the head and the pieces it builds on.
    pub pieces: usize,
}

/// An older piece as the head lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its file under the derived directory.
    pub file: String,
    /// Its header's id: the file is the piece that was written.
    pub piece: u64,
    /// Its checksum (of its header and table).
    pub checksum: u64,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Values of a file being written (names, windows' digests), each once, the most used first
/// (so that the clusters, pools, nodes and causes every device names take a byte each, and
/// the digest most devices share), numbered in that order.
struct Numbered<T> {
    numbers: HashMap<T, u64>,
    list: Vec<T>,
}

impl<T: std::hash::Hash + Eq + Ord + Copy> Numbered<T> {
    /// Each of `values` once, by how often it came (then in order).
    fn by_use(values: impl Iterator<Item = T>) -> Numbered<T> {
        let mut uses: HashMap<T, u64> = HashMap::new();
        for v in values {
            *uses.entry(v).or_default() += 1;
        }
        let mut list: Vec<(T, u64)> = uses.into_iter().collect();
        list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let list: Vec<T> = list.into_iter().map(|(v, _)| v).collect();
        let numbers = list
            .iter()
            .enumerate()
            .map(|(k, &v)| (v, k as u64))
            .collect();
        Numbered { numbers, list }
    }

    fn number(&self, v: T) -> u64 {
        self.numbers[&v]
    }
}

/// The names of a file: those of the devices it holds and of their events and intervals.
type Names = Numbered<Name>;

fn names_of<'a>(devices: impl Iterator<Item = (&'a Name, &'a Device)>) -> Names {
    Numbered::by_use(devices.flat_map(|(name, d)| {
        let parts = [d.events.encoded().0, d.intervals.encoded().0];
        std::iter::once(name)
            .chain(parts.into_iter().flatten())
            .copied()
    }))
}

/// A device's part in the table: how many names, their numbers, the bytes' length.
fn put_part(table: &mut Vec<u8>, all: &Names, names: &[Name], len: usize) {
    put(table, names.len() as u64);
    for &n in names {
        put(table, all.number(n));
    }
    put(table, len as u64);
}

/// The digests of the windows the rollups were built with (most devices share one: that of
/// the windows on their cluster, or none).
type Digests = Numbered<u64>;

/// A rollup's names and sources as places among its device's intervals' names (where every
/// one of them is: the intervals it was built from mention them): the names as a mask, the
/// sources in order. `None` if one is not there, or past the mask's 64 places.
fn places(intervals: &[Name], r: &Rollup) -> Option<(u64, Vec<u64>)> {
    let place = |n: &Name| intervals.iter().position(|m| m == n).filter(|&k| k < 64);
    let mut mask = 0u64;
    for n in r.names() {
        mask |= 1 << place(n)?;
    }
    let sources = r
        .sources()
        .iter()
        .map(|(s, _)| place(s).map(|k| k as u64))
        .collect::<Option<Vec<u64>>>()?;
    Some((mask, sources))
}

/// A device's rollup in the table (after its events' and intervals' parts): 0 for none, or 1,
/// then its names (a mask of places among its intervals' names), its sources (places) and
/// their ends, the number of the windows' digest, the units it covers, its runs, the CRC-32C
/// and length of its bytes.
fn put_rollup(table: &mut Vec<u8>, digests: &Digests, r: Option<(&Rollup, (u64, Vec<u64>))>) {
    let Some((r, (mask, sources))) = r else {
        put(table, 0);
        return;
    };
    put(table, 1);
    put(table, mask);
    put(table, sources.len() as u64);
    for (place, &(_, end)) in sources.iter().zip(r.sources()) {
        put(table, *place);
        match end {
            None => put(table, 0),
            Some(e) => {
                put(table, 1);
                put(table, zigzag(e));
            }
        }
    }
    put(table, digests.number(r.windows()));
    let Extent { first, end, runs } = r.extent();
    put(table, zigzag(first));
    put(table, end.wrapping_sub(first) as u64);
    put(table, u64::from(runs));
    table.extend_from_slice(&crc32c::crc32c(r.bytes()).to_le_bytes());
    put(table, r.bytes().len() as u64);
}

/// Every device's rollup of `view` (in its order) as a write writes it: built first where no
/// question built it with `view`'s windows (and kept, as a question's would be).
pub(super) fn rollups(view: &View) -> Vec<Option<Arc<Rollup>>> {
    let ex = Exclusions::new(&view.windows);
    view.devices
        .values()
        .map(|d| view.history(d).and_then(|h| h.built_rollup(&ex)))
        .collect()
}

/// The rollup of `d` a write writes (`rollup` if its names and sources are among its
/// intervals' names, in the mask's 64 places), with those places.
pub(super) fn placed<'a>(
    d: &Device,
    rollup: Option<&'a Rollup>,
) -> Option<(&'a Rollup, (u64, Vec<u64>))> {
    rollup.and_then(|r| Some((r, places(d.intervals.encoded().0, r)?)))
}

/// What a head is: its id and the older pieces it builds on (oldest first).
pub(super) struct Head<'a> {
    pub piece: u64,
    pub pieces: &'a [Listed],
}

/// Writes to `path` the service events, intervals and rollups (`rollups`, in `view`'s order)
/// of `view`'s devices that `write` says (in its order) as the head `head`.
pub(super) fn write_to(
    path: &Path,
    view: &View,
    rollups: &[Option<Arc<Rollup>>],
    write: &[bool],
    head: Head<'_>,
) -> Result<Written> {
    let file = File::create(path).map_err(io("creating", path))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let err = io("writing", path);
    w.write_all(&[0u8; HEADER]).map_err(&err)?;
    let mut at = HEADER as u64;
    let written = || {
        view.devices
            .iter()
            .zip(rollups)
            .zip(write)
            .filter(|(_, w)| **w)
            .map(|(d, _)| d)
    };
    let (mut table, names) = (Vec::new(), names_of(written().map(|((n, d), _)| (n, &**d))));
    let digests = Digests::by_use(written().filter_map(|(_, r)| r.as_ref().map(|r| r.windows())));
    let (mut devices, mut written_rollups) = (0, 0);
    for ((name, d), rollup) in written() {
        put(&mut table, names.number(*name));
        for (part_names, bytes) in [d.events.encoded(), d.intervals.encoded()] {
            w.write_all(bytes).map_err(&err)?;
            put_part(&mut table, &names, part_names, bytes.len());
            at += bytes.len() as u64;
        }
        let rollup = placed(d, rollup.as_deref());
        let runs = rollup.as_ref().map_or(&[][..], |(r, _)| r.bytes());
        w.write_all(runs).map_err(&err)?;
        at += runs.len() as u64;
        written_rollups += u64::from(rollup.is_some());
        devices += 1;
        put_rollup(&mut table, &digests, rollup);
    }
    // the older pieces, the names, the digests, then the devices' parts
    let mut top = Vec::new();
    put(&mut top, head.pieces.len() as u64);
    for p in head.pieces {
        put_str(&mut top, &p.file);
        top.extend_from_slice(&p.piece.to_le_bytes());
        top.extend_from_slice(&p.checksum.to_le_bytes());
    }
    put(&mut top, names.list.len() as u64);
    for n in &names.list {
        put_str(&mut top, n.as_str());
    }
    put(&mut top, digests.list.len() as u64);
    for d in &digests.list {
        top.extend_from_slice(&d.to_le_bytes());
    }
    let table = [top, table].concat();
    w.write_all(&table).map_err(&err)?;
    let header = Header {
        piece: head.piece,
        version: view.version,
        last_ingest_time: view.last_ingest_time,
        devices,
        table_at: at,
        table_len: table.len() as u64,
    };
    let checksum = header.checksum(&table);
    w.seek(SeekFrom::Start(0)).map_err(&err)?;
    w.write_all(&header.bytes(checksum)).map_err(&err)?;
    let file = w.into_inner().map_err(|e| err(e.into_error()))?;
    file.sync_all().map_err(&err)?;
    let bytes = at + header.table_len;
    Ok(Written {
        version: view.version,
        devices,
        rollups: written_rollups,
        bytes,
        written_bytes: bytes,
        pieces: 1,
    })
}

/// A file of service events and intervals, mapped.
#[derive(Debug)]
pub struct ServiceFile {
    file: Arc<Mapped>,
    /// Where it was mapped from.
    pub path: PathBuf,
    /// Its id (what a head lists it by, with its checksum).
    pub piece: u64,
    /// The checksum of its header and table.
    pub checksum: u64,
    /// The older pieces it builds on, oldest first (those of a head).
    pub pieces: Vec<Listed>,
    /// The version it was written from.
    pub version: u64,
    /// That version's latest ingest time.
    pub last_ingest_time: Us,
    /// Devices it holds.
    pub devices: u64,
    /// Where the devices' entries end (and the table begins).
    data_end: usize,
    /// The table after the list of pieces.
    table: Range<usize>,
}

/// One device's part of the file: the names its bytes number and where they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    /// The names, in order.
    pub names: Vec<&'a str>,
    /// The bytes' place in the file.
    pub range: Range<usize>,
}

impl Part<'_> {
    /// Whether `names` are its names, in order.
    pub fn names_are(&self, names: &[Name]) -> bool {
        names
            .iter()
            .map(|n| n.as_str())
            .eq(self.names.iter().copied())
    }
}

/// A device's rollup in the file: all but its runs' bytes, and where they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupPart<'a> {
    /// The clusters, pools, nodes and homes its intervals mention, sorted.
    pub names: Vec<&'a str>,
    /// Its sources, with the latest end of the intervals each reported.
    pub sources: Vec<(&'a str, Option<Us>)>,
    /// The digest of the maintenance windows it was built with.
    pub windows: u64,
    /// Where its runs lie.
    pub extent: Extent,
    /// The CRC-32C of its runs' bytes.
    pub crc: u32,
    /// Their place in the file.
    pub range: Range<usize>,
}

/// A device's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The device.
    pub device: &'a str,
    /// Its service events.
    pub events: Part<'a>,
    /// Its intervals.
    pub intervals: Part<'a>,
    /// Its rollup, if it had one.
    pub rollup: Option<RollupPart<'a>>,
}

impl ServiceFile {
    /// Maps the head of the chain under `log_dir`: `None` when there is none, `Err` when it
    /// is not one (bad magic, a table out of the file or failing its checksum).
    pub fn open(log_dir: &Path) -> Result<Option<ServiceFile>> {
        let path = log_dir.join(FILE);
        if !path.exists() {
            return Ok(None);
        }
        ServiceFile::open_at(&path).map(Some)
    }

    /// Maps the file at `path` (a head, or a piece of a chain).
    pub fn open_at(path: &Path) -> Result<ServiceFile> {
        let file = Mapped::open_shared(path).map_err(io("mapping", path))?;
        let damaged = |what: &str| {
            QueryError::Data(format!(
                "{}: {what}; its devices are derived again",
                path.display()
            ))
        };
        let bytes = file.bytes();
        let (h, checksum) = Header::read(bytes).ok_or_else(|| damaged("not a service file"))?;
        let table = usize::try_from(h.table_at)
            .ok()
            .zip(usize::try_from(h.table_len).ok())
            .and_then(|(at, len)| Some(at..at.checked_add(len)?))
            .filter(|t| t.start >= HEADER && t.end <= bytes.len())
            .ok_or_else(|| damaged("its table is out of the file"))?;
        if h.checksum(&bytes[table.clone()]) != checksum {
            return Err(damaged("its checksum does not match"));
        }
        let mut r = Reader {
            bytes: &bytes[table.clone()],
            at: 0,
        };
        let pieces = read_list(&mut r, |r| {
            Some(Listed {
                file: read_str(r)?.to_string(),
                piece: read_u64(r)?,
                checksum: read_u64(r)?,
            })
        })
        .ok_or_else(|| damaged("its list of pieces is damaged"))?;
        let (data_end, table) = (table.start, table.start + r.at..table.end);
        Ok(ServiceFile {
            path: path.to_path_buf(),
            piece: h.piece,
            checksum,
            pieces,
            version: h.version,
            last_ingest_time: h.last_ingest_time,
            devices: h.devices,
            data_end,
            table,
            file,
        })
    }

    /// The bytes of its devices' entries (all but the header and the table).
    pub fn data_bytes(&self) -> u64 {
        self.data_end.saturating_sub(HEADER) as u64
    }

    /// The file's size.
    pub fn file_bytes(&self) -> u64 {
        self.file.bytes().len() as u64
    }

    /// The file read in order (with the kernel's read-ahead) while the guard lives, as a
    /// start compares every device with it: at random, page by page, a year's file took 3 s
    /// more to read from a cold page cache.
    pub fn reading_in_order(&self) -> InOrder {
        InOrder::new(self.file.clone())
    }

    /// `range` of the file, as bytes read in place.
    pub fn shared(&self, range: Range<usize>) -> SharedBytes {
        SharedBytes::shared(self.file.clone(), range)
    }

    /// The rollup `part` describes, its runs read in place; `None` when its bytes fail
    /// their CRC-32C.
    pub fn rollup(&self, part: &RollupPart<'_>) -> Option<Rollup> {
        let bytes = self.file.bytes().get(part.range.clone())?;
        if crc32c::crc32c(bytes) != part.crc {
            return None;
        }
        let head = RollupHead {
            extent: part.extent,
            sources: part
                .sources
                .iter()
                .map(|&(s, end)| (Name::new(s), end))
                .collect(),
            names: {
                // sorted, as a rollup holds them (the order its windows' digest folds them in)
                let mut names: Vec<Name> = part.names.iter().map(|&n| Name::new(n)).collect();
                names.sort();
                names
            },
            windows: part.windows,
        };
        Some(Rollup::from_parts(head, self.shared(part.range.clone())))
    }

    /// Every device's entry, in the file's order; a damaged entry (or names table) ends them
    /// with an error.
    pub fn entries(&self) -> impl Iterator<Item = Result<Entry<'_>>> + '_ {
        let bytes = self.file.bytes();
        let mut r = Reader {
            bytes: &bytes[self.table.clone()],
            at: 0,
        };
        let names = read_names(&mut r);
        let digests = names.as_ref().and_then(|_| read_list(&mut r, read_u64));
        let heads = names.zip(digests);
        let mut at = HEADER;
        let end = self.data_end;
        let mut left = if heads.is_some() { self.devices } else { 1 };
        std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            let entry = heads
                .as_ref()
                .and_then(|(names, digests)| read_entry(&mut r, names, digests, &mut at, end));
            if entry.is_none() {
                left = 0;
            }
            Some(entry.ok_or_else(|| {
                QueryError::Data(format!(
                    "{}: a device's entry is damaged",
                    self.path.display()
                ))
            }))
        })
    }
}

fn read_str<'a>(r: &mut Reader<'a>) -> Option<&'a str> {
    let n = usize::try_from(r.next_varint()?).ok()?;
    std::str::from_utf8(r.next_bytes(n)?).ok()
}

/// A count, then as many items read by `one`; `None` for a count past the table (every item
/// takes a byte at least: damage) or an item that does not read.
fn read_list<'a, T>(
    r: &mut Reader<'a>,
    mut one: impl FnMut(&mut Reader<'a>) -> Option<T>,
) -> Option<Vec<T>> {
    let n = r.next_varint()?;
    if n > (r.bytes.len() - r.at) as u64 {
        return None;
    }
    (0..n).map(|_| one(r)).collect()
}

/// The names table.
fn read_names<'a>(r: &mut Reader<'a>) -> Option<Vec<&'a str>> {
    read_list(r, read_str)
}

fn read_name<'a>(r: &mut Reader<'_>, names: &[&'a str]) -> Option<&'a str> {
    names.get(usize::try_from(r.next_varint()?).ok()?).copied()
}

/// A part whose bytes start at `at` (moved past them), within the data ending at `end`.
fn read_part<'a>(
    r: &mut Reader<'_>,
    names: &[&'a str],
    at: &mut usize,
    end: usize,
) -> Option<Part<'a>> {
    let names = read_list(r, |r| read_name(r, names))?;
    let range = read_range(r, at, end)?;
    Some(Part { names, range })
}

/// A length of bytes starting at `at` (moved past them), within the data ending at `end`.
fn read_range(r: &mut Reader<'_>, at: &mut usize, end: usize) -> Option<Range<usize>> {
    let len = usize::try_from(r.next_varint()?).ok()?;
    let range = *at..at.checked_add(len).filter(|&e| e <= end)?;
    *at = range.end;
    Some(range)
}

fn read_u64(r: &mut Reader<'_>) -> Option<u64> {
    Some(u64::from_le_bytes(r.next_bytes(8)?.try_into().ok()?))
}

/// A rollup's part (as [`put_rollup`] wrote it), its names among `names` (its device's
/// intervals'), its digest among `digests`, its bytes at `at` (moved past them).
fn read_rollup<'a>(
    r: &mut Reader<'_>,
    names: &[&'a str],
    digests: &[u64],
    at: &mut usize,
    end: usize,
) -> Option<Option<RollupPart<'a>>> {
    match r.next_varint()? {
        0 => return Some(None),
        1 => {}
        _ => return None,
    }
    let mask = r.next_varint()?;
    if names.len() < 64 && mask >> names.len() != 0 {
        return None;
    }
    let rollup_names = (0..names.len().min(64))
        .filter(|k| mask & (1 << k) != 0)
        .map(|k| names[k])
        .collect();
    let sources = read_list(r, |r| {
        let s = read_name(r, names)?;
        let end = match r.next_varint()? {
            0 => None,
            1 => Some(unzigzag(r.next_varint()?)),
            _ => return None,
        };
        Some((s, end))
    })?;
    let windows = *digests.get(usize::try_from(r.next_varint()?).ok()?)?;
    let first = unzigzag(r.next_varint()?);
    let extent = Extent {
        first,
        end: first.checked_add(i64::try_from(r.next_varint()?).ok()?)?,
        runs: u32::try_from(r.next_varint()?).ok()?,
    };
    let crc = u32::from_le_bytes(r.next_bytes(4)?.try_into().ok()?);
    let range = read_range(r, at, end)?;
    Some(Some(RollupPart {
        names: rollup_names,
        sources,
        windows,
        extent,
        crc,
        range,
    }))
}

fn read_entry<'a>(
    r: &mut Reader<'_>,
    names: &[&'a str],
    digests: &[u64],
    at: &mut usize,
    end: usize,
) -> Option<Entry<'a>> {
    let device = read_name(r, names)?;
    let events = read_part(r, names, at, end)?;
    let intervals = read_part(r, names, at, end)?;
    let rollup = read_rollup(r, &intervals.names, digests, at, end)?;
    Some(Entry {
        device,
        events,
        intervals,
        rollup,
    })
}
