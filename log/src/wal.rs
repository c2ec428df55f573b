//! The write-ahead log: numbered files of checksummed records.
//!
//! File layout: an 8-byte magic, then records `[len: u32 LE][crc32c: u32 LE][payload]`, where
//! the checksum covers the length bytes and the payload. A record is acknowledged only after
//! the file is synced. On recovery, the valid prefix of the last file is kept and a torn or
//! corrupt tail (a write that was never acknowledged) is cut off.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, LogError, Result};
use crate::fsutil::sync_dir;
use crate::layout::parse_wal_file;

/// Magic bytes at the start of every WAL file (format version 1).
pub const MAGIC: &[u8; 8] = b"CSWAL\x00\x00\x01";
const HEADER: usize = 8;
/// Largest record accepted on read; larger lengths are treated as corruption.
pub const MAX_RECORD: usize = 1 << 31;

/// Lists the WAL files in `dir`, sorted by number.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let listing = || format!("listing {}", dir.display());
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).ctx(listing)? {
        let entry = entry.ctx(listing)?;
        if let Some(n) = entry.file_name().to_str().and_then(parse_wal_file) {
            files.push((n, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// Appends records to one WAL file.
pub struct WalWriter {
    file: File,
    len: u64,
}

fn checksum(len: &[u8; 4], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(len), payload)
}

impl WalWriter {
    /// Creates a new, empty WAL file (durably, directory entry included).
    pub fn create(path: &Path) -> io::Result<Self> {
        let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
        file.write_all(MAGIC)?;
        file.sync_all()?;
        sync_dir(path.parent().unwrap_or(Path::new(".")))?;
        Ok(WalWriter {
            file,
            len: HEADER as u64,
        })
    }

    /// Reopens an existing WAL file for appending after its first `valid_len` bytes, cutting
    /// off anything after them.
    pub fn reopen(path: &Path, valid_len: u64) -> io::Result<Self> {
        let file = OpenOptions::new().write(true).open(path)?;
        if file.metadata()?.len() != valid_len {
            file.set_len(valid_len)?;
            file.sync_all()?;
        }
        let mut w = WalWriter {
            file,
            len: valid_len,
        };
        w.file.seek(io::SeekFrom::Start(valid_len))?;
        Ok(w)
    }

    /// Cuts the file back to `len` bytes (the end of its last complete record) after a
    /// failed append, durably, so that the next record follows the last good one.
    pub fn rewind(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.file.seek(io::SeekFrom::Start(len))?;
        self.file.sync_all()?;
        self.len = len;
        Ok(())
    }

    /// Writes one record (not yet durable: call [`WalWriter::sync`]).
    pub fn append(&mut self, payload: &[u8]) -> io::Result<()> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| (*l as usize) < MAX_RECORD)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "WAL record too large"))?;
        let len = len.to_le_bytes();
        let mut head = [0u8; 8];
        head[..4].copy_from_slice(&len);
        head[4..].copy_from_slice(&checksum(&len, payload).to_le_bytes());
        self.file.write_all(&head)?;
        self.file.write_all(payload)?;
        self.len += 8 + payload.len() as u64;
        Ok(())
    }

    /// Makes every appended record durable.
    pub fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Bytes in the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file holds no record.
    pub fn is_empty(&self) -> bool {
        self.len == HEADER as u64
    }
}

/// What a WAL file holds.
#[derive(Debug, Default)]
pub struct WalScan {
    /// Payloads of the valid records, in order.
    pub records: Vec<Vec<u8>>,
    /// Length of the valid prefix (header and valid records).
    pub valid_len: u64,
    /// Bytes after the valid prefix (a torn or corrupt tail), 0 if none.
    pub garbage: u64,
}

/// Reads a WAL file, stopping at the first torn or corrupt record.
pub fn scan(path: &Path) -> Result<WalScan> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| match e.kind() {
            // a concurrent roll removed it: readers retry on this
            io::ErrorKind::NotFound => LogError::io(format!("{} vanished", path.display()), e),
            _ => LogError::io(format!("reading {}", path.display()), e),
        })?;
    let total = bytes.len() as u64;
    if bytes.len() < HEADER || &bytes[..HEADER] != MAGIC {
        // A file created but not yet durable holds nothing acknowledged.
        if bytes.len() < HEADER && MAGIC.starts_with(&bytes) {
            return Ok(WalScan {
                garbage: total,
                ..WalScan::default()
            });
        }
        return Err(LogError::Corrupt {
            path: path.to_path_buf(),
            reason: "not a callstate WAL file".into(),
        });
    }
    let mut pos = HEADER;
    let mut records = Vec::new();
    while pos + 8 <= bytes.len() {
        let len: [u8; 4] = bytes[pos..pos + 4].try_into().expect("4 bytes");
        let crc = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().expect("4 bytes"));
        let n = u32::from_le_bytes(len) as usize;
        let end = pos + 8 + n;
        if n == 0 || n >= MAX_RECORD || end > bytes.len() {
            break;
        }
        let payload = &bytes[pos + 8..end];
        if checksum(&len, payload) != crc {
            break;
        }
        records.push(payload.to_vec());
        pos = end;
    }
    Ok(WalScan {
        records,
        valid_len: pos as u64,
        garbage: total - pos as u64,
    })
}

/// Scans the WAL files in `dir` numbered above `checkpoint`: (number, path, scan) each.
pub fn scan_after(dir: &Path, checkpoint: u64) -> Result<Vec<(u64, PathBuf, WalScan)>> {
    let mut out = Vec::new();
    for (n, path) in list(dir)? {
        if n > checkpoint {
            let scan = scan(&path)?;
            out.push((n, path, scan));
        }
    }
    Ok(out)
}
