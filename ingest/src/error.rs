//! The collectors' one error type.

use std::io;

use callstate_log::LogError;

/// Errors of a collector run (rejected input is not an error: it is a [`Reject`](crate::Reject)).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The log refused or failed an append.
    #[error(transparent)]
    Log(#[from] LogError),
    /// Reading the input failed.
    #[error("reading the input: {0}")]
    Input(#[source] io::Error),
    /// Writing a rejects file failed.
    #[error("writing the rejects file: {0}")]
    Rejects(#[source] io::Error),
    /// A worker thread could not be started.
    #[error("starting a thread: {0}")]
    Thread(#[source] io::Error),
    /// A Kafka client failed (with what it was doing).
    #[cfg(feature = "kafka")]
    #[error("{what}: {source}")]
    Kafka {
        /// What was being done.
        what: String,
        /// librdkafka's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// A topic that must exist does not.
    #[error("topic {0} does not exist (create it first: docs/kafka.md)")]
    NoTopic(String),
    /// A setting is wrong.
    #[error("{0}")]
    Config(String),
    /// Kafka did not make progress in time (brokers unreachable for long).
    #[error("{0}")]
    Stalled(String),
}

/// Results of the collectors.
pub type Result<T, E = IngestError> = std::result::Result<T, E>;

impl IngestError {
    /// Whether the destination cannot take writes now but may later (a full disk, Kafka
    /// unreachable): nothing of the failed call was stored, a retry may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            IngestError::Log(e) => e.is_refusal(),
            IngestError::Stalled(_) | IngestError::NoTopic(_) => true,
            #[cfg(feature = "kafka")]
            IngestError::Kafka { .. } => true,
            _ => false,
        }
    }
}

/// A Kafka error with what was being done.
#[cfg(feature = "kafka")]
pub(crate) fn kerr(what: &str, source: rdkafka::error::KafkaError) -> IngestError {
    IngestError::Kafka {
        what: what.to_string(),
        source,
    }
}
