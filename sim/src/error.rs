//! The simulator's seams: where its events go ([`Sink`]) and how it fails.

/// What a sink (where events go) may fail with.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// Where events go: called with every event, in delivery order.
pub type Sink<'a> = dyn FnMut(&callstate_schemas::Event) -> Result<(), SinkError> + 'a;

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
