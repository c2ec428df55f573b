//! The from-scratch derivation of a snapshot: every device's final intervals and, when asked
//! for, the call legs, derived at once. It is the reference the live state is checked
//! against, and what one-shot questions (`known_at`, the CLI) use.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use callstate_log::Snapshot;
use callstate_schemas::Us;

use crate::error::Result;
use crate::model::fleet::{DeviceHistory, Fleet};
use crate::model::frozen::{Frozen, frozen_of, read_whole};
use crate::model::intervals::{ServiceInterval, by_device, derive, device_slice};
use crate::model::rows::{CallRow, LogRows, MaintenanceRow, NodeEvent, PoolConfig};
use crate::model::sla::Targets;

/// A snapshot's derived state.
#[derive(Debug)]
pub struct Derived {
    /// The log snapshot.
    pub snap: Snapshot,
    /// `known_at` the rows were read with.
    pub known_at: Option<Us>,
    /// Rows (call legs in [`Derived::calls`]).
    pub rows: LogRows,
    /// Final intervals, by device then time.
    pub intervals: Vec<ServiceInterval>,
    /// Call legs (empty unless loaded), by device then start.
    pub calls: Vec<CallRow>,
    /// SLA targets.
    pub targets: Targets,
    /// The hourly rollups frozen before the horizon of retention of intervals, if kept (and
    /// known at `known_at`).
    pub frozen: Option<Arc<Frozen>>,
}

impl Derived {
    /// Loads and derives; with `calls`, pairs the call legs too.
    pub fn load(
        snap: Snapshot,
        known_at: Option<Us>,
        targets: Targets,
        calls: bool,
    ) -> Result<Derived> {
        let rows = LogRows::load_with(&snap, known_at, false)?;
        let frozen = frozen_of(&snap, known_at, &read_whole)?;
        let intervals = derive(&rows);
        let calls = if calls {
            LogRows::load_calls(&snap, known_at)?
        } else {
            Vec::new()
        };
        Ok(Derived {
            snap,
            known_at,
            rows,
            intervals,
            calls,
            targets,
            frozen,
        })
    }

    /// A device's intervals (in time order; empty for a device the log does not know).
    pub fn device_intervals(&self, device: &str) -> &[ServiceInterval] {
        device_slice(&self.intervals, device, |i| &i.device)
    }
}

impl Fleet for Derived {
    fn devices(&self) -> Box<dyn Iterator<Item = DeviceHistory<'_>> + '_> {
        Box::new(by_device(&self.intervals).map(|iv| DeviceHistory {
            intervals: iv.into(),
            open: None,
            rollup: None,
            frozen: self.frozen.as_deref(),
        }))
    }

    fn device(&self, name: &str) -> Option<DeviceHistory<'_>> {
        let iv = self.device_intervals(name);
        (!iv.is_empty()).then_some(DeviceHistory {
            intervals: iv.into(),
            open: None,
            rollup: None,
            frozen: self.frozen.as_deref(),
        })
    }

    fn calls_of(&self, device: &str) -> Cow<'_, [CallRow]> {
        Cow::Borrowed(device_slice(&self.calls, device, |c| &c.device))
    }

    fn calls(&self) -> Box<dyn Iterator<Item = Cow<'_, [CallRow]>> + '_> {
        Box::new(
            self.calls
                .chunk_by(|a, b| a.device == b.device)
                .map(Cow::Borrowed),
        )
    }

    fn intervals_kept_from(&self) -> Option<Us> {
        self.rows.horizon
    }

    fn frozen(&self) -> Option<&Frozen> {
        self.frozen.as_deref()
    }

    fn windows(&self) -> &[MaintenanceRow] {
        &self.rows.windows
    }

    fn node_events(&self) -> &[NodeEvent] {
        &self.rows.node_events
    }

    fn pool_configs(&self) -> &[PoolConfig] {
        &self.rows.pool_configs
    }

    fn targets(&self) -> &Targets {
        &self.targets
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

    /// Loads and derives once (call legs included).
    pub fn get(&self) -> Result<Arc<Derived>> {
        if let Some(s) = self.cell.get() {
            return Ok(s.clone());
        }
        let _guard = self.init.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = self.cell.get() {
            return Ok(s.clone());
        }
        let d = Derived::load(self.snap.clone(), self.known_at, self.targets.clone(), true)?;
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
                true,
            )?)),
        }
    }
}
