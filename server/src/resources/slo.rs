//! SLO burn rates: how fast each device pool, node and cluster spends its error budget over a
//! window ending now (what Grafana alert rules read without Prometheus).

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;

use callstate_query::model::sla::GroupBy;
use callstate_report::slo::SCOPES;
use callstate_report::slo::burn::burn;
use callstate_schemas::parse_positive_duration;

use crate::app::AppState;
use crate::bodies::BurnBody;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Params;
use crate::params;
use crate::respond::{to_json, with_type};

/// Parameters of a burn-rate question.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BurnParams {
    /// Window length ending at `at`: `5m`, `1h`, `6h`, `1d`, `3d`… (default `1h`).
    window: Option<String>,
    /// `device_pool`, `node` or `cluster` (default: all three).
    scope: Option<String>,
    /// Window end (default now).
    at: Option<String>,
}

/// Burn rate per group: out-of-service share of the measured device-time over the window,
/// divided by the group's error budget (1 − target); maintenance windows excluded. 1 spends
/// the budget exactly over the SLO period; 14.4 over an hour pages in the SRE workbook.
#[utoipa::path(get, path = "/api/v1/slo/burn", tag = "sla", params(BurnParams),
    responses(
        (status = 200, description = "One row per group", body = Vec<BurnBody>),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 422, description = "The question reaches before a retention horizon (named)", body = ErrorBody)))]
pub async fn slo_burn(
    State(app): State<AppState>,
    Params(p): Params<BurnParams>,
) -> Result<Response, ApiError> {
    let window = parse_positive_duration(p.window.as_deref().unwrap_or("1h"))
        .map_err(|e| ApiError::param("window", e))?;
    let scopes: Vec<GroupBy> = match p.scope.as_deref() {
        None => Vec::new(),
        Some(s) => match s.parse::<GroupBy>() {
            Ok(g) if SCOPES.contains(&g) => vec![g],
            _ => {
                return Err(ApiError::param(
                    "scope",
                    format!("`{s}`: expected device_pool, node or cluster"),
                ));
            }
        },
    };
    let at = params::instant("at", &p.at)?.unwrap_or_else(params::now);
    let fleet = app.fleet(None).await?;
    let rows = app
        .run(move |cancel| Ok(burn(&*fleet, at, window, &scopes, cancel)?))
        .await?;
    Ok(with_type(to_json(&rows)?, "application/json"))
}
