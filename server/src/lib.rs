//! callstate server: the HTTP API of design.md §5 (axum), and nothing else. The router and
//! the OpenAPI document come from the same handler annotations ([`router`]); one file per
//! resource ([`resources`]); settings, auth, health, metrics, answer formats and the error
//! mapping beside them. The HTTP collector (`POST /api/v1/events`) uses the collectors'
//! shared front end; answers come from the query engine.

#![warn(missing_docs)]

pub mod app;
pub mod auth;
pub mod bodies;
mod deadline;
pub mod error;
pub mod extract;
pub mod gate;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod params;
pub mod resources;
pub mod respond;
pub mod router;
pub mod serve;
pub mod settings;

pub use app::{App, AppState, Readiness};
pub use error::{ApiError, ErrorBody, StartError};
pub use router::router;
pub use serve::{LISTEN_BACKLOG, SHUTDOWN_GRACE, bind, serve};
pub use settings::{ReadAuth, ServerConfig};
