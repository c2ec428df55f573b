//! API errors: a status and a message, answered as `{"error": "..."}`.
//!
//! The mapping from the crates' errors is total and the same on every endpoint: bad input
//! 400, auth 401, unknown 404, body too large 413, over a limit 422, the log refusing
//! writes (a failed write, a full disk, Kafka unreachable) 503 with the reason, anything
//! else 500.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use datafusion::error::DataFusionError;
use serde::Serialize;
use utoipa::ToSchema;

use callstate_ingest::IngestError;
use callstate_log::LogError;
use callstate_query::QueryError;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, naming the parameter or field at fault.
    pub error: String,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Message.
    pub message: String,
    /// Seconds after which a retry may succeed (503 answers).
    pub retry_after_s: Option<u32>,
}

/// How long a client should wait before retrying a refused write.
pub const RETRY_AFTER_S: u32 = 5;

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after_s: None,
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 422: the request is valid but over a limit (time, memory, result size).
    pub fn over_limit(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    /// 503 with `Retry-After`: the server cannot take this now (the log refuses writes).
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError {
            retry_after_s: Some(RETRY_AFTER_S),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }

    /// 500, for failures of the server itself, never for bad input.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// A bad parameter: 400 naming it.
    pub fn param(name: &str, reason: impl std::fmt::Display) -> Self {
        ApiError::bad_request(format!("{name}: {reason}"))
    }

    fn from_datafusion(e: &DataFusionError) -> Self {
        match e.find_root() {
            DataFusionError::ResourcesExhausted(m) => {
                ApiError::over_limit(format!("the query exceeded the memory limit: {m}"))
            }
            DataFusionError::IoError(_) | DataFusionError::ObjectStore(_) => {
                ApiError::internal(e.to_string())
            }
            DataFusionError::External(x) if x.is::<std::io::Error>() => {
                ApiError::internal(e.to_string())
            }
            // the user's SQL: a parse, plan or execution error names what is wrong
            _ => ApiError::bad_request(e.to_string()),
        }
    }
}

impl From<LogError> for ApiError {
    fn from(e: LogError) -> Self {
        match &e {
            LogError::Refused(_) => ApiError::unavailable(e.to_string()),
            _ => ApiError::internal(e.to_string()),
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Log(l) => l.into(),
            // the canonical topic cannot take the events now
            e if e.is_retryable() => ApiError::unavailable(e.to_string()),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        match e.cause() {
            QueryError::BadArgument { .. } | QueryError::Missing(_) => {
                ApiError::bad_request(e.cause().to_string())
            }
            QueryError::NotFound(m) => ApiError::not_found(m.clone()),
            // removed by retention: a question to ask differently, not a server fault
            QueryError::Retired(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m.clone()),
            QueryError::OverLimit { .. } => ApiError::over_limit(e.cause().to_string()),
            // the work was stopped under it: the server is stopping
            QueryError::Cancelled => ApiError::unavailable("the server is stopping; retry shortly"),
            QueryError::DataFusion(d) => ApiError::from_datafusion(d),
            QueryError::Log(LogError::Refused(_)) => ApiError::unavailable(e.to_string()),
            _ => ApiError::internal(e.to_string()),
        }
    }
}

impl From<DataFusionError> for ApiError {
    fn from(e: DataFusionError) -> Self {
        QueryError::DataFusion(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, error = %self.message, "request failed");
        }
        let mut r = (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response();
        if let Some(s) = self.retry_after_s {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The query runtime's threads could not be created.
    #[error("starting the query runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The log's state could not be derived.
    #[error("deriving the log's state: {0}")]
    State(#[from] QueryError),
}
