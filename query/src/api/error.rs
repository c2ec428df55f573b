//! API errors: a status and a message, answered as `{"error": "..."}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use datafusion::error::DataFusionError;
use serde::Serialize;
use utoipa::ToSchema;

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
}

impl ApiError {
    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// 500, for failures of the server itself (I/O), never for bad input.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }

    /// An error of a user's SQL: 400, or 422 when it ran into a resource limit.
    pub fn from_sql(e: DataFusionError) -> Self {
        let root = e.find_root();
        match root {
            DataFusionError::ResourcesExhausted(m) => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                message: format!("the query exceeded the memory limit: {m}"),
            },
            DataFusionError::IoError(_) | DataFusionError::ObjectStore(_) => {
                ApiError::internal(e.to_string())
            }
            DataFusionError::External(x) if x.is::<std::io::Error>() => {
                ApiError::internal(e.to_string())
            }
            _ => ApiError::bad_request(e.to_string()),
        }
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        ApiError::internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, error = %self.message, "request failed");
        }
        (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}
