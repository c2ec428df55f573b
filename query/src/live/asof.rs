//! What was known at an earlier ingest time (`known_at`), from the live state rather than a
//! fresh derivation of the log.
//!
//! Every event the live state keeps carries its ingest time, and ingest times never
//! decrease in log order, so a version whose latest ingest time is past `known_at` holds
//! everything known then: the as-of view filters the devices' service events, the pools'
//! configurations, maintenance windows, node events and call legs by ingest time, and
//! re-derives a device only when it is asked for. Only the sources' activity (which is
//! merged as it arrives) comes from the log: the digests of the segments wholly ingested by
//! then and the events of the one segment ingested across it.
//!
//! What was known at a past instant never changes, so as-of views are kept by `known_at`
//! (a few, most recently used first) and shared by every version.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use callstate_schemas::Us;

use crate::error::Result;
use crate::model::fleet::{DeviceHistory, Fleet, SharedFleet};
use crate::model::intervals::{PoolHistory, ServiceInterval, closed_silences, pool_history};
use crate::model::rows::{CallRow, MaintenanceRow, NodeEvent, PoolConfig, source_spans_known_at};
use crate::model::sla::Targets;

use super::device::{Device, Silences, intervals};
use super::view::View;

/// As-of views kept.
const KEPT: usize = 4;

/// The fleet as known at an ingest time.
pub struct AsOf {
    known_at: Us,
    view: Arc<View>,
    /// Every unknown window of each source (closed and open).
    silences: HashMap<Arc<str>, Silences>,
    pools: PoolHistory,
    pool_configs: Vec<PoolConfig>,
    windows: Vec<MaintenanceRow>,
    node_events: Vec<NodeEvent>,
    /// Devices by name, derived when first asked for.
    names: Vec<(Arc<str>, Arc<Device>)>,
    index: HashMap<Arc<str>, usize>,
    intervals: Vec<OnceLock<Vec<ServiceInterval>>>,
    calls: Vec<OnceLock<Vec<CallRow>>>,
}

impl std::fmt::Debug for AsOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsOf")
            .field("known_at", &self.known_at)
            .field("devices", &self.names.len())
            .finish()
    }
}

impl AsOf {
    /// What `view` says was known at `known_at` (which must be before its latest ingest
    /// time for the answer to be complete; later ones are the view itself).
    pub fn new(view: Arc<View>, known_at: Us) -> Result<AsOf> {
        let spans = source_spans_known_at(view.snapshot(), known_at)?;
        let silences = spans
            .iter()
            .map(|(s, v)| {
                let mut w = closed_silences(v);
                if let Some(last) = v.last() {
                    w.push((last.1 + callstate_schemas::SILENCE_US, None));
                }
                (s.clone(), w)
            })
            .collect();
        let known = |t: Us| t <= known_at;
        let pool_configs: Vec<PoolConfig> = view
            .pool_configs
            .iter()
            .filter(|p| known(p.ingest_time))
            .cloned()
            .collect();
        let names: Vec<(Arc<str>, Arc<Device>)> = view
            .devices
            .iter()
            .map(|(n, d)| (n.clone(), d.clone()))
            .collect();
        let n = names.len();
        Ok(AsOf {
            known_at,
            silences,
            pools: pool_history(&pool_configs),
            pool_configs,
            windows: view
                .windows
                .iter()
                .filter(|w| known(w.ingest_time))
                .cloned()
                .collect(),
            node_events: view
                .node_events
                .iter()
                .filter(|e| known(e.ingest_time))
                .cloned()
                .collect(),
            index: names
                .iter()
                .enumerate()
                .map(|(i, (n, _))| (n.clone(), i))
                .collect(),
            names,
            intervals: (0..n).map(|_| OnceLock::new()).collect(),
            calls: (0..n).map(|_| OnceLock::new()).collect(),
            view,
        })
    }

    /// The ingest time it answers for.
    pub fn known_at(&self) -> Us {
        self.known_at
    }

    fn intervals_of(&self, k: usize) -> &[ServiceInterval] {
        self.intervals[k].get_or_init(|| {
            let events = self.names[k].1.events_known_at(self.known_at);
            intervals(&events, &self.pools, |source| {
                self.silences.get(source).cloned().unwrap_or_default()
            })
        })
    }

    fn calls_of_index(&self, k: usize) -> &[CallRow] {
        self.calls[k].get_or_init(|| {
            let (name, d) = &self.names[k];
            d.calls.rows_known_at(name, self.known_at)
        })
    }

    fn history(&self, k: usize) -> Option<DeviceHistory<'_>> {
        let iv = self.intervals_of(k);
        (!iv.is_empty()).then_some(DeviceHistory {
            intervals: iv,
            open: None,
        })
    }
}

impl Fleet for AsOf {
    fn devices(&self) -> Box<dyn Iterator<Item = DeviceHistory<'_>> + '_> {
        Box::new((0..self.names.len()).filter_map(|k| self.history(k)))
    }

    fn device(&self, name: &str) -> Option<DeviceHistory<'_>> {
        self.history(*self.index.get(name)?)
    }

    fn calls_of(&self, device: &str) -> Cow<'_, [CallRow]> {
        match self.index.get(device) {
            Some(&k) => Cow::Borrowed(self.calls_of_index(k)),
            None => Cow::Borrowed(&[]),
        }
    }

    fn calls(&self) -> Box<dyn Iterator<Item = Cow<'_, [CallRow]>> + '_> {
        Box::new(
            (0..self.names.len())
                .map(|k| self.calls_of_index(k))
                .filter(|c| !c.is_empty())
                .map(Cow::Borrowed),
        )
    }

    fn windows(&self) -> &[MaintenanceRow] {
        &self.windows
    }

    fn node_events(&self) -> &[NodeEvent] {
        &self.node_events
    }

    fn pool_configs(&self) -> &[PoolConfig] {
        &self.pool_configs
    }

    fn targets(&self) -> &Targets {
        &self.view.targets
    }
}

/// The as-of views asked for lately, by `known_at`.
#[derive(Default)]
pub struct AsOfCache {
    kept: Mutex<VecDeque<Arc<AsOf>>>,
}

impl AsOfCache {
    /// The fleet as known at `known_at`, from `view`: the view itself when it holds nothing
    /// ingested later; otherwise an as-of view (kept for the next question).
    pub fn fleet_at(&self, view: &Arc<View>, known_at: Us) -> Result<SharedFleet> {
        if known_at >= view.last_ingest_time {
            return Ok(view.clone());
        }
        let lock = || self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let found = {
            let mut kept = lock();
            let k = kept.iter().position(|a| a.known_at == known_at);
            k.and_then(|k| kept.remove(k))
        };
        // built outside the lock: two first questions for one instant may both build it
        let a = match found {
            Some(a) => a,
            None => Arc::new(AsOf::new(view.clone(), known_at)?),
        };
        let mut kept = lock();
        kept.retain(|x| x.known_at != known_at);
        kept.push_front(a.clone());
        kept.truncate(KEPT);
        Ok(a)
    }
}
