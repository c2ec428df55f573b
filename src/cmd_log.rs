//! `callstate log …` and `callstate schema`.

use std::path::Path;

use anyhow::Context;
use callstate_log::{CompactOptions, Log, LogOptions, LogStats, Snapshot};
use callstate_query::live::checkpoint::covered_through;
use callstate_schemas::json_schema::schema_files;

use crate::out::{out, outln};

/// `callstate log stats`: reads the log without locking it, so it works beside a writer.
pub fn stats(data: &Path) -> anyhow::Result<()> {
    let snap = Snapshot::load(data)?;
    let stats = LogStats::of(&snap)?;
    outln!("{}", serde_json::to_string_pretty(&stats)?)?;
    Ok(())
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
/// `legs_from` is its version) and writes the checkpoint of its call legs; prints what it
/// holds and how long each step took.
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
        "derive_s": derived.as_secs_f64(),
        "write_s": (began.elapsed() - derived).as_secs_f64(),
    });
    outln!("{}", serde_json::to_string_pretty(&out)?)?;
    Ok(())
}

/// `callstate log retire --before T`: removes the raw events of the segments wholly before
/// `before` (their digests and key runs stay). Their call legs must be in the checkpoint of
/// the legs: one covering the whole log is written first when the last does not.
pub fn retire(data: &Path, before: &str) -> anyhow::Result<()> {
    // an instant, or a duration back from now (`90d`)
    let before_us = callstate_schemas::parse_instant(before)
        .or_else(|e| {
            callstate_schemas::parse_duration(before)
                .map(|d| chrono::Utc::now().timestamp_micros() - d)
                .map_err(|_| e)
        })
        .with_context(|| format!("--before {before}"))?;
    let log = Log::open(data, LogOptions::default())?;
    let through = match covered_through(&log.snapshot()) {
        Some(v) if v == log.version() => v,
        _ => {
            let live = callstate_query::Live::start(
                &log,
                callstate_query::model::sla::Targets::default(),
            )?;
            live.checkpoint()?.version
        }
    };
    // nobody else reads this log: the files go at once
    let retired = log.retire(before_us, through, std::time::Duration::ZERO)?;
    let stats = LogStats::of(&log.snapshot())?;
    let out = serde_json::json!({ "retired": retired, "legs_checkpoint": through, "stats": stats });
    outln!("{}", serde_json::to_string_pretty(&out)?)?;
    Ok(())
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
