//! The derived state of one log version: the rows the state engine reads, every device's
//! intervals and, on first use, the call legs; and [`LazyDerived`], which derives it on
//! first use so that a question that needs none of it (SQL over `events`) pays nothing.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use callstate_log::Snapshot;
use callstate_schemas::Us;

use crate::error::Result;
use crate::model::intervals::{ServiceInterval, derive, device_slice};
use crate::model::rows::{CallRow, LogRows};
use crate::model::sla::Targets;

/// What derived answers come from: a snapshot and, derived once, its intervals.
#[derive(Debug)]
pub struct Derived {
    /// The log snapshot.
    pub snap: Snapshot,
    /// `known_at` the rows were read with.
    pub known_at: Option<Us>,
    /// Rows (without call legs: see [`Derived::calls`]).
    pub rows: LogRows,
    /// Intervals derived from `rows`, by device then time.
    pub intervals: Vec<ServiceInterval>,
    /// SLA targets.
    pub targets: Targets,
    calls: OnceLock<Vec<CallRow>>,
}

impl Derived {
    /// Loads and derives (call legs are read on first use).
    pub fn load(snap: Snapshot, known_at: Option<Us>, targets: Targets) -> Result<Derived> {
        let rows = LogRows::load_with(&snap, known_at, false)?;
        let intervals = derive(&rows);
        Ok(Derived {
            snap,
            known_at,
            rows,
            intervals,
            targets,
            calls: OnceLock::new(),
        })
    }

    /// A device's intervals (in time order; empty for a device the log does not know).
    pub fn device(&self, device: &str) -> &[ServiceInterval] {
        device_slice(&self.intervals, device, |i| &i.device)
    }

    /// A device's call legs (by start), read on first use.
    pub fn device_calls(&self, device: &str) -> Result<&[CallRow]> {
        Ok(device_slice(self.calls()?, device, |c| &c.device))
    }

    /// Call legs (by device, then start), read on first use.
    pub fn calls(&self) -> Result<&[CallRow]> {
        if let Some(c) = self.calls.get() {
            return Ok(c);
        }
        let c = LogRows::load_calls(&self.snap, self.known_at)?;
        Ok(self.calls.get_or_init(|| c))
    }
}

/// A snapshot whose [`Derived`] state is built on first use, once.
pub struct LazyDerived {
    snap: Snapshot,
    known_at: Option<Us>,
    targets: Targets,
    cell: OnceLock<Arc<Derived>>,
    init: Mutex<()>,
}

impl fmt::Debug for LazyDerived {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyDerived")
            .field("known_at", &self.known_at)
            .finish()
    }
}

impl LazyDerived {
    /// Nothing is read until [`LazyDerived::get`].
    pub fn new(snap: Snapshot, known_at: Option<Us>, targets: Targets) -> Self {
        LazyDerived {
            snap,
            known_at,
            targets,
            cell: OnceLock::new(),
            init: Mutex::new(()),
        }
    }

    /// The snapshot.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snap
    }

    /// The SLA targets.
    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    /// Loads and derives once.
    pub fn get(&self) -> Result<Arc<Derived>> {
        if let Some(s) = self.cell.get() {
            return Ok(s.clone());
        }
        let _guard = self.init.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = self.cell.get() {
            return Ok(s.clone());
        }
        let d = Derived::load(self.snap.clone(), self.known_at, self.targets.clone())?;
        Ok(self.cell.get_or_init(|| Arc::new(d)).clone())
    }

    /// What was known at `known_at` (derived now, not cached); without it, [`LazyDerived::get`].
    pub fn get_known_at(&self, known_at: Option<Us>) -> Result<Arc<Derived>> {
        match known_at {
            None => self.get(),
            Some(k) => Ok(Arc::new(Derived::load(
                self.snap.clone(),
                Some(k),
                self.targets.clone(),
            )?)),
        }
    }
}
