//! Rolling: the unrolled tail becomes a sorted Parquet segment (and its digest) in the
//! background, committed in the manifest; then the WAL files it covers are deleted.
//!
//! A roll that fails (a full disk, an I/O error, a panic) leaves everything as it was: the
//! WAL keeps the events and readers keep seeing them in the frozen tail. The log then refuses
//! appends; when it recovers from a full disk ([`Log::failure`]) the roll is retried.

use std::fs;
use std::sync::{Arc, MutexGuard};
use std::time::Instant;

use arrow::array::RecordBatch;

use super::append::probe_space;
use super::{Failure, Frozen, Log, Shared, State, write_segment_files};
use crate::dedupe::dense;
use crate::error::{IoContext, Refusal, Result, is_disk_full};
use crate::layout::{digest_file, segment_file, segments_dir, wal_dir, wal_file};
use crate::manifest::Positions;
use crate::notify::Notice;
use crate::wal::{self, WalWriter};

impl Log {
    /// Waits until no roll is in flight (or the one in flight failed); returns the guard.
    pub(super) fn wait_roll<'a>(&'a self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        while st.frozen.as_ref().is_some_and(|f| !f.failed) {
            st = self
                .shared
                .roll_done
                .wait(st)
                .unwrap_or_else(|p| p.into_inner());
        }
        st
    }

    /// Starts a roll once the tail is due; a roll that cannot start now is logged and left
    /// for a later append (the append itself is durable either way).
    pub(super) fn roll_when_due(&self, st: MutexGuard<'_, State>) {
        if st.tail_rows < self.shared.opts.segment_rows {
            return;
        }
        if let Err(e) = self.start_roll(st) {
            tracing::warn!(error = %e, "cannot start a roll now; the tail stays in the WAL");
        }
    }

    /// Rotates the WAL and writes the tail as a segment in the background.
    fn start_roll(&self, st: MutexGuard<'_, State>) -> Result<()> {
        let mut st = self.wait_roll(st);
        self.check_refusal(&mut st)?;
        if st.tail.is_empty() {
            return Ok(());
        }
        let dir = &self.shared.dir;
        let old = st.wal_no;
        let path = wal_dir(dir).join(wal_file(old + 1));
        st.wal = WalWriter::create(&path).ctx(|| format!("creating {}", path.display()))?;
        st.wal_no = old + 1;
        let batches = Arc::new(std::mem::take(&mut st.tail));
        st.tail_rows = 0;
        st.frozen = Some(Frozen {
            batches,
            id: st.take_id(),
            wal_through: old,
            positions: st.positions.clone(),
            failed: false,
        });
        self.spawn_roll(&st)
    }

    /// Restarts the frozen tail's roll after a failure the log recovered from.
    pub(super) fn resume_roll(&self, st: &mut State) -> Result<()> {
        match &mut st.frozen {
            Some(f) if f.failed => f.failed = false,
            _ => return Ok(()),
        }
        self.spawn_roll(st)
    }

    /// Writes the frozen tail in a background thread.
    fn spawn_roll(&self, st: &State) -> Result<()> {
        let f = st.frozen.as_ref().expect("a frozen tail to roll");
        let (shared, batches) = (self.shared.clone(), f.batches.clone());
        let (id, wal_through, positions) = (f.id, f.wal_through, f.positions.clone());
        let handle = std::thread::Builder::new()
            .name("callstate-roll".into())
            .spawn(move || roll(shared, id, wal_through, &batches, positions))
            .ctx(|| "starting a roll thread".into())?;
        // Any previous roll has finished (waited for, or failed): reap its thread.
        let previous = self
            .roller
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(handle);
        if let Some(h) = previous {
            let _ = h.join();
        }
        Ok(())
    }

    /// Writes the whole unrolled tail as a segment now and waits for it.
    pub fn roll_now(&self) -> Result<()> {
        self.start_roll(self.lock())?;
        self.wait_idle()
    }

    /// Waits for an in-flight roll; reports a failed one (or any other refusal).
    pub fn wait_idle(&self) -> Result<()> {
        let mut st = self.wait_roll(self.lock());
        self.check_refusal(&mut st)
    }
}

impl Drop for Log {
    /// Waits for an in-flight roll so that the data directory's lock is free on return.
    fn drop(&mut self) {
        drop(self.wait_roll(self.lock()));
        if let Some(h) = self.roller.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
        }
    }
}

/// The background half of a roll: write the segment, commit it in the manifest, drop the
/// covered WAL files. Waiters are woken however it ends: a roll that fails or panics puts
/// the log in its refusing state (the WAL keeps the events) instead of leaving appends
/// waiting for it forever.
fn roll(
    shared: Arc<Shared>,
    id: u64,
    wal_through: u64,
    batches: &[RecordBatch],
    positions: Positions,
) {
    let name = segment_file(id);
    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        write_and_commit(&shared, id, wal_through, batches, positions)
    }));
    let failure = match done {
        Ok(Ok(())) => None,
        // Parquet may report a full disk only as text: a probe tells
        Ok(Err(e)) => Some(Refusal {
            reason: format!("writing segment {name} failed: {e}"),
            disk_full: e.is_disk_full()
                || probe_space(&shared.dir).is_err_and(|p| is_disk_full(&p)),
        }),
        Err(_) => Some(Refusal {
            reason: format!("writing segment {name} failed: the writer panicked"),
            disk_full: false,
        }),
    };
    if let Some(refusal) = failure {
        tracing::error!(segment = %name, reason = %refusal.reason,
            "a roll failed; the WAL keeps its events");
        let dir = segments_dir(&shared.dir);
        for tmp in [format!("{name}.tmp"), format!("{}.tmp", digest_file(&name))] {
            let _ = fs::remove_file(dir.join(tmp));
        }
        let mut st = shared.lock();
        if let Some(f) = &mut st.frozen {
            f.failed = true;
        }
        st.failed = Some(Failure {
            refusal,
            checked: Instant::now(),
        });
    }
    shared.roll_done.notify_all();
}

fn write_and_commit(
    shared: &Shared,
    id: u64,
    wal_through: u64,
    batches: &[RecordBatch],
    positions: Positions,
) -> Result<()> {
    let dir = &shared.dir;
    let name = segment_file(id);
    let (meta, runs) = write_segment_files(dir, &name, batches)?;
    // keys too scattered to list are settled as bits all the same, when dense enough
    let unlisted = Some(runs).filter(|r| meta.keys.is_none() && dense(r));

    let mut st = shared.lock();
    let mut m = st.manifest.clone();
    m.segments.push(meta.clone());
    m.wal_checkpoint = wal_through;
    m.next_segment_id = m.next_segment_id.max(id + 1);
    m.positions = positions;
    m.store(dir)?;
    st.manifest = m;
    st.frozen = None;
    // Its keys are in the segment now: their hashes can leave memory.
    if let Some(keys) = meta.keys.as_ref().or(unlisted.as_ref()) {
        st.dedupe.settle_segment(keys);
    }
    st.notifier.send(&Notice::Rolled(meta));
    drop(st);
    match wal::list(&wal_dir(dir)) {
        Ok(files) => {
            for (n, path) in files {
                if n <= wal_through {
                    let _ = fs::remove_file(path);
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "covered WAL files not removed"),
    }
    tracing::debug!(segment = %name, "segment committed");
    Ok(())
}
