//! `/metrics` in the Prometheus text format: ingest counters by kind, request latency by
//! route, and, computed at scrape time from the log, devices by state, today's
//! availability per device pool and the SLI counters (device-seconds per state per device
//! pool, node and cluster).

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use callstate_report::slo::sli::{Monotonic, STATES, SliTotal};

/// Label: an event kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// The kind (`unknown` when a rejected event had none or an unknown one).
    pub kind: String,
}

/// Labels of a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Method.
    pub method: String,
    /// Route template (e.g. `/api/v1/devices/{device}/state`), never the raw path.
    pub route: String,
    /// Status code.
    pub status: String,
}

/// Label: a service state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// `in_service`, `out_of_service`, `unknown`.
    pub state: String,
}

/// Label: a part of the live state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartLabel {
    /// `intervals`, `service_events`, `rollups`, ...
    pub part: String,
}

/// Label: a device pool.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabel {
    /// The pool.
    pub device_pool: String,
}

pub(crate) type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// One sample a component running beside the API reports (a collector's status).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name, without the `callstate_` prefix (a counter's without `_total`).
    pub name: String,
    /// Help text.
    pub help: String,
    /// A counter (else a gauge).
    pub counter: bool,
    /// Labels.
    pub labels: Vec<(String, String)>,
    /// Value.
    pub value: f64,
}

/// Where such samples come from: asked at every scrape.
pub type SampleSource = Arc<dyn Fn() -> Vec<Sample> + Send + Sync>;

/// The registered sources, as a prometheus-client collector.
#[derive(Default, Clone)]
struct Sources(Arc<Mutex<Vec<SampleSource>>>);

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sources")
    }
}

impl Collector for Sources {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sources = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        // one family per name, in the order first seen
        let mut families: Vec<Vec<Sample>> = Vec::new();
        for s in sources.iter().flat_map(|f| f()) {
            match families.iter_mut().find(|f| f[0].name == s.name) {
                Some(f) => f.push(s),
                None => families.push(vec![s]),
            }
        }
        for family in families {
            let (name, help, counter) = (&family[0].name, &family[0].help, family[0].counter);
            let kind = if counter {
                MetricType::Counter
            } else {
                MetricType::Gauge
            };
            let mut m = encoder.encode_descriptor(name, help, None, kind)?;
            for s in &family {
                let e = m.encode_family(&s.labels)?;
                if counter {
                    ConstCounter::new(s.value.max(0.0)).encode(e)?;
                } else {
                    ConstGauge::new(s.value).encode(e)?;
                }
            }
        }
        Ok(())
    }
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    /// Events stored, by kind.
    pub ingested: Family<KindLabel, Counter>,
    /// Events rejected (invalid or conflicting), by kind.
    pub rejected: Family<KindLabel, Counter>,
    /// Duplicates dropped, by kind.
    pub duplicates: Family<KindLabel, Counter>,
    /// Request latency by method, route template and status.
    pub(crate) requests: HistogramFamily,
    devices: Family<StateLabel, Gauge>,
    live_bytes: Family<PartLabel, Gauge>,
    availability: Family<PoolLabel, Gauge<f64, AtomicU64>>,
    /// The SLI counters of the last scrape (kept monotonic across scrapes).
    sli: Arc<Mutex<Vec<Sample>>>,
    sli_monotonic: Monotonic,
    sources: Sources,
    scrape: Mutex<()>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("callstate");
        let ingested = Family::<KindLabel, Counter>::default();
        let rejected = Family::<KindLabel, Counter>::default();
        let duplicates = Family::<KindLabel, Counter>::default();
        let requests: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let devices = Family::<StateLabel, Gauge>::default();
        let live_bytes = Family::<PartLabel, Gauge>::default();
        let availability = Family::<PoolLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "events_ingested",
            "Events stored in the log",
            ingested.clone(),
        );
        registry.register(
            "events_rejected",
            "Events rejected (invalid, or a conflicting (source, seq))",
            rejected.clone(),
        );
        registry.register(
            "events_duplicate",
            "Events dropped as duplicates of a stored (source, seq)",
            duplicates.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            requests.clone(),
        );
        registry.register("devices", "Devices by service state now", devices.clone());
        registry.register(
            "live_state_bytes",
            "Heap bytes the live state holds, by part (the sizes of its structures)",
            live_bytes.clone(),
        );
        registry.register(
            "device_pool_availability_today_ratio",
            "Availability of each device pool since 00:00 UTC today (null days are left out)",
            availability.clone(),
        );
        let sources = Sources::default();
        registry.register_collector(Box::new(sources.clone()));
        let sli: Arc<Mutex<Vec<Sample>>> = Arc::default();
        let shown = sli.clone();
        let m = Metrics {
            sources,
            registry,
            ingested,
            rejected,
            duplicates,
            requests,
            devices,
            live_bytes,
            availability,
            sli,
            sli_monotonic: Monotonic::default(),
            scrape: Mutex::new(()),
        };
        m.add_source(Arc::new(move || {
            shown.lock().unwrap_or_else(|p| p.into_inner()).clone()
        }));
        m
    }
}

impl Metrics {
    /// Adds a source of samples asked at every scrape (the collectors run inside `serve`).
    pub fn add_source(&self, source: SampleSource) {
        self.sources
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(source);
    }

    /// Counts `n` events of `kind` in `family`.
    pub fn count(family: &Family<KindLabel, Counter>, kind: &str, n: u64) {
        if n > 0 {
            family
                .get_or_create(&KindLabel {
                    kind: kind.to_string(),
                })
                .inc_by(n);
        }
    }

    /// Sets the scrape-time gauges and renders everything.
    pub fn render(
        &self,
        by_state: &[(String, i64)],
        pools: &[(String, f64)],
        sli: Vec<SliTotal>,
        live_bytes: &[(&str, u64)],
    ) -> Result<String, std::fmt::Error> {
        let _one_scrape_at_a_time = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        let samples = self
            .sli_monotonic
            .export(sli)
            .into_iter()
            .flat_map(|t| {
                STATES.iter().zip(t.seconds).map(move |(state, v)| Sample {
                    name: "sli_device_seconds".into(),
                    help: "Device-seconds per service state since each device's first event, per device pool, home node and cluster (event time; maintenance windows count as excluded; see docs/slo.md)".into(),
                    counter: true,
                    labels: vec![
                        ("scope".into(), t.scope.into()),
                        ("group".into(), t.group.clone()),
                        ("state".into(), (*state).into()),
                    ],
                    value: v,
                })
            })
            .collect();
        *self.sli.lock().unwrap_or_else(|p| p.into_inner()) = samples;
        self.devices.clear();
        for (state, n) in by_state {
            self.devices
                .get_or_create(&StateLabel {
                    state: state.clone(),
                })
                .set(*n);
        }
        for (part, n) in live_bytes {
            self.live_bytes
                .get_or_create(&PartLabel {
                    part: part.to_string(),
                })
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
        self.availability.clear();
        for (pool, a) in pools {
            self.availability
                .get_or_create(&PoolLabel {
                    device_pool: pool.clone(),
                })
                .set(*a);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
