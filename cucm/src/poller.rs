//! The RisPort70 poller: inventory from AXL (or a names file), one `selectCmDeviceExt` per
//! chunk of names, paced under the cluster's shared budget, delta polls with `StateInfo` and
//! full polls on a period and after anything unusual, provider state from `selectCtiItem`,
//! and events appended through the same validation and dedupe as every other collector.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Map;

use callstate_ingest::Appender;
use callstate_schemas::Body;

use crate::client::Client;
use crate::clock::Clock;
use crate::config::{Inventory, PollerConfig};
use crate::error::CucmError;
use crate::outbox::Outbox;
use crate::status::{CtiManagerStatus, NodeGap, PollerStatus};
use crate::tracker::{Pending, Tracker, Watched, type_of_product};
use crate::{axl, cti, perfmon, risport};

/// The RisPort70 poller of one cluster.
pub struct Poller {
    cfg: PollerConfig,
    client: Client,
    clock: Arc<dyn Clock>,
    out: Arc<dyn Appender>,
    tracker: Tracker,
    status: Arc<Mutex<PollerStatus>>,
    chunk: usize,
    state_infos: HashMap<usize, String>,
    absent: HashSet<String>,
    pools: Vec<(String, Vec<String>)>,
    node_starts: HashMap<String, String>,
    missing: BTreeMap<String, usize>,
    nodes: std::collections::BTreeSet<String>,
    full_needed: bool,
    last_full: Option<DateTime<Utc>>,
    last_inventory: Option<DateTime<Utc>>,
    last_request: Option<DateTime<Utc>>,
    last_answer: Option<DateTime<Utc>>,
    last_heartbeat: Option<DateTime<Utc>>,
    last_cycle_start: Option<DateTime<Utc>>,
    outbox: Outbox,
    backoff: Duration,
}

/// Heartbeats at most this often (while answers arrive).
const HEARTBEAT_EVERY_S: i64 = 20;
/// No heartbeat once the last answer is older than this: the poller's devices then become
/// `unknown` 90 s after its last heartbeat, as for a silent bridge.
const ANSWER_STALE_S: i64 = 60;
/// The smallest per-answer cap believed: a full answer with fewer records than this and than
/// the names asked is taken as the devices RisPort knows, not as truncated.
const MIN_CAP: usize = 100;
const BACKOFF_MIN: Duration = Duration::from_secs(30);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

impl Poller {
    /// A poller writing to `out`, reading the time from `clock`.
    pub fn new(
        cfg: PollerConfig,
        clock: Arc<dyn Clock>,
        out: Arc<dyn Appender>,
    ) -> Result<Poller, CucmError> {
        let client = Client::new(&cfg.client)?;
        let outbox = Outbox::open(&cfg.source, &cfg.cluster, &cfg.seq_file)?;
        let mut tracker = Tracker::default();
        if let Inventory::Names(names) = &cfg.inventory {
            tracker.set_inventory(
                names
                    .iter()
                    .map(|n| Watched {
                        name: n.clone(),
                        ..Watched::default()
                    })
                    .collect(),
            );
        }
        let chunk = cfg.chunk.clamp(1, 1000);
        Ok(Poller {
            client,
            clock,
            out,
            tracker,
            status: Arc::new(Mutex::new(PollerStatus {
                chunk,
                ..PollerStatus::default()
            })),
            chunk,
            state_infos: HashMap::new(),
            absent: HashSet::new(),
            pools: Vec::new(),
            node_starts: HashMap::new(),
            missing: BTreeMap::new(),
            nodes: std::collections::BTreeSet::new(),
            full_needed: true,
            last_full: None,
            last_inventory: None,
            last_request: None,
            last_answer: None,
            last_heartbeat: None,
            last_cycle_start: None,
            outbox,
            backoff: Duration::ZERO,
            cfg,
        })
    }

    /// A handle on the status, readable while the poller runs.
    pub fn status(&self) -> Arc<Mutex<PollerStatus>> {
        self.status.clone()
    }

    fn with_status(&self, f: impl FnOnce(&mut PollerStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Polls until `stop` says so (it is asked with the clock's time before every cycle).
    /// Errors of the cluster and failed appends are retried with back-off (events already
    /// taken wait in an outbox, in order); it ends with an error only if the last append, on
    /// the way out, fails.
    pub async fn run_until(
        &mut self,
        mut stop: impl FnMut(DateTime<Utc>) -> bool,
    ) -> Result<(), CucmError> {
        while !stop(self.clock.now()) {
            let start = self.clock.now();
            match self.cycle().await {
                Ok(()) => {
                    self.backoff = Duration::ZERO;
                    let gap = self
                        .last_cycle_start
                        .map_or(0.0, |s| (start - s).num_milliseconds() as f64 / 1000.0);
                    self.last_cycle_start = Some(start);
                    self.with_status(|s| s.max_cycle_gap_s = s.max_cycle_gap_s.max(gap));
                    if let Err(e) = self.heartbeat().await {
                        tracing::warn!(error = %e, "appending the poller's events failed: kept, retried");
                    }
                    let next =
                        start + chrono::Duration::from_std(self.cfg.interval).unwrap_or_default();
                    let wait = (next - self.clock.now()).to_std().unwrap_or(Duration::ZERO);
                    self.clock.sleep(wait).await;
                }
                Err(e) => {
                    self.full_needed = true;
                    let rate = matches!(e, CucmError::RateControl { .. });
                    tracing::warn!(error = %e, "RisPort poll cycle failed");
                    self.backoff = (self.backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
                    let msg = e.to_string();
                    self.with_status(|s| {
                        if rate {
                            s.rate_faults += 1;
                        } else {
                            s.errors += 1;
                        }
                        s.last_error = Some(msg);
                    });
                    // events already taken stay in the outbox until an append succeeds
                    let _ = self.flush().await;
                    self.clock.sleep(self.backoff).await;
                }
            }
        }
        self.flush().await
    }

    /// One poll cycle: inventory if due, every chunk, the providers.
    pub async fn cycle(&mut self) -> Result<(), CucmError> {
        let now = self.clock.now();
        if let Inventory::Axl { pattern } = &self.cfg.inventory
            && self.last_inventory.is_none_or(|t| {
                now - t
                    >= chrono::Duration::from_std(self.cfg.inventory_refresh).unwrap_or_default()
            })
        {
            let pattern = pattern.clone();
            self.load_inventory(&pattern).await?;
            self.last_inventory = Some(now);
        }
        let full = self.full_needed
            || self.last_full.is_none_or(|t| {
                now - t >= chrono::Duration::from_std(self.cfg.full_poll_every).unwrap_or_default()
            });
        if full {
            self.state_infos.clear();
        }
        let names = self.tracker.names();
        let chunk = self.chunk;
        for (i, part) in names.chunks(chunk).enumerate() {
            let part: Vec<&str> = part.iter().map(String::as_str).collect();
            self.poll_chunk(i, &part, full).await?;
            if self.chunk != chunk {
                // truncation seen: the chunks changed; the next cycle is a full one
                self.full_needed = true;
                return Ok(());
            }
        }
        if !self.cfg.cti_users.is_empty() {
            self.poll_providers().await?;
        }
        if self.cfg.perfmon {
            self.poll_ctimanagers().await?;
        }
        if full {
            self.full_needed = false;
            self.last_full = Some(now);
            self.with_status(|s| s.full_polls += 1);
        }
        let (known, absent) = (self.tracker.known(), self.absent.len());
        let counts = self.tracker.counts.clone();
        let end = self.clock.now();
        self.with_status(|s| {
            s.cycles += 1;
            s.last_cycle = Some(end);
            s.known = known;
            s.absent = absent;
            s.records = counts;
        });
        self.flush().await
    }

    async fn pace(&mut self) {
        let gap =
            Duration::from_secs_f64(60.0 / f64::from(self.cfg.max_requests_per_minute.max(1)));
        if let Some(last) = self.last_request {
            let next = last + chrono::Duration::from_std(gap).unwrap_or_default();
            if let Ok(wait) = (next - self.clock.now()).to_std() {
                self.clock.sleep(wait).await;
            }
        }
        self.last_request = Some(self.clock.now());
    }

    /// One RisPort70 request, paced and counted: the answer's text and the node address.
    async fn ris_call(&mut self, action: &str, req: &str) -> Result<(String, String), CucmError> {
        self.pace().await;
        self.with_status(|s| {
            s.requests += 1;
            s.risport_requests += 1;
        });
        self.client.call(risport::PATH, action, req).await
    }

    async fn risport(
        &mut self,
        state_info: &str,
        names: &[&str],
    ) -> Result<risport::SelectAnswer, CucmError> {
        let req = risport::select_cm_device_ext(state_info, names, &self.cfg.device_class);
        let (xml, node) = self.ris_call("\"selectCmDeviceExt\"", &req).await?;
        let answer = risport::parse(&xml, &node)?;
        self.answered().await?;
        Ok(answer)
    }

    async fn poll_chunk(&mut self, i: usize, names: &[&str], full: bool) -> Result<(), CucmError> {
        let state_info = if full {
            String::new()
        } else {
            self.state_infos.get(&i).cloned().unwrap_or_default()
        };
        let answer = self.risport(&state_info, names).await?;
        let now = self.clock.now();
        self.note_nodes(&answer, now);
        let mut events = self.tracker.apply(&answer, now);
        if state_info.is_empty() {
            let returned = Tracker::returned(&answer);
            let all_answered = answer.nodes.iter().all(|n| n.answered());
            let missing: Vec<&str> = names
                .iter()
                .copied()
                .filter(|n| {
                    let k = n.to_ascii_lowercase();
                    !returned.contains(&k) && !self.absent.contains(&k)
                })
                .collect();
            // more names asked than devices returned, and a sizeable answer: truncated, or
            // devices RisPort does not know (a small answer is a cluster where few devices
            // are registered, not a cap)
            let k = answer.records();
            if all_answered && k >= names.len().min(MIN_CAP) && !missing.is_empty() {
                let (more, truncated) = self.reask(missing, k).await?;
                events.extend(more);
                if truncated && k < self.chunk {
                    self.chunk = k;
                    self.with_status(|s| {
                        s.truncations += 1;
                        s.chunk = k;
                    });
                    tracing::warn!(
                        chunk = k,
                        "RisPort answer truncated: asking fewer names per request"
                    );
                }
            }
        }
        self.state_infos.insert(i, answer.state_info.clone());
        self.emit(events);
        self.flush().await
    }

    /// Asks again for the names an answer of `k` records left out. The answer was truncated
    /// when a re-ask is cut at the same `k` records while names are still left out (devices
    /// registering between two requests make counts differ, never repeat the cap). Names a
    /// complete re-ask does not return are devices RisPort does not know.
    async fn reask(
        &mut self,
        mut missing: Vec<&str>,
        k: usize,
    ) -> Result<(Vec<Pending>, bool), CucmError> {
        let mut events = Vec::new();
        let mut truncated = false;
        while !missing.is_empty() {
            let take = missing.len().min(self.chunk);
            let part: Vec<&str> = missing.drain(..take).collect();
            let again = self.risport("", &part).await?;
            let now = self.clock.now();
            self.note_nodes(&again, now);
            events.extend(self.tracker.apply(&again, now));
            let back = Tracker::returned(&again);
            let left: Vec<&str> = part
                .into_iter()
                .filter(|n| !back.contains(&n.to_ascii_lowercase()))
                .collect();
            if again.records() == k && !back.is_empty() && !left.is_empty() {
                truncated = true;
                missing.splice(0..0, left);
            } else {
                self.absent
                    .extend(left.iter().map(|n| n.to_ascii_lowercase()));
            }
        }
        Ok((events, truncated))
    }

    /// Node bookkeeping: gaps, returns and restarts (both force a full poll).
    fn note_nodes(&mut self, answer: &risport::SelectAnswer, now: DateTime<Utc>) {
        for n in &answer.nodes {
            if !self.nodes.contains(&n.name) {
                self.nodes.insert(n.name.clone());
            }
            if n.answered() {
                if let Some(k) = self.missing.remove(&n.name) {
                    self.full_needed = true;
                    self.with_status(|s| s.node_gaps[k].to = Some(now));
                }
            } else if !self.missing.contains_key(&n.name) {
                let gap = NodeGap {
                    node: n.name.clone(),
                    from: now,
                    to: None,
                    return_code: n.return_code.clone(),
                };
                tracing::warn!(node = %n.name, code = %n.return_code, "node did not answer: its devices keep their last known state");
                let mut k = 0;
                self.with_status(|s| {
                    k = s.node_gaps.len();
                    s.node_gaps.push(gap);
                });
                self.missing.insert(n.name.clone(), k);
            }
        }
        for (node, start) in risport::subsystem_starts(&answer.state_info) {
            if self
                .node_starts
                .insert(node, start.clone())
                .is_some_and(|s| s != start)
            {
                self.full_needed = true;
            }
        }
    }

    async fn poll_providers(&mut self) -> Result<(), CucmError> {
        let users: Vec<&str> = self.cfg.cti_users.iter().map(String::as_str).collect();
        let req = cti::select_providers(&users);
        let (xml, node) = self.ris_call("\"selectCtiItem\"", &req).await?;
        let answer = cti::parse(&xml, &node)?;
        self.answered().await?;
        let now = self.clock.now();
        let users = self.cfg.cti_users.clone();
        let events = self.tracker.apply_providers(&answer, &users, now);
        self.emit(events);
        Ok(())
    }

    /// Each answering node's "Cisco CTI Manager" counters (PerfMon's own budget, 80 a minute:
    /// one request a second at most). A node that cannot be read is reported, never fatal.
    async fn poll_ctimanagers(&mut self) -> Result<(), CucmError> {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| !self.missing.contains_key(*n))
            .cloned()
            .collect();
        let emit_providers = self.cfg.cti_users.is_empty();
        for node in nodes {
            self.clock.sleep(Duration::from_secs(1)).await;
            self.with_status(|s| {
                s.requests += 1;
                s.perfmon_requests += 1;
            });
            let req = perfmon::collect(&node, perfmon::CTI_MANAGER);
            let read = match self.client.call(perfmon::PATH, perfmon::ACTION, &req).await {
                Ok((xml, at)) => perfmon::parse_cti_manager(&xml, &at),
                Err(e) => Err(e),
            };
            let now = self.clock.now();
            let (counters, error) = match read {
                Ok(c) => (Some(c), None),
                // the cluster could not be reached at all: nothing is known of the CTIManager
                Err(e @ (CucmError::Transport { .. } | CucmError::Auth { .. })) => {
                    self.with_status(|s| {
                        s.ctimanagers.entry(node.clone()).or_default().error = Some(e.to_string())
                    });
                    continue;
                }
                Err(e) => (None, Some(e.to_string())),
            };
            let events =
                self.tracker
                    .apply_ctimanager(&node, counters.as_ref(), emit_providers, now);
            self.emit(events);
            self.with_status(|s| {
                s.ctimanagers.insert(
                    node.clone(),
                    CtiManagerStatus {
                        at: Some(now),
                        counters,
                        error,
                    },
                );
            });
        }
        Ok(())
    }

    async fn load_inventory(&mut self, pattern: &str) -> Result<(), CucmError> {
        let mut watched = Vec::new();
        let mut skip = 0;
        loop {
            let req = axl::list_phone(pattern, skip, axl::PAGE);
            self.with_status(|s| s.requests += 1);
            let (xml, node) = self
                .client
                .call(axl::PATH, &axl::soap_action("listPhone"), &req)
                .await?;
            let page = axl::parse_list_phone(&xml, &node)?;
            let n = page.len();
            watched.extend(page.into_iter().map(|p| Watched {
                device_type: type_of_product(&p.product, &p.class),
                name: p.name,
                device_pool: p.device_pool,
            }));
            if n < axl::PAGE {
                break;
            }
            skip += n;
        }
        self.with_status(|s| s.requests += 1);
        let (xml, node) = self
            .client
            .call(
                axl::PATH,
                &axl::soap_action("executeSQLQuery"),
                &axl::sql(axl::POOLS_SQL),
            )
            .await?;
        let pools = axl::parse_pools(&xml, &node)?;
        let before = self.tracker.names();
        self.tracker.set_inventory(watched);
        let after = self.tracker.names();
        if after != before {
            self.full_needed = true;
            self.absent.clear();
        }
        let n = after.len();
        self.with_status(|s| s.watched = n);
        if pools != self.pools {
            let now = self.clock.now();
            let events = pools
                .iter()
                .filter(|p| !self.pools.contains(p))
                .map(|(pool, nodes)| Pending {
                    time: now,
                    body: Body::DevicePoolConfig {
                        device_pool: pool.clone(),
                        nodes: nodes.clone(),
                    },
                    extra: Map::new(),
                })
                .collect();
            self.emit(events);
            self.pools = pools;
        }
        Ok(())
    }

    /// An answer arrived: heartbeat if one is due.
    async fn answered(&mut self) -> Result<(), CucmError> {
        self.last_answer = Some(self.clock.now());
        if self
            .last_heartbeat
            .is_none_or(|t| (self.clock.now() - t).num_seconds() >= HEARTBEAT_EVERY_S)
        {
            self.heartbeat().await?;
        }
        Ok(())
    }

    async fn heartbeat(&mut self) -> Result<(), CucmError> {
        let now = self.clock.now();
        if self
            .last_answer
            .is_none_or(|t| (now - t).num_seconds() > ANSWER_STALE_S)
        {
            return Ok(());
        }
        self.last_heartbeat = Some(now);
        self.emit(vec![Pending {
            time: now,
            body: Body::CollectorHeartbeat,
            extra: Map::new(),
        }]);
        self.flush().await
    }

    fn emit(&mut self, events: Vec<Pending>) {
        for p in events {
            if let Err(e) = self.outbox.push(p) {
                tracing::error!(error = %e, "no sequence number: event dropped");
                self.with_status(|s| s.last_error = Some(e.to_string()));
            }
        }
    }

    /// Appends what is waiting: validated as any collector's input, then stored durably.
    async fn flush(&mut self) -> Result<(), CucmError> {
        if self.outbox.is_empty() {
            return Ok(());
        }
        let batch = self.outbox.batch();
        let out = self.out.clone();
        let result = tokio::task::spawn_blocking(move || batch(out.as_ref()))
            .await
            .map_err(|e| CucmError::Config(format!("append task: {e}")))?;
        match result {
            Ok(f) => {
                self.outbox.clear();
                self.with_status(|s| {
                    s.events += f.stored as u64;
                    s.rejected += f.rejected as u64;
                    s.unsent = 0;
                });
                Ok(())
            }
            Err(e) => {
                let n = self.outbox.len();
                self.with_status(|s| s.unsent = n);
                Err(e)
            }
        }
    }
}
