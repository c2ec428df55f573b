//! What reading a CUCM cluster can fail with.

/// Errors of the CUCM collectors.
#[derive(Debug, thiserror::Error)]
pub enum CucmError {
    /// Connection, TLS or timeout talking to a node (the next node is tried).
    #[error("{node}: {reason}")]
    Transport {
        /// The node address.
        node: String,
        /// What failed.
        reason: String,
    },
    /// HTTP 401/403: the user or password is wrong, or the user lacks a role.
    #[error(
        "{node}: authentication refused (HTTP {status}): check the application user, its password and its roles (docs/cucm.md)"
    )]
    Auth {
        /// The node address.
        node: String,
        /// HTTP status.
        status: u16,
    },
    /// `Server.RateControl`: the cluster's shared request budget is spent.
    #[error("{node}: rate limited by CUCM: {text}")]
    RateControl {
        /// The node that answered.
        node: String,
        /// The fault text.
        text: String,
    },
    /// Any other SOAP fault.
    #[error("{node}: SOAP fault {code}: {text}")]
    Fault {
        /// The node that answered.
        node: String,
        /// `faultcode`.
        code: String,
        /// `faultstring`.
        text: String,
    },
    /// An HTTP status without a SOAP fault.
    #[error("{node}: HTTP {status}: {text}")]
    Http {
        /// The node address.
        node: String,
        /// HTTP status.
        status: u16,
        /// The start of the body.
        text: String,
    },
    /// An answer that is not the XML it should be.
    #[error("malformed answer: {0}")]
    Wire(String),
    /// Configuration (a CA file that does not load, no node address).
    #[error("{0}")]
    Config(String),
    /// The sequence-number file.
    #[error("sequence file {path}: {source}")]
    SeqFile {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Appending the events failed.
    #[error("appending events: {0}")]
    Append(#[from] callstate_ingest::IngestError),
}

impl CucmError {
    /// Errors after which another node of the cluster may answer.
    pub fn try_next_node(&self) -> bool {
        match self {
            CucmError::Transport { .. } => true,
            CucmError::Http { status, .. } => *status >= 500 || *status == 404,
            _ => false,
        }
    }
}
