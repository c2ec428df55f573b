//! `callstate log …` and `callstate schema`.

use std::path::Path;

use anyhow::Context;
use callstate_log::{CompactOptions, Log, LogOptions, LogStats, Snapshot};
use callstate_query::live::checkpoint::{bytes_on_disk, covered_through, retention};
use callstate_schemas::US_PER_HOUR;
use callstate_schemas::json_schema::schema_files;

use crate::out::{out, outln};

/// `callstate log stats`: reads the log without locking it, so it works beside a writer.
pub fn stats(data: &Path) -> anyhow::Result<()> {
    let snap = Snapshot::load(data)?;
    outln!("{}", serde_json::to_string_pretty(&stats_json(&snap)?)?)?;
    Ok(())
}

/// The log's stats, with what retention removed from the call legs (`retired_legs`,
/// `legs_kept_from`: as the checkpoint of the legs says; 0 and null for none) and the sizes
/// of the derived files beside the segments (`legs_checkpoint_bytes`: every piece of the
/// checkpoint of the legs; `service_file_bytes`: every piece of the service file).
fn stats_json(snap: &Snapshot) -> anyhow::Result<serde_json::Value> {
    let mut v = serde_json::to_value(LogStats::of(snap)?)?;
    let legs = retention(&snap.dir);
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "legs_checkpoint_bytes".into(),
            bytes_on_disk(&snap.dir).into(),
        );
        o.insert(
            "service_file_bytes".into(),
            callstate_query::live::service_chain::bytes_on_disk(&snap.dir).into(),
        );
        o.insert("frozen_rollups".into(), frozen_json(snap)?);
        o.insert("retired_legs".into(), legs.map_or(0, |r| r.removed).into());
        o.insert(
            "legs_kept_from".into(),
            legs.map(|r| callstate_schemas::format_instant(r.kept_from))
                .into(),
        );
    }
    Ok(v)
}

/// The hourly rollups kept before the horizon of retention of intervals: from when (`null`:
/// every hour), until, for how many devices, in how many bytes; `null` when none are.
fn frozen_json(snap: &Snapshot) -> anyhow::Result<serde_json::Value> {
    let Some(f) = callstate_query::model::frozen::frozen_of(
        snap,
        None,
        &callstate_query::model::frozen::read_whole,
    )?
    else {
        return Ok(serde_json::Value::Null);
    };
    let fmt = callstate_schemas::format_instant;
    Ok(serde_json::json!({
        "kept_from": (f.kept_from() > i64::MIN).then(|| fmt(f.kept_from())),
        "until": fmt(f.until()),
        "devices": f.devices(),
        "bytes": snap.base.as_ref().and_then(|b| b.kept.as_ref()).map_or(0, |k| k.bytes),
    }))
}

/// `callstate log roll`.
pub fn roll(data: &Path) -> anyhow::Result<()> {
    let log = Log::open(data, LogOptions::default())?;
    log.roll_now()?;
    let stats = LogStats::of(&log.snapshot())?;
    outln!("{}", serde_json::to_string_pretty(&stats)?)?;
    Ok(())
}

/// `callstate log compact`: merges every run of small segments (the log's lock is needed:
/// not beside a running server, which compacts by itself).
pub fn compact(data: &Path) -> anyhow::Result<()> {
    let log = Log::open(data, LogOptions::default())?;
    let opts = CompactOptions {
        // nobody else reads this log: the replaced files go at once
        grace: std::time::Duration::ZERO,
        ..log.compact_options()
    };
    let done = log.compact_all(&opts)?;
    let stats = LogStats::of(&log.snapshot())?;
    let out = serde_json::json!({ "compactions": done, "stats": stats });
    outln!("{}", serde_json::to_string_pretty(&out)?)?;
    Ok(())
}

/// `callstate log checkpoint`: derives the live state (from the last checkpoint, if any:
/// `legs_from` is its version) and writes the checkpoint of its call legs (and the service
/// file beside it); prints what they hold and how long each step took.
pub fn checkpoint(data: &Path) -> anyhow::Result<()> {
    let log = Log::open(data, LogOptions::default())?;
    let began = std::time::Instant::now();
    let live = callstate_query::Live::start(&log, callstate_query::model::sla::Targets::default())?;
    let derived = began.elapsed();
    let written = live.checkpoint()?;
    let out = serde_json::json!({
        "legs_from": live.legs_from(),
        "version": written.version,
        "devices": written.devices,
        "legs": written.legs,
        "loose_legs": written.loose,
        "bytes": written.bytes,
        "pieces": written.pieces,
        "written_bytes": written.written_bytes,
        "service_file_bytes": callstate_query::live::service_chain::bytes_on_disk(data),
        "service_written_bytes": written.service.map_or(0, |s| s.written_bytes),
        "service_pieces": written.service.map_or(0, |s| s.pieces),
        "derive_s": derived.as_secs_f64(),
        "write_s": (began.elapsed() - derived).as_secs_f64(),
    });
    outln!("{}", serde_json::to_string_pretty(&out)?)?;
    Ok(())
}

/// An instant, or a duration back from now (`90d`), for `flag`.
fn instant_or_age(flag: &str, v: &str) -> anyhow::Result<i64> {
    callstate_schemas::parse_instant(v)
        .or_else(|e| {
            callstate_schemas::parse_duration(v)
                .map(|d| chrono::Utc::now().timestamp_micros() - d)
                .map_err(|_| e)
        })
        .with_context(|| format!("{flag} {v}"))
}

/// `callstate log retire [--before T] [--legs-before T] [--intervals-before T]
/// [--rollups-before T]`: with `intervals_before`, folds the service history before the UTC
/// hour holding it into the log's base, its hourly rollups kept beside it but those before
/// `rollups_before` (`callstate_query::fold`); with `before`, removes the raw
/// events of the segments wholly before it (their digests and key runs stay; their call
/// legs must be in the checkpoint of the legs: one covering the whole log is written first
/// when the last does not); with `legs_before`, writes a checkpoint of the legs without the
/// complete legs that started and ended before it (first, so that it is the one the raw
/// events' retirement relies on).
pub fn retire(
    data: &Path,
    before: Option<&str>,
    legs_before: Option<&str>,
    intervals_before: Option<&str>,
    rollups_before: Option<&str>,
) -> anyhow::Result<()> {
    let before_us = before.map(|b| instant_or_age("--before", b)).transpose()?;
    let intervals_us = intervals_before
        .map(|b| instant_or_age("--intervals-before", b))
        .transpose()?
        .map(|h| h.div_euclid(US_PER_HOUR) * US_PER_HOUR);
    let rollups_us = rollups_before
        .map(|b| instant_or_age("--rollups-before", b))
        .transpose()?;
    let legs_us = legs_before
        .map(|b| instant_or_age("--legs-before", b))
        .transpose()?;
    let log = Log::open(data, LogOptions::default())?;
    // the horizon to fold at: the one asked, or the base's for rollups alone
    let fold_at = intervals_us.or(rollups_us.and(log.snapshot().base.map(|b| b.horizon_us)));
    if let Some(r) = rollups_us {
        match fold_at {
            None => anyhow::bail!(
                "--rollups-before: the hourly rollups are those of the intervals while they \
                 are kept (no --intervals-before, and none were retired)"
            ),
            Some(h) if r > h => anyhow::bail!(
                "--rollups-before {}: rollups are built from intervals, so they are kept at \
                 least as long (intervals are kept from {})",
                callstate_schemas::format_instant(r),
                callstate_schemas::format_instant(h)
            ),
            Some(_) => {}
        }
    }
    // the live state, derived once for whichever retention needs it
    let mut live = None;
    let mut legs = None;
    if let Some(h) = legs_us {
        let w = started(&mut live, &log)?.retain_legs_from(h)?;
        legs = w.retention.map(|r| (r, w.written_bytes, w.bytes));
    }
    let mut out = serde_json::Map::new();
    if let Some(before_us) = before_us {
        let through = match covered_through(&log.snapshot()) {
            Some(v) if v == log.version() => v,
            _ => started(&mut live, &log)?.checkpoint()?.version,
        };
        // nobody else reads this log: the files go at once
        let retired = log.retire(before_us, through, std::time::Duration::ZERO)?;
        out.insert("retired".into(), serde_json::to_value(retired)?);
        out.insert("legs_checkpoint".into(), through.into());
    }
    if let Some(h) = fold_at {
        // nobody else reads this log: the files go at once
        let view = started(&mut live, &log)?.view();
        let folded = callstate_query::fold::fold_before(
            &log,
            &view,
            h,
            rollups_us,
            std::time::Duration::ZERO,
        )?;
        out.insert("intervals_retention".into(), serde_json::to_value(folded)?);
    }
    if legs_us.is_some() {
        let legs = legs.map(|(r, written, bytes)| {
            serde_json::json!({
                "kept_from": callstate_schemas::format_instant(r.kept_from),
                "removed": r.removed,
                "written_bytes": written,
                "bytes": bytes,
            })
        });
        out.insert("legs_retention".into(), legs.into());
    }
    out.insert("stats".into(), stats_json(&log.snapshot())?);
    outln!("{}", serde_json::to_string_pretty(&out)?)?;
    Ok(())
}

/// The live state of `log` in `live`, derived first if it was not.
fn started<'a>(
    live: &'a mut Option<callstate_query::Live>,
    log: &Log,
) -> anyhow::Result<&'a callstate_query::Live> {
    if live.is_none() {
        *live = Some(callstate_query::Live::start(
            log,
            callstate_query::model::sla::Targets::default(),
        )?);
    }
    Ok(live.as_ref().expect("derived above"))
}

/// `callstate schema [--out DIR]`.
pub fn schema(out: Option<&Path>) -> anyhow::Result<()> {
    let files = schema_files();
    match out {
        None => out!("{}", files[0].1)?,
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            for (name, text) in files {
                let path = dir.join(name);
                std::fs::write(&path, text).with_context(|| path.display().to_string())?;
                outln!("{}", path.display())?;
            }
        }
    }
    Ok(())
}
