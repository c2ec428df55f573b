//! Concurrency limits: how many requests of a kind may run at once, overall and per client
//! address. A request beyond them is refused at once (503 with `Retry-After`), not queued.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::error::ApiError;

/// How many heavy requests may run at once, overall and per client address.
pub struct Gate {
    global: usize,
    per_client: usize,
    /// The settings of the two limits, for the messages.
    settings: (&'static str, &'static str),
    running: Mutex<(usize, HashMap<Option<IpAddr>, usize>)>,
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
        Arc::new(Gate {
            global: global.max(1),
            per_client: per_client.max(1),
            settings,
            running: Mutex::new((0, HashMap::new())),
        })
    }

    /// A place for `client`, or why there is none.
    pub fn try_enter(self: &Arc<Self>, client: Option<IpAddr>) -> Result<Permit, ApiError> {
        let mut r = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if r.0 >= self.global {
            return Err(ApiError::unavailable(format!(
                "the server is busy with {} such requests already; retry shortly ({})",
                self.global, self.settings.0
            )));
        }
        let mine = r.1.entry(client).or_default();
        if *mine >= self.per_client {
            return Err(ApiError::unavailable(format!(
                "{} such requests of this client are running already; retry shortly ({})",
                self.per_client, self.settings.1
            )));
        }
        *mine += 1;
        r.0 += 1;
        Ok(Permit {
            gate: self.clone(),
            client,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut r = self.gate.running.lock().unwrap_or_else(|p| p.into_inner());
        r.0 -= 1;
        if let Some(n) = r.1.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                r.1.remove(&self.client);
            }
        }
    }
}
