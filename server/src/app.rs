//! What every handler shares: the log, where the HTTP collector writes, the settings, the
//! metrics, and the cache of the current log version's derived state and SQL context.
//!
//! The derived state (intervals, call legs) of the log's current version is built once and
//! shared by every request until new events arrive; `known_at` requests derive their own.

use std::sync::{Arc, Mutex};

use datafusion::prelude::SessionContext;

use callstate_ingest::Appender;
use callstate_log::Log;
use callstate_query::session::context_for;
use callstate_query::{Cancel, Derived, LazyDerived, Limits, QueryRuntime};
use callstate_schemas::Us;

use crate::error::ApiError;
use crate::gate::Gate;
use crate::metrics::Metrics;
use crate::settings::ServerConfig;

/// Why the server is not ready beyond the log itself (the Kafka materializer failed), if it
/// is not.
pub type Readiness = Box<dyn Fn() -> Option<String> + Send + Sync>;

/// The derived state of one log version, and a SQL context over it.
#[derive(Clone)]
pub(crate) struct Current {
    version: u64,
    pub(crate) derived: Arc<LazyDerived>,
    pub(crate) ctx: SessionContext,
}

/// Everything a request handler needs.
pub struct App {
    pub(crate) log: Arc<Log>,
    pub(crate) appender: Arc<dyn Appender>,
    pub(crate) readiness: Option<Readiness>,
    pub(crate) config: ServerConfig,
    current: Mutex<Option<Current>>,
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
    /// An API over an open log.
    pub fn new(log: Arc<Log>, config: ServerConfig) -> AppState {
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
    ) -> AppState {
        let runtime = QueryRuntime::new(config.query_threads)
            .expect("the query runtime starts (threads can be created)");
        Arc::new(App {
            gate: Gate::new(
                config.max_concurrent_queries,
                config.max_concurrent_per_client,
                ("max_concurrent_queries", "max_concurrent_per_client"),
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
            current: Mutex::new(None),
            metrics: Metrics::default(),
            runtime,
            stopping: tokio::sync::watch::Sender::new(false),
        })
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
    /// time limit, a client gone) sets the [`Cancel`] token `f` checks.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Cancel) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.runtime
            .spawn_blocking(move |c| Ok(f(c)))
            .await
            .map_err(ApiError::from)?
    }

    /// The log.
    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// The derived state and SQL context of the log's current version (built on first use).
    pub(crate) async fn current(&self) -> Result<Current, ApiError> {
        let (version, snap) = self.log.versioned_snapshot();
        if let Some(c) = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|c| c.version == version)
        {
            return Ok(c.clone());
        }
        let derived = Arc::new(LazyDerived::new(snap, None, self.config.targets.clone()));
        let ctx = context_for(derived.clone(), None).await?;
        let c = Current {
            version,
            derived,
            ctx,
        };
        let mut slot = self.current.lock().unwrap_or_else(|p| p.into_inner());
        // keep the newest; a request that raced with a newer one keeps its own
        if slot.as_ref().is_none_or(|s| s.version <= version) {
            *slot = Some(c.clone());
        }
        Ok(c)
    }

    /// What was known at `known_at` (not cached).
    pub(crate) fn known_at(&self, known_at: Us) -> Arc<LazyDerived> {
        Arc::new(LazyDerived::new(
            self.log.snapshot(),
            Some(known_at),
            self.config.targets.clone(),
        ))
    }

    /// What derived answers come from: the current version, or as known at `known_at`.
    pub(crate) async fn derived(&self, known_at: Option<Us>) -> Result<Arc<Derived>, ApiError> {
        self.derive(match known_at {
            None => self.current().await?.derived,
            Some(k) => self.known_at(k),
        })
        .await
    }

    /// Loads and derives (once per [`LazyDerived`]) on the query runtime.
    pub(crate) async fn derive(&self, lazy: Arc<LazyDerived>) -> Result<Arc<Derived>, ApiError> {
        self.run(move |_| Ok(lazy.get()?)).await
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
