//! The checkpoint of the call legs as a chain of *pieces*: each checkpoint writes a new head
//! (`derived/legs.bin`) holding only the legs not kept where they are, and lists the older
//! pieces it builds on (`derived/legs.<id>.bin`, never changed once written), with the
//! devices of each that a newer piece holds instead (*superseded*: a late event took one of
//! its legs out, or retention removes some).
//!
//! Which pieces a checkpoint keeps is decided as the live state merges its runs of legs
//! ([`runs`](super::runs)): from the newest piece back, a piece is written again into the new
//! head while its legs still read are at most twice those being written (the new legs and
//! the newer pieces written again), so pieces grow by more than twice going back, a chain
//! holds a few pieces (about log₃ of its checkpoints) and each leg is written a few times —
//! where writing every leg at every checkpoint made the bytes written grow with the square
//! of the history. (Folding only pieces no larger than what is written, as a binary counter
//! carries, wrote less but kept up to 8 pieces over a year of weekly checkpoints of uneven
//! sizes: each a pack per device on the heap, and one more pack a question reads.) A piece
//! whose legs are mostly superseded is written again whatever its size.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use callstate_schemas::Us;

use super::derived_files::{self, io};
use super::retention::LegsRetention;
use super::runs::Pack;
use super::view::View;
use crate::error::Result;

/// Pieces a chain keeps at most beside its head (a chain over a century of weekly
/// checkpoints holds 12).
const MAX_KEPT: usize = 16;

/// An older piece as the head lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct PieceRef {
    /// Its file under the derived directory.
    pub file: String,
    /// Its header's id and checksum: the file is the piece that was written.
    pub piece: u64,
    pub checksum: u64,
    /// Its devices (numbers in it) whose legs are read from a newer piece instead.
    pub superseded: Vec<u32>,
}

/// A piece on disk, as a write finds it.
#[derive(Debug, Clone)]
pub(super) struct OnDisk {
    /// How a new head lists it.
    pub r: PieceRef,
    /// Where it is now (`legs.bin` for the head).
    pub path: PathBuf,
    /// Its devices and legs (superseded ones included).
    pub devices: u32,
    pub legs: u64,
    /// The horizon of retention it was written with.
    pub kept_from: Option<Us>,
}

/// The name a piece is kept under once a newer head builds on it.
pub(super) fn file_name(piece: u64) -> String {
    format!("legs.{piece:016x}.bin")
}

/// Whether `name` is a piece's file name.
fn is_piece(name: &str) -> bool {
    name.strip_prefix("legs.")
        .and_then(|r| r.strip_suffix(".bin"))
        .is_some_and(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// What a write keeps: per piece kept, the devices of it still read there.
#[derive(Debug, Default)]
pub(super) struct Plan {
    kept: HashMap<u64, HashSet<u32>>,
}

impl Plan {
    /// Decides which of the pieces on disk (`chain`, oldest first, the head last) the
    /// checkpoint of `view` keeps, with `horizon` the retention it is written with.
    pub fn of(chain: &[OnDisk], view: &View, horizon: Option<Us>) -> Plan {
        let at: HashMap<u64, &OnDisk> = chain.iter().map(|p| (p.r.piece, p)).collect();
        // the packs that may stay where they are, by piece; and the legs written anyway
        let mut live: HashMap<u64, HashSet<u32>> = HashMap::new();
        let mut legs: HashMap<u64, u64> = HashMap::new();
        let mut written = 0u64;
        for d in view.devices.values() {
            let mut stays = 0;
            for p in d.calls.packs() {
                let Some(o) = p.packed.origin() else { continue };
                let Some(piece) = at.get(&o.piece) else {
                    continue;
                };
                if p.moved.is_empty() && !touched(p, piece.kept_from, horizon) {
                    live.entry(o.piece).or_default().insert(o.entry);
                    *legs.entry(o.piece).or_default() += p.len() as u64;
                    stays += p.len();
                }
            }
            written += (d.calls.len() - stays) as u64;
        }
        let mut kept = Vec::new();
        let (mut carried, mut carrying) = (written, true);
        for p in chain.iter().rev() {
            let l = legs.get(&p.r.piece).copied().unwrap_or(0);
            let fold = l == 0 || 2 * l < p.legs || (carrying && l <= 2 * carried);
            if fold {
                carried += l;
            } else {
                carrying = false;
                kept.push(p.r.piece);
            }
        }
        // (newest first) the newest go beyond the most kept
        let over = kept.len().saturating_sub(MAX_KEPT);
        kept.drain(..over);
        Plan {
            kept: kept
                .into_iter()
                .map(|k| (k, live.remove(&k).unwrap_or_default()))
                .collect(),
        }
    }

    /// Whether `pack` stays in the piece it is kept in (not written again).
    pub fn keeps(&self, pack: &Pack) -> bool {
        pack.packed.origin().is_some_and(|o| {
            self.kept
                .get(&o.piece)
                .is_some_and(|e| e.contains(&o.entry))
        })
    }

    /// How the new head lists the pieces kept (oldest first, as in `chain`), each with its
    /// devices not read there any more.
    pub fn refs(&self, chain: &[OnDisk]) -> Vec<PieceRef> {
        chain
            .iter()
            .filter_map(|p| {
                let live = self.kept.get(&p.r.piece)?;
                let superseded = (0..p.devices).filter(|e| !live.contains(e)).collect();
                Some(PieceRef {
                    file: file_name(p.r.piece),
                    superseded,
                    ..p.r.clone()
                })
            })
            .collect()
    }

    /// Gives every piece kept a name of its own (the head's file is linked under its own
    /// before a new head replaces it).
    pub fn name_kept(&self, log_dir: &Path, chain: &[OnDisk]) -> Result<()> {
        let dir = derived_files::dir(log_dir);
        let mut linked = false;
        for p in chain.iter().filter(|p| self.kept.contains_key(&p.r.piece)) {
            let name = dir.join(file_name(p.r.piece));
            if p.path != name && !name.exists() {
                fs::hard_link(&p.path, &name).map_err(io("linking", &name))?;
                linked = true;
            }
        }
        if linked {
            callstate_log::fsutil::sync_dir(&dir).map_err(io("syncing", &dir))?;
        }
        Ok(())
    }
}

/// Whether retention at `horizon` removes a leg of `pack` (of a piece written with the horizon
/// `kept_from`): then its device's legs of that piece are written again without it.
fn touched(pack: &Pack, kept_from: Option<Us>, horizon: Option<Us>) -> bool {
    let Some(h) = horizon.filter(|&h| kept_from.is_none_or(|k| k < h)) else {
        return false;
    };
    pack.packed.first_start().is_some_and(|s| s < h)
        && pack.legs().any(|k| {
            let (s, e) = pack.packed.span(k);
            LegsRetention::removes(h, s, e)
        })
}

/// Removes the pieces under `log_dir` that the head does not list (`listed`: their file
/// names): those a newer head wrote again, or left by a write cut short.
pub(super) fn remove_unlisted(log_dir: &Path, listed: &[PieceRef]) {
    let Ok(entries) = fs::read_dir(derived_files::dir(log_dir)) else {
        return;
    };
    let listed: HashSet<&str> = listed.iter().map(|r| r.file.as_str()).collect();
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if is_piece(&name) && !listed.contains(&*name) {
            let _ = fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piece_names_are_told_apart_from_the_other_derived_files() {
        let name = file_name(0x00ab_cdef_0123_4567);
        assert_eq!(name, "legs.00abcdef01234567.bin");
        assert!(is_piece(&name));
        for other in [
            "legs.bin",
            "service.bin",
            "legs.bin.tmp-1",
            "legs.00abcdef0123456.bin",
            "legs.00abcdef01234567.bin.tmp-3",
            "legs.00abcdeg01234567.bin",
        ] {
            assert!(!is_piece(other), "{other}");
        }
    }
}
