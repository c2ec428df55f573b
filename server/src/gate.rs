//! Concurrency limits: how many requests of a kind may run at once, overall and per client
//! address. A request beyond them is refused at once (503 with `Retry-After`), not queued.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::ApiError;

/// How many heavy requests may run at once, overall and per client address.
pub struct Gate {
    global: usize,
    per_client: usize,
    /// The settings of the two limits, for the messages.
    settings: (&'static str, &'static str),
    /// Requests running, overall and per client; requests let in so far.
    running: Mutex<Running>,
    /// Called once no request has run for [`Gate::QUIET`].
    on_quiet: Option<Box<dyn Fn() + Send + Sync>>,
}

#[derive(Default)]
struct Running {
    all: usize,
    by_client: HashMap<Option<IpAddr>, usize>,
    entered: u64,
}

/// A place in the [`Gate`], given back on drop.
pub struct Permit {
    gate: Arc<Gate>,
    client: Option<IpAddr>,
}

impl Gate {
    /// A gate letting `global` requests run at once, `per_client` from one address;
    /// `settings` names the two limits.
    pub fn new(
        global: usize,
        per_client: usize,
        settings: (&'static str, &'static str),
    ) -> Arc<Gate> {
        Gate::with(global, per_client, settings, None)
    }

    fn with(
        global: usize,
        per_client: usize,
        settings: (&'static str, &'static str),
        on_quiet: Option<Box<dyn Fn() + Send + Sync>>,
    ) -> Arc<Gate> {
        Arc::new(Gate {
            global: global.max(1),
            per_client: per_client.max(1),
            settings,
            running: Mutex::default(),
            on_quiet,
        })
    }

    /// How long no request must run before [`Gate::with_on_quiet`]'s work is done.
    pub const QUIET: Duration = Duration::from_secs(1);

    /// [`Gate::new`], calling `on_quiet` on a blocking thread once no request has run for
    /// [`Gate::QUIET`] after one ends (a burst of requests calls it once, after the last).
    pub fn with_on_quiet(
        global: usize,
        per_client: usize,
        settings: (&'static str, &'static str),
        on_quiet: impl Fn() + Send + Sync + 'static,
    ) -> Arc<Gate> {
        Gate::with(global, per_client, settings, Some(Box::new(on_quiet)))
    }

    /// Whether no request was let in since the `entered`th and none runs.
    fn quiet_since(&self, entered: u64) -> bool {
        let r = self.running.lock().unwrap_or_else(|p| p.into_inner());
        r.all == 0 && r.entered == entered
    }

    /// After the last running request ended (`entered` let in so far): waits [`Gate::QUIET`]
    /// and, if none came meanwhile, does the gate's quiet work.
    fn ended_all(self: &Arc<Self>, entered: u64) {
        if self.on_quiet.is_none() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let gate = self.clone();
        rt.spawn(async move {
            tokio::time::sleep(Gate::QUIET).await;
            if gate.quiet_since(entered) {
                let _ = tokio::task::spawn_blocking(move || {
                    if let Some(f) = &gate.on_quiet {
                        f();
                    }
                })
                .await;
            }
        });
    }

    /// A place for `client`, or why there is none.
    pub fn try_enter(self: &Arc<Self>, client: Option<IpAddr>) -> Result<Permit, ApiError> {
        let mut r = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if r.all >= self.global {
            return Err(ApiError::unavailable(format!(
                "the server is busy with {} such requests already; retry shortly ({})",
                self.global, self.settings.0
            )));
        }
        let mine = r.by_client.entry(client).or_default();
        if *mine >= self.per_client {
            return Err(ApiError::unavailable(format!(
                "{} such requests of this client are running already; retry shortly ({})",
                self.per_client, self.settings.1
            )));
        }
        *mine += 1;
        r.all += 1;
        r.entered += 1;
        Ok(Permit {
            gate: self.clone(),
            client,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut r = self.gate.running.lock().unwrap_or_else(|p| p.into_inner());
        r.all -= 1;
        if let Some(n) = r.by_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                r.by_client.remove(&self.client);
            }
        }
        let (all, entered) = (r.all, r.entered);
        drop(r);
        if all == 0 {
            self.gate.ended_all(entered);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn quiet_work_runs_once_after_the_last_request_of_a_burst_and_not_while_one_runs() {
        let (tx, rx) = mpsc::channel::<()>();
        let tx = Mutex::new(tx);
        let gate = Gate::with_on_quiet(4, 4, ("a", "b"), move || {
            let _ = tx.lock().unwrap().send(());
        });
        let wait = |secs: f64| {
            let rx = &rx;
            tokio::task::block_in_place(|| rx.recv_timeout(Duration::from_secs_f64(secs)))
        };
        // one of two ends: the other still runs, so nothing is done
        let (a, b) = (gate.try_enter(None).unwrap(), gate.try_enter(None).unwrap());
        drop(a);
        assert!(wait(2.5).is_err(), "called while a request ran");
        drop(b);
        wait(10.0).expect("called once the last one ended");
        // a burst: requests one after another, each ending before the next is let in
        for _ in 0..5 {
            drop(gate.try_enter(None).unwrap());
        }
        wait(10.0).expect("called after the burst");
        assert!(wait(2.5).is_err(), "called once for the burst");
        // a request let in during the quiet time puts the work off
        drop(gate.try_enter(None).unwrap());
        tokio::time::sleep(Gate::QUIET / 2).await;
        let c = gate.try_enter(None).unwrap();
        assert!(wait(2.5).is_err(), "called while a later request ran");
        drop(c);
        wait(10.0).expect("called after it");
    }

    #[test]
    fn a_gate_without_quiet_work_outside_a_runtime_still_counts() {
        let gate = Gate::with_on_quiet(1, 1, ("a", "b"), || {});
        let p = gate.try_enter(None).unwrap();
        assert!(gate.try_enter(None).is_err(), "one at a time");
        drop(p);
        drop(gate.try_enter(None).unwrap());
    }
}
