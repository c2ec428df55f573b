//! Where questions run: a dedicated runtime, apart from whatever serves the requests, so that
//! the heaviest query cannot take the threads that answer `/healthz` (InfluxDB's
//! `DedicatedExecutor` does the same). Work handed to it is cancelled when its handle is
//! dropped: async work (DataFusion streams) is aborted at its next yield point, and blocking
//! work sees its [`Cancel`] token set and stops at its next check.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;

use crate::error::{QueryError, Result};

/// A cancellation flag shared by a piece of work and whoever waits for it, and optionally the
/// deadline of the request it serves: work past it stops by itself at its next check, even
/// on a blocking thread whose waiter has not noticed yet.
#[derive(Clone, Default)]
pub struct Cancel {
    flag: Arc<AtomicBool>,
    deadline: Option<Deadline>,
    /// Says whoever waits for the work is gone (a stream's receiver dropped).
    gone: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
}

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cancel")
            .field("cancelled", &self.flag.load(Ordering::Relaxed))
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// When a piece of work must be done by, and the setting that says so.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    /// The instant.
    pub at: Instant,
    /// The time limit it comes from (seconds).
    pub limit: Duration,
    /// The setting that bounds it (named in the error).
    pub setting: &'static str,
}

impl Deadline {
    /// The error of work that went past it.
    pub fn exceeded(&self) -> QueryError {
        QueryError::OverLimit {
            setting: self.setting,
            message: format!(
                "the request exceeded the time limit of {} s",
                self.limit.as_secs_f64()
            ),
        }
    }
}

impl Cancel {
    /// A token not yet cancelled, without a deadline.
    pub fn new() -> Self {
        Cancel::default()
    }

    /// A token that also stops the work at `deadline`.
    pub fn with_deadline(deadline: Option<Deadline>) -> Self {
        Cancel {
            deadline,
            ..Cancel::default()
        }
    }

    /// A token that also stops the work once `gone` says its result has no taker (the
    /// receiver of a stream dropped), checked with the flag.
    pub fn watching(gone: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        Cancel {
            gone: Some(Arc::new(gone)),
            ..Cancel::default()
        }
    }

    /// Asks the work to stop.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }

    /// Whether the work should stop (cancelled, its taker gone, or past its deadline).
    pub fn is_cancelled(&self) -> bool {
        self.flagged() || self.deadline.is_some_and(|d| Instant::now() >= d.at)
    }

    fn flagged(&self) -> bool {
        self.flag.load(Ordering::Relaxed) || self.gone.as_ref().is_some_and(|g| g())
    }

    /// `Err` once cancelled (`Cancelled`) or past the deadline (`OverLimit` naming the
    /// setting): long loops call this every so often.
    pub fn check(&self) -> Result<()> {
        if self.flagged() {
            return Err(QueryError::Cancelled);
        }
        match self.deadline {
            Some(d) if Instant::now() >= d.at => Err(d.exceeded()),
            _ => Ok(()),
        }
    }
}

/// Sets the calling thread's nice value (Linux keeps one per thread). Best effort: a
/// refusal leaves the thread at the process's priority.
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    if nice != 0 {
        // SAFETY: setpriority has no memory effects; `who` 0 is the calling thread on Linux.
        let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
        if r != 0 {
            tracing::warn!(
                "query threads keep the process's priority: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// A dedicated multi-threaded runtime for queries and derivations.
pub struct QueryRuntime {
    runtime: Option<Runtime>,
    handle: Handle,
}

impl QueryRuntime {
    /// A runtime of `threads` worker threads (named `callstate-query-N`), and as many
    /// blocking threads as it needs up to 4 × `threads`, all at the scheduling priority
    /// `nice` (Linux; 0 keeps the process's, 1–19 lower it): with a positive `nice` the
    /// kernel gives the CPU to the HTTP workers, appends and cheap reads first whenever a
    /// heavy query would otherwise share it with them.
    pub fn new(threads: usize, nice: i32) -> std::io::Result<QueryRuntime> {
        let threads = threads.max(1);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .max_blocking_threads(4 * threads)
            .on_thread_start(move || lower_priority(nice))
            .thread_name_fn(|| {
                static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                format!("callstate-query-{}", N.fetch_add(1, Ordering::Relaxed))
            })
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        Ok(QueryRuntime {
            runtime: Some(runtime),
            handle,
        })
    }

    /// The runtime's handle (for DataFusion streams that spawn blocking producers on it).
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Runs `fut` on the query runtime. Awaiting the result waits for it; dropping it
    /// aborts the task.
    pub fn spawn<T, F>(&self, fut: F) -> Running<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        Running {
            task: self.handle.spawn(fut),
            cancel: Cancel::new(),
        }
    }

    /// Runs `f` on the query runtime's blocking threads with a [`Cancel`] token that is set
    /// when the result is dropped unawaited (a timeout, a client gone): `f` should
    /// [`Cancel::check`] every so often.
    pub fn spawn_blocking<T, F>(&self, f: F) -> Running<T>
    where
        T: Send + 'static,
        F: FnOnce(&Cancel) -> Result<T> + Send + 'static,
    {
        self.spawn_blocking_until(None, f)
    }

    /// [`QueryRuntime::spawn_blocking`], with the token also set at `deadline`.
    pub fn spawn_blocking_until<T, F>(&self, deadline: Option<Deadline>, f: F) -> Running<T>
    where
        T: Send + 'static,
        F: FnOnce(&Cancel) -> Result<T> + Send + 'static,
    {
        let cancel = Cancel::with_deadline(deadline);
        let token = cancel.clone();
        Running {
            task: self.handle.spawn_blocking(move || f(&token)),
            cancel,
        }
    }

    /// Stops the runtime, waiting at most `timeout` for its tasks (blocking work past that
    /// is left to end with the process).
    pub fn shutdown(mut self, timeout: Duration) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(timeout);
        }
    }
}

impl Drop for QueryRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Work running on the [`QueryRuntime`]; dropping it cancels the work.
pub struct Running<T> {
    task: JoinHandle<Result<T>>,
    cancel: Cancel,
}

impl<T> Running<T> {
    /// The work's token (to cancel it without dropping the handle).
    pub fn cancel_token(&self) -> &Cancel {
        &self.cancel
    }
}

impl<T> Future for Running<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        Pin::new(&mut self.task).poll(cx).map(|r| match r {
            Ok(r) => r,
            Err(e) if e.is_cancelled() => Err(QueryError::Cancelled),
            Err(e) => Err(QueryError::Internal(format!("a query worker failed: {e}"))),
        })
    }
}

impl<T> Drop for Running<T> {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_stops_work_when_cancelled_past_its_deadline_or_without_a_taker() {
        let c = Cancel::new();
        assert!(c.check().is_ok());
        c.cancel();
        assert!(matches!(c.check(), Err(QueryError::Cancelled)));

        let gone = Arc::new(AtomicBool::new(false));
        let g = gone.clone();
        let c = Cancel::watching(move || g.load(Ordering::Relaxed));
        assert!(c.check().is_ok());
        gone.store(true, Ordering::Relaxed);
        assert!(c.is_cancelled());
        assert!(matches!(c.check(), Err(QueryError::Cancelled)));

        let d = Deadline {
            at: Instant::now(),
            limit: Duration::from_millis(250),
            setting: "read_timeout_s",
        };
        let c = Cancel::with_deadline(Some(d));
        match c.check() {
            Err(QueryError::OverLimit { setting, message }) => {
                assert_eq!(setting, "read_timeout_s");
                assert!(message.contains("0.25 s"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let later = Deadline {
            at: Instant::now() + Duration::from_secs(3600),
            ..d
        };
        assert!(Cancel::with_deadline(Some(later)).check().is_ok());
    }

    #[test]
    fn dropping_running_work_cancels_it() {
        let rt = QueryRuntime::new(1, 0).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let (started_tx, started) = std::sync::mpsc::channel();
        let running = rt.spawn_blocking(move |c| {
            started_tx.send(()).unwrap();
            while !c.is_cancelled() {
                std::thread::sleep(Duration::from_millis(1));
            }
            tx.send(()).unwrap();
            Ok(())
        });
        started.recv_timeout(Duration::from_secs(10)).unwrap();
        drop(running);
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the work saw its token set");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn query_threads_run_at_the_lower_priority_and_no_one_else_does() {
        // SAFETY: getpriority has no memory effects; `who` 0 is the calling thread.
        let nice = || unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let before = nice();
        let rt = QueryRuntime::new(1, 7).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let blocking = tx.clone();
        rt.handle().spawn(async move { tx.send(nice()).unwrap() });
        rt.handle()
            .spawn_blocking(move || blocking.send(nice()).unwrap());
        for _ in 0..2 {
            assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 7);
        }
        assert_eq!(nice(), before, "the caller's priority is its own");
    }
}
