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
//!
//! The service file is a chain in the same way ([`service_chain`](super::service_chain)):
//! the naming of pieces, the rule of what a write keeps ([`kept`]), the linking of a head
//! kept and the removal of pieces no head lists are shared.

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

/// The call legs' chain: its pieces are `legs.<id>.bin`.
pub(super) const LEGS: &str = "legs";

/// The name a piece of the chain of `kind` is kept under once a newer head builds on it.
pub(super) fn file_name(kind: &str, piece: u64) -> String {
    format!("{kind}.{piece:016x}.bin")
}

/// A new piece's id (a head's, written from `version`).
pub(super) fn new_id(version: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut h = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&(nanos, version, std::process::id()), &mut h);
    std::hash::Hasher::finish(&h)
}

/// Whether `name` is the file name of a piece of the chain of `kind`.
fn is_piece(kind: &str, name: &str) -> bool {
    name.strip_prefix(kind)
        .and_then(|r| r.strip_prefix('.'))
        .and_then(|r| r.strip_suffix(".bin"))
        .is_some_and(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A piece as the rule of what a write keeps sees it: its id, its size (legs or bytes) and
/// how much of it is still read there if it is kept.
#[derive(Debug, Clone, Copy)]
pub(super) struct Weighed {
    pub piece: u64,
    pub size: u64,
    pub live: u64,
}

/// The pieces a write keeps, of `chain` (oldest first, the head last), with `written` the
/// size written anyway: from the newest back, a piece is written again while what is still
/// read of it is at most twice what is being written (carried on: the new and the newer
/// pieces written again), or when nothing or less than half of it is still read; the
/// newest beyond [`MAX_KEPT`] are written again too. Newest first.
pub(super) fn kept(chain: &[Weighed], written: u64) -> Vec<u64> {
    let mut kept = Vec::new();
    let (mut carried, mut carrying) = (written, true);
    for p in chain.iter().rev() {
        let l = p.live;
        let fold = l == 0 || 2 * l < p.size || (carrying && l <= 2 * carried);
        if fold {
            carried += l;
        } else {
            carrying = false;
            kept.push(p.piece);
        }
    }
    // (newest first) the newest go beyond the most kept
    let over = kept.len().saturating_sub(MAX_KEPT);
    kept.drain(..over);
    kept
}

/// Gives every piece of `kept` (where it is now, its id) a name of its own in the chain of
/// `kind` (the head's file is linked under its own before a new head replaces it), the
/// directory synced if one was linked.
pub(super) fn link_kept<'a>(
    log_dir: &Path,
    kind: &str,
    kept: impl Iterator<Item = (&'a Path, u64)>,
) -> Result<()> {
    let dir = derived_files::dir(log_dir);
    let mut linked = false;
    for (path, piece) in kept {
        let name = dir.join(file_name(kind, piece));
        if path != name && !name.exists() {
            fs::hard_link(path, &name).map_err(io("linking", &name))?;
            linked = true;
        }
    }
    if linked {
        callstate_log::fsutil::sync_dir(&dir).map_err(io("syncing", &dir))?;
    }
    Ok(())
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
        let weighed: Vec<Weighed> = chain
            .iter()
            .map(|p| Weighed {
                piece: p.r.piece,
                size: p.legs,
                live: legs.get(&p.r.piece).copied().unwrap_or(0),
            })
            .collect();
        let kept = kept(&weighed, written);
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
                    file: file_name(LEGS, p.r.piece),
                    superseded,
                    ..p.r.clone()
                })
            })
            .collect()
    }

    /// Gives every piece kept a name of its own (the head's file is linked under its own
    /// before a new head replaces it).
    pub fn name_kept(&self, log_dir: &Path, chain: &[OnDisk]) -> Result<()> {
        let kept = chain.iter().filter(|p| self.kept.contains_key(&p.r.piece));
        link_kept(log_dir, LEGS, kept.map(|p| (p.path.as_path(), p.r.piece)))
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

/// Removes the pieces of the chain of `kind` under `log_dir` that its head does not list
/// (`listed`: their file names): those a newer head wrote again, or left by a write cut
/// short.
pub(super) fn remove_unlisted<'a>(
    log_dir: &Path,
    kind: &str,
    listed: impl Iterator<Item = &'a str>,
) {
    let Ok(entries) = fs::read_dir(derived_files::dir(log_dir)) else {
        return;
    };
    let listed: HashSet<&str> = listed.collect();
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if is_piece(kind, &name) && !listed.contains(&*name) {
            let _ = fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piece_names_are_told_apart_from_the_other_derived_files() {
        let name = file_name(LEGS, 0x00ab_cdef_0123_4567);
        assert_eq!(name, "legs.00abcdef01234567.bin");
        assert!(is_piece(LEGS, &name));
        assert!(!is_piece("service", &name));
        assert!(is_piece("service", "service.00abcdef01234567.bin"));
        for other in [
            "legs.bin",
            "service.bin",
            "legs00abcdef01234567.bin",
            "legs.bin.tmp-1",
            "legs.00abcdef0123456.bin",
            "legs.00abcdef01234567.bin.tmp-3",
            "legs.00abcdeg01234567.bin",
        ] {
            assert!(!is_piece(LEGS, other), "{other}");
        }
    }

    #[test]
    fn a_write_keeps_the_pieces_still_read_more_than_twice_what_it_carries() {
        let w = |piece, size, live| Weighed { piece, size, live };
        // oldest first: a large piece, a middle one, a small head
        let chain = [w(1, 1000, 1000), w(2, 300, 300), w(3, 50, 50)];
        // the head (50 <= 2 * 40) is carried; the middle one (300 > 2 * 90) stops the carrying
        assert_eq!(kept(&chain, 40), vec![2, 1]);
        // nothing read of the head: it goes whatever is written; so does the middle one, read
        // less than half
        let chain = [w(1, 1000, 1000), w(2, 300, 100), w(3, 50, 0)];
        assert_eq!(kept(&chain, 1), vec![1]);
        // a lot written carries every piece
        assert!(kept(&chain, 1000).is_empty());
        // past the most kept, the newest go
        let long: Vec<Weighed> = (0..20)
            .map(|k| w(k, 1 << (40 - k), 1 << (40 - k)))
            .collect();
        assert_eq!(
            kept(&long, 0),
            (0..MAX_KEPT as u64).rev().collect::<Vec<_>>()
        );
    }
}
