//! The query engine's one error type.

use callstate_log::LogError;
use datafusion::error::DataFusionError;

/// Errors of a question to the query engine.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Reading the log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// DataFusion refused or failed a query (a user's SQL, a resource limit…).
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    /// Building a result failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// An argument is wrong: names it and says why.
    #[error("{name}: {reason}")]
    BadArgument {
        /// The argument (parameter, function argument, flag).
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A required argument is missing.
    #[error("{0} is required")]
    Missing(String),
    /// What was asked for does not exist (a device, an incident).
    #[error("{0}")]
    NotFound(String),
    /// The question went over one of its limits (names the setting).
    #[error("{message} ({setting})")]
    OverLimit {
        /// The setting that bounds it.
        setting: &'static str,
        /// What went over.
        message: String,
    },
    /// The work was cancelled (a time limit, a client that went away, a shutdown).
    #[error("cancelled")]
    Cancelled,
    /// A bug or an impossible state.
    #[error("internal error: {0}")]
    Internal(String),
    /// What the question needs was removed by retention (says what, and where to ask).
    #[error("{0}")]
    Retired(String),
    /// Stored data is not what the engine expects (a missing column…).
    #[error("unexpected data in the log: {0}")]
    Data(String),
}

/// Results of the query engine.
pub type Result<T, E = QueryError> = std::result::Result<T, E>;

impl QueryError {
    /// A bad argument.
    pub fn bad(name: &str, reason: impl std::fmt::Display) -> Self {
        QueryError::BadArgument {
            name: name.to_string(),
            reason: reason.to_string(),
        }
    }
}

impl From<QueryError> for DataFusionError {
    /// Errors raised inside DataFusion (a table function's arguments, a derived table)
    /// travel as `External` and are found again by [`QueryError::from_datafusion`].
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::DataFusion(d) => d,
            other => DataFusionError::External(Box::new(other)),
        }
    }
}

impl QueryError {
    /// The error that decides what went wrong: for a DataFusion error that carries a
    /// [`QueryError`] raised inside it (a table function's bad argument, a derived table's
    /// read), that one; otherwise `self`.
    pub fn cause(&self) -> &QueryError {
        match self {
            QueryError::DataFusion(e) => match e.find_root() {
                DataFusionError::External(x) => x.downcast_ref::<QueryError>().unwrap_or(self),
                _ => self,
            },
            _ => self,
        }
    }
}
