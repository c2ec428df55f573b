//! The CDR directory collector (`callstate ingest cdr --dir DIR`): the folder the billing
//! server pushes to. A `cdr_*` file is taken once its size has stayed the same for a while
//! (an upload in progress is left alone; `.`-prefixed and `.part`/`.tmp` names never count);
//! `cmr_*` files are skipped. Every event's `(source, seq)` comes from the file and the row,
//! so a file ingested again (a crash mid-file, "Resend on Failure") yields exact duplicates,
//! which the log drops: processed names are remembered in a state file, and on start the
//! files of the last two hours are read again to find the transfers they began.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;
use serde_json::{Value, json};

use callstate_ingest::Appender;
use callstate_schemas::Event;

use super::map::{EVENTS_PER_ROW, Splits, events};
use super::name::{FileName, parse as parse_name};
use super::record::read;
use crate::error::CucmError;
use crate::outbox::append_validated;
use crate::syslog::sidefile::SideFile;

/// Settings of one collector.
#[derive(Debug, Clone)]
pub struct CdrConfig {
    /// The watched directory.
    pub dir: PathBuf,
    /// Cluster id put on every event (files naming another cluster are counted).
    pub cluster: String,
    /// The processed-file list.
    pub state_file: PathBuf,
    /// Rows that could not be read, with file, row, field and reason (NDJSON, rotated).
    pub rejects_file: PathBuf,
    /// A file is complete once its size has not changed for this long.
    pub settle: Duration,
    /// Time between two scans of the directory.
    pub scan_every: Duration,
}

impl CdrConfig {
    /// Defaults for `cluster` watching `dir`, state under `state_dir`.
    pub fn new(cluster: &str, dir: PathBuf, state_dir: &Path) -> CdrConfig {
        CdrConfig {
            dir,
            cluster: cluster.to_string(),
            state_file: state_dir.join(format!("cdr-{cluster}.processed")),
            rejects_file: state_dir.join(format!("cdr-{cluster}.rejects.ndjson")),
            settle: Duration::from_secs(3),
            scan_every: Duration::from_secs(1),
        }
    }
}

/// What the collector has done.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CdrStatus {
    /// Files ingested.
    pub files: u64,
    /// End-of-call records read.
    pub records: u64,
    /// Events stored (or already stored: a file read again).
    pub events: u64,
    /// Transfers reconstructed.
    pub transfers: u64,
    /// Rows that could not be read (rejects file).
    pub rejected_rows: u64,
    /// Files that are not CDR files or could not be read at all.
    pub bad_files: u64,
    /// `cmr_*` files skipped.
    pub cmr_files: u64,
    /// Files whose cluster id is not the configured one (ingested anyway).
    pub cluster_id_mismatches: u64,
    /// Split records waiting for their transfer's final record.
    pub pending_splits: usize,
    /// The last error.
    pub last_error: Option<String>,
}

/// A CDR directory collector.
pub struct CdrCollector {
    cfg: CdrConfig,
    out: Arc<dyn Appender>,
    processed: BTreeSet<String>,
    splits: Splits,
    seen: HashMap<String, (u64, Instant)>,
    rejects: SideFile,
    status: Arc<Mutex<CdrStatus>>,
}

/// Rows a file may have within the sequence-number layout (file seq × 2²⁰ + row × 16 + event).
const MAX_ROWS: usize = (1 << 20) / EVENTS_PER_ROW as usize - 1;

impl CdrCollector {
    /// A collector; re-reads the last two hours of processed files for their transfers.
    pub fn new(cfg: CdrConfig, out: Arc<dyn Appender>) -> Result<CdrCollector, CucmError> {
        let io =
            |e: std::io::Error| CucmError::Config(format!("{}: {e}", cfg.state_file.display()));
        let processed: BTreeSet<String> = match fs::read_to_string(&cfg.state_file) {
            Ok(t) => t
                .lines()
                .map(str::to_string)
                .filter(|l| !l.is_empty())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(e) => return Err(io(e)),
        };
        let rejects = SideFile::new(cfg.rejects_file.clone(), 64 << 20);
        let mut c = CdrCollector {
            cfg,
            out,
            processed,
            splits: Splits::default(),
            seen: HashMap::new(),
            rejects,
            status: Arc::new(Mutex::new(CdrStatus::default())),
        };
        // the transfers begun in files already processed: their events are duplicates now
        let newest = c
            .processed
            .iter()
            .filter_map(|n| parse_name(n))
            .map(|n| n.minute)
            .max();
        if let Some(newest) = newest {
            let recent: Vec<String> = c
                .processed
                .iter()
                .filter(|n| {
                    parse_name(n).is_some_and(|f| newest - f.minute <= chrono::Duration::hours(2))
                })
                .cloned()
                .collect();
            for n in recent {
                let path = c.cfg.dir.join(&n);
                if path.is_file() {
                    c.ingest(&path, &n, false)?;
                }
            }
        }
        Ok(c)
    }

    /// A handle on the status.
    pub fn status(&self) -> Arc<Mutex<CdrStatus>> {
        self.status.clone()
    }

    fn with_status(&self, f: impl FnOnce(&mut CdrStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// One scan: ingests every complete new file (all of them with `all`), oldest first.
    pub fn scan(&mut self, all: bool) -> Result<usize, CucmError> {
        let entries = fs::read_dir(&self.cfg.dir).map_err(|e| {
            CucmError::Config(format!("cannot read {}: {e}", self.cfg.dir.display()))
        })?;
        let mut ready: Vec<(FileName, String)> = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.')
                || name.ends_with(".part")
                || name.ends_with(".tmp")
                || name.ends_with(".filepart")
            {
                continue;
            }
            if self.processed.contains(&name) {
                continue;
            }
            let Some(f) = parse_name(&name) else { continue };
            let Ok(meta) = e.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            // complete once its size has stayed the same for `settle`
            let now = Instant::now();
            let stable = match self.seen.get(&name) {
                Some(&(len, since)) if len == meta.len() => {
                    now.duration_since(since) >= self.cfg.settle
                }
                _ => {
                    self.seen.insert(name.clone(), (meta.len(), now));
                    false
                }
            };
            if all || stable {
                ready.push((f, name));
            }
        }
        ready.sort_by(|a, b| (a.0.minute, a.0.seq, &a.1).cmp(&(b.0.minute, b.0.seq, &b.1)));
        let n = ready.len();
        for (f, name) in ready {
            if f.tag == "cmr" {
                self.with_status(|s| s.cmr_files += 1);
            } else {
                self.ingest(&self.cfg.dir.join(&name), &name, true)?;
            }
            self.remember(&name)?;
            self.seen.remove(&name);
        }
        Ok(n)
    }

    fn remember(&mut self, name: &str) -> Result<(), CucmError> {
        let io = |e: std::io::Error| {
            CucmError::Config(format!("{}: {e}", self.cfg.state_file.display()))
        };
        if let Some(d) = self.cfg.state_file.parent() {
            fs::create_dir_all(d).map_err(io)?;
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.cfg.state_file)
            .map_err(io)?;
        writeln!(f, "{name}").map_err(io)?;
        f.sync_all().map_err(io)?;
        self.processed.insert(name.to_string());
        Ok(())
    }

    /// Reads one file and appends its events (`count`: a new file, counted in the status).
    fn ingest(&mut self, path: &Path, name: &str, count: bool) -> Result<(), CucmError> {
        let Some(f) = parse_name(name) else {
            return Ok(());
        };
        let bytes =
            fs::read(path).map_err(|e| CucmError::Config(format!("{}: {e}", path.display())))?;
        let file = match read(&bytes) {
            Ok(file) => file,
            Err(why) => {
                self.reject(name, None, None, &why);
                self.with_status(|s| s.bad_files += 1);
                return Ok(());
            }
        };
        if f.cluster != self.cfg.cluster {
            self.with_status(|s| s.cluster_id_mismatches += 1);
        }
        let source = format!("cdr:{}:{}", self.cfg.cluster, f.node);
        let mut out: Vec<Event> = Vec::new();
        let mut transfers = 0;
        for r in &file.records {
            if r.row > MAX_ROWS {
                self.reject(
                    name,
                    Some(r.row),
                    None,
                    "more rows than the sequence-number layout holds",
                );
                continue;
            }
            for (i, p) in events(r, &mut self.splits) {
                if matches!(p.body, callstate_schemas::Body::TransferCompleted { .. }) {
                    transfers += 1;
                }
                let mut extra = p.extra;
                extra.insert("cdr_file".into(), json!(name));
                out.push(Event {
                    source: source.clone(),
                    seq: (f.seq << 20) + (r.row as u64) * EVENTS_PER_ROW + i,
                    time: p.time,
                    cluster: self.cfg.cluster.clone(),
                    body: p.body,
                    extra: Some(Value::Object(extra).to_string()),
                });
            }
        }
        for e in &file.errors {
            self.reject(name, Some(e.row), e.field.as_deref(), &e.reason);
        }
        let flushed = append_validated(&source, &out, self.out.as_ref())?;
        self.splits.expire(f.minute - chrono::Duration::hours(2));
        let pending = self.splits.len();
        let rejected = file.errors.len() as u64;
        if count {
            self.with_status(|s| {
                s.files += 1;
                s.records += file.records.len() as u64;
                s.events += flushed.stored as u64;
                s.transfers += transfers;
                s.rejected_rows += rejected;
                s.pending_splits = pending;
            });
        }
        Ok(())
    }

    fn reject(&mut self, file: &str, row: Option<usize>, field: Option<&str>, reason: &str) {
        let rec = json!({"file": file, "row": row, "field": field, "reason": reason});
        if let Err(e) = self
            .rejects
            .write(Utc::now(), rec)
            .and_then(|()| self.rejects.flush())
        {
            self.with_status(|s| s.last_error = Some(format!("rejects file: {e}")));
        }
    }

    /// Scans until `stop`, every `scan_every`.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<(), CucmError> {
        while !stop.load(Ordering::Relaxed) {
            if let Err(e) = self.scan(false) {
                tracing::warn!(error = %e, "CDR scan failed: retried");
                self.with_status(|s| s.last_error = Some(e.to_string()));
            }
            std::thread::sleep(self.cfg.scan_every);
        }
        Ok(())
    }
}
