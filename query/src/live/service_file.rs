//! Every device's service events and intervals as encoded, beside the log
//! (`<log>/derived/service.bin`), so that the live state reads them in place from the mapped
//! file (the kernel's page cache) instead of holding them on its heap.
//!
//! A start still derives every device from the log; a device whose events and intervals come
//! out byte for byte as the file holds them (the same names in the same order, the same bytes)
//! then reads the file's, and its heap copies are freed. The file is thus never trusted: an
//! old, foreign or partly stale one only holds fewer devices that match. After a start that
//! found it missing or stale, and with every checkpoint of the legs, it is written again from
//! a published version, whose devices the applier then moves to it (those not changed since).
//!
//! The file: a header ([`Header`]); the devices' encoded events and intervals back to back;
//! then the table: every name once (length-prefixed strings), then per device its name's
//! number, and for its events and for its intervals the numbers of the names their bytes
//! number and the bytes' length (they follow one another), all varints. The header and the
//! table are checksummed; the bytes are compared with the derived ones.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use callstate_schemas::Us;

use crate::error::{QueryError, Result};
use crate::model::Name;
use crate::model::shared_bytes::SharedBytes;
use crate::model::varint::{Reader, put};

use super::derived_files::{self, io};
use super::mapped::Mapped;
use super::view::View;

/// The file's place under the log's directory.
pub const FILE: &str = "derived/service.bin";

const MAGIC: [u8; 8] = *b"CSSERV02";

/// The header's bytes.
const HEADER: usize = 7 * 8;

/// The file's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
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
            version: f(0),
            last_ingest_time: f(1) as Us,
            devices: f(2),
            table_at: f(3),
            table_len: f(4),
        };
        Some((h, f(5)))
    }
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// The version written.
    pub version: u64,
    /// Devices.
    pub devices: u64,
    /// The file's size.
    pub bytes: u64,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// The names table of a file being written: each name once, the most used first (so that
/// the clusters, pools, nodes and causes every device names take a byte each).
struct Names {
    numbers: HashMap<Name, u64>,
    list: Vec<Name>,
}

impl Names {
    /// The names of `view`'s devices and of their events and intervals, numbered.
    fn of(view: &View) -> Names {
        let mut uses: HashMap<Name, u64> = HashMap::new();
        for (name, d) in view.devices.iter() {
            let parts = [d.events.encoded().0, d.intervals.encoded().0];
            for &n in std::iter::once(name).chain(parts.into_iter().flatten()) {
                *uses.entry(n).or_default() += 1;
            }
        }
        let mut list: Vec<(Name, u64)> = uses.into_iter().collect();
        list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.as_str().cmp(b.0.as_str())));
        let list: Vec<Name> = list.into_iter().map(|(n, _)| n).collect();
        let numbers = list
            .iter()
            .enumerate()
            .map(|(k, &n)| (n, k as u64))
            .collect();
        Names { numbers, list }
    }

    fn number(&self, n: Name) -> u64 {
        self.numbers[&n]
    }
}

/// A device's part in the table: how many names, their numbers, the bytes' length.
fn put_part(table: &mut Vec<u8>, all: &Names, names: &[Name], len: usize) {
    put(table, names.len() as u64);
    for &n in names {
        put(table, all.number(n));
    }
    put(table, len as u64);
}

/// Writes the service events and intervals of `view`'s devices under `log_dir`, replacing
/// the file there (written to a new name, synced, renamed).
pub(super) fn write(log_dir: &Path, view: &View) -> Result<Written> {
    derived_files::replace(&log_dir.join(FILE), |tmp| write_to(tmp, view))
}

fn write_to(path: &Path, view: &View) -> Result<Written> {
    let file = File::create(path).map_err(io("creating", path))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let err = io("writing", path);
    w.write_all(&[0u8; HEADER]).map_err(&err)?;
    let mut at = HEADER as u64;
    let (mut table, names) = (Vec::new(), Names::of(view));
    for (name, d) in view.devices.iter() {
        put(&mut table, names.number(*name));
        for (part_names, bytes) in [d.events.encoded(), d.intervals.encoded()] {
            w.write_all(bytes).map_err(&err)?;
            put_part(&mut table, &names, part_names, bytes.len());
            at += bytes.len() as u64;
        }
    }
    // the names, then the devices' parts
    let mut head = Vec::new();
    put(&mut head, names.list.len() as u64);
    for n in &names.list {
        put_str(&mut head, n.as_str());
    }
    let table = [head, table].concat();
    w.write_all(&table).map_err(&err)?;
    let header = Header {
        version: view.version,
        last_ingest_time: view.last_ingest_time,
        devices: view.devices.len() as u64,
        table_at: at,
        table_len: table.len() as u64,
    };
    let checksum = header.checksum(&table);
    w.seek(SeekFrom::Start(0)).map_err(&err)?;
    w.write_all(&header.bytes(checksum)).map_err(&err)?;
    let file = w.into_inner().map_err(|e| err(e.into_error()))?;
    file.sync_all().map_err(&err)?;
    Ok(Written {
        version: view.version,
        devices: header.devices,
        bytes: at + header.table_len,
    })
}

/// A file of service events and intervals, mapped.
#[derive(Debug)]
pub struct ServiceFile {
    file: Arc<Mapped>,
    /// The version it was written from.
    pub version: u64,
    /// That version's latest ingest time.
    pub last_ingest_time: Us,
    /// Devices it holds.
    pub devices: u64,
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

/// A device's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The device.
    pub device: &'a str,
    /// Its service events.
    pub events: Part<'a>,
    /// Its intervals.
    pub intervals: Part<'a>,
}

impl ServiceFile {
    /// Maps the file under `log_dir`: `None` when there is none, `Err` when it is not one
    /// (bad magic, a table out of the file or failing its checksum).
    pub fn open(log_dir: &Path) -> Result<Option<ServiceFile>> {
        let path = log_dir.join(FILE);
        if !path.exists() {
            return Ok(None);
        }
        let file = Mapped::open_shared(&path).map_err(io("mapping", &path))?;
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
        Ok(Some(ServiceFile {
            version: h.version,
            last_ingest_time: h.last_ingest_time,
            devices: h.devices,
            table,
            file,
        }))
    }

    /// `range` of the file, as bytes read in place.
    pub fn shared(&self, range: Range<usize>) -> SharedBytes {
        SharedBytes::shared(self.file.clone(), range)
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
        let mut at = HEADER;
        let end = self.table.start;
        let mut left = if names.is_some() { self.devices } else { 1 };
        std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            let entry = names
                .as_ref()
                .and_then(|names| read_entry(&mut r, names, &mut at, end));
            if entry.is_none() {
                left = 0;
            }
            Some(
                entry.ok_or_else(|| {
                    QueryError::Data(format!("{FILE}: a device's entry is damaged"))
                }),
            )
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
    let len = usize::try_from(r.next_varint()?).ok()?;
    let range = *at..at.checked_add(len).filter(|&e| e <= end)?;
    *at = range.end;
    Some(Part { names, range })
}

fn read_entry<'a>(
    r: &mut Reader<'_>,
    names: &[&'a str],
    at: &mut usize,
    end: usize,
) -> Option<Entry<'a>> {
    Some(Entry {
        device: read_name(r, names)?,
        events: read_part(r, names, at, end)?,
        intervals: read_part(r, names, at, end)?,
    })
}
