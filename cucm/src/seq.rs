//! Sequence numbers that survive restarts: the file holds the highest number handed out or
//! reserved; numbers are reserved in blocks (one fsync per block), and a restart continues
//! after the reservation, so a number is never used twice even after a crash.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::CucmError;

/// Numbers reserved per write.
const BLOCK: u64 = 10_000;

/// A persisted sequence.
#[derive(Debug)]
pub struct SeqFile {
    path: PathBuf,
    next: u64,
    reserved: u64,
}

impl SeqFile {
    /// Opens (or creates) the sequence at `path`.
    pub fn open(path: &Path) -> Result<SeqFile, CucmError> {
        let err = |source| CucmError::SeqFile {
            path: path.display().to_string(),
            source,
        };
        let reserved = match fs::read_to_string(path) {
            Ok(text) => text.trim().parse::<u64>().map_err(|e| {
                err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("not a number: {e}"),
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(err(e)),
        };
        Ok(SeqFile {
            path: path.to_path_buf(),
            next: reserved + 1,
            reserved,
        })
    }

    /// The next number.
    pub fn take(&mut self) -> Result<u64, CucmError> {
        if self.next > self.reserved {
            self.reserve(self.next + BLOCK - 1)?;
        }
        let n = self.next;
        self.next += 1;
        Ok(n)
    }

    fn reserve(&mut self, upto: u64) -> Result<(), CucmError> {
        let err = |source| CucmError::SeqFile {
            path: self.path.display().to_string(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).map_err(err)?;
        }
        let tmp = self.path.with_extension("tmp");
        let mut f = fs::File::create(&tmp).map_err(err)?;
        writeln!(f, "{upto}").map_err(err)?;
        f.sync_all().map_err(err)?;
        fs::rename(&tmp, &self.path).map_err(err)?;
        if let Some(dir) = self.path.parent()
            && let Ok(d) = fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        self.reserved = upto;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_never_reuses_a_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/risport-CL1.seq");
        let mut s = SeqFile::open(&path).unwrap();
        let a: Vec<u64> = (0..3).map(|_| s.take().unwrap()).collect();
        assert_eq!(a, vec![1, 2, 3]);
        drop(s); // a crash after handing out 3
        let mut s = SeqFile::open(&path).unwrap();
        let b = s.take().unwrap();
        assert!(b > 3, "{b}");
        std::fs::write(&path, "garbage").unwrap();
        assert!(matches!(
            SeqFile::open(&path),
            Err(CucmError::SeqFile { .. })
        ));
    }
}
