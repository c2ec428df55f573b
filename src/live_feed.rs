//! The live demo's feed: one simulation that first backfills the log directly with
//! everything up to now, then keeps running at the wall clock's pace (times `speed`) and
//! posts its events to the server's collector (`POST /api/v1/events`), as a bridge would.
//!
//! The simulator runs on a thread of its own and hands its future events over a bounded
//! channel, so it only runs ahead of the clock by that much; the poster releases each event
//! once the clock reaches it (a late event right after the one before it) and posts what is
//! due every [`POST_EVERY`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};

use callstate_log::Log;
use callstate_schemas::Event;
use callstate_sim::{Scenario, SimError, SinkError};

use crate::cmd_sim::LogWriter;

/// How often due events are posted.
pub const POST_EVERY: Duration = Duration::from_millis(250);
/// Events the simulator may run ahead of the clock.
const AHEAD: usize = 50_000;

/// The poster is gone (the server stopped): ends the simulation.
#[derive(Debug, thiserror::Error)]
#[error("the live feed stopped")]
struct FeedStopped;

/// What the backfill wrote.
#[derive(Debug, Clone, Copy)]
pub struct Backfilled {
    /// Events the log stored.
    pub accepted: u64,
    /// Duplicates it dropped.
    pub duplicates: u64,
}

/// The running feed.
pub struct Feed {
    stop: Arc<AtomicBool>,
    sim: Option<JoinHandle<()>>,
    poster: Option<JoinHandle<()>>,
    future: Option<Receiver<Event>>,
    /// Events posted and acknowledged.
    pub posted: Arc<AtomicU64>,
    /// Simulated time the feed goes live at.
    pub cutoff: DateTime<Utc>,
    speed: f64,
}

/// Runs the simulation of `sc`: events at or before `cutoff` go straight into `log`; the
/// call returns once they are durable, and the simulation waits for [`Feed::post_to`].
pub fn start(
    sc: Scenario,
    seed: u64,
    log: Arc<Log>,
    cutoff: DateTime<Utc>,
    speed: f64,
    mut progress: impl FnMut(DateTime<Utc>, u64) + Send + 'static,
) -> anyhow::Result<(Feed, Backfilled)> {
    let (tx, rx) = sync_channel::<Event>(AHEAD);
    let (done_tx, done_rx) = sync_channel::<anyhow::Result<Backfilled>>(1);
    let sim = std::thread::Builder::new()
        .name("callstate-demo-sim".into())
        .spawn(move || simulate(&sc, seed, &log, cutoff, tx, done_tx, &mut progress))?;
    let backfilled = done_rx
        .recv()
        .context("the simulation ended before reaching now")??;
    Ok((
        Feed {
            stop: Arc::new(AtomicBool::new(false)),
            sim: Some(sim),
            poster: None,
            future: Some(rx),
            posted: Arc::default(),
            cutoff,
            speed,
        },
        backfilled,
    ))
}

fn simulate(
    sc: &Scenario,
    seed: u64,
    log: &Log,
    cutoff: DateTime<Utc>,
    future: SyncSender<Event>,
    done: SyncSender<anyhow::Result<Backfilled>>,
    progress: &mut dyn FnMut(DateTime<Utc>, u64),
) {
    let mut writer = LogWriter::new(log);
    let mut live = false;
    let mut n = 0u64;
    let finish = |writer: &mut LogWriter<'_>| -> anyhow::Result<Backfilled> {
        writer.flush()?;
        log.wait_idle()?;
        Ok(Backfilled {
            accepted: writer.accepted,
            duplicates: writer.duplicates,
        })
    };
    let r = callstate_sim::run(sc, seed, &mut |e: &Event| {
        if !live {
            if e.time <= cutoff {
                n += 1;
                if n.is_multiple_of(8192) {
                    progress(e.time, n);
                }
                return writer.push(e).map_err(SinkError::from);
            }
            live = true;
            let r = finish(&mut writer);
            let failed = r.is_err();
            let _ = done.send(r);
            if failed {
                return Err("the backfill failed".into());
            }
        }
        // the poster gone (the server stopped): the simulation ends
        future
            .send(e.clone())
            .map_err(|_| SinkError::from(FeedStopped))
    });
    if !live {
        // the simulation ended before now: all of it was backfill
        let _ = done.send(
            r.map_err(anyhow::Error::from)
                .and_then(|_| finish(&mut writer)),
        );
    } else if let Err(e) = r
        && !matches!(&e, SimError::Sink(x) if x.is::<FeedStopped>())
    {
        tracing::error!(error = %e, "the demo's simulation stopped");
    }
}

impl Feed {
    /// Starts posting to the collector at `addr`: simulated time runs from the cutoff at
    /// `speed` times the wall clock from now.
    pub fn post_to(&mut self, addr: SocketAddr) {
        let Some(rx) = self.future.take() else {
            return;
        };
        let (stop, posted, cutoff, speed) = (
            self.stop.clone(),
            self.posted.clone(),
            self.cutoff,
            self.speed,
        );
        let url = format!("http://{addr}/api/v1/events");
        self.poster = std::thread::Builder::new()
            .name("callstate-demo-feed".into())
            .spawn(move || post(rx, &url, cutoff, speed, &stop, &posted))
            .ok();
    }

    /// Stops posting and simulating.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.future = None;
        if let Some(p) = self.poster.take() {
            let _ = p.join();
        }
        if let Some(s) = self.sim.take() {
            let _ = s.join();
        }
    }
}

/// The wall-clock instant simulated time `t` is due at.
fn due(t: DateTime<Utc>, cutoff: DateTime<Utc>, started: Instant, speed: f64) -> Instant {
    let sim = (t - cutoff).num_microseconds().unwrap_or(i64::MAX).max(0) as f64;
    started + Duration::from_secs_f64(sim / 1e6 / speed)
}

fn post(
    rx: Receiver<Event>,
    url: &str,
    cutoff: DateTime<Utc>,
    speed: f64,
    stop: &AtomicBool,
    posted: &AtomicU64,
) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into();
    let started = Instant::now();
    let mut clock = cutoff;
    let mut held: Option<Event> = None;
    let mut batch: Vec<Event> = Vec::new();
    let mut last_post = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // the next event, once it is due
        let e = match held.take() {
            Some(e) => e,
            None => match rx.recv_timeout(POST_EVERY) {
                Ok(e) => e,
                Err(RecvTimeoutError::Timeout) => {
                    flush(&agent, url, &mut batch, posted, stop);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            },
        };
        clock = clock.max(e.time);
        let at = due(clock, cutoff, started, speed);
        let now = Instant::now();
        if at > now {
            std::thread::sleep((at - now).min(POST_EVERY));
            held = Some(e);
        } else {
            batch.push(e);
        }
        if last_post.elapsed() >= POST_EVERY {
            flush(&agent, url, &mut batch, posted, stop);
            last_post = Instant::now();
        }
    }
    flush(&agent, url, &mut batch, posted, stop);
}

/// Posts `batch` (retrying while the server answers 503 or is unreachable, until stopped).
fn flush(
    agent: &ureq::Agent,
    url: &str,
    batch: &mut Vec<Event>,
    posted: &AtomicU64,
    stop: &AtomicBool,
) {
    if batch.is_empty() {
        return;
    }
    let mut body = String::with_capacity(batch.len() * 200);
    for e in batch.iter() {
        body.push_str(&e.to_json());
        body.push('\n');
    }
    let mut wait = Duration::from_millis(100);
    loop {
        let r = agent
            .post(url)
            .header("Content-Type", "application/x-ndjson")
            .send(body.as_str());
        match r {
            Ok(r) if r.status().is_success() => {
                posted.fetch_add(batch.len() as u64, Ordering::Relaxed);
                break;
            }
            Ok(r) if r.status().as_u16() != 503 => {
                tracing::error!(status = %r.status(), "the collector refused the demo's events");
                break;
            }
            _ if stop.load(Ordering::Relaxed) => break,
            _ => {
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
    batch.clear();
}
