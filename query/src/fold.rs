//! Retention of intervals: folds the history before a horizon into the log's base
//! ([`Log::fold`]), keeping only what the history from the horizon on derives from:
//! - each device's service events before it reduced to its [`seeds`] (at most three rows:
//!   the event that opened the interval holding the horizon, with what it carried to it);
//! - each source's activity before it reduced to its last two spans that start before it
//!   (what decides whether it is silent at the horizon, when that silence ends, and where
//!   the interval holding the horizon starts);
//! - every other control event (pool configurations, maintenance windows, node and
//!   CTIManager events) kept whole: they are few;
//! - beside it, when the horizon is a whole UTC hour, every device's hourly rollup before it
//!   ([`Frozen`], with those a fold before froze), so that availability and SLA over whole
//!   hours before the horizon are still answered (retention of rollups drops the hours
//!   before its own horizon, `rollups_from`).
//!
//! A derivation of the folded log gives the same intervals from the horizon on as one of the
//! whole log (`query/tests/intervals_retention.rs`); the intervals before it are gone, and
//! questions reaching before it are refused ([`Fleet::intervals_known`]).
//!
//! [`Fleet::intervals_known`]: crate::model::fleet::Fleet::intervals_known

use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::kernels::cmp::neq;
use arrow::datatypes::DataType;
use chrono::DateTime;

use callstate_log::layout::segments_dir;
use callstate_log::segment::read_segment;
use callstate_log::{Folded, Log, SourceSpan, foldable};
use callstate_schemas::batch::EventBatchBuilder;
use callstate_schemas::event::Fields;
use callstate_schemas::{DeviceType, EventView, Kind, Us};

use crate::error::{QueryError, Result};
use crate::live::View;
use crate::model::fleet::Fleet;
use crate::model::frozen::Frozen;
use crate::model::intervals::seeds;
use crate::model::rollup::{UNIT, unit_from};
use crate::model::rows::ServiceRow;

/// Folds the log's history before `horizon` into its base, from `view` (the live state of
/// the log: its devices' service events and sources' spans are what a derivation of its
/// snapshot reads, one device decoded at a time); `None` when the base already keeps
/// history from there or later (the horizon only moves forward), or no segment lies wholly
/// before the horizon yet (a fold would remove nothing) and retention of rollups removes no
/// hour (`rollups_from`: the instant from which the hourly rollups frozen before the horizon
/// are kept, `None`: all of them; a horizon inside an hour freezes none, and is refused
/// when rollups were frozen before). Files replaced go once
/// `grace` has passed for readers holding them. An event for before the horizon appended
/// after `view` is left out like one appended after the fold (`LogRows::horizon`).
pub fn fold_before(
    log: &Log,
    view: &View,
    horizon: Us,
    rollups_from: Option<Us>,
    grace: Duration,
) -> Result<Option<Folded>> {
    let snap = view.snapshot();
    let prior = view.frozen();
    let trims =
        prior.is_some_and(|p| rollups_from.is_some_and(|r| unit_from(r) * UNIT > p.kept_from()));
    let kept_from = snap.base.as_ref().map(|b| b.horizon_us);
    let folding: Vec<String> = match kept_from {
        Some(h) if h >= horizon => Vec::new(),
        _ => snap
            .segments
            .iter()
            .filter(|s| foldable(s, horizon))
            .map(|s| s.file.clone())
            .collect(),
    };
    let horizon = match (folding.is_empty(), kept_from) {
        (false, _) => horizon,
        // nothing (more) wholly before the horizon: nothing to remove, the horizon stays,
        // and the base is written again only for rollups to remove
        (true, Some(h)) if trims => h,
        (true, _) => return Ok(None),
    };
    // (the base before is the view's: the hours it froze are those kept)
    if log.snapshot().base != snap.base {
        return Err(QueryError::Log(callstate_log::LogError::Stale(
            "the live state has not taken in the log's last fold yet".into(),
        )));
    }
    let frozen = if horizon.rem_euclid(UNIT) == 0 {
        let devices = view.devices().map(|d| (d.name(), d.all()));
        let f = Frozen::freeze(
            devices,
            view.windows(),
            prior,
            horizon,
            rollups_from,
            view.last_ingest_time,
        );
        Some(f.encode())
    } else if prior.is_some() {
        return Err(QueryError::Retired(format!(
            "hourly rollups are kept before {}: a horizon of retention of intervals must be \
             a whole UTC hour ({} is not)",
            callstate_schemas::format_instant(prior.map_or(0, Frozen::until)),
            callstate_schemas::format_instant(horizon)
        )));
    } else {
        None
    };
    let mut batches = other_control_rows(snap, &folding)?;
    batches.push(seed_batch(view.service_events(), horizon));
    let mut spans = Vec::new();
    for (source, all) in view.sources() {
        let before = &all[..all.partition_point(|s| s.0 < horizon)];
        spans.extend(
            before[before.len().saturating_sub(2)..]
                .iter()
                .map(|s| SourceSpan {
                    source: source.to_string(),
                    start_us: s.0,
                    end_us: s.1,
                }),
        );
    }
    Ok(Some(log.fold(
        horizon,
        &folding,
        &batches,
        spans,
        frozen.as_deref(),
        grace,
    )?))
}

/// The control events other than service events of the base and of the digests of the
/// segments `folding` (every column).
fn other_control_rows(
    snap: &callstate_log::Snapshot,
    folding: &[String],
) -> Result<Vec<RecordBatch>> {
    let dir = segments_dir(&snap.dir);
    let files = snap.base.iter().map(|b| b.digest.file.clone()).chain(
        snap.segments
            .iter()
            .filter(|s| folding.contains(&s.file))
            .filter_map(|s| s.digest.as_ref().map(|d| d.file.clone())),
    );
    let mut out = Vec::new();
    for file in files {
        for b in read_segment(&dir.join(file), None)? {
            let kind = b
                .column_by_name("kind")
                .ok_or_else(|| QueryError::Data("column kind missing".into()))?;
            let kind = arrow::compute::cast(kind, &DataType::Utf8)?;
            let kind = kind.as_string::<i32>();
            let service = |k: Kind| arrow::array::StringArray::new_scalar(k.as_str());
            let keep = arrow::compute::and(
                &neq(kind, &service(Kind::DeviceInService))?,
                &neq(kind, &service(Kind::DeviceOutOfService))?,
            )?;
            out.push(arrow::compute::filter_record_batch(&b, &keep)?);
        }
    }
    Ok(out)
}

/// Every device's [`seeds`] before `horizon` (`devices` gives each one's events, in time
/// then ingest order), as events-schema rows with the ingest order and times of the events
/// they stand for.
fn seed_batch(devices: impl Iterator<Item = Vec<ServiceRow>>, horizon: Us) -> RecordBatch {
    let mut out = EventBatchBuilder::with_capacity(1024);
    for rows in devices {
        let events: Vec<&ServiceRow> = rows.iter().collect();
        for s in seeds(&events, horizon) {
            let kind = if s.in_service {
                Kind::DeviceInService
            } else {
                Kind::DeviceOutOfService
            };
            let view = EventView {
                source: s.source.as_str(),
                seq: 0,
                time_us: s.time,
                cluster: s.cluster.as_str(),
                fields: Fields {
                    kind,
                    device: Some(s.device.as_str()),
                    device_type: s.device_type.and_then(|t| DeviceType::parse(t.as_str())),
                    node: s.node.map(|n| n.as_str()),
                    device_pool: s.device_pool.map(|p| p.as_str()),
                    cause: s.cause.map(|c| c.as_str()),
                    ..Fields::default()
                },
                extra: None,
            };
            let ingest_time = DateTime::from_timestamp_micros(s.ingest_time).unwrap_or_default();
            out.append_view(&view, s.ingest_seq, ingest_time, 0);
        }
    }
    out.finish()
}
