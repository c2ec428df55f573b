//! Incidents (design.md §4): the list, and one in full.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;

use callstate_query::QueryError;
use callstate_query::model::incidents::{Incident, IncidentOptions, detect, kept_from};
use callstate_query::tables;
use callstate_schemas::Us;

use crate::app::AppState;
use crate::bodies::{IncidentBody, IncidentRowBody};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Params, PathParam};
use crate::params;
use crate::respond::{Format, negotiate, rows, tabular, to_json};

/// Parameters of an incident list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IncidentParams {
    /// Incidents starting at or after (RFC 3339 or epoch ms); default: from the beginning.
    from: Option<String>,
    /// … and before; default: no end.
    to: Option<String>,
    /// Answer with only the events ingested by then.
    known_at: Option<String>,
    /// `json` (default), `csv`, `arrow` or `parquet`.
    format: Option<String>,
}

/// Incidents starting in [from, to); from where they are kept when `from` is `None`.
async fn detect_all(
    app: &AppState,
    from: Option<Us>,
    to: Us,
    known_at: Option<Us>,
) -> Result<Vec<Incident>, ApiError> {
    let fleet = app.fleet(known_at).await?;
    app.run(move |cancel| {
        let opts = IncidentOptions::default();
        let from = from.unwrap_or_else(|| kept_from(&*fleet, &opts).unwrap_or(Us::MIN));
        Ok(detect(&*fleet, from, to, &opts, cancel)?)
    })
    .await
}

/// The incident with this id (404 when there is none).
pub(crate) async fn find_incident(
    app: &AppState,
    id: &str,
    known_at: Option<Us>,
) -> Result<Incident, ApiError> {
    // from where incidents are kept (an older id is not found)
    detect_all(app, None, Us::MAX, known_at)
        .await?
        .into_iter()
        .find(|i| i.id == id)
        .ok_or_else(|| QueryError::NotFound(format!("no incident `{id}`")).into())
}

/// Incidents starting in the window: one row each, lists as counts.
#[utoipa::path(get, path = "/api/v1/incidents", tag = "incidents", params(IncidentParams),
    responses(
        (status = 200, description = "One row per incident", body = Vec<IncidentRowBody>),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 422, description = "The question reaches before a retention horizon (named)", body = ErrorBody)))]
pub async fn incidents(
    State(app): State<AppState>,
    Params(p): Params<IncidentParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let format = negotiate(p.format.as_deref(), &headers)?;
    let from = params::instant("from", &p.from)?.unwrap_or(Us::MIN);
    let to = params::instant("to", &p.to)?.unwrap_or(Us::MAX);
    let known_at = params::instant("known_at", &p.known_at)?;
    let found = detect_all(&app, Some(from), to, known_at).await?;
    rows(format, &[tables::incidents::batch(&found)])
}

/// Parameters of one incident.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OneIncidentParams {
    /// Answer with only the events ingested by then.
    known_at: Option<String>,
}

/// One incident in full: devices, failovers and re-homes with their times, calls and how
/// they ended. The id is URL-encoded (it holds `/`).
#[utoipa::path(get, path = "/api/v1/incidents/{id}", tag = "incidents",
    params(("id" = String, Path, description = "Incident id, URL-encoded"), OneIncidentParams),
    responses(
        (status = 200, description = "The incident", body = IncidentBody),
        (status = 404, description = "No such incident", body = ErrorBody)))]
pub async fn incident(
    State(app): State<AppState>,
    PathParam(id): PathParam<String>,
    Params(p): Params<OneIncidentParams>,
) -> Result<Response, ApiError> {
    let known_at = params::instant("known_at", &p.known_at)?;
    let inc = find_incident(&app, &id, known_at).await?;
    tabular(Format::Json, &[], || to_json(&inc))
}
