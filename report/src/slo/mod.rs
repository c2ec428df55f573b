//! SLO alerting: SLI counters for `/metrics`, burn rates over a window, the objectives a
//! targets file sets, and the rules that alert on them (Prometheus, Grafana), with targets
//! also read from OpenSLO documents.

pub mod burn;
pub mod grafana;
pub mod objectives;
pub mod openslo;
pub mod prometheus;
pub mod sli;

pub use objectives::{BURN_ALERTS, BurnAlert, Objective, Objectives, SCOPES, SEVERITIES, Severity};
