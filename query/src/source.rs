//! What a SQL context and the API answer from: one version of the fleet, what was known at
//! an earlier ingest time, and that version's log snapshot. The live state is one source, a
//! from-scratch derivation of a snapshot (one-shot commands) another.

use std::fmt;
use std::sync::Arc;

use callstate_log::Snapshot;
use callstate_schemas::Us;

use crate::derived::LazyDerived;
use crate::error::Result;
use crate::live::{AsOfCache, View};
use crate::model::fleet::SharedFleet;

/// A version of the fleet, and the way back to what was known earlier.
pub trait Source: Send + Sync + fmt::Debug {
    /// The fleet of this version (work done here, not when a query is planned).
    fn fleet(&self) -> Result<SharedFleet>;
    /// The fleet as known at `known_at`: only events ingested by then count.
    fn fleet_at(&self, known_at: Us) -> Result<SharedFleet>;
    /// The log snapshot of this version (the `events` table).
    fn snapshot(&self) -> &Snapshot;
}

/// A shared source.
pub type SharedSource = Arc<dyn Source>;

impl Source for LazyDerived {
    fn fleet(&self) -> Result<SharedFleet> {
        Ok(self.get()?)
    }

    fn fleet_at(&self, known_at: Us) -> Result<SharedFleet> {
        Ok(self.get_known_at(Some(known_at))?)
    }

    fn snapshot(&self) -> &Snapshot {
        LazyDerived::snapshot(self)
    }
}

/// A published version of the live state as a source.
#[derive(Clone)]
pub struct LiveSource {
    /// The version.
    pub view: Arc<View>,
    /// Where `known_at` questions find what was known then.
    pub as_of: Arc<AsOfCache>,
}

impl fmt::Debug for LiveSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveSource")
            .field("view", &self.view)
            .finish()
    }
}

impl Source for LiveSource {
    fn fleet(&self) -> Result<SharedFleet> {
        Ok(self.view.clone())
    }

    fn fleet_at(&self, known_at: Us) -> Result<SharedFleet> {
        self.as_of.fleet_at(&self.view, known_at)
    }

    fn snapshot(&self) -> &Snapshot {
        self.view.snapshot()
    }
}
