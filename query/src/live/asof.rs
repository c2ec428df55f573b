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
//! What was known at a past instant never changes, so the part read from the log (and the
//! filtered pools, windows and node events) is kept by `known_at` (a few instants, most
//! recently used first) and used with every later version; devices are derived per question
//! from the version at hand, so no old version is kept alive.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use callstate_schemas::Us;

use crate::error::Result;
use crate::model::Name;
use crate::model::fleet::{DeviceHistory, Fleet, SharedFleet};
use crate::model::frozen::Frozen;
use crate::model::intervals::{PoolHistory, ServiceInterval, closed_silences, pool_history};
use crate::model::rows::{
    CallRow, MaintenanceRow, NodeEvent, PoolConfig, ServiceRow, source_spans_known_at,
};
use crate::model::sla::Targets;

use super::device::{Device, Silences, intervals};
use super::view::View;

/// As-of views kept.
const KEPT: usize = 4;

/// What was known at an ingest time that derivations need besides the devices' own events:
/// small, read once, and the same for every later version, so it is kept by instant.
struct Known {
    known_at: Us,
    /// Every unknown window of each source (closed and open).
    silences: HashMap<Arc<str>, Silences>,
    pools: PoolHistory,
    pool_configs: Vec<PoolConfig>,
    windows: Vec<MaintenanceRow>,
    node_events: Vec<NodeEvent>,
    /// Devices then, by name (a later version holds their events known then).
    names: Vec<Name>,
    index: HashMap<Name, usize>,
}

impl Known {
    fn new(view: &View, known_at: Us) -> Result<Known> {
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
        let names: Vec<Name> = view.devices.keys().copied().collect();
        Ok(Known {
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
            index: names.iter().enumerate().map(|(i, n)| (*n, i)).collect(),
            names,
        })
    }
}

/// The fleet as known at an ingest time, over a version that holds everything known then.
/// Devices are derived when first asked for, for this question only (the versions' devices
/// are not kept past it).
pub struct AsOf {
    known: Arc<Known>,
    view: Arc<View>,
    intervals: Slots<Vec<ServiceInterval>>,
    calls: Slots<Vec<CallRow>>,
}

/// Devices per chunk of [`Slots`].
const CHUNK: usize = 256;

/// One lazily computed value per device index, in chunks allocated on first touch: a
/// question about one device sets up one chunk, not a slot for every device of the fleet.
struct Slots<T> {
    chunks: Box<[OnceLock<Chunk<T>>]>,
}

/// [`CHUNK`] slots of [`Slots`].
type Chunk<T> = Box<[OnceLock<T>]>;

impl<T> Slots<T> {
    fn new(n: usize) -> Self {
        Slots {
            chunks: (0..n.div_ceil(CHUNK)).map(|_| OnceLock::new()).collect(),
        }
    }

    /// The value of index `k`, computed by `f` the first time.
    fn get_or_init(&self, k: usize, f: impl FnOnce() -> T) -> &T {
        let chunk =
            self.chunks[k / CHUNK].get_or_init(|| (0..CHUNK).map(|_| OnceLock::new()).collect());
        chunk[k % CHUNK].get_or_init(f)
    }
}

impl std::fmt::Debug for AsOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsOf")
            .field("known_at", &self.known.known_at)
            .field("devices", &self.known.names.len())
            .finish()
    }
}

impl AsOf {
    /// What `view` says was known at `known_at` (which must be before its latest ingest
    /// time for the answer to be complete; later ones are the view itself).
    pub fn new(view: Arc<View>, known_at: Us) -> Result<AsOf> {
        let known = Arc::new(Known::new(&view, known_at)?);
        Ok(AsOf::over(known, view))
    }

    fn over(known: Arc<Known>, view: Arc<View>) -> AsOf {
        let n = known.names.len();
        AsOf {
            intervals: Slots::new(n),
            calls: Slots::new(n),
            known,
            view,
        }
    }

    /// The ingest time it answers for.
    pub fn known_at(&self) -> Us {
        self.known.known_at
    }

    fn device_of(&self, k: usize) -> Option<(&Name, &Arc<Device>)> {
        self.view
            .devices
            .get_key_value(self.known.names[k].as_str())
    }

    fn intervals_of(&self, k: usize) -> &[ServiceInterval] {
        self.intervals.get_or_init(k, || {
            let Some((_, d)) = self.device_of(k) else {
                return Vec::new();
            };
            let rows = d.events_known_at(self.known.known_at);
            let events: Vec<&ServiceRow> = rows.iter().collect();
            intervals(&events, &self.known.pools, self.view.horizon, |source| {
                self.known.silences.get(source).cloned().unwrap_or_default()
            })
        })
    }

    fn calls_of_index(&self, k: usize) -> &[CallRow] {
        self.calls.get_or_init(k, || match self.device_of(k) {
            Some((name, d)) => d.calls.rows_known_at(name, self.known.known_at),
            None => Vec::new(),
        })
    }

    fn history(&self, k: usize) -> Option<DeviceHistory<'_>> {
        let iv = self.intervals_of(k);
        (!iv.is_empty()).then_some(DeviceHistory {
            intervals: iv.into(),
            open: None,
            rollup: None,
            frozen: self.frozen(),
        })
    }
}

impl Fleet for AsOf {
    fn devices(&self) -> Box<dyn Iterator<Item = DeviceHistory<'_>> + '_> {
        Box::new((0..self.known.names.len()).filter_map(|k| self.history(k)))
    }

    fn device(&self, name: &str) -> Option<DeviceHistory<'_>> {
        self.history(*self.known.index.get(name)?)
    }

    fn calls_of(&self, device: &str) -> Cow<'_, [CallRow]> {
        match self.known.index.get(device) {
            Some(&k) => Cow::Borrowed(self.calls_of_index(k)),
            None => Cow::Borrowed(&[]),
        }
    }

    fn calls_kept_from(&self) -> Option<Us> {
        self.view.calls_kept_from()
    }

    fn intervals_kept_from(&self) -> Option<Us> {
        self.view.horizon
    }

    fn frozen(&self) -> Option<&Frozen> {
        // (built with what was ingested up to the fold: not as known earlier)
        self.view
            .frozen
            .as_deref()
            .filter(|f| self.known.known_at >= f.known_until())
    }

    fn calls(&self) -> Box<dyn Iterator<Item = Cow<'_, [CallRow]>> + '_> {
        Box::new(
            (0..self.known.names.len())
                .map(|k| self.calls_of_index(k))
                .filter(|c| !c.is_empty())
                .map(Cow::Borrowed),
        )
    }

    fn windows(&self) -> &[MaintenanceRow] {
        &self.known.windows
    }

    fn node_events(&self) -> &[NodeEvent] {
        &self.known.node_events
    }

    fn pool_configs(&self) -> &[PoolConfig] {
        &self.known.pool_configs
    }

    fn targets(&self) -> &Targets {
        &self.view.targets
    }
}

/// What was known at the instants asked for lately (the small part of an as-of view: not
/// the devices, which later versions hold).
#[derive(Default)]
pub struct AsOfCache {
    kept: Mutex<VecDeque<Arc<Known>>>,
}

impl AsOfCache {
    /// The fleet as known at `known_at`, from `view`: the view itself when it holds nothing
    /// ingested later; otherwise an as-of view over it.
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
        // read outside the lock: two first questions for one instant may both read it
        let known = match found {
            Some(k) => k,
            None => Arc::new(Known::new(view, known_at)?),
        };
        let mut kept = lock();
        kept.retain(|x| x.known_at != known_at);
        kept.push_front(known.clone());
        kept.truncate(KEPT);
        drop(kept);
        Ok(Arc::new(AsOf::over(known, view.clone())))
    }
}
