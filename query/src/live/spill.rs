//! Spilling the packed legs of a start without a checkpoint to a file, so that pairing a
//! long history does not hold every leg on the heap until the first checkpoint is written.
//!
//! While pairing, once the devices' runs of packed legs hold more than a budget of heap
//! bytes, each device's runs since the last spill are merged and written to a new file under
//! the log's `derived/` directory (in the packs' layout: blocks, then the call-id index),
//! which is mapped and unlinked at once (it lives while mapped; nothing is left behind, even
//! by a crash after the unlink; one before it is removed as a leftover by the next start).
//! Each device then reads those legs in place, keeping on the heap the pack's fences and
//! offsets, its Bloom filter and its call-id index's hashes, ~5.5 bytes a leg where a heap
//! pack takes ~28 (pairing asks every run about every new call id: the filter answers
//! nearly all in one word, and the hashes the ~2% it lets through, whose lookups in the file
//! would read its pages all over within seconds); the spilled run is never merged back
//! ([`runs`](super::runs)). The checkpoint written once the start
//! is done reads them back in order and replaces them; its write lets go of the pages it read
//! as it goes.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::Result;

use super::derived_files::{self, io};
use super::mapped::{self, Mapped};
use super::pairing::Pairer;
use super::runs::{self, Pack};

/// Heap bytes of packed legs not spilled yet over which a start spills them (a year of the
/// benchmark fleet packs ~0.8 GB).
pub const SPILL_AT: usize = 192 << 20;

/// Call events paired between two looks at the heap bytes.
pub const CHECK_EVERY: u64 = 1 << 20;

/// When to spill, and what was.
#[derive(Debug)]
pub(super) struct Spiller {
    dir: PathBuf,
    at_bytes: usize,
    check_every: u64,
    events: u64,
    /// Files written.
    pub spills: u64,
    /// Bytes written.
    pub bytes: u64,
}

impl Spiller {
    /// Spills under `log_dir` once packs hold over `at_bytes`, looking every `check_every`
    /// call events.
    pub fn new(log_dir: &Path, at_bytes: usize, check_every: u64) -> Spiller {
        Spiller {
            dir: derived_files::dir(log_dir),
            at_bytes,
            check_every: check_every.max(1),
            events: 0,
            spills: 0,
            bytes: 0,
        }
    }

    /// Counts a call event paired; every `check_every`th, spills the packs of `pairers` (by
    /// device) if they hold over the budget (a spill that fails is logged, and none is tried
    /// again).
    pub fn paired<'a>(&mut self, pairers: impl Iterator<Item = (&'a Arc<str>, &'a mut Pairer)>) {
        self.events += 1;
        if !self.events.is_multiple_of(self.check_every) {
            return;
        }
        if self.spills > 0 {
            // what lookups of call ids read of the files since the last look (legs taken out
            // again)
            mapped::release();
        }
        let mut pairers: Vec<(&Arc<str>, &mut Pairer)> = pairers.collect();
        // (the spilled packs' filters, hashes and fences are not counted: they stay)
        let held: usize = pairers.iter().map(|(_, p)| p.unspilled_bytes()).sum();
        if held <= self.at_bytes {
            return;
        }
        // written in the order of the devices' names, the order a checkpoint reads them in:
        // its write then reads each file in order, not a page here and there (each fault
        // maps 16 pages around it)
        pairers.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut pairers: Vec<&mut Pairer> = pairers.into_iter().map(|(_, p)| p).collect();
        if let Err(e) = self.spill(&mut pairers) {
            // paired on the heap from then on, as without spilling
            tracing::warn!(error = %e, "spilling packed call legs failed; they stay in memory");
            self.at_bytes = usize::MAX;
        }
    }

    /// Writes every pairer's runs since the last spill to a new file, and has them read from
    /// it. On failure every pack stays on the heap.
    fn spill(&mut self, pairers: &mut [&mut Pairer]) -> Result<()> {
        let packs: Vec<Option<Pack>> = pairers
            .iter_mut()
            .map(|p| {
                let (pack, rest) = runs::take_heap(p.runs_mut());
                p.put_back(rest);
                pack
            })
            .collect();
        let path = derived_files::tmp_path(&self.dir.join("legs.bin"), "spill-");
        let mapped = write(&self.dir, &path, &packs).and_then(|at| {
            Ok((
                Mapped::open_shared(&path).map_err(io("mapping", &path))?,
                at,
            ))
        });
        // mapped (or failed): the name goes either way
        let _ = fs::remove_file(&path);
        let (file, at) = match mapped {
            Ok(m) => m,
            Err(e) => {
                for (p, pack) in pairers.iter_mut().zip(packs) {
                    p.runs_mut().extend(pack);
                }
                return Err(e);
            }
        };
        for ((p, pack), (blocks, by_id)) in pairers.iter_mut().zip(packs).zip(at) {
            let Some(mut pack) = pack else { continue };
            // (not shared while pairing; one that were would stay on the heap)
            pack.packed.spill_to(file.clone(), blocks, by_id);
            p.runs_mut().push(pack);
        }
        self.spills += 1;
        self.bytes += file.bytes().len() as u64;
        tracing::info!(
            spills = self.spills,
            bytes = file.bytes().len(),
            "packed call legs spilled to a file while pairing"
        );
        mapped::release();
        Ok(())
    }
}

/// Writes the heap packs' blocks and call-id indexes to a new file at `path` (under `dir`),
/// back to back (each index 2-aligned, as its words): where each pack's are.
fn write(
    dir: &Path,
    path: &Path,
    packs: &[Option<Pack>],
) -> Result<Vec<(Range<usize>, Range<usize>)>> {
    fs::create_dir_all(dir).map_err(io("creating", dir))?;
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io("creating", path))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let err = io("writing", path);
    let mut at = 0usize;
    let mut placed = Vec::with_capacity(packs.len());
    for pack in packs {
        let Some((blocks, by_id)) = pack.as_ref().and_then(|p| p.packed.heap_layout()) else {
            placed.push((0..0, 0..0));
            continue;
        };
        w.write_all(blocks).map_err(&err)?;
        let b = at..at + blocks.len();
        at = b.end;
        let pad = at % 2;
        w.write_all(&[0u8; 1][..pad]).map_err(&err)?;
        at += pad;
        w.write_all(by_id).map_err(&err)?;
        let i = at..at + by_id.len();
        at = i.end;
        placed.push((b, i));
    }
    let file: File = w.into_inner().map_err(|e| err(e.into_error()))?;
    drop(file);
    Ok(placed)
}

#[cfg(test)]
mod tests {
    use callstate_schemas::Us;

    use super::*;

    /// Pairs 3 devices' calls (some ends sent again later) with `spiller` looking every 10
    /// events; each device's complete legs after, as (id, start, end), sorted.
    fn pair(spiller: &mut Spiller) -> Vec<Vec<(String, Us, Us)>> {
        let names: Vec<Arc<str>> = (0..3).map(|d| Arc::from(format!("dev-{d}"))).collect();
        let mut pairers: Vec<Pairer> = (0..3).map(|_| Pairer::new(4)).collect();
        for i in 0..600usize {
            let t = i as Us * 10;
            let p = &mut pairers[i % 3];
            p.add(&format!("c{i}"), true, t, t, None);
            p.add(&format!("c{i}"), false, t + 5, t + 5, None);
            if i % 50 == 49 {
                // an end sent again for a leg long packed (spilled by now): taken out
                p.add(&format!("c{}", i - 48), false, t + 7, t, None);
            }
            spiller.paired(names.iter().zip(pairers.iter_mut()));
        }
        pairers
            .into_iter()
            .map(|p| {
                let (complete, loose) = p.into_calls().checkpoint_parts(|_| false);
                let mut legs: Vec<(String, Us, Us)> = complete
                    .iter()
                    .map(|c| (c.id.to_string(), c.start, c.end))
                    .collect();
                legs.extend(loose.iter().filter_map(|(id, k, _)| {
                    let (s, e) = k.span();
                    Some((id.to_string(), s?, e?))
                }));
                legs.sort();
                legs
            })
            .collect()
    }

    #[test]
    fn spilled_legs_are_read_from_the_file_and_a_failed_spill_keeps_them_on_the_heap() {
        let dir = tempfile::tempdir().unwrap();
        let mut spilling = Spiller::new(dir.path(), 0, 10);
        let spilled = pair(&mut spilling);
        assert!(spilling.spills > 10, "{spilling:?}");
        let left: Vec<_> = fs::read_dir(dir.path().join("derived")).unwrap().collect();
        assert!(left.is_empty(), "the files are unlinked once mapped");
        // a log whose `derived` is not a directory: no spill, every leg kept
        let bad = tempfile::tempdir().unwrap();
        fs::write(bad.path().join("derived"), b"a file").unwrap();
        let mut failing = Spiller::new(bad.path(), 0, 10);
        let kept = pair(&mut failing);
        assert_eq!(failing.spills, 0);
        // and without spilling at all
        let mut never = Spiller::new(dir.path(), usize::MAX, 10);
        let heap = pair(&mut never);
        assert_eq!(never.spills, 0);
        assert_eq!(heap.iter().map(Vec::len).sum::<usize>(), 600);
        assert_eq!(spilled, heap);
        assert_eq!(kept, heap);
    }
}
