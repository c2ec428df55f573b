//! The simulator's errors.

/// What a sink (where events go) may fail with.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// Errors of the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The scenario is not valid (names the field at fault).
    #[error("{0}")]
    Scenario(String),
    /// The sink failed.
    #[error("the event sink failed: {0}")]
    Sink(#[source] SinkError),
}
