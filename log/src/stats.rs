//! `callstate log stats`: what the log holds.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, TimestampMicrosecondType};
use serde::Serialize;

use callstate_schemas::format_time;

use crate::error::Result;
use crate::log::snapshot::Snapshot;
use crate::segment::read_segment;

/// Summary of a log.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LogStats {
    /// Events stored (raw events retention removed not counted).
    pub events: u64,
    /// Parquet segments (retired ones not counted).
    pub segments: usize,
    /// Events in segments.
    pub segment_events: u64,
    /// Bytes of the segment files.
    pub segment_bytes: u64,
    /// Segments under half the default roll: what compaction merges.
    pub small_segments: usize,
    /// Events not yet rolled into a segment (held in the WAL).
    pub tail_events: u64,
    /// Events per kind.
    pub per_kind: BTreeMap<String, u64>,
    /// Earliest event time (RFC 3339), if any.
    pub min_time: Option<String>,
    /// Latest event time.
    pub max_time: Option<String>,
    /// Segments whose raw events retention removed (their digests stay).
    pub retired_segments: usize,
    /// The events they held.
    pub retired_events: u64,
    /// The bytes their files held.
    pub retired_bytes: u64,
    /// The earliest and latest event time among them.
    pub retired_min_time: Option<String>,
    /// See `retired_min_time`.
    pub retired_max_time: Option<String>,
    /// Retention of intervals: service history is kept from this instant (null: all of it).
    pub intervals_kept_from: Option<String>,
    /// Segments whose digests were folded into the base (what history before
    /// `intervals_kept_from` derives from, reduced to each device's state there).
    pub folded_segments: u64,
    /// The events those segments held.
    pub folded_events: u64,
    /// Bytes of the base's file.
    pub base_bytes: u64,
}

/// Adds the events of `b` per kind to `per_kind`: by dictionary key when the column is one
/// (as segments store it), else by text.
fn count_kinds(b: &RecordBatch, per_kind: &mut BTreeMap<String, u64>) -> Result<()> {
    let kind = b.column_by_name("kind").expect("kind");
    if let Some(dict) = kind.as_any_dictionary_opt() {
        let values = arrow::compute::cast(dict.values(), &DataType::Utf8)?;
        let values = values.as_string::<i32>();
        let mut n = vec![0u64; values.len()];
        let keys = dict.normalized_keys();
        for (i, k) in keys.into_iter().enumerate() {
            if kind.is_valid(i) {
                n[k] += 1;
            }
        }
        for (k, n) in n.into_iter().enumerate().filter(|(_, n)| *n > 0) {
            *per_kind.entry(values.value(k).to_string()).or_insert(0) += n;
        }
        return Ok(());
    }
    let kind = arrow::compute::cast(kind, &DataType::Utf8)?;
    for k in kind.as_string::<i32>().iter().flatten() {
        *per_kind.entry(k.to_string()).or_insert(0u64) += 1;
    }
    Ok(())
}

impl LogStats {
    /// Computes the stats of a view (reads the segments' `kind` column, one segment at a
    /// time, and the tail's `kind` and `time`).
    pub fn of(snap: &Snapshot) -> Result<LogStats> {
        let mut per_kind = BTreeMap::new();
        let mut min_t = snap.held_segments().map(|s| s.min_time_us).min();
        let mut max_t = snap.held_segments().map(|s| s.max_time_us).max();
        // one segment's kinds at a time (a year of the benchmark fleet held them all: 1.9 GB)
        for seg in snap.held_segments() {
            for b in read_segment(&snap.segment_path(seg), Some(&["kind"]))? {
                count_kinds(&b, &mut per_kind)?;
            }
        }
        for b in &snap.batches {
            count_kinds(b, &mut per_kind)?;
        }
        for b in &snap.batches {
            let t = b
                .column_by_name("time")
                .expect("time")
                .as_primitive::<TimestampMicrosecondType>();
            if t.is_empty() {
                continue;
            }
            let (lo, hi) = (arrow::compute::min(t), arrow::compute::max(t));
            min_t = min_t.into_iter().chain(lo).min();
            max_t = max_t.into_iter().chain(hi).max();
        }
        let fmt = |t: Option<i64>| {
            t.and_then(chrono::DateTime::from_timestamp_micros)
                .map(|t| format_time(&t))
        };
        let segment_events: u64 = snap.held_segments().map(|s| s.rows).sum();
        let retired = snap.retired();
        let retired_events = retired.as_ref().map_or(0, |r| r.events);
        let events = snap.len() - retired_events;
        Ok(LogStats {
            events,
            segments: snap.held_segments().count(),
            segment_events,
            segment_bytes: snap.held_segments().map(|s| s.bytes).sum(),
            small_segments: snap
                .held_segments()
                .filter(|s| s.rows < crate::DEFAULT_SEGMENT_ROWS as u64 / 2)
                .count(),
            tail_events: events - segment_events,
            per_kind,
            min_time: fmt(min_t),
            max_time: fmt(max_t),
            retired_segments: retired.as_ref().map_or(0, |r| r.segments),
            retired_events,
            retired_bytes: retired.as_ref().map_or(0, |r| r.bytes),
            retired_min_time: fmt(retired.as_ref().map(|r| r.min_time_us)),
            retired_max_time: fmt(retired.as_ref().map(|r| r.max_time_us)),
            intervals_kept_from: fmt(snap.base.as_ref().map(|b| b.horizon_us)),
            folded_segments: snap.base.as_ref().map_or(0, |b| b.segments),
            folded_events: snap.base.as_ref().map_or(0, |b| b.events),
            base_bytes: snap.base.as_ref().map_or(0, |b| {
                std::fs::metadata(crate::layout::segments_dir(&snap.dir).join(&b.digest.file))
                    .map_or(0, |m| m.len())
            }),
        })
    }
}
