//! The server's settings (the binary resolves them from flags, environment and a file).

use std::time::Duration;

use callstate_query::model::sla::Targets;

/// Who may read (every GET and `POST /api/v1/query`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadAuth {
    /// Anyone.
    #[default]
    Open,
    /// Only with the bearer token (when one is configured).
    Token,
}

impl std::str::FromStr for ReadAuth {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "open" => Ok(ReadAuth::Open),
            "token" => Ok(ReadAuth::Token),
            _ => Err(format!("read auth must be `open` or `token`, not `{s}`")),
        }
    }
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Bearer token required for writes (and reads with [`ReadAuth::Token`]); none: open.
    pub token: Option<String>,
    /// Who may read.
    pub read_auth: ReadAuth,
    /// Largest request body, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Time limit of one SQL query.
    pub sql_timeout: Duration,
    /// Time limit of every other read.
    pub read_timeout: Duration,
    /// Longest a client may take to send a request's head (line and headers); then the
    /// connection is closed (slow clients cannot hold connections open for free).
    pub header_timeout: Duration,
    /// Most rows in an answer to SQL.
    pub max_result_rows: usize,
    /// Most bytes in an answer to SQL (Arrow memory of its rows).
    pub max_result_bytes: usize,
    /// Heavy reads (SQL, fleet, series, availability, SLA, incidents, timelines) running at
    /// once; beyond, 503 with `Retry-After`.
    pub max_concurrent_queries: usize,
    /// … of them from one client address.
    pub max_concurrent_per_client: usize,
    /// Writes (`POST /api/v1/events`) running at once; beyond, 503 with `Retry-After`.
    pub max_concurrent_writes: usize,
    /// Threads of the query runtime.
    pub query_threads: usize,
    /// Nice value of the query runtime's threads (Linux): 0 keeps the process's priority,
    /// 1–19 let HTTP workers, appends and cheap reads take the CPU first.
    pub query_nice: i32,
    /// Memory limit of SQL operators (sorts, joins, aggregates), in bytes.
    pub sql_memory_bytes: usize,
    /// SLA targets.
    pub targets: Targets,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            token: None,
            read_auth: ReadAuth::Open,
            max_body_bytes: 64 << 20,
            sql_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(30),
            max_result_rows: 1_000_000,
            max_result_bytes: 256 << 20,
            max_concurrent_queries: 2 * cores(),
            max_concurrent_per_client: cores().max(2),
            max_concurrent_writes: 64,
            query_threads: cores(),
            query_nice: 10,
            sql_memory_bytes: 1 << 30,
            targets: Targets::default(),
        }
    }
}

/// The machine's cores.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}
