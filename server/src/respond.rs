//! Answer formats: JSON by default, CSV with `?format=csv` (or `Accept: text/csv`), Arrow IPC
//! stream with `Accept: application/vnd.apache.arrow.stream` (or `?format=arrow`), Parquet
//! with `Accept: application/vnd.apache.parquet` (or `?format=parquet`).

use arrow::array::RecordBatch;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Media type of the Arrow IPC stream format.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// Media type of Apache Parquet (registered with IANA).
pub const PARQUET: &str = "application/vnd.apache.parquet";

/// The format of a tabular answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON (the endpoint's documented shape).
    Json,
    /// CSV with a header row.
    Csv,
    /// Arrow IPC stream.
    Arrow,
    /// One Apache Parquet file (zstd).
    Parquet,
}

/// The request's `Content-Type` ("" when absent or not text).
pub fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The format asked for: `?format=` wins over `Accept`.
pub fn negotiate(format: Option<&str>, headers: &HeaderMap) -> Result<Format, ApiError> {
    match format {
        Some("json") => return Ok(Format::Json),
        Some("csv") => return Ok(Format::Csv),
        Some("arrow") => return Ok(Format::Arrow),
        Some("parquet") => return Ok(Format::Parquet),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format: unknown format `{other}` (json, csv, arrow or parquet)"
            )));
        }
        None => {}
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Ok(if accept.contains(ARROW_STREAM) {
        Format::Arrow
    } else if accept.contains(PARQUET) {
        Format::Parquet
    } else if accept.contains("text/csv") {
        Format::Csv
    } else {
        Format::Json
    })
}

/// A response of `body` with its content type.
pub fn with_type(body: Vec<u8>, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// Rows as a JSON array of objects (nulls explicit, times RFC 3339 UTC).
pub fn json_rows(batches: &[RecordBatch]) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    let mut w = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow::json::writer::JsonArray>(&mut out);
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    w.write_batches(&refs)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    w.finish().map_err(|e| ApiError::internal(e.to_string()))?; // `[]` when no row
    drop(w);
    Ok(out)
}

/// Rows as a JSON array kept verbatim (column order preserved), to embed in a larger answer.
pub fn json_raw(batches: &[RecordBatch]) -> Result<Box<serde_json::value::RawValue>, ApiError> {
    let text =
        String::from_utf8(json_rows(batches)?).map_err(|e| ApiError::internal(e.to_string()))?;
    serde_json::value::RawValue::from_string(text).map_err(|e| ApiError::internal(e.to_string()))
}

/// `value` as JSON bytes (fields in declaration order).
pub fn to_json(value: &impl serde::Serialize) -> Result<Vec<u8>, ApiError> {
    to_json_sized(value, 0)
}

/// [`to_json`] into a buffer of `capacity` bytes to begin with (large answers: no copying
/// as it grows).
pub fn to_json_sized(value: &impl serde::Serialize, capacity: usize) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut out, value).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(out)
}

/// Rows in `format`; `json` gives the JSON answer (the endpoint's shape). Pass at least one
/// (possibly empty) batch so that CSV has its header and Arrow and Parquet their schema.
pub fn tabular(
    format: Format,
    batches: &[RecordBatch],
    json: impl FnOnce() -> Result<Vec<u8>, ApiError>,
) -> Result<Response, ApiError> {
    let (body, content_type) = encode(format, || Ok(batches.to_vec()), json)?;
    Ok(with_type(body, content_type))
}

/// A Parquet writer (zstd) of `schema` into `out`: one file once closed.
pub fn parquet_writer<W: std::io::Write + Send>(
    out: W,
    schema: arrow::datatypes::SchemaRef,
) -> Result<parquet::arrow::ArrowWriter<W>, parquet::errors::ParquetError> {
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .build();
    parquet::arrow::ArrowWriter::try_new(out, schema, Some(props))
}

/// `batch` with every nested column (a list, such as `events.nodes`) as text, `[a, b]`, as
/// CSV has no nested values; nulls stay null.
pub fn flat(batch: &RecordBatch) -> Result<RecordBatch, arrow::error::ArrowError> {
    use arrow::array::{Array, ArrayRef, StringBuilder};
    use arrow::datatypes::{Field, Schema};
    use std::fmt::Write;
    if !batch.columns().iter().any(|c| c.data_type().is_nested()) {
        return Ok(batch.clone());
    }
    let options = arrow::util::display::FormatOptions::default();
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, col) in batch.schema().fields().iter().zip(batch.columns()) {
        if !col.data_type().is_nested() {
            fields.push(field.as_ref().clone());
            columns.push(col.clone());
            continue;
        }
        let formatter = arrow::util::display::ArrayFormatter::try_new(col.as_ref(), &options)?;
        let mut text = StringBuilder::with_capacity(col.len(), col.len() * 8);
        for i in 0..col.len() {
            if col.is_null(i) {
                text.append_null();
            } else {
                write!(text, "{}", formatter.value(i))
                    .map_err(|e| arrow::error::ArrowError::ComputeError(e.to_string()))?;
                text.append_value("");
            }
        }
        fields.push(Field::new(
            field.name(),
            arrow::datatypes::DataType::Utf8,
            field.is_nullable(),
        ));
        columns.push(std::sync::Arc::new(text.finish()));
    }
    RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), columns)
}

/// The schema of `batches` (none when there is no batch).
pub fn schema_of(batches: &[RecordBatch]) -> arrow::datatypes::SchemaRef {
    batches
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(|| std::sync::Arc::new(arrow::datatypes::Schema::empty()))
}

/// `batches` as one Parquet file (`schema` when there is none).
fn parquet_file(
    schema: arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let mut w = parquet_writer(Vec::new(), schema)?;
    for b in batches {
        w.write(b)?;
    }
    w.into_inner()
}

/// The body of a tabular answer in `format`, and its content type; `batches` is called only
/// for CSV, Arrow and Parquet, `json` only for JSON (so that heavy answers can be encoded off the
/// HTTP runtime, building only what the format needs).
pub fn encode(
    format: Format,
    batches: impl FnOnce() -> Result<Vec<RecordBatch>, ApiError>,
    json: impl FnOnce() -> Result<Vec<u8>, ApiError>,
) -> Result<(Vec<u8>, &'static str), ApiError> {
    let err = |e: arrow::error::ArrowError| ApiError::internal(e.to_string());
    Ok(match format {
        Format::Json => (json()?, "application/json"),
        Format::Csv => {
            let batches = batches()?;
            let mut out = Vec::new();
            {
                let mut w = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut out);
                for b in &batches {
                    w.write(&flat(b).map_err(err)?).map_err(err)?;
                }
            }
            (out, "text/csv; charset=utf-8")
        }
        Format::Arrow => {
            let batches = batches()?;
            let schema = schema_of(&batches);
            let mut out = Vec::new();
            {
                let mut w =
                    arrow::ipc::writer::StreamWriter::try_new(&mut out, &schema).map_err(err)?;
                for b in &batches {
                    w.write(b).map_err(err)?;
                }
                w.finish().map_err(err)?;
            }
            (out, ARROW_STREAM)
        }
        Format::Parquet => {
            let batches = batches()?;
            let out = parquet_file(schema_of(&batches), &batches)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            (out, PARQUET)
        }
    })
}

/// Rows in `format`, JSON being the array of row objects.
pub fn rows(format: Format, batches: &[RecordBatch]) -> Result<Response, ApiError> {
    match format {
        Format::Json => Ok(with_type(json_rows(batches)?, "application/json")),
        _ => tabular(format, batches, || json_rows(batches)),
    }
}
