//! Query parameters as users write them: instants (RFC 3339, epoch ms, `now`; an empty
//! value, as a blank Grafana variable gives, is no value), windows, groupings.

use callstate_query::model::frozen::Edges;
use callstate_query::model::sla::GroupBy;
use callstate_schemas::{Us, parse_instant};

use crate::error::ApiError;

/// An optional instant parameter.
pub fn instant(name: &str, v: &Option<String>) -> Result<Option<Us>, ApiError> {
    v.as_deref()
        .filter(|s| !s.trim().is_empty())
        .map(|s| parse_instant(s).map_err(|e| ApiError::param(name, e)))
        .transpose()
}

/// A required instant parameter.
pub fn required(name: &str, v: &Option<String>) -> Result<Us, ApiError> {
    instant(name, v)?.ok_or_else(|| ApiError::bad_request(format!("{name} is required")))
}

/// The required window `from` < `to`.
pub fn window(from: &Option<String>, to: &Option<String>) -> Result<(Us, Us), ApiError> {
    let (from, to) = (required("from", from)?, required("to", to)?);
    if from >= to {
        return Err(ApiError::bad_request("from must be before to"));
    }
    Ok((from, to))
}

/// A `group_by` parameter (`default` when absent).
pub fn group_by(v: &Option<String>, default: GroupBy) -> Result<GroupBy, ApiError> {
    v.as_deref()
        .filter(|s| !s.is_empty())
        .map_or(Ok(default), |s| {
            s.parse()
                .map_err(|e: String| ApiError::param("group_by", e))
        })
}

/// `edges` ([`Edges`]; default `exact`).
pub fn edges(v: &Option<String>) -> Result<Edges, ApiError> {
    v.as_deref()
        .filter(|s| !s.is_empty())
        .map_or(Ok(Edges::Exact), |s| {
            s.parse().map_err(|e: String| ApiError::param("edges", e))
        })
}

/// Now, in microseconds.
pub fn now() -> Us {
    chrono::Utc::now().timestamp_micros()
}
