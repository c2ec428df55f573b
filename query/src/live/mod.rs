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
pub mod calls;
pub mod device;
mod packed;
pub mod state;
pub mod view;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;

use callstate_log::{Log, Subscription};

use crate::error::{QueryError, Result};
use crate::model::sla::Targets;

pub use asof::{AsOf, AsOfCache};
pub use state::State;
pub use view::View;

/// Most notices applied before a new version is published (a catching-up applier still
/// publishes every so often).
const ROUND: usize = 256;

struct Shared {
    current: ArcSwap<View>,
    /// The version published last, for those waiting for a newer one (re-sent when the
    /// applier fails, so that they wake).
    published: tokio::sync::watch::Sender<u64>,
    failed: Mutex<Option<String>>,
    stop: AtomicBool,
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
        let (snap, sub) = log.subscribe();
        let state = State::from_snapshot(snap, targets)?;
        let view = Arc::new(state.view());
        let version = view.version;
        let shared = Arc::new(Shared {
            published: tokio::sync::watch::Sender::new(version),
            current: ArcSwap::new(view),
            failed: Mutex::new(None),
            stop: AtomicBool::new(false),
        });
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
    }
}

/// The applier: applies notices in rounds and publishes a version after each.
fn follow(mut state: State, sub: Subscription, shared: &Shared) {
    while !shared.stop.load(Ordering::Relaxed) {
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
        for n in round {
            if let Err(e) = state.apply(n) {
                failed = Some(e.to_string());
                break;
            }
        }
        shared.current.store(Arc::new(state.view()));
        shared.published.send_replace(state.version());
        if let Some(e) = failed {
            tracing::error!(error = %e, "the live state stopped following the log");
            *shared.failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            shared.published.send_modify(|_| {});
            break;
        }
    }
}
