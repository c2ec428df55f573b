//! Appending: dedupe, stamp, one synced WAL record per append, then tell subscribers.
//!
//! A failed WAL write takes its dedupe keys back and cuts the WAL file back to its last good
//! record, so the log stays consistent. It then refuses appends: for good after an I/O error
//! (until reopened), or, when the file system is full, until a probe shows there is space
//! again ([`Log::failure`] re-checks at most once a second), after which it resumes by itself.

use std::fs;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{BooleanArray, RecordBatch, TimestampMicrosecondArray, UInt64Array};
use chrono::Utc;

use callstate_schemas::{Event, EventBatchBuilder};

use super::record::encode;
use super::{AppendResult, Failure, Log, Outcome, State};
use crate::dedupe::{BatchKeys, Check, verdict};
use crate::error::{LogError, Refusal, Result, is_disk_full};
use crate::layout::wal_dir;
use crate::manifest::Positions;
use crate::notify::Notice;

/// How often a log refusing appends for a full disk checks for space again.
const RECHECK: Duration = Duration::from_secs(1);
/// Bytes the space probe writes: a typical append's record fits.
const PROBE_BYTES: usize = 1 << 20;

/// The `events` batch of `events` (content hashes computed; `ingest_seq` and `ingest_time`
/// left for the log to set), as [`Log::append_batch`] takes it.
pub fn events_batch(events: &[Event]) -> RecordBatch {
    let mut builder = EventBatchBuilder::with_capacity(events.len());
    for e in events {
        let view = e.view();
        builder.append_unstamped(&view, view.content_hash());
    }
    builder.finish()
}

/// `batch` with the rows that `res` accepts, numbered from `first_seq`, stamped `now`.
fn stamp(batch: &RecordBatch, res: &AppendResult, first_seq: u64, now: i64) -> Result<RecordBatch> {
    let kept = if res.accepted == batch.num_rows() {
        batch.clone()
    } else {
        let keep: BooleanArray = res
            .outcomes
            .iter()
            .map(|o| Some(matches!(o, Outcome::Accepted(_))))
            .collect();
        arrow::compute::filter_record_batch(batch, &keep)?
    };
    let schema = kept.schema();
    let mut columns = kept.columns().to_vec();
    let n = kept.num_rows() as u64;
    columns[schema.index_of("ingest_seq")?] =
        Arc::new(UInt64Array::from_iter_values(first_seq..first_seq + n));
    columns[schema.index_of("ingest_time")?] =
        Arc::new(TimestampMicrosecondArray::from_value(now, n as usize).with_timezone("UTC"));
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// Writes, syncs and removes a probe file in the WAL directory: whether there is room for
/// an append again.
pub(super) fn probe_space(dir: &std::path::Path) -> std::io::Result<()> {
    let path = wal_dir(dir).join("space.probe");
    let written = fs::File::create(&path).and_then(|mut f| {
        f.write_all(&vec![0u8; PROBE_BYTES])?;
        f.sync_all()
    });
    let _ = fs::remove_file(&path);
    written
}

impl Log {
    /// Appends events durably: when this returns `Ok`, every accepted event is on disk.
    ///
    /// Each event is checked against the `(source, seq)` index (duplicates in the same call
    /// included). All accepted events of one call share one `ingest_time`.
    pub fn append(&self, events: &[Event]) -> Result<AppendResult> {
        self.append_at(events, None)
    }

    /// [`Log::append`] that also stores input positions in the same durable record (written
    /// even when no event is new), so that they are durable exactly when the events are.
    pub fn append_at(
        &self,
        events: &[Event],
        positions: Option<&Positions>,
    ) -> Result<AppendResult> {
        let batch = events_batch(events);
        self.append_batch(&batch, positions)
    }

    /// Appends an `events` batch (as [`events_batch`] builds it) durably, like
    /// [`Log::append_at`]: rows are deduplicated by their `source`, `seq` and `content_hash`
    /// columns, and the log sets `ingest_seq` and `ingest_time` (the batch's values of those
    /// two columns are ignored). One outcome per row.
    pub fn append_batch(
        &self,
        batch: &RecordBatch,
        positions: Option<&Positions>,
    ) -> Result<AppendResult> {
        if batch.schema().fields() != callstate_schemas::events_schema().fields() {
            return Err(LogError::InvalidBatch(
                "append_batch needs a batch of the events schema".into(),
            ));
        }
        let keys = BatchKeys::of(batch)?;
        let mut st = self.lock();
        self.check_refusal(&mut st)?;
        let now = Utc::now().timestamp_micros().max(st.last_ingest_time_us);
        let first_seq = st.next_ingest_seq;
        let mut res = AppendResult {
            outcomes: Vec::with_capacity(batch.num_rows()),
            ..AppendResult::default()
        };
        // A key enters the index before its record is durable; a failed write takes the
        // keys of this batch back.
        let mut settled = Vec::new();
        keys.check_insert(&mut st.dedupe, |check| {
            let row = res.outcomes.len();
            res.outcomes.push(match check {
                Check::New => {
                    res.accepted += 1;
                    Outcome::Accepted(first_seq + res.accepted as u64 - 1)
                }
                Check::Duplicate => Outcome::Duplicate,
                Check::Conflict => Outcome::Conflict,
                Check::Settled => {
                    settled.push(row);
                    Outcome::Duplicate
                }
            })
        });
        // Re-sent events of the segments: compare with the hash stored there.
        for row in settled {
            let (source, seq, hash) = keys.key(row);
            let State {
                settled, manifest, ..
            } = &mut *st;
            match settled.get(&self.shared.dir, manifest, source, seq) {
                Ok(Some(stored)) if verdict(stored, hash) == Check::Conflict => {
                    res.outcomes[row] = Outcome::Conflict
                }
                Ok(_) => {}
                Err(e) => {
                    keys.remove(&mut st.dedupe, |row| {
                        matches!(res.outcomes[row], Outcome::Accepted(_))
                    });
                    return Err(e);
                }
            }
        }
        for o in &res.outcomes {
            match o {
                Outcome::Duplicate => res.duplicates += 1,
                Outcome::Conflict => res.conflicts += 1,
                Outcome::Accepted(_) | Outcome::Queued => {}
            }
        }
        if res.accepted == 0 && positions.is_none() {
            return Ok(res);
        }
        let good_len = st.wal.len();
        let mut payload = std::mem::take(&mut st.encode_buf);
        let stored = (res.accepted > 0)
            .then(|| stamp(batch, &res, first_seq, now))
            .transpose()
            .and_then(|stored| {
                encode(&mut payload, stored.as_ref(), positions)?;
                Ok(stored)
            });
        let written = stored.and_then(|stored| {
            st.wal
                .append(&payload)
                .and_then(|()| st.wal.sync())
                .map_err(|e| LogError::io("writing the WAL", e))?;
            Ok(stored)
        });
        st.encode_buf = payload;
        let stored = match written {
            Ok(stored) => stored,
            Err(e) => return Err(self.fail_append(&mut st, &keys, &res, good_len, e)),
        };
        if let Some(p) = positions {
            st.positions.extend(p.iter().map(|(k, v)| (k.clone(), *v)));
        }
        let Some(stored) = stored else {
            return Ok(res);
        };
        st.next_ingest_seq = first_seq + res.accepted as u64;
        self.shared
            .version
            .store(st.next_ingest_seq - 1, std::sync::atomic::Ordering::Release);
        st.last_ingest_time_us = now;
        st.tail_rows += stored.num_rows();
        if st.notifier.any() {
            st.notifier.send(&Notice::Appended(stored.clone()));
        }
        st.tail.push(stored);
        self.roll_when_due(st);
        Ok(res)
    }

    /// Undoes a failed append (its keys, the WAL bytes after the last good record) and puts
    /// the log in its refusing state; returns the error to give the caller.
    fn fail_append(
        &self,
        st: &mut State,
        keys: &BatchKeys<'_>,
        res: &AppendResult,
        good_len: u64,
        e: LogError,
    ) -> LogError {
        keys.remove(&mut st.dedupe, |row| {
            matches!(res.outcomes[row], Outcome::Accepted(_))
        });
        let disk_full = e.is_disk_full();
        let rewound = st.wal.rewind(good_len);
        let reason = match &rewound {
            Ok(()) if disk_full => {
                format!("the disk is full ({e}); appends resume once there is space")
            }
            Ok(()) => format!("WAL write failed: {e}"),
            Err(r) => format!("WAL write failed ({e}) and the WAL could not be cut back ({r})"),
        };
        tracing::error!(%reason, "the log refuses appends");
        let refusal = Refusal {
            reason,
            disk_full: disk_full && rewound.is_ok(),
        };
        st.failed = Some(Failure {
            refusal: refusal.clone(),
            checked: Instant::now(),
        });
        LogError::Refused(refusal)
    }

    /// `Err` when the log refuses appends; a full disk is re-checked first (at most once a
    /// [`RECHECK`]), and the log resumes when there is space again.
    pub(super) fn check_refusal(&self, st: &mut State) -> Result<()> {
        let Some(f) = &mut st.failed else {
            return Ok(());
        };
        if f.refusal.disk_full && f.checked.elapsed() >= RECHECK {
            f.checked = Instant::now();
            match probe_space(&self.shared.dir) {
                Ok(()) => {
                    tracing::warn!("there is disk space again: the log takes appends");
                    st.failed = None;
                    return self.resume_roll(st);
                }
                Err(e) if is_disk_full(&e) => {}
                Err(e) => {
                    f.refusal = Refusal {
                        reason: format!("{}; checking for space failed: {e}", f.refusal.reason),
                        disk_full: false,
                    };
                }
            }
        }
        match &st.failed {
            Some(f) => Err(LogError::Refused(f.refusal.clone())),
            None => Ok(()),
        }
    }

    /// Why the log refuses appends, if it does (a failed WAL write or roll, a full disk).
    /// A full disk is re-checked, so this clears by itself once there is space.
    pub fn failure(&self) -> Option<Refusal> {
        let mut st = self.lock();
        self.check_refusal(&mut st).err().map(|e| match e {
            LogError::Refused(r) => r,
            other => Refusal {
                reason: other.to_string(),
                disk_full: false,
            },
        })
    }
}
