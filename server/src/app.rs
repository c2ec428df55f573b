//! What every handler shares: the log, where the HTTP collector writes, the live derived
//! state that follows the log, the settings, the metrics, the query runtime and the gates.
//!
//! Answers come from the live state's current version: a request takes it with one atomic
//! load and never waits for a writer or the applier. A write is answered once its events are
//! visible (waiting at most [`FRESHNESS_WAIT`] for the applier), so a client reads its own
//! writes. `known_at` questions derive what was known then.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::prelude::SessionContext;

use callstate_ingest::Appender;
use callstate_log::Log;
use callstate_query::model::fleet::SharedFleet;
use callstate_query::session::context_for;
use callstate_query::{Cancel, Limits, Live, LiveSource, QueryRuntime, Source, View};
use callstate_schemas::Us;

use crate::deadline;
use crate::error::{ApiError, StartError};
use crate::gate::Gate;
use crate::metrics::Metrics;
use crate::settings::ServerConfig;

/// Why the server is not ready beyond the log itself (the Kafka materializer failed), if it
/// is not.
pub type Readiness = Box<dyn Fn() -> Option<String> + Send + Sync>;

/// Longest a write waits for its events to be visible to reads before it is answered.
pub const FRESHNESS_WAIT: Duration = Duration::from_secs(2);

/// Everything a request handler needs.
pub struct App {
    pub(crate) log: Arc<Log>,
    pub(crate) appender: Arc<dyn Appender>,
    pub(crate) readiness: Option<Readiness>,
    pub(crate) config: ServerConfig,
    pub(crate) live: Live,
    /// The SQL context of the latest view asked for (a new view of the same version, one
    /// that took in a checkpoint of the legs, gets a new one).
    context: Mutex<Option<(Arc<View>, SessionContext)>>,
    pub(crate) metrics: Metrics,
    /// Where queries and derivations run, apart from the HTTP runtime.
    pub(crate) runtime: QueryRuntime,
    /// Places for heavy reads.
    pub(crate) gate: Arc<Gate>,
    /// Places for writes.
    pub(crate) write_gate: Arc<Gate>,
    /// Set when a shutdown begins: reads still running are answered 503 at once.
    pub(crate) stopping: tokio::sync::watch::Sender<bool>,
}

/// Shared state of the handlers.
pub type AppState = Arc<App>;

impl App {
    /// An API over an open log: derives its state and starts following it.
    pub fn new(log: Arc<Log>, config: ServerConfig) -> Result<AppState, StartError> {
        App::with_appender(log.clone(), log, None, config)
    }

    /// An API over `log` whose collector (`POST /api/v1/events`) writes to `appender` (the
    /// canonical Kafka topic in the Kafka-backed mode; the log materializes it).
    /// `readiness` adds a condition to `/readyz`.
    pub fn with_appender(
        log: Arc<Log>,
        appender: Arc<dyn Appender>,
        readiness: Option<Readiness>,
        config: ServerConfig,
    ) -> Result<AppState, StartError> {
        let runtime = QueryRuntime::new(config.query_threads, config.query_nice)
            .map_err(StartError::Runtime)?;
        let live = Live::start(&log, config.targets.clone())?;
        Ok(Arc::new(App {
            // what the heavy reads touched of the mapped files is let go of once they are
            // done (the page cache keeps it; the process's memory does not)
            gate: Gate::with_on_quiet(
                config.max_concurrent_queries,
                config.max_concurrent_per_client,
                ("max_concurrent_queries", "max_concurrent_per_client"),
                callstate_query::live::release_mapped_pages,
            ),
            write_gate: Gate::new(
                config.max_concurrent_writes,
                config.max_concurrent_writes,
                ("max_concurrent_writes", "max_concurrent_writes"),
            ),
            log,
            appender,
            readiness,
            config,
            live,
            context: Mutex::new(None),
            metrics: Metrics::default(),
            runtime,
            stopping: tokio::sync::watch::Sender::new(false),
        }))
    }

    /// Adds samples to `/metrics`, asked at every scrape (collectors running beside the API).
    pub fn add_metrics_source(&self, source: crate::metrics::SampleSource) {
        self.metrics.add_source(source);
    }

    /// The log.
    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// The live state the API answers from.
    pub fn live(&self) -> &Live {
        &self.live
    }

    /// Begins a shutdown: reads still running end at once (503).
    pub fn begin_shutdown(&self) {
        self.stopping.send_replace(true);
    }

    /// Resolves once a shutdown has begun.
    pub(crate) async fn stopped(&self) {
        let mut rx = self.stopping.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// The bounds of one SQL query.
    pub(crate) fn sql_limits(&self) -> Limits {
        Limits {
            timeout: self.config.sql_timeout,
            memory_bytes: self.config.sql_memory_bytes,
            max_rows: self.config.max_result_rows,
            max_bytes: self.config.max_result_bytes,
        }
    }

    /// Runs `f` on the query runtime's blocking threads; dropping the returned future (a
    /// time limit, a client gone), or the request's deadline passing, sets the [`Cancel`]
    /// token `f` checks.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Cancel) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.runtime
            .spawn_blocking_until(deadline::current(), move |c| Ok(f(c)))
            .await
            .map_err(ApiError::from)?
    }

    /// The live state's current version: reads never wait for the applier (writes do, see
    /// [`App::visible`]).
    pub(crate) fn view(&self) -> Arc<View> {
        self.live.view()
    }

    /// Waits until the live state holds the event the log stored at `ingest_seq` (at most
    /// [`FRESHNESS_WAIT`]; past that, the write is answered anyway: it is durable).
    pub(crate) async fn visible(&self, ingest_seq: u64) {
        let _ = self.live.view_at_least(ingest_seq, FRESHNESS_WAIT).await;
    }

    /// The current version as a source.
    pub(crate) fn source(&self) -> LiveSource {
        LiveSource {
            view: self.view(),
            as_of: self.live.as_of().clone(),
        }
    }

    /// What derived answers come from: the current version, or what was known at
    /// `known_at` (an as-of view of it, made on the query runtime).
    pub(crate) async fn fleet(&self, known_at: Option<Us>) -> Result<SharedFleet, ApiError> {
        let source = self.source();
        match known_at {
            None => Ok(source.view),
            Some(k) => self.run(move |_| Ok(source.fleet_at(k)?)).await,
        }
    }

    /// A SQL context over the current view (kept while the view lasts).
    pub(crate) async fn context(&self, known_at: Option<Us>) -> Result<SessionContext, ApiError> {
        let source = self.source();
        let view = source.view.clone();
        if known_at.is_none()
            && let Some((v, ctx)) = self
                .context
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
            && Arc::ptr_eq(v, &view)
        {
            return Ok(ctx.clone());
        }
        let ctx = context_for(Arc::new(source), known_at).await?;
        if known_at.is_none() {
            *self.context.lock().unwrap_or_else(|p| p.into_inner()) = Some((view, ctx.clone()));
        }
        Ok(ctx)
    }
}

/// Runs blocking write work (appends) off the async threads of the HTTP runtime.
pub(crate) async fn write_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("worker failed: {e}")))?
}
