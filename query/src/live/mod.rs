//! The live derived state: follows the log through its subscription and publishes a new
//! consistent [`View`] after each round of notices.
//!
//! Readers take the current view with one atomic load and keep it as long as they like: they
//! never wait for the applier, and the applier never waits for them (a version is freed when
//! its last reader drops it). A writer that must see its events visible before it answers
//! waits for the applier to reach that version ([`Live::view_at_least`]), which takes one
//! round (milliseconds); readers never wait.

pub mod activity;
pub mod asof;
mod blocks;
pub mod calls;
pub mod checkpoint;
mod derived_files;
pub mod device;
mod hours;
mod mapped;
mod memory;
mod packed;
mod pairing;
mod pieces;
pub mod retention;
mod runs;
pub mod service;
pub mod service_chain;
pub mod service_file;
mod spill;
pub mod state;
pub mod view;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;

use callstate_log::{Log, Notice, Subscription};
use callstate_schemas::Us;

use crate::error::{QueryError, Result};
use crate::model::rows::Interner;
use crate::model::sla::Targets;

pub use asof::{AsOf, AsOfCache};
pub use memory::Memory;
pub use state::State;
pub use view::View;

/// Most notices applied before a new version is published (a catching-up applier still
/// publishes every so often).
const ROUND: usize = 256;

/// Call events paired since the last checkpoint of the legs (or at a start without one)
/// after which the applier writes a new one, in the background.
pub const CHECKPOINT_EVERY: u64 = 1_000_000;

/// How a live state keeps its call legs' memory in bounds.
#[derive(Debug, Clone, Copy)]
pub struct LiveOptions {
    /// Without a checkpoint of the legs, those being paired at the start are spilled to a
    /// file whenever their packs hold over this many heap bytes
    /// ([`State::from_snapshot_spilling`]).
    pub spill_at: usize,
    /// Call events paired between two looks at those bytes.
    pub check_every: u64,
    /// Call events paired since the last checkpoint after which one is written in the
    /// background ([`CHECKPOINT_EVERY`]).
    pub checkpoint_every: u64,
}

impl Default for LiveOptions {
    fn default() -> LiveOptions {
        LiveOptions {
            spill_at: spill::SPILL_AT,
            check_every: spill::CHECK_EVERY,
            checkpoint_every: CHECKPOINT_EVERY,
        }
    }
}

struct Shared {
    current: ArcSwap<View>,
    /// The version published last, for those waiting for a newer one (re-sent when the
    /// applier fails, so that they wake).
    published: tokio::sync::watch::Sender<u64>,
    failed: Mutex<Option<String>>,
    stop: AtomicBool,
    /// The log's directory (where checkpoints of the legs go).
    dir: PathBuf,
    /// Held while a checkpoint or a service file is written.
    writing: Mutex<()>,
    /// [`LiveOptions::checkpoint_every`].
    checkpoint_every: u64,
    /// `View::calls_applied` of the last checkpoint written.
    checkpointed: AtomicU64,
    /// The version of the checkpoint of the legs the start read, if it did.
    legs_from: Option<u64>,
    /// A checkpoint just written, and the version it was written from: the applier takes its
    /// legs in place of those on the heap.
    written: Mutex<Option<(Arc<View>, checkpoint::Checkpoint)>>,
    /// A service file just written, and the version it was written from: the applier reads
    /// the events and intervals of the devices unchanged since from it.
    service_written: Mutex<Option<(Arc<View>, service_chain::ServiceChain)>>,
    /// The horizon of retention of the legs asked for last (`Us::MIN`: none); every
    /// checkpoint written leaves out the legs before it.
    retain_from: AtomicI64,
    /// What the service file this process wrote last was written from ([`ServiceKey`]), and
    /// what it wrote: a write of the same is skipped (a `log checkpoint` right after the
    /// start's write in the background, or the other way round). A file found at the start
    /// is written again even of the same version, which mends one damaged since.
    service_on_disk: Mutex<Option<(ServiceKey, service_file::Written)>>,
}

/// Lets go of the pages of the mapped files (checkpoint of the legs, service file) that
/// questions read: they stay in the kernel's page cache, outside the process's memory,
/// and are mapped in again from there when read. The server calls it once its heavy reads
/// have been quiet for a second.
pub fn release_mapped_pages() {
    mapped::release();
}

/// The live state of one log.
pub struct Live {
    shared: Arc<Shared>,
    as_of: Arc<AsOfCache>,
    applier: Mutex<Option<JoinHandle<()>>>,
}

impl Live {
    /// Derives the state of everything `log` holds, then follows it on a thread of its own.
    pub fn start(log: &Log, targets: Targets) -> Result<Live> {
        Live::start_with(log, targets, LiveOptions::default())
    }

    /// [`Live::start`] with `options`.
    pub fn start_with(log: &Log, targets: Targets, options: LiveOptions) -> Result<Live> {
        let (snap, sub) = log.subscribe();
        derived_files::remove_leftovers(log.dir());
        let began = std::time::Instant::now();
        let mut state =
            State::from_snapshot_spilling(snap, targets, options.spill_at, options.check_every)?;
        let service = service_chain::ServiceChain::open(log.dir()).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the service file is not used");
            None
        });
        let derived = began.elapsed();
        let shared_devices = service.as_ref().map_or(0, |f| state.share(f, None));
        let shared_in = began.elapsed() - derived;
        // written again from the version started at when it misses some of its changes, or
        // some device's history is not as it holds it (a fold of the history since)
        let stale = service.as_ref().is_none_or(|f| {
            f.version() != state.version() || shared_devices < state.devices_with_service_events()
        });
        drop(service);
        state.compact_heap();
        // what the derivation read of the checkpoint and the service file is not held past it
        mapped::release();
        tracing::info!(
            version = state.version(),
            legs_from = state.legs_from(),
            devices_from_service_file = shared_devices,
            derive_s = derived.as_secs_f64(),
            service_file_s = shared_in.as_secs_f64(),
            seconds = began.elapsed().as_secs_f64(),
            "live state derived"
        );
        let view = Arc::new(state.view());
        let version = view.version;
        let shared = Arc::new(Shared {
            published: tokio::sync::watch::Sender::new(version),
            current: ArcSwap::new(view),
            failed: Mutex::new(None),
            stop: AtomicBool::new(false),
            dir: log.dir().to_path_buf(),
            writing: Mutex::new(()),
            checkpoint_every: options.checkpoint_every.max(1),
            checkpointed: AtomicU64::new(0),
            legs_from: state.legs_from(),
            written: Mutex::new(None),
            service_written: Mutex::new(None),
            retain_from: AtomicI64::new(Us::MIN),
            service_on_disk: Mutex::new(None),
        });
        if stale {
            service_file_in_background(&shared);
        }
        let s = shared.clone();
        let applier = std::thread::Builder::new()
            .name("callstate-live".into())
            .spawn(move || follow(state, sub, &s))
            .map_err(|e| QueryError::Internal(format!("starting the live applier: {e}")))?;
        Ok(Live {
            shared,
            as_of: Arc::default(),
            applier: Mutex::new(Some(applier)),
        })
    }

    /// The current version.
    pub fn view(&self) -> Arc<View> {
        self.shared.current.load_full()
    }

    /// The current version once it holds `version` (an `ingest_seq` the log acknowledged),
    /// waiting at most `max_wait` for the applier; past that, the current version anyway.
    /// The wait does not block the thread (HTTP handlers call it on their workers).
    pub async fn view_at_least(&self, version: u64, max_wait: Duration) -> Arc<View> {
        let view = self.view();
        if view.version >= version {
            return view;
        }
        let mut rx = self.shared.published.subscribe();
        let reached = rx.wait_for(|v| *v >= version || self.failure().is_some());
        let _ = tokio::time::timeout(max_wait, reached).await;
        self.view()
    }

    /// The version of the checkpoint of the call legs the start read them from (`None`:
    /// derived from the log).
    pub fn legs_from(&self) -> Option<u64> {
        self.shared.legs_from
    }

    /// Writes a checkpoint of the legs of the current version under the log's directory
    /// (waiting for one being written in the background to finish first); the applier then
    /// keeps the legs it holds in the mapped file instead of on the heap.
    pub fn checkpoint(&self) -> Result<checkpoint::Written> {
        let _writing = self
            .shared
            .writing
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        write_checkpoint(&self.shared, &self.view())
    }

    /// Removes the complete call legs that started and ended before `kept_from`: writes a
    /// checkpoint without them (and every later checkpoint leaves them out), whose legs the
    /// applier then keeps mapped. Questions about calls before the horizon say that the legs
    /// were removed from then on ([`View::legs_retention`]); a horizon before the current one
    /// changes nothing.
    pub fn retain_legs_from(&self, kept_from: Us) -> Result<checkpoint::Written> {
        self.shared
            .retain_from
            .fetch_max(kept_from, Ordering::Relaxed);
        self.checkpoint()
    }

    /// The as-of views kept for `known_at` questions.
    pub fn as_of(&self) -> &Arc<AsOfCache> {
        &self.as_of
    }

    /// Why the applier stopped, if it did (the views stop advancing then).
    pub fn failure(&self) -> Option<String> {
        self.shared
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for Live {
    /// Stops the applier, and waits for a write in the background under way (one asked for
    /// and not begun is not begun): no write of this state outlives it.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self
            .applier
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = t.join();
        }
        drop(self.shared.writing.lock());
    }
}

/// Writes the checkpoint of `view` (the caller holds `shared.writing`), and hands it mapped
/// to the applier.
fn write_checkpoint(shared: &Shared, view: &Arc<View>) -> Result<checkpoint::Written> {
    let kept_from = Some(shared.retain_from.load(Ordering::Relaxed)).filter(|&t| t > Us::MIN);
    let written = checkpoint::write(&shared.dir, view, kept_from)?;
    shared
        .checkpointed
        .fetch_max(view.calls_applied, Ordering::Relaxed);
    tracing::info!(
        version = written.version,
        legs = written.legs,
        bytes = written.bytes,
        pieces = written.pieces,
        written_bytes = written.written_bytes,
        legs_kept_from = ?written.retention.map(|r| r.kept_from),
        legs_removed = written.retention.map_or(0, |r| r.removed),
        "call legs checkpointed"
    );
    let mut names = Interner::default();
    match checkpoint::open(&shared.dir, |s| names.get(s)) {
        Ok(Some(c)) if c.version == view.version => {
            *shared.written.lock().unwrap_or_else(|p| p.into_inner()) = Some((view.clone(), c));
        }
        Ok(_) => tracing::warn!("the checkpoint just written was replaced before it was read"),
        Err(e) => tracing::warn!(error = %e, "the checkpoint just written cannot be read back"),
    }
    // the service events and intervals of the same version beside it (a failure leaves the
    // last file, which the applier uses where it still matches)
    let mut written = written;
    match write_service_file(shared, view) {
        Ok(service) => written.service = Some(service),
        Err(e) => tracing::warn!(error = %e, "writing the service file failed"),
    }
    Ok(written)
}

/// Writes the service file of `view` (the caller holds `shared.writing`) and hands it mapped
/// to the applier; when this process wrote that version's already, it is not written again
/// and what that write wrote is returned.
fn write_service_file(shared: &Shared, view: &Arc<View>) -> Result<service_file::Written> {
    let key = ServiceKey::of(view);
    let mut on_disk = shared
        .service_on_disk
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some((k, w)) = on_disk.as_ref()
        && *k == key
    {
        return Ok(*w);
    }
    let written = service_chain::write(&shared.dir, view)?;
    *on_disk = Some((key, written));
    drop(on_disk);
    tracing::info!(
        version = written.version,
        devices = written.devices,
        rollups = written.rollups,
        bytes = written.bytes,
        written_bytes = written.written_bytes,
        pieces = written.pieces,
        "service events and intervals written"
    );
    match service_chain::ServiceChain::open(&shared.dir) {
        Ok(Some(f)) if f.version() == view.version => {
            *shared
                .service_written
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some((view.clone(), f));
        }
        Ok(_) => tracing::warn!("the service file just written was replaced before it was read"),
        Err(e) => tracing::warn!(error = %e, "the service file just written cannot be read back"),
    }
    Ok(written)
}

/// What a service file is written from: a version, and the base of the history folded
/// before it (a fold changes devices' histories without a new version).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServiceKey {
    version: u64,
    base: Option<String>,
}

impl ServiceKey {
    fn of(view: &View) -> ServiceKey {
        ServiceKey {
            version: view.version,
            base: view.snapshot.base.as_ref().map(|b| b.digest.file.clone()),
        }
    }
}

/// Starts writing the service file of the current version in the background, once a write
/// under way (a checkpoint writes one too) is done.
fn service_file_in_background(shared: &Arc<Shared>) {
    write_in_background(
        shared,
        "callstate-service-file",
        "the service file",
        write_service_file,
    );
}

/// Starts writing a checkpoint of the current version in the background, once a write under
/// way is done.
fn checkpoint_in_background(shared: &Arc<Shared>) {
    write_in_background(
        shared,
        "callstate-checkpoint",
        "the checkpoint of the call legs",
        write_checkpoint,
    );
}

/// Runs `write` on the version current once a write under way (if any) is done, on a thread
/// named `name` (a write asked for while another is under way is not dropped: a checkpoint
/// is asked for once per so many call events); a failure is logged naming `what`.
fn write_in_background<T: 'static>(
    shared: &Arc<Shared>,
    name: &str,
    what: &'static str,
    write: fn(&Shared, &Arc<View>) -> Result<T>,
) {
    let s = shared.clone();
    let spawned = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _writing = s.writing.lock().unwrap_or_else(|p| p.into_inner());
            if s.stop.load(Ordering::Relaxed) {
                return;
            }
            let view = s.current.load_full();
            if let Err(e) = write(&s, &view) {
                tracing::warn!(error = %e, "writing {what} failed");
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start writing {what}");
    }
}

/// What `slot` holds, taken out.
fn take<T>(slot: &Mutex<Option<T>>) -> Option<T> {
    slot.lock().unwrap_or_else(|p| p.into_inner()).take()
}

/// The applier: applies notices in rounds and publishes a version after each; writes a
/// checkpoint of the legs in the background every [`LiveOptions::checkpoint_every`] call
/// events.
fn follow(mut state: State, sub: Subscription, shared: &Arc<Shared>) {
    let mut asked = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        state.checkpointed(shared.checkpointed.load(Ordering::Relaxed));
        if let Some((view, c)) = take(&shared.written) {
            let devices = state.adopt(&view, c);
            shared.current.store(Arc::new(state.view()));
            tracing::info!(devices, "call legs of the checkpoint kept mapped");
            // dropped last, the old version's heap packs are freed; what the write and the
            // taking in read of the new file is let go of
            drop(view);
            mapped::release();
        }
        if let Some((view, f)) = take(&shared.service_written) {
            let devices = state.share(&f, Some(&view));
            shared.current.store(Arc::new(state.view()));
            drop(view);
            mapped::release();
            tracing::info!(
                devices,
                "service events and intervals read from the service file"
            );
        }
        let every = shared.checkpoint_every;
        if state.calls_since_checkpoint() >= every
            && state.calls_applied() >= asked.saturating_add(every)
        {
            // asked again only once as many more have come, should a write fail
            asked = state.calls_applied();
            checkpoint_in_background(shared);
        }
        let first = match sub.recv_timeout(Duration::from_millis(100)) {
            Ok(Some(n)) => n,
            Ok(None) => continue,
            Err(_) => break, // the log is closed
        };
        let mut round = vec![first];
        while round.len() < ROUND {
            match sub.try_recv() {
                Some(n) => round.push(n),
                None => break,
            }
        }
        let mut failed = None;
        // a fold of the history changes devices without a new version
        let folded = round.iter().any(|n| matches!(n, Notice::Folded { .. }));
        for n in round {
            if let Err(e) = state.apply(n) {
                failed = Some(e.to_string());
                break;
            }
        }
        shared.current.store(Arc::new(state.view()));
        shared.published.send_replace(state.version());
        if folded && failed.is_none() {
            // the devices derived again read the file again once it holds them (written
            // after a write under way, of the history before the fold, is done)
            service_file_in_background(shared);
        }
        if let Some(e) = failed {
            tracing::error!(error = %e, "the live state stopped following the log");
            *shared.failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            shared.published.send_modify(|_| {});
            break;
        }
    }
}
