//! What people read and what pages them: the monthly SLA report (one self-contained HTML
//! file) and the SLO side (SLI counters for `/metrics`, burn rates, Prometheus recording and
//! alerting rules, Grafana alert provisioning, OpenSLO targets).
//!
//! Every figure comes from the same model functions as the API's `sla` and `incidents`
//! answers (`callstate_query::model`), so a report cannot disagree with the API.

#![warn(missing_docs)]

pub mod figures;
mod format;
pub mod html;
pub mod month;
pub mod slo;
mod svg;

pub use figures::{ReportOptions, SlaReport, build};
pub use month::Month;
