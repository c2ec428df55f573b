//! The log's one error type.

use std::io;
use std::path::PathBuf;

/// Why the log refuses appends: a write or a roll failed, and it will not take more events
/// until that is resolved (the events it acknowledged are safe either way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What failed.
    pub reason: String,
    /// The file system is full: the condition clears once space is available again.
    pub disk_full: bool,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Errors of the log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done (names the file).
        context: String,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// A file of the log is damaged or of another format.
    #[error("{}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Another process writes to the data directory.
    #[error("{} is in use by another callstate process (its LOCK is held)", .0.display())]
    Locked(PathBuf),
    /// The directory holds no log.
    #[error("{} holds no callstate log", .0.display())]
    NotALog(PathBuf),
    /// The log refuses appends (a failed write or roll, or a full disk).
    #[error("the log refuses appends: {0}")]
    Refused(Refusal),
    /// A batch given to append is not of the `events` schema.
    #[error("not an events batch: {0}")]
    InvalidBatch(String),
    /// A bug or an impossible state (a worker thread panicked…).
    #[error("internal error: {0}")]
    Internal(String),
    /// What an operation was asked to change is no longer as it was asked (a fold's
    /// segments were compacted or folded meanwhile, or its horizon is behind the log's).
    #[error("{0}")]
    Stale(String),
    /// A reader kept seeing the log change under it.
    #[error("the log kept changing while being read; try again")]
    Busy,
    /// Arrow failed encoding or decoding a batch.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Parquet failed writing or reading a segment.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

/// Results of the log.
pub type Result<T, E = LogError> = std::result::Result<T, E>;

impl LogError {
    /// An I/O failure while doing `context`.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        LogError::Io {
            context: context.into(),
            source,
        }
    }

    /// Whether the log refuses appends (as opposed to one request failing).
    pub fn is_refusal(&self) -> bool {
        matches!(self, LogError::Refused(_))
    }

    /// Whether the cause is a full file system (anywhere in the chain: Parquet and Arrow
    /// wrap the I/O errors of the files they write).
    pub fn is_disk_full(&self) -> bool {
        if let LogError::Refused(r) = self {
            return r.disk_full;
        }
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = cause {
            if let Some(io) = e.downcast_ref::<io::Error>()
                && is_disk_full(io)
            {
                return true;
            }
            if let Some(arrow::error::ArrowError::IoError(_, io)) =
                e.downcast_ref::<arrow::error::ArrowError>()
                && is_disk_full(io)
            {
                return true;
            }
            cause = e.source();
        }
        false
    }
}

/// Whether an I/O error means the file system (or a quota) is full.
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) || e.raw_os_error() == Some(28)
}

/// Adds what was being done to an I/O result.
pub trait IoContext<T> {
    /// `Err(e)` becomes [`LogError::Io`] with `context`.
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| LogError::io(context(), e))
    }
}
