//! A file mapped read-only into memory: its pages are read from disk when first touched and
//! stay the kernel's to drop under memory pressure (they count in RSS while mapped in, but
//! as file pages, not the process's own). The files mapped here are written whole to a new
//! name and renamed into place, never written in place, so a mapping never sees them change.

use std::fs::File;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Numbers the mappings of this process (a mapping's address may be reused by a later one).
static MAPPINGS: AtomicU64 = AtomicU64::new(0);

/// The mappings [`release`] lets go of.
static OPEN: Mutex<Vec<Weak<Mapped>>> = Mutex::new(Vec::new());

/// Lets go of the pages of every mapping opened with [`Mapped::open_shared`] that are mapped
/// in: they stay in the kernel's page cache (reclaimable, outside the process's memory), and
/// a later read maps them in again from there. What a question touched in the mapped state
/// is thus not held past it: the process keeps its own memory and what the questions in
/// flight read. Safe at any time: the files never change, so a page read again holds the same
/// bytes; a reader at work meanwhile only faults its page in again.
pub fn release() {
    let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
    open.retain(|m| match m.upgrade() {
        Some(m) => {
            m.advise(0..m.len, libc::MADV_DONTNEED);
            true
        }
        None => false,
    });
}

/// The mappings opened with [`Mapped::open_shared`] that are still held.
pub fn open_now() -> Vec<Arc<Mapped>> {
    let open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
    open.iter().filter_map(Weak::upgrade).collect()
}

/// A read-only mapping of a whole file.
#[derive(Debug)]
pub struct Mapped {
    /// Its number in this process: what was read from it is told apart by it.
    pub number: u64,
    at: *const u8,
    len: usize,
    /// The part read with the kernel's read-ahead (the rest at random).
    ahead: Mutex<Range<usize>>,
}

// SAFETY: the mapping is read-only and lives until drop; `&[u8]` to it may be shared.
unsafe impl Send for Mapped {}
unsafe impl Sync for Mapped {}

impl Mapped {
    /// Maps `path`. Reads will be random (no read-ahead around what is touched) but for a part
    /// given to [`Mapped::read_ahead`].
    pub fn open(path: &Path) -> std::io::Result<Mapped> {
        let file = File::open(path)?;
        let len = usize::try_from(file.metadata()?.len())
            .map_err(|_| std::io::Error::other("file too large to map"))?;
        if len == 0 {
            return Ok(Mapped {
                number: MAPPINGS.fetch_add(1, Ordering::Relaxed),
                at: std::ptr::null(),
                len: 0,
                ahead: Mutex::new(0..0),
            });
        }
        // SAFETY: a fresh read-only private mapping of an open file descriptor; checked for
        // failure below; the descriptor may close once mapped.
        let at = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if at == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: advice on the range just mapped; failure only loses the hint
        unsafe { libc::madvise(at, len, libc::MADV_RANDOM) };
        Ok(Mapped {
            number: MAPPINGS.fetch_add(1, Ordering::Relaxed),
            at: at as *const u8,
            len,
            ahead: Mutex::new(0..0),
        })
    }

    /// Whether `bytes` lie in this mapping (read in place from it).
    pub fn holds(&self, bytes: &[u8]) -> bool {
        let (at, p) = (self.at as usize, bytes.as_ptr() as usize);
        self.len > 0 && at <= p && p.saturating_add(bytes.len()) <= at + self.len
    }

    /// [`Mapped::open`], shared, and let go of by [`release`].
    pub fn open_shared(path: &Path) -> std::io::Result<Arc<Mapped>> {
        let m = Arc::new(Mapped::open(path)?);
        let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|m| m.strong_count() > 0);
        open.push(Arc::downgrade(&m));
        Ok(m)
    }

    fn advise(&self, range: Range<usize>, advice: libc::c_int) {
        // whole pages: the mapping starts on one
        let page = 4096;
        let start = range.start / page * page;
        let end = range.end.min(self.len);
        if self.len == 0 || start >= end {
            return;
        }
        // SAFETY: advice on pages inside the range `open` mapped; failure only loses the hint
        unsafe { libc::madvise(self.at.add(start) as *mut libc::c_void, end - start, advice) };
    }

    /// Reads `range` with the kernel's read-ahead: a part walked in file order by most
    /// questions (a fleet snapshot reads every device's legs in turn), where reading a page
    /// at a time would make one disk read per device.
    pub fn read_ahead(&self, range: Range<usize>) {
        self.advise(range.clone(), libc::MADV_NORMAL);
        *self.ahead.lock().unwrap_or_else(|p| p.into_inner()) = range;
    }

    /// Tells the kernel how the mapping is read from now on: `in_order` (a whole walk, as a
    /// checkpoint write makes: read ahead) or as usual (at random but for the part given to
    /// [`Mapped::read_ahead`]).
    pub fn read_in_order(&self, in_order: bool) {
        if in_order {
            self.advise(0..self.len, libc::MADV_SEQUENTIAL);
        } else {
            self.advise(0..self.len, libc::MADV_RANDOM);
            let ahead = self.ahead.lock().unwrap_or_else(|p| p.into_inner()).clone();
            self.advise(ahead, libc::MADV_NORMAL);
        }
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `len` bytes mapped readable at `at` until drop
        unsafe { std::slice::from_raw_parts(self.at, self.len) }
    }
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: unmaps exactly what `open` mapped; no borrow of `bytes` outlives self
            unsafe { libc::munmap(self.at as *mut libc::c_void, self.len) };
        }
    }
}

/// A mapped file read in order while it lives (read at random again after): a checkpoint
/// written from the last, a service file compared at a start.
pub struct InOrder(Arc<Mapped>);

impl InOrder {
    /// `file`, read in order until this is dropped.
    pub fn new(file: Arc<Mapped>) -> InOrder {
        file.read_in_order(true);
        InOrder(file)
    }
}

impl Drop for InOrder {
    fn drop(&mut self) {
        self.0.read_in_order(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kB of the process's memory resident in the mapping at `at` (from
    /// `/proc/self/smaps`).
    fn resident_kb(at: *const u8) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let start = format!("{:x}-", at as usize);
        let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&start));
        lines.next().expect("the mapping is listed");
        let rss = lines.find(|l| l.starts_with("Rss:")).unwrap();
        rss.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn release_lets_go_of_the_pages_read_and_they_read_the_same_after() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let content: Vec<u8> = (0..4 << 20).map(|k: u32| (k * 7 % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let m = Mapped::open_shared(&path).unwrap();
        let sum = |b: &[u8]| b.iter().map(|&x| u64::from(x)).sum::<u64>();
        assert_eq!(sum(m.bytes()), sum(&content));
        assert!(resident_kb(m.at) >= 4 << 10, "every page read is mapped in");
        release();
        assert_eq!(resident_kb(m.at), 0, "let go of");
        assert_eq!(m.bytes(), &content[..], "read again, the same");
        assert!(resident_kb(m.at) >= 4 << 10);
        // a mapping dropped is forgotten; one opened alone is not let go of
        drop(m);
        let alone = Mapped::open(&path).unwrap();
        assert_eq!(sum(alone.bytes()), sum(&content));
        release();
        assert!(resident_kb(alone.at) >= 4 << 10);
        assert!(OPEN.lock().unwrap().iter().all(|w| w.strong_count() > 0));
    }
}
