//! Checkpoints of the call legs, beside the log (`<log>/derived/legs.bin`): every device's
//! legs as of one version of the live state, so that a start reads them back mapped instead
//! of pairing every call event of the history again, and holds them in the kernel's page
//! cache instead of its own heap.
//!
//! The file: a header; every complete leg, by device, in blocks of [`FENCE`] legs
//! ([`blocks`](super::blocks): by start, then call id, each leg encoded after the one
//! before), then each device's index of call-id hashes ([`IdIndex`]), the device names, a
//! table of devices ([`DeviceEntry`]: where its blocks and index are), each block's first
//! start (*fences*) and where it begins, the hour index ([`hours`]); last, a JSON tail with
//! the causes the legs index and the legs that are not complete (open, seen only ending,
//! revised) as paired. Numbers are little-endian, sections 8-byte aligned; the blocks and the
//! index are read in place. The table of devices is varints: each device's lengths, its
//! pieces starting where the one before's ended.
//!
//! A checkpoint is a chain of pieces in this format ([`pieces`](super::pieces)): the head
//! (`legs.bin`) holds the legs not kept in the older pieces, which its tail lists, and the
//! legs that are not complete. A checkpoint covers the events of `ingest_seq` up to its
//! version. Its head is written to a new name, synced and renamed over the last one; a start
//! checks that the log still holds that version with the same latest ingest time (the log it
//! was made from) before it uses it.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::{TimestampMicrosecondType, UInt64Type};

use callstate_log::Snapshot;
use callstate_log::segment::read_segment;
use callstate_schemas::Us;

use crate::error::{QueryError, Result};
use crate::model::Name;

use super::blocks::{FENCE, IdIndex};
use super::calls::{Paired, WireLeg};
use super::derived_files::{self, io};
use super::hours::{self, Hours};
use super::mapped::{InOrder, Mapped};
use super::packed::{self, Packed, Shelf};
use super::pieces::{self, OnDisk, PieceRef, Plan};
pub use super::retention::LegsRetention;
use super::runs::Pack;
use super::view::View;
use crate::model::varint::{Reader, put, unzigzag, zigzag};

/// The checkpoint's place under the log's directory.
pub const FILE: &str = "derived/legs.bin";

const MAGIC: [u8; 8] = *b"CSLEGS06";

/// Devices written between two lettings go of the mapped pages read ([`mapped::release`]).
///
/// [`mapped::release`]: super::mapped::release
const RELEASE_EVERY: usize = 1024;

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct Header {
    magic: [u8; 8],
    /// The last `ingest_seq` covered (every event at or below it).
    version: u64,
    /// The latest ingest time among those events.
    last_ingest_time: i64,
    devices: u64,
    devices_at: u64,
    /// The device table's bytes.
    devices_len: u64,
    /// Complete legs.
    legs: u64,
    blocks_at: u64,
    blocks_len: u64,
    by_id_at: u64,
    by_id_len: u64,
    names_at: u64,
    names_len: u64,
    tail_at: u64,
    tail_len: u64,
    /// Every device's blocks' first starts (`i64`), back to back, then as many offsets
    /// (`u32`: where each block begins among its device's).
    fences_at: u64,
    fences: u64,
    offsets_at: u64,
    /// This piece's id (a new one at every write).
    piece: u64,
    /// The horizon of retention it was written with (`i64::MIN`: none).
    kept_from: i64,
    /// CRC-32C of this header (with this field 0), the names, the device table, the fences,
    /// the offsets and the tail: what says where everything is. (The blocks and the index are
    /// not read whole at a start; like the segments, they rely on the filesystem.)
    checksum: u64,
}

impl Header {
    fn checksum(&self, parts: [&[u8]; 5]) -> u64 {
        let h = Header {
            checksum: 0,
            ..*self
        };
        let mut crc = crc32c::crc32c(bytemuck::bytes_of(&h));
        for part in parts {
            crc = crc32c::crc32c_append(crc, part);
        }
        u64::from(crc)
    }
}

/// One device's entry in the table: the lengths of its pieces (each starts where the one
/// before's ended: devices are written in order), as varints (about 10 bytes a device, where
/// fixed 8-byte fields took 72: 3.3 MB of a 30-day checkpoint's 61).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct DeviceEntry {
    /// Its name's bytes.
    name_len: u64,
    /// Its complete legs (as many call-id index entries; a fence every [`FENCE`]).
    legs: u64,
    /// Its blocks' bytes.
    blocks_len: u64,
    /// Its longest complete leg.
    longest: i64,
}

impl DeviceEntry {
    fn put(&self, out: &mut Vec<u8>) {
        put(out, self.name_len);
        put(out, self.legs);
        put(out, self.blocks_len);
        put(out, zigzag(self.longest));
    }

    fn read(r: &mut Reader<'_>) -> Option<DeviceEntry> {
        Some(DeviceEntry {
            name_len: r.next_varint()?,
            legs: r.next_varint()?,
            blocks_len: r.next_varint()?,
            longest: unzigzag(r.next_varint()?),
        })
    }
}

/// Where a device's pieces start: the sums of the lengths of those before it.
#[derive(Debug, Clone, Copy, Default)]
struct Starts {
    name: usize,
    legs: usize,
    blocks: usize,
    by_id: usize,
    fences: usize,
}

impl Starts {
    /// Where the next device's start, after `e`'s (`None` past what `usize` counts).
    fn after(&self, e: &DeviceEntry) -> Option<Starts> {
        let legs = usize::try_from(e.legs).ok()?;
        Some(Starts {
            name: self.name.checked_add(usize::try_from(e.name_len).ok()?)?,
            legs: self.legs.checked_add(legs)?,
            blocks: self
                .blocks
                .checked_add(usize::try_from(e.blocks_len).ok()?)?,
            by_id: self.by_id.checked_add(IdIndex::bytes_for(legs)?)?,
            fences: self.fences.checked_add(legs.div_ceil(FENCE))?,
        })
    }
}

// SAFETY: `repr(C)`, integers and a byte array only, no padding (8-byte fields throughout).
unsafe impl bytemuck::Zeroable for Header {}
unsafe impl bytemuck::Pod for Header {}

/// The JSON tail.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Tail {
    causes: Vec<String>,
    /// (device number, its legs that are not packed).
    loose: Vec<(u64, Vec<WireLeg>)>,
    /// The hour index, if written (a checkpoint of an earlier release has none).
    #[serde(default)]
    hours: Option<hours::Section>,
    /// What retention removed, if it did.
    #[serde(default)]
    retention: Option<LegsRetention>,
    /// The older pieces it builds on, oldest first (its own legs are the newest).
    #[serde(default)]
    pieces: Vec<PieceRef>,
}

/// What a written checkpoint holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The last `ingest_seq` it covers.
    pub version: u64,
    /// Devices with legs.
    pub devices: u64,
    /// Complete legs (packed), in every piece.
    pub legs: u64,
    /// Other legs (open, seen only ending, revised).
    pub loose: u64,
    /// Its size: every piece's.
    pub bytes: u64,
    /// Its pieces (the head and those it builds on).
    pub pieces: usize,
    /// The bytes this write wrote (the head).
    pub written_bytes: u64,
    /// What retention removed, counting earlier checkpoints.
    pub retention: Option<LegsRetention>,
    /// The service file of its version as this process wrote it (with it, or before it: a
    /// version's is written once); `None` when writing it failed.
    pub service: Option<super::service_file::Written>,
}

/// A checkpoint read back.
pub(super) struct Checkpoint {
    /// The last `ingest_seq` it covers.
    pub version: u64,
    /// The latest ingest time among those events.
    pub last_ingest_time: Us,
    /// Per device, by name: its packed legs (mapped: a pack per piece holding some, oldest
    /// first; the list exactly as long) and the rest.
    pub devices: Vec<(Name, Vec<Pack>, Vec<Paired>)>,
    /// What retention removed.
    pub retention: Option<LegsRetention>,
}

fn pad_to_8(w: &mut impl Write, at: &mut u64) -> std::io::Result<()> {
    let pad = (8 - *at % 8) % 8;
    w.write_all(&[0u8; 8][..pad as usize])?;
    *at += pad;
    Ok(())
}

/// Writes the checkpoint of `view` under `log_dir`, replacing the last one; without the
/// complete legs that started and ended before `kept_from` (or the view's own horizon, the
/// later of the two). The new head holds the legs not kept in the older pieces
/// ([`pieces`](super::pieces)); the pieces it does not list are removed once it replaced the
/// last.
pub(super) fn write(log_dir: &Path, view: &View, kept_from: Option<Us>) -> Result<Written> {
    let horizon = view.legs_retention.map(|r| r.kept_from).max(kept_from);
    let chain = chain_on_disk(log_dir);
    let plan = Plan::of(&chain, view, horizon);
    plan.name_kept(log_dir, &chain)?;
    let refs = plan.refs(&chain);
    let mut written = derived_files::replace(&log_dir.join(FILE), |main| {
        // the parts laid out after the blocks, in files beside it while it is written
        let side = |part: &str| {
            let mut p = main.as_os_str().to_owned();
            p.push(part);
            PathBuf::from(p)
        };
        let (index, hours) = (side(".index"), side(".hours"));
        let r = write_parts(view, horizon, (&plan, &refs), main, [&index, &hours]);
        for side in [&index, &hours] {
            let _ = fs::remove_file(side);
        }
        r
    })?;
    pieces::remove_unlisted(log_dir, pieces::LEGS, refs.iter().map(|r| r.file.as_str()));
    let dir = derived_files::dir(log_dir);
    written.written_bytes = written.bytes;
    written.pieces = refs.len() + 1;
    for r in &refs {
        written.bytes += fs::metadata(dir.join(&r.file)).map_or(0, |m| m.len());
    }
    Ok(written)
}

/// The older piece `r` that the head at `head` lists, mapped and framed: where it is, its
/// mapping and its frame; an error if it is missing, damaged or not the piece listed.
fn listed(log_dir: &Path, head: &Path, r: &PieceRef) -> Result<(PathBuf, Arc<Mapped>, Frame)> {
    let at = derived_files::dir(log_dir).join(&r.file);
    let file = Mapped::open_shared(&at)
        .map_err(|e| damaged(head, &format!("the piece {} it lists: {e}", r.file)))?;
    let f = frame(&at, file.bytes())?;
    if f.h.piece != r.piece || f.h.checksum != r.checksum {
        return Err(damaged(
            head,
            &format!("the piece {} is not the one it lists", r.file),
        ));
    }
    Ok((at, file, f))
}

/// The pieces of the checkpoint under `log_dir` (oldest first, the head last), each checked
/// to be the one the head lists; none if one is not (a write then keeps none).
fn chain_on_disk(log_dir: &Path) -> Vec<OnDisk> {
    let Some(head) = read_frame(log_dir) else {
        return Vec::new();
    };
    let on_disk = |r: PieceRef, path: PathBuf, h: &Header| OnDisk {
        r,
        path,
        devices: u32::try_from(h.devices).unwrap_or(u32::MAX),
        legs: h.legs,
        kept_from: Some(h.kept_from).filter(|&k| k > Us::MIN),
    };
    let mut chain = Vec::new();
    for r in &head.tail.pieces {
        match listed(log_dir, &log_dir.join(FILE), r) {
            Ok((path, _, f)) => chain.push(on_disk(r.clone(), path, &f.h)),
            Err(_) => return Vec::new(),
        }
    }
    let r = PieceRef {
        file: pieces::file_name(pieces::LEGS, head.h.piece),
        piece: head.h.piece,
        checksum: head.h.checksum,
        superseded: Vec::new(),
    };
    chain.push(on_disk(r, log_dir.join(FILE), &head.h));
    chain
}

/// Writes the head of the checkpoint of `view` to `main` (the legs `plan` does not keep where
/// they are, listing `refs`; without the complete legs retention at `horizon` removes), with
/// side files for the parts laid out after the blocks (`[index, hours]`). The legs and
/// devices it returns count the pieces kept too.
fn write_parts(
    view: &View,
    horizon: Option<Us>,
    (plan, refs): (&Plan, &[PieceRef]),
    main: &Path,
    sides: [&Path; 2],
) -> Result<Written> {
    let [index_path, hours_path] = sides;
    // read back too: the index is copied in after the blocks
    let create = |p: &Path| -> Result<BufWriter<File>> {
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(p)
            .map_err(io("creating", p))?;
        Ok(BufWriter::with_capacity(1 << 20, f))
    };
    let werr = io("writing", main);
    let mut out = create(main)?;
    let mut index = create(index_path)?;
    let mut hours = hours::Writer::new(
        create(hours_path)?
            .into_inner()
            .map_err(|e| werr(e.into_error()))?,
    );
    let mut h = Header {
        magic: MAGIC,
        version: view.version,
        last_ingest_time: view.last_ingest_time,
        piece: pieces::new_id(view.version),
        ..Header::default()
    };
    let mut at = size_of::<Header>() as u64;
    out.write_all(bytemuck::bytes_of(&h)).map_err(&werr)?;
    h.blocks_at = at;
    let mut table: Vec<DeviceEntry> = Vec::new();
    let mut names: Vec<u8> = Vec::new();
    let mut causes: HashMap<Arc<str>, u32> = HashMap::new();
    let mut cause_list: Vec<String> = Vec::new();
    let mut tail = Tail {
        pieces: refs.to_vec(),
        ..Tail::default()
    };
    // the legs and devices of the pieces kept
    let (mut kept_legs, mut kept_devices) = (0u64, 0u64);
    let mut fences: Vec<Us> = Vec::new();
    let mut offsets: Vec<u32> = Vec::new();
    let (mut legs, mut blocks_len, mut by_id_len) = (0u64, 0u64, 0u64);
    // retention: the earlier horizon's removals were counted when it was set
    let prior = view.legs_retention;
    let mut removed = prior.map_or(0, |r| r.removed);
    let before = prior.map(|r| r.kept_from);
    h.kept_from = horizon.unwrap_or(Us::MIN);
    // Legs of the pieces written again are read in their order (devices by name): read ahead.
    let _in_order = files_written_again(view, plan);
    for (k, (name, d)) in view.devices.iter().enumerate() {
        // the pages read of mapped legs (the last checkpoint, or a start's spilled ones) let
        // go of as the write goes: read once, in order
        if k % RELEASE_EVERY == RELEASE_EVERY - 1 {
            super::mapped::release();
        }
        let mut kept = 0u64;
        let (mut complete, mut loose) = d.calls.checkpoint_parts(|p| {
            let keeps = plan.keeps(p);
            kept += if keeps { p.len() as u64 } else { 0 };
            keeps
        });
        kept_legs += kept;
        if complete.is_empty() && loose.is_empty() {
            kept_devices += u64::from(kept > 0);
            continue;
        }
        // a device whose legs retention removes is written without any (so that the live
        // state, taking the checkpoint in, drops them too)
        if let Some(h) = horizon {
            let mut gone = |start: Option<Us>, end: Option<Us>| {
                let (Some(start), Some(end)) = (start, end) else {
                    return false; // open: kept
                };
                let gone = LegsRetention::removes(h, start, end);
                // not counted again: a leg an earlier horizon removed (still held by a
                // device that changed before that checkpoint was taken in)
                if gone && before.is_none_or(|b| !LegsRetention::removes(b, start, end)) {
                    removed += 1;
                }
                gone
            };
            complete.retain(|c| !gone(Some(c.start), Some(c.end)));
            loose.retain(|(_, k, _)| {
                let (start, end) = k.span();
                !gone(start, end)
            });
        }
        let mut e = DeviceEntry {
            name_len: name.len() as u64,
            ..DeviceEntry::default()
        };
        names.extend_from_slice(name.as_bytes());
        // laid out as the live state packs them; the causes numbered in the file's list
        let cause_number = |c: Option<&Arc<str>>| match c {
            None => 0,
            Some(c) => match causes.get(&**c) {
                Some(&n) => n,
                None => {
                    cause_list.push(c.to_string());
                    let n = cause_list.len() as u32;
                    causes.insert(c.clone(), n);
                    n
                }
            },
        };
        let Some((encoded, keys, longest)) = packed::lay_out_complete(&mut complete, cause_number)
        else {
            return Err(QueryError::Internal(format!(
                "device {name}: too many legs to checkpoint"
            )));
        };
        hours
            .add(
                table.len() as u32,
                complete.iter().map(|c| (c.start, c.end)),
            )
            .map_err(&werr)?;
        out.write_all(&encoded.bytes).map_err(&werr)?;
        index
            .write_all(bytemuck::cast_slice(&keys))
            .map_err(&werr)?;
        // (a reader finds the next device's index and fences from these lengths)
        if IdIndex::bytes_for(complete.len()) != Some(keys.len() * size_of::<u16>())
            || encoded.fences.len() != complete.len().div_ceil(FENCE)
        {
            return Err(QueryError::Internal(format!(
                "device {name}: its legs laid out unlike their count"
            )));
        }
        by_id_len += (keys.len() * size_of::<u16>()) as u64;
        fences.extend(&encoded.fences);
        offsets.extend(&encoded.offsets);
        legs += complete.len() as u64;
        blocks_len += encoded.bytes.len() as u64;
        e.legs = complete.len() as u64;
        e.blocks_len = encoded.bytes.len() as u64;
        e.longest = longest;
        if !loose.is_empty() {
            tail.loose
                .push((table.len() as u64, loose.iter().map(WireLeg::of).collect()));
        }
        table.push(e);
    }
    tail.causes = cause_list;
    tail.retention = horizon.map(|kept_from| LegsRetention { kept_from, removed });
    at += blocks_len;
    h.blocks_len = blocks_len;
    // the index after the blocks
    pad_to_8(&mut out, &mut at).map_err(&werr)?;
    h.by_id_at = at;
    let mut index = index.into_inner().map_err(|e| werr(e.into_error()))?;
    let len = by_id_len;
    h.by_id_len = len;
    index.seek(SeekFrom::Start(0)).map_err(&werr)?;
    out.flush().map_err(&werr)?;
    let copied = std::io::copy(&mut index, out.get_mut()).map_err(&werr)?;
    if copied != len {
        return Err(QueryError::Internal(format!(
            "writing {}: {copied} bytes copied of {len}",
            main.display()
        )));
    }
    at += len;
    h.names_at = at;
    h.names_len = names.len() as u64;
    out.write_all(&names).map_err(&werr)?;
    at += names.len() as u64;
    pad_to_8(&mut out, &mut at).map_err(&werr)?;
    h.devices_at = at;
    h.devices = table.len() as u64;
    let mut table_bytes = Vec::with_capacity(table.len() * 12);
    for e in &table {
        e.put(&mut table_bytes);
    }
    h.devices_len = table_bytes.len() as u64;
    out.write_all(&table_bytes).map_err(&werr)?;
    at += h.devices_len;
    pad_to_8(&mut out, &mut at).map_err(&werr)?;
    h.fences_at = at;
    h.fences = fences.len() as u64;
    out.write_all(bytemuck::cast_slice(&fences))
        .map_err(&werr)?;
    at += (fences.len() * size_of::<Us>()) as u64;
    h.offsets_at = at;
    out.write_all(bytemuck::cast_slice(&offsets))
        .map_err(&werr)?;
    at += (offsets.len() * size_of::<u32>()) as u64;
    pad_to_8(&mut out, &mut at).map_err(&werr)?;
    // the hour index (the tail says where)
    out.flush().map_err(&werr)?;
    if let Some((section, len)) = hours.finish(out.get_mut(), at).map_err(&werr)? {
        tail.hours = Some(section);
        at += len;
    }
    out.get_mut().seek(SeekFrom::Start(at)).map_err(&werr)?;
    let tail_bytes = serde_json::to_vec(&tail)
        .map_err(|e| QueryError::Internal(format!("writing {}: {e}", main.display())))?;
    h.tail_at = at;
    h.tail_len = tail_bytes.len() as u64;
    out.write_all(&tail_bytes).map_err(&werr)?;
    at += tail_bytes.len() as u64;
    h.legs = legs;
    h.checksum = h.checksum([
        &names,
        &table_bytes,
        bytemuck::cast_slice(&fences),
        bytemuck::cast_slice(&offsets),
        &tail_bytes,
    ]);
    let mut f = out.into_inner().map_err(|e| werr(e.into_error()))?;
    f.seek(SeekFrom::Start(0)).map_err(&werr)?;
    f.write_all(bytemuck::bytes_of(&h)).map_err(&werr)?;
    f.sync_all().map_err(&werr)?;
    Ok(Written {
        version: h.version,
        devices: h.devices + kept_devices,
        legs: legs + kept_legs,
        loose: tail.loose.iter().map(|(_, l)| l.len() as u64).sum(),
        bytes: at,
        pieces: 1,
        written_bytes: at,
        retention: tail.retention,
        service: None,
    })
}

/// The files of the pieces a write writes again, each read in order while the guards live.
fn files_written_again(view: &View, plan: &Plan) -> Vec<InOrder> {
    let mut files: Vec<Arc<Mapped>> = Vec::new();
    for d in view.devices.values() {
        for p in d.calls.packs().filter(|p| !plan.keeps(p)) {
            if let Some(f) = p.packed.file().filter(|_| p.packed.origin().is_some())
                && !files.iter().any(|g| Arc::ptr_eq(f, g))
            {
                files.push(f.clone());
            }
        }
    }
    files.into_iter().map(InOrder::new).collect()
}

/// Where a checkpoint's sections are (each within the file, the checksum matching), and its
/// tail: all a start reads before it maps the legs.
struct Frame {
    h: Header,
    blocks: Range<usize>,
    by_id: Range<usize>,
    names: Range<usize>,
    table: Range<usize>,
    fences: Range<usize>,
    offsets: Range<usize>,
    tail: Tail,
}

/// The frame of the checkpoint `bytes` (read from `path`).
fn frame(path: &Path, bytes: &[u8]) -> Result<Frame> {
    let bad = |what: &str| damaged(path, what);
    let h: Header = bytes
        .get(..size_of::<Header>())
        .map(bytemuck::pod_read_unaligned)
        .ok_or_else(|| bad("shorter than its header"))?;
    if h.magic != MAGIC {
        return Err(bad("not a legs checkpoint of this format"));
    }
    let len = bytes.len() as u64;
    let section = |at: u64, n: u64, what: &str| -> Result<Range<usize>> {
        let end = at.checked_add(n).filter(|&e| e <= len);
        match end {
            Some(end) => Ok(at as usize..end as usize),
            None => Err(bad(&format!("its {what} run past its end"))),
        }
    };
    let blocks = section(h.blocks_at, h.blocks_len, "legs")?;
    let by_id = section(h.by_id_at, h.by_id_len, "index")?;
    let names = section(h.names_at, h.names_len, "names")?;
    let table = section(h.devices_at, h.devices_len, "devices")?;
    let fences = section(h.fences_at, h.fences * size_of::<Us>() as u64, "fences")?;
    let offsets = section(h.offsets_at, h.fences * size_of::<u32>() as u64, "offsets")?;
    let tail = section(h.tail_at, h.tail_len, "tail")?;
    if h.checksum([
        &bytes[names.clone()],
        &bytes[table.clone()],
        &bytes[fences.clone()],
        &bytes[offsets.clone()],
        &bytes[tail.clone()],
    ]) != h.checksum
    {
        return Err(bad("its checksum does not match"));
    }
    let tail: Tail =
        serde_json::from_slice(&bytes[tail]).map_err(|e| bad(&format!("its tail: {e}")))?;
    Ok(Frame {
        h,
        blocks,
        by_id,
        names,
        table,
        fences,
        offsets,
        tail,
    })
}

fn damaged(path: &Path, what: &str) -> QueryError {
    QueryError::Data(format!("checkpoint {} is damaged: {what}", path.display()))
}

/// Reads the checkpoint under `log_dir`, if there is one (its head and the pieces it lists);
/// `name` shares the strings it holds.
pub(super) fn open(
    log_dir: &Path,
    mut name: impl FnMut(&str) -> Arc<str>,
) -> Result<Option<Checkpoint>> {
    let path = log_dir.join(FILE);
    if !path.exists() {
        return Ok(None);
    }
    let file = Mapped::open_shared(&path).map_err(io("mapping", &path))?;
    let head = frame(&path, file.bytes())?;
    // every piece's packs in one list, then each device's in a list of exactly its own:
    // lists grown piece after piece and then copied (a device's from a checkpoint holds room
    // for its packs only) left, once freed, the allocator's pages of the copies half empty
    let mut packs: Vec<(Name, Packed)> = Vec::new();
    let mut loose: HashMap<Name, Vec<Paired>> = HashMap::new();
    for r in &head.tail.pieces {
        let (at, piece, f) = listed(log_dir, &path, r)?;
        let skip: HashSet<u32> = r.superseded.iter().copied().collect();
        // (an older piece's loose legs are the head's now)
        read_piece(&at, &piece, f, &skip, &mut name, |device, packed, _| {
            packs.push((device, packed));
        })?;
    }
    let (version, last_ingest_time) = (head.h.version, head.h.last_ingest_time);
    let retention = head.tail.retention;
    // what a write cut short (or a crash before the last removed them) left
    pieces::remove_unlisted(
        log_dir,
        pieces::LEGS,
        head.tail.pieces.iter().map(|r| r.file.as_str()),
    );
    read_piece(
        &path,
        &file,
        head,
        &HashSet::new(),
        &mut name,
        |device, packed, rest| {
            packs.push((device, packed));
            loose.insert(device, rest);
        },
    )?;
    Ok(Some(Checkpoint {
        version,
        last_ingest_time,
        devices: by_device(packs, loose),
        retention,
    }))
}

/// Each device's packs (in `packs`' order: the pieces' oldest first) in a list of exactly
/// them, with its legs in `loose`, by device.
fn by_device(
    mut packs: Vec<(Name, Packed)>,
    mut loose: HashMap<Name, Vec<Paired>>,
) -> Vec<(Name, Vec<Pack>, Vec<Paired>)> {
    // (stable: a device's packs stay in order)
    packs.sort_by_key(|p| p.0);
    let groups: Vec<(Name, usize)> = packs
        .chunk_by(|a, b| a.0 == b.0)
        .map(|g| (g[0].0, g.len()))
        .collect();
    let mut packs = packs.into_iter();
    groups
        .into_iter()
        .map(|(device, n)| {
            let mut list = Vec::with_capacity(n);
            list.extend(packs.by_ref().take(n).map(|(_, p)| Pack::new(p)));
            (device, list, loose.remove(&device).unwrap_or_default())
        })
        .collect()
}

/// Reads the devices of the piece `file` (at `path`, framed as `f`) but those in `skip`:
/// `each` gets every one's name, packed legs (mapped) and the legs of its tail.
fn read_piece(
    path: &Path,
    file: &Arc<Mapped>,
    f: Frame,
    skip: &HashSet<u32>,
    mut name: impl FnMut(&str) -> Arc<str>,
    mut each: impl FnMut(Name, Packed, Vec<Paired>),
) -> Result<()> {
    let bytes = file.bytes();
    let bad = |what: &str| damaged(path, what);
    let (h, tail) = (f.h, f.tail);
    let (blocks, by_id, names) = (f.blocks, f.by_id, f.names);
    // the blocks are read by time, every device in turn: with read-ahead
    file.read_ahead(blocks.clone());
    let mut table = Vec::with_capacity(usize::try_from(h.devices).unwrap_or(0).min(1 << 24));
    let mut r = Reader {
        bytes: &bytes[f.table],
        at: 0,
    };
    for _ in 0..h.devices {
        table.push(DeviceEntry::read(&mut r).ok_or_else(|| bad("its device table"))?);
    }
    let causes: Arc<Vec<Arc<str>>> = Arc::new(tail.causes.iter().map(|c| name(c)).collect());
    // without its hour index (or with a damaged one) every device's legs are read
    let hour_index = tail.hours.as_ref().and_then(|s| {
        Hours::open(file.clone(), s, table.len())
            .inspect_err(|e| tracing::warn!(checkpoint = %path.display(), "{e}"))
            .ok()
            .map(Arc::new)
    });
    let shelf = Shelf {
        file: file.clone(),
        piece: h.piece,
        fences: f.fences,
        offsets: f.offsets,
        causes,
        hours: hour_index,
    }
    .checked()
    .ok_or_else(|| bad("fences or offsets misaligned"))?;
    let shelf = Arc::new(shelf);
    let mut loose: HashMap<u64, Vec<WireLeg>> = tail.loose.into_iter().collect();
    let mut starts = Starts::default();
    for (n, e) in table.iter().enumerate() {
        let (here, next) = (starts, starts.after(e));
        let next = next.ok_or_else(|| bad("a device out of place"))?;
        starts = next;
        if skip.contains(&(n as u32)) {
            continue;
        }
        let name_bytes = bytes
            .get(names.start.saturating_add(here.name)..)
            .and_then(|b| b.get(..next.name - here.name))
            .filter(|_| next.name <= names.len())
            .ok_or_else(|| bad("a device name out of place"))?;
        let device =
            std::str::from_utf8(name_bytes).map_err(|_| bad("a device name is not UTF-8"))?;
        let (from, to) = (here.legs, next.legs);
        let (Some(at), Some(end)) = (
            blocks.start.checked_add(here.blocks),
            blocks.start.checked_add(next.blocks),
        ) else {
            return Err(bad(&format!("device {device}'s legs out of place")));
        };
        if to as u64 > h.legs || end > blocks.end {
            return Err(bad(&format!("device {device} out of place")));
        }
        let its = |what: &str| bad(&format!("device {device}'s {what} out of place"));
        // (then within the section: `here.by_id` is no more than `next.by_id`)
        if next.by_id > by_id.len() {
            return Err(its("call-id index"));
        }
        let packed = Packed::kept(
            &shelf,
            n as u32,
            at..end,
            by_id.start + here.by_id,
            to - from,
            here.fences,
            e.longest,
        )
        .ok_or_else(|| its("legs"))?;
        let rest: Vec<Paired> = loose
            .remove(&(n as u64))
            .unwrap_or_default()
            .into_iter()
            .map(|w| w.paired(&mut name))
            .collect();
        each(Name::new(device), packed, rest);
    }
    Ok(())
}

/// The latest ingest time among the events of `ingest_seq` up to `version`, if `snap` holds
/// that version.
fn ingest_time_through(snap: &Snapshot, version: u64) -> Result<Option<Us>> {
    let mut latest = None::<Us>;
    let mut holds = false;
    let columns = ["ingest_seq", "ingest_time"];
    let mut batches = Vec::new();
    for seg in &snap.segments {
        if seg.max_ingest_seq <= version {
            holds |= seg.max_ingest_seq == version;
            latest = latest.max(Some(seg.max_ingest_time_us));
        } else if seg.min_ingest_seq <= version && !seg.retired {
            batches.extend(read_segment(&snap.segment_path(seg), Some(&columns))?);
        }
    }
    batches.extend(snap.tail_batches(Some(&columns))?);
    for b in &batches {
        let col = |n: &str| {
            b.column_by_name(n)
                .ok_or_else(|| QueryError::Data(format!("column {n} missing")))
        };
        let seq = col("ingest_seq")?.as_primitive::<UInt64Type>();
        let time = col("ingest_time")?.as_primitive::<TimestampMicrosecondType>();
        for i in 0..b.num_rows() {
            if seq.value(i) <= version {
                holds |= seq.value(i) == version;
                latest = latest.max(Some(time.value(i)));
            }
        }
    }
    Ok(latest.filter(|_| holds))
}

/// Up to which `ingest_seq` the checkpoint of the legs under the log's directory of `snap`
/// holds every call leg (`None`: no checkpoint the log matches): what retention of raw
/// events may remove without losing a leg.
/// Reads the frames only (the head's and its pieces': header, device table, fences and
/// tail), not the legs: the retention pass asks at every compaction.
pub fn covered_through(snap: &Snapshot) -> Option<u64> {
    let f = read_frame(&snap.dir)?;
    let head = snap.dir.join(FILE);
    if f.tail
        .pieces
        .iter()
        .any(|r| listed(&snap.dir, &head, r).is_err())
    {
        return None; // a piece it lists is missing, damaged or not the one written
    }
    let h = f.h;
    of_this_log(snap, h.version, h.last_ingest_time)
        .ok()?
        .then_some(h.version)
}

/// What retention removed from the call legs, as the checkpoint of the legs under `log_dir`
/// says (`None`: nothing, or no readable checkpoint).
/// Reads its frame only (the header, the device table, the fences and the tail), not the legs.
pub fn retention(log_dir: &Path) -> Option<LegsRetention> {
    read_frame(log_dir)?.tail.retention
}

/// The bytes of the checkpoint under `log_dir` on disk: its head's and those of the pieces
/// it lists (0 when there is none).
pub fn bytes_on_disk(log_dir: &Path) -> u64 {
    let Some(head) = read_frame(log_dir) else {
        return fs::metadata(log_dir.join(FILE)).map_or(0, |m| m.len());
    };
    let dir = derived_files::dir(log_dir);
    let size = |p: &Path| fs::metadata(p).map_or(0, |m| m.len());
    let pieces: u64 = head
        .tail
        .pieces
        .iter()
        .map(|r| size(&dir.join(&r.file)))
        .sum();
    size(&log_dir.join(FILE)) + pieces
}

/// The frame of the checkpoint under `log_dir`, if there is one whose frame is whole.
fn read_frame(log_dir: &Path) -> Option<Frame> {
    let path = log_dir.join(FILE);
    let file = Mapped::open(&path).ok()?;
    frame(&path, file.bytes()).ok()
}

/// Whether `snap` holds `version` with `last_ingest_time` as its latest ingest time (a
/// checkpoint of that version and time is of this log).
fn of_this_log(snap: &Snapshot, version: u64, last_ingest_time: Us) -> Result<bool> {
    Ok(ingest_time_through(snap, version)? == Some(last_ingest_time))
}

/// The checkpoint of the legs under the log's directory of `snap`, if there is one the log
/// matches; one it does not (another log's, a damaged file) is reported and left out.
pub(super) fn load(snap: &Snapshot, name: impl FnMut(&str) -> Arc<str>) -> Option<Checkpoint> {
    let found = open(&snap.dir, name);
    let c = match found {
        Ok(Some(c)) => c,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(error = %e, "call legs derived from the log instead");
            return None;
        }
    };
    match of_this_log(snap, c.version, c.last_ingest_time) {
        Ok(true) => Some(c),
        Ok(false) => {
            tracing::warn!(
                version = c.version,
                "the legs checkpoint is not of this log (it does not hold that version with the \
                 same ingest time): call legs derived from the log instead"
            );
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "call legs derived from the log instead");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_table_reads_back_and_places_each_device_after_the_one_before() {
        let entries = [
            DeviceEntry {
                name_len: 12,
                legs: 0,
                blocks_len: 0,
                longest: 0,
            },
            DeviceEntry {
                name_len: 9,
                legs: 65,
                blocks_len: 1_234,
                longest: 3_600_000_000,
            },
            DeviceEntry {
                name_len: 1,
                legs: 70_000,
                blocks_len: 1 << 40,
                longest: -5,
            },
        ];
        let mut bytes = Vec::new();
        for e in &entries {
            e.put(&mut bytes);
        }
        assert!(bytes.len() < 3 * 16, "{} bytes", bytes.len());
        let mut r = Reader {
            bytes: &bytes,
            at: 0,
        };
        let read: Vec<DeviceEntry> = (0..3).map(|_| DeviceEntry::read(&mut r).unwrap()).collect();
        assert_eq!(read, entries);
        assert_eq!(DeviceEntry::read(&mut r), None, "nothing past the last");
        let starts: Vec<Starts> = read
            .iter()
            .scan(Starts::default(), |s, e| {
                *s = s.after(e)?;
                Some(*s)
            })
            .collect();
        let second = starts[1];
        assert_eq!(
            (second.name, second.legs, second.blocks, second.fences),
            (21, 65, 1_234, 2)
        );
        assert_eq!(second.by_id, 65 * 6);
        // a pack of over 65,536 legs has 8-byte index entries
        assert_eq!(starts[2].by_id, 65 * 6 + 70_000 * 8);
        assert_eq!(starts[2].fences, 2 + 70_000usize.div_ceil(FENCE));
        // lengths past what can be counted place nothing
        let huge = DeviceEntry {
            legs: u64::MAX,
            ..entries[1]
        };
        assert!(starts[2].after(&huge).is_none());
    }

    #[test]
    fn each_device_gets_its_packs_in_order_in_a_list_of_exactly_them() {
        use super::super::packed::Complete;
        // a pack of one leg whose id says which device and piece it is of
        let pack = |device: &str, piece: usize| {
            let leg = Complete {
                id: Arc::from(format!("{device}/{piece}")),
                start: piece as Us,
                end: piece as Us + 10,
                start_known: 0,
                end_known: 0,
                cause: None,
            };
            (Name::new(device), Packed::new(vec![leg]).0)
        };
        // pieces oldest first, devices in each in the piece's order
        let packs: Vec<(Name, Packed)> = [
            ("sep-c", 0),
            ("sep-a", 0),
            ("sep-b", 1),
            ("sep-a", 1),
            ("sep-c", 2),
            ("sep-a", 2),
            ("sep-a", 3),
        ]
        .into_iter()
        .map(|(d, p)| pack(d, p))
        .collect();
        let open: Paired = (Arc::from("open-call"), Default::default(), None);
        let loose = HashMap::from([(Name::new("sep-b"), vec![open])]);
        let devices = by_device(packs, loose);
        let got: Vec<(&str, Vec<String>, usize, usize)> = devices
            .iter()
            .map(|(d, list, loose)| {
                let ids = list.iter().map(|p| p.packed.get(0).id.to_string());
                (d.as_str(), ids.collect(), list.capacity(), loose.len())
            })
            .collect();
        let ids = |d: &str, pieces: &[usize]| -> Vec<String> {
            pieces.iter().map(|p| format!("{d}/{p}")).collect()
        };
        assert_eq!(
            got,
            [
                ("sep-a", ids("sep-a", &[0, 1, 2, 3]), 4, 0),
                ("sep-b", ids("sep-b", &[1]), 1, 1),
                ("sep-c", ids("sep-c", &[0, 2]), 2, 0),
            ]
        );
    }
}
