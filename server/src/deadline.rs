//! The deadline of the request being served, for the work it hands to the query runtime: set
//! by the time-limit middleware, read by [`crate::app::App::run`], so that a derivation on a
//! blocking thread stops at the deadline by itself.

use std::future::Future;

use callstate_query::exec::Deadline;

tokio::task_local! {
    static DEADLINE: Deadline;
}

/// Runs `fut` with `deadline` as the request's deadline.
pub(crate) async fn within<F: Future>(deadline: Deadline, fut: F) -> F::Output {
    DEADLINE.scope(deadline, fut).await
}

/// The deadline of the request this task serves, if it has one.
pub(crate) fn current() -> Option<Deadline> {
    DEADLINE.try_with(|d| *d).ok()
}
