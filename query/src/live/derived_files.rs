//! The files the live state writes beside the log, under `<log>/derived/` (the checkpoint of
//! the call legs, the service file, a start's spilled legs): each is written under a name of
//! its own (`<name>.tmp-…`), and a start removes what an interrupted write left.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use callstate_log::fsutil::sync_dir;

use crate::error::{QueryError, Result};

/// The directory under the log's.
const DIR: &str = "derived";

/// The directory of the derived files of the log in `log_dir`.
pub(super) fn dir(log_dir: &Path) -> PathBuf {
    log_dir.join(DIR)
}

/// What failed doing `what` to `path`, for the error of an I/O step.
pub(super) fn io(what: &str, path: &Path) -> impl Fn(std::io::Error) -> QueryError {
    let at = format!("{what} {}", path.display());
    move |e| QueryError::Internal(format!("{at}: {e}"))
}

/// A name beside `path` that no other write uses (of this process, or of another: a
/// process may hold more than one log's live state): `<path>.tmp-<tag><process>-<n>`.
pub(super) fn tmp_path(path: &Path, tag: &str) -> PathBuf {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    let mut name = OsString::from(path.as_os_str());
    name.push(format!(".tmp-{tag}{}-{n}", std::process::id()));
    PathBuf::from(name)
}

/// Replaces the file at `path` (creating its directory): `write` writes it under a
/// [`tmp_path`] (removed if it fails), which is then renamed over `path`, the directory
/// synced. A crash leaves the last file whole.
pub(super) fn replace<T>(path: &Path, write: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
    let dir = path.parent().expect("a derived file has a directory");
    fs::create_dir_all(dir).map_err(io("creating", dir))?;
    let tmp = tmp_path(path, "");
    let written = match write(&tmp) {
        Ok(w) => w,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    fs::rename(&tmp, path).map_err(io("renaming into", path))?;
    sync_dir(dir).map_err(io("syncing", dir))?;
    Ok(written)
}

/// Removes what an interrupted write left (`*.tmp-*` of any process) beside the log in
/// `log_dir`.
pub(super) fn remove_leftovers(log_dir: &Path) {
    let Ok(entries) = fs::read_dir(dir(log_dir)) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().contains(".tmp-") {
            let _ = fs::remove_file(e.path());
        }
    }
}
