//! Segment digests: what the state engine needs from a segment, small enough to read on
//! every query.
//!
//! A digest, written next to its segment at roll time and committed with it in the
//! manifest, holds
//! - the segment's *control* events: every kind except the high-volume call, line and
//!   heartbeat kinds (service changes, provider and node events, pool configurations,
//!   maintenance windows…), in a Parquet file with the events schema, sorted like the
//!   segment;
//! - each source's *activity spans*: maximal runs of its event times with no gap over
//!   [`SPAN_GAP_US`]. The union of the spans of all segments, merged across gaps of at most
//!   that size, is exactly what the silence rule (design.md §2) needs of the event times,
//!   so a query never reads heartbeats and calls to find silences.
//!
//! Digests depend only on their own segment, so late events never rewrite one: a query
//! merges the digests of all segments and the unrolled tail.

use std::collections::HashMap;
use std::path::Path;

use arrow::array::{Array, AsArray, BooleanArray, DictionaryArray, RecordBatch};
use arrow::datatypes::{Int32Type, TimestampMicrosecondType};

use callstate_schemas::{Kind, SILENCE_US};

use crate::error::{LogError, Result};
use crate::manifest::{Digest, SegmentMeta, SourceSpan};
use crate::segment::{dictionary, write_segment};

/// Largest gap between two events of a source inside one activity span: the silence rule's
/// 90 s, so that the spans are exactly what the rule needs.
pub const SPAN_GAP_US: i64 = SILENCE_US;

/// The digest of `s` the state engine reads: one built with the silence rule's gap (`None`
/// for a segment without one, or with one of another gap: its events are read instead).
pub fn usable(s: &SegmentMeta) -> Option<&Digest> {
    s.digest.as_ref().filter(|d| d.span_gap_us == SPAN_GAP_US)
}

/// Kinds left out of a digest: one or more per call or per line, and heartbeats.
pub const HIGH_VOLUME_KINDS: &[Kind] = &[
    Kind::CallStarted,
    Kind::CallState,
    Kind::CallEnded,
    Kind::TransferCompleted,
    Kind::DeviceState,
    Kind::AddressInService,
    Kind::AddressOutOfService,
    Kind::CollectorHeartbeat,
];

fn column<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a dyn Array> {
    b.column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| LogError::InvalidBatch(format!("column {name} missing")))
}

/// A dictionary-encoded string column of a batch.
fn dict<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a DictionaryArray<Int32Type>> {
    dictionary(column(b, name)?)
}

/// The control events of a batch (every row whose kind is not high volume).
pub fn control_rows(b: &RecordBatch) -> Result<RecordBatch> {
    let kind = dict(b, "kind")?;
    let names = kind.values().as_string::<i32>();
    let control: Vec<bool> = (0..names.len())
        .map(|v| {
            !(names.is_valid(v)
                && Kind::parse(names.value(v)).is_some_and(|k| HIGH_VOLUME_KINDS.contains(&k)))
        })
        .collect();
    let keep: BooleanArray = (0..kind.len())
        .map(|i| Some(kind.is_null(i) || control[kind.keys().value(i) as usize]))
        .collect();
    Ok(arrow::compute::filter_record_batch(b, &keep)?)
}

/// Activity spans of every source in `batches`, built with a gap of `gap_us`.
pub fn activity_spans(batches: &[RecordBatch], gap_us: i64) -> Result<Vec<SourceSpan>> {
    let mut times: HashMap<String, Vec<i64>> = HashMap::new();
    for b in batches {
        let source = dict(b, "source")?;
        let names = source.values().as_string::<i32>();
        let time = column(b, "time")?.as_primitive::<TimestampMicrosecondType>();
        // Per dictionary value, then per source text (a dictionary may repeat a value).
        let mut by_key: Vec<Vec<i64>> = vec![Vec::new(); names.len()];
        for (i, &k) in source.keys().values().iter().enumerate() {
            if source.is_valid(i) {
                by_key[k as usize].push(time.value(i));
            }
        }
        for (k, t) in by_key.into_iter().enumerate() {
            if !t.is_empty() {
                times
                    .entry(names.value(k).to_string())
                    .or_default()
                    .extend(t);
            }
        }
    }
    let mut out = Vec::new();
    let mut sources: Vec<_> = times.into_iter().collect();
    sources.sort_by(|a, b| a.0.cmp(&b.0));
    for (source, mut t) in sources {
        t.sort_unstable();
        let mut start = t[0];
        let mut end = t[0];
        for &x in &t[1..] {
            if x - end > gap_us {
                out.push(SourceSpan {
                    source: source.clone(),
                    start_us: start,
                    end_us: end,
                });
                start = x;
            }
            end = x;
        }
        out.push(SourceSpan {
            source,
            start_us: start,
            end_us: end,
        });
    }
    Ok(out)
}

/// Writes the digest of the segment of `batches` to `path`, durably; `file` is the name the
/// manifest will record.
pub fn write_digest(path: &Path, file: &str, batches: &[RecordBatch]) -> Result<Digest> {
    let control = batches
        .iter()
        .map(control_rows)
        .collect::<Result<Vec<_>>>()?;
    let meta = write_segment(path, &control)?;
    Ok(Digest {
        file: file.to_string(),
        rows: meta.rows,
        span_gap_us: SPAN_GAP_US,
        spans: activity_spans(batches, SPAN_GAP_US)?,
    })
}
