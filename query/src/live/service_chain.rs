//! The service file as a chain of pieces, as the checkpoint of the legs is
//! ([`pieces`](super::pieces)): each write writes a new head (`derived/service.bin`) holding
//! only the devices whose entries are not kept where they are, and lists the older pieces it
//! builds on (`derived/service.<id>.bin`, never changed once written). A device's entry is
//! its newest: the head's, else that of the newest piece holding it.
//!
//! A device is kept where it is when the live state reads its events, intervals and rollup in
//! place from one piece that is still in the chain (their bytes lie in a mapping of it): what
//! changed since the last write (a later or a late event, a fold of the history, a rollup
//! built again with other windows) holds its own bytes on the heap and is written, the rest
//! is not. Which pieces a write keeps follows the legs' rule ([`pieces::kept`]), weighed in
//! bytes: from the newest back, a piece is written again while what is still read of it is
//! at most twice what is written, so a chain holds a few pieces and a checkpoint writes about
//! what changed, where writing every device at every checkpoint wrote the whole history each
//! time (0.12 GiB a week at a year of the benchmark fleet).
//!
//! Never trusted, like one file: a start still compares every device's entry with its
//! derivation; a piece missing or damaged only leaves its devices derived (a warning names
//! it), a head that does not read leaves every device derived.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::derived_files;
use super::mapped;
use super::pieces::{self, Weighed};
use super::service_file::{self, Entry, FILE, Head, Listed, ServiceFile, Written};
use super::view::View;
use crate::error::Result;

/// The service file's chain: its pieces are `service.<id>.bin`.
const SERVICE: &str = "service";

/// The files of a chain, mapped: the head first, then the older pieces newest first.
#[derive(Debug)]
pub struct ServiceChain {
    files: Vec<ServiceFile>,
}

impl ServiceChain {
    /// Maps the chain under `log_dir`: `None` when there is no head, `Err` when the head is
    /// not one (see [`ServiceFile::open`]). A piece it lists that is missing, damaged or not
    /// the one listed is left out (a warning names it). Pieces no head lists (left by a write
    /// cut short) are removed.
    pub fn open(log_dir: &Path) -> Result<Option<ServiceChain>> {
        let Some(head) = ServiceFile::open(log_dir)? else {
            return Ok(None);
        };
        let dir = derived_files::dir(log_dir);
        let mut files = Vec::with_capacity(head.pieces.len() + 1);
        for r in head.pieces.iter().rev() {
            match ServiceFile::open_at(&dir.join(&r.file)) {
                Ok(f) if f.piece == r.piece && f.checksum == r.checksum => files.push(f),
                Ok(_) => tracing::warn!(
                    piece = %r.file,
                    "not the piece the service file lists: its devices are derived again"
                ),
                Err(e) => tracing::warn!(
                    piece = %r.file,
                    error = %e,
                    "a piece of the service file is not used"
                ),
            }
        }
        let listed = head.pieces.iter().map(|r| r.file.as_str());
        pieces::remove_unlisted(log_dir, SERVICE, listed);
        files.insert(0, head);
        Ok(Some(ServiceChain { files }))
    }

    /// The head.
    pub fn head(&self) -> &ServiceFile {
        &self.files[0]
    }

    /// The version it was written from (its head's).
    pub fn version(&self) -> u64 {
        self.head().version
    }

    /// The files, the head first, then the older pieces newest first.
    pub fn files(&self) -> &[ServiceFile] {
        &self.files
    }

    /// Every device's newest entry, with the file it is in, file after file (each read in
    /// order: [`ServiceFile::reading_in_order`]). A damaged entry ends its file's (warned).
    pub fn each_entry<'a>(&'a self, mut each: impl FnMut(&'a ServiceFile, Entry<'a>)) {
        let mut seen: HashSet<&str> = HashSet::new();
        for file in &self.files {
            let _in_order = file.reading_in_order();
            for entry in file.entries() {
                match entry {
                    Ok(e) => {
                        if seen.insert(e.device) {
                            each(file, e);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the rest of the file is not used");
                        break;
                    }
                }
            }
        }
    }
}

/// The bytes of the service file under `log_dir` on disk: its head's and those of the pieces
/// it lists.
pub fn bytes_on_disk(log_dir: &Path) -> u64 {
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let Ok(Some(head)) = ServiceFile::open(log_dir) else {
        return size(&log_dir.join(FILE));
    };
    let dir = derived_files::dir(log_dir);
    head.file_bytes()
        + head
            .pieces
            .iter()
            .map(|r| size(&dir.join(&r.file)))
            .sum::<u64>()
}

/// Writes the service events, intervals and rollups of `view`'s devices under `log_dir` as a
/// new head of the chain there: the devices not kept where they are (see the module's
/// doc), every device's rollup built first where no question built it with `view`'s windows.
/// The head is written to a new name, synced and renamed over the last; the piece it
/// replaces is first linked under its own name if it is kept; the pieces no longer listed
/// are removed after.
pub(super) fn write(log_dir: &Path, view: &View) -> Result<Written> {
    let chain = ServiceChain::open(log_dir).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "the service file is written again whole");
        None
    });
    let files = chain.as_ref().map_or(&[][..], |c| c.files());
    let rollups = service_file::rollups(view);
    // where the devices' bytes are read from: the mappings of the chain's pieces
    let ids: HashSet<u64> = files.iter().map(|f| f.piece).collect();
    let maps: Vec<(std::sync::Arc<mapped::Mapped>, u64)> = mapped::open_now()
        .into_iter()
        .filter_map(|m| {
            let piece = service_file::piece_of(m.bytes())?;
            ids.contains(&piece).then_some((m, piece))
        })
        .collect();
    let piece_of = |bytes: &[u8]| maps.iter().find(|(m, _)| m.holds(bytes)).map(|p| p.1);
    // per device: the piece it reads all of its entry from, if one, and the entry's bytes
    let mut at: Vec<(Option<u64>, u64)> = Vec::with_capacity(view.devices.len());
    for (d, rollup) in view.devices.values().zip(&rollups) {
        let (events, intervals) = (d.events.encoded().1, d.intervals.encoded().1);
        let runs = service_file::placed(d, rollup.as_deref()).map(|(r, _)| r.bytes());
        let piece = piece_of(events)
            .filter(|&p| piece_of(intervals) == Some(p))
            .filter(|&p| runs.is_none_or(|r| piece_of(r) == Some(p)));
        let size = events.len() + intervals.len() + runs.map_or(0, <[u8]>::len);
        at.push((piece, size as u64));
    }
    let mut live: HashMap<u64, u64> = HashMap::new();
    let mut written = 0;
    for &(piece, size) in &at {
        match piece {
            Some(p) => *live.entry(p).or_default() += size,
            None => written += size,
        }
    }
    let weighed: Vec<Weighed> = files
        .iter()
        .rev()
        .map(|f| Weighed {
            piece: f.piece,
            size: f.data_bytes(),
            live: live.get(&f.piece).copied().unwrap_or(0),
        })
        .collect();
    let kept: HashSet<u64> = pieces::kept(&weighed, written).into_iter().collect();
    let kept_files: Vec<&ServiceFile> = files
        .iter()
        .rev()
        .filter(|f| kept.contains(&f.piece))
        .collect();
    pieces::link_kept(
        log_dir,
        SERVICE,
        kept_files.iter().map(|f| (f.path.as_path(), f.piece)),
    )?;
    let refs: Vec<Listed> = kept_files
        .iter()
        .map(|f| Listed {
            file: pieces::file_name(SERVICE, f.piece),
            piece: f.piece,
            checksum: f.checksum,
        })
        .collect();
    let write: Vec<bool> = at
        .iter()
        .map(|(piece, _)| piece.is_none_or(|p| !kept.contains(&p)))
        .collect();
    let head = Head {
        piece: pieces::new_id(view.version),
        pieces: &refs,
    };
    let mut w = derived_files::replace(&log_dir.join(FILE), |tmp| {
        service_file::write_to(tmp, view, &rollups, &write, head)
    })?;
    drop(chain);
    pieces::remove_unlisted(log_dir, SERVICE, refs.iter().map(|r| r.file.as_str()));
    let dir = derived_files::dir(log_dir);
    w.pieces = refs.len() + 1;
    for r in &refs {
        w.bytes += std::fs::metadata(dir.join(&r.file)).map_or(0, |m| m.len());
    }
    Ok(w)
}
