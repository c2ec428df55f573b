//! A bounded NDJSON side file: records with their receive time, rotated when it reaches its
//! size (`file.1` … `file.4` kept), so a flood of odd lines cannot fill the disk.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// Rotations kept.
const KEEP: usize = 4;

/// A rotating NDJSON file, created on first write.
pub struct SideFile {
    path: PathBuf,
    max_bytes: u64,
    file: Option<BufWriter<File>>,
    written: u64,
}

impl SideFile {
    /// A side file at `path`, rotated at `max_bytes`.
    pub fn new(path: PathBuf, max_bytes: u64) -> SideFile {
        SideFile {
            path,
            max_bytes: max_bytes.max(4096),
            file: None,
            written: 0,
        }
    }

    /// Writes one record with `received`.
    pub fn write(&mut self, received: DateTime<Utc>, mut rec: Value) -> std::io::Result<()> {
        if let Value::Object(m) = &mut rec {
            m.insert(
                "received".into(),
                Value::String(callstate_schemas::time::format_time(&received)),
            );
        }
        let mut line = serde_json::to_vec(&rec)?;
        line.push(b'\n');
        if self.file.is_none() || self.written + line.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let f = self.file.as_mut().expect("opened");
        f.write_all(&line)?;
        self.written += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if let Some(mut f) = self.file.take() {
            f.flush()?;
            for i in (1..KEEP).rev() {
                let from = self.rotated(i);
                if from.exists() {
                    std::fs::rename(&from, self.rotated(i + 1))?;
                }
            }
            std::fs::rename(&self.path, self.rotated(1))?;
        } else if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.written = f.metadata()?.len();
        self.file = Some(BufWriter::new(f));
        if self.written >= self.max_bytes {
            // an old file already full: rotate it away first
            return self.rotate();
        }
        Ok(())
    }

    fn rotated(&self, i: usize) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{i}"));
        p.into()
    }

    /// Flushes what was written.
    pub fn flush(&mut self) -> std::io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_rotates_and_keeps_four() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raw.ndjson");
        let mut f = SideFile::new(path.clone(), 4096);
        for i in 0..2000 {
            f.write(
                Utc::now(),
                serde_json::json!({"line": format!("line {i} xxxxxxxxxxxxxxxx")}),
            )
            .unwrap();
        }
        f.flush().unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "raw.ndjson",
                "raw.ndjson.1",
                "raw.ndjson.2",
                "raw.ndjson.3",
                "raw.ndjson.4"
            ]
        );
        for n in &names {
            assert!(std::fs::metadata(dir.path().join(n)).unwrap().len() <= 4096);
        }
        let last = std::fs::read_to_string(&path).unwrap();
        assert!(last.lines().last().unwrap().contains("line 1999"));
    }
}
