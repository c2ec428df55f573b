//! `POST /api/v1/query`: read-only SQL over the views, bounded in time and memory.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use datafusion::execution::context::SQLOptions;
use serde::Deserialize;
use utoipa::ToSchema;

use callstate_query::limits::{collect, query_context};

use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::params;
use crate::respond::{content_type, negotiate, rows};

/// A query: JSON `{"sql": "...", "known_at": "..."}`, or the SQL itself as `text/plain`
/// (or `application/sql`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct QueryRequest {
    /// One SQL statement (SELECT, EXPLAIN…; no DDL, DML, COPY or SET).
    sql: String,
    /// Derived views (intervals, calls, incidents, functions) as known then; `events` is
    /// always complete (filter it on `ingest_time`).
    known_at: Option<String>,
    /// `json` (default), `csv`, `arrow` or `parquet`.
    format: Option<String>,
}

/// Runs one read-only SQL statement; JSON answers are an array of row objects.
#[utoipa::path(post, path = "/api/v1/query", tag = "sql",
    request_body(content = QueryRequest, description = "JSON, or the SQL as text/plain"),
    responses(
        (status = 200, description = "Rows (JSON array of objects, CSV, Arrow IPC stream or Parquet)", body = Vec<Object>),
        (status = 400, description = "Bad SQL, a write, or a bad parameter (the DataFusion message)", body = ErrorBody),
        (status = 422, description = "The query exceeded the time or memory limit", body = ErrorBody)))]
pub async fn post_query(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let ct = content_type(&headers);
    let req: QueryRequest = if ct.starts_with("text/plain") || ct.starts_with("application/sql") {
        QueryRequest {
            sql: String::from_utf8(body.to_vec())
                .map_err(|_| ApiError::bad_request("the SQL is not UTF-8"))?,
            known_at: None,
            format: None,
        }
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "body: expected JSON {{\"sql\": \"...\"}} or text/plain SQL: {e}"
            ))
        })?
    };
    let format = negotiate(req.format.as_deref(), &headers)?;
    let known_at = params::instant("known_at", &req.known_at)?;
    let base = app.context(known_at).await?;
    let limits = app.sql_limits();
    let timeout = limits.timeout;
    // Planning and execution both run on the query runtime: a table function or a constant
    // may compute while planning. Dropping `running` (the time limit below, or the client
    // going away) aborts it, which drops the DataFusion streams and stops their work.
    let running = app.runtime.spawn(async move {
        let ctx = query_context(&base, &limits)?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = ctx.sql_with_options(&req.sql, options).await?;
        let schema = df.schema().inner().clone();
        let mut batches = collect(df.execute_stream().await?, &limits).await?;
        if batches.is_empty() {
            batches.push(arrow::array::RecordBatch::new_empty(schema));
        }
        Ok(batches)
    });
    let batches = tokio::time::timeout(timeout, running).await.map_err(|_| {
        ApiError::over_limit(format!(
            "the query exceeded the time limit of {} s (sql_timeout_s)",
            timeout.as_secs_f64()
        ))
    })??;
    rows(format, &batches)
}
