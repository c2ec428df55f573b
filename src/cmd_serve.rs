//! `callstate serve`: the embedded log, the HTTP collector and the API in one process.
//!
//! Settings come from flags, then environment variables, then a TOML file (`--config`), then
//! defaults; docs/api.md lists them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;

use callstate_cucm::syslog::{SyslogConfig, SyslogReceiver};
use callstate_cucm::{Clock, PollerConfig};
use callstate_ingest::Appender;
use callstate_ingest::kafka::{CanonicalProducer, KafkaConfig, Materializer, MaterializerOptions};
use callstate_log::{DEFAULT_SEGMENT_ROWS, Log, LogOptions};
use callstate_query::live::checkpoint::covered_through;
use callstate_schemas::US_PER_DAY;
use callstate_server::{App, ReadAuth, ServerConfig};

use crate::cmd_risport::RisportSettings;
use crate::cmd_syslog::SyslogSettings;
use crate::out::outln;
use crate::signal::shutdown_signal;

/// Arguments of `callstate serve`.
#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (flags and environment win).
    #[arg(long, env = "CALLSTATE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub given: Given,
}

/// The settings as given by flags and environment, or by the file (the same names, with
/// underscores); unset ones fall back to the next source.
#[derive(Args, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Given {
    /// Data directory of the log [default: callstate-data].
    #[arg(long, env = "CALLSTATE_DATA")]
    pub data: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]; port 0 picks a free port.
    #[arg(long, env = "CALLSTATE_LISTEN")]
    pub listen: Option<String>,
    /// Bearer token required for writes (and reads with --read-auth token).
    #[arg(long, env = "CALLSTATE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Who may read: `open` [default] or `token`.
    #[arg(long, env = "CALLSTATE_READ_AUTH")]
    pub read_auth: Option<ReadAuth>,
    /// Largest request body in bytes [default: 67108864].
    #[arg(long, env = "CALLSTATE_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Time limit of one SQL query, seconds [default: 30].
    #[arg(long, env = "CALLSTATE_SQL_TIMEOUT_S")]
    pub sql_timeout_s: Option<f64>,
    /// Memory limit of SQL operators, MiB [default: 1024].
    #[arg(long, env = "CALLSTATE_SQL_MEMORY_MB")]
    pub sql_memory_mb: Option<usize>,
    /// Time limit of every other read, seconds [default: 30].
    #[arg(long, env = "CALLSTATE_READ_TIMEOUT_S")]
    pub read_timeout_s: Option<f64>,
    /// Longest a client may take to send a request's head, seconds [default: 30].
    #[arg(long, env = "CALLSTATE_HEADER_TIMEOUT_S")]
    pub header_timeout_s: Option<f64>,
    /// Most rows in an answer to SQL [default: 1000000].
    #[arg(long, env = "CALLSTATE_MAX_RESULT_ROWS")]
    pub max_result_rows: Option<usize>,
    /// Most bytes in an answer to SQL [default: 268435456].
    #[arg(long, env = "CALLSTATE_MAX_RESULT_BYTES")]
    pub max_result_bytes: Option<usize>,
    /// Heavy reads running at once; beyond, 503 with Retry-After [default: 2 × cores].
    #[arg(long, env = "CALLSTATE_MAX_CONCURRENT_QUERIES")]
    pub max_concurrent_queries: Option<usize>,
    /// Heavy reads of one client address running at once [default: cores, at least 2].
    #[arg(long, env = "CALLSTATE_MAX_CONCURRENT_PER_CLIENT")]
    pub max_concurrent_per_client: Option<usize>,
    /// Writes running at once; beyond, 503 with Retry-After [default: 64].
    #[arg(long, env = "CALLSTATE_MAX_CONCURRENT_WRITES")]
    pub max_concurrent_writes: Option<usize>,
    /// Threads of the query runtime [default: cores].
    #[arg(long, env = "CALLSTATE_QUERY_THREADS")]
    pub query_threads: Option<usize>,
    /// Nice value of the query runtime's threads, 0 to 19: above 0, HTTP workers, appends
    /// and single-device state take the CPU before heavy queries [default: 10].
    #[arg(long, env = "CALLSTATE_QUERY_NICE")]
    pub query_nice: Option<i32>,
    /// SLA targets file (TOML; default 99.9% for every group).
    #[arg(long, env = "CALLSTATE_TARGETS")]
    pub targets: Option<PathBuf>,
    // the default from the log itself, so that the help cannot drift from it
    #[arg(long, env = "CALLSTATE_SEGMENT_ROWS",
        help = format!("Events per Parquet segment [default: {DEFAULT_SEGMENT_ROWS}]"))]
    pub segment_rows: Option<usize>,
    /// Seconds between background compactions of small segments; 0 turns them off
    /// [default: 300].
    #[arg(long, env = "CALLSTATE_COMPACT_EVERY_S")]
    pub compact_every_s: Option<u64>,
    /// Retention of raw events, in days: with each compaction pass, the segments wholly
    /// older are removed once the checkpoint of the call legs covers them (their digests,
    /// hence service state, intervals and SLA, stay) [default: kept forever].
    #[arg(long, env = "CALLSTATE_RETAIN_RAW_DAYS")]
    pub retain_raw_days: Option<u64>,
    /// Retention of call legs, in days: with each compaction pass, in steps of a quarter of
    /// them (whole days, at least one: legs are kept that many days to a quarter more), the
    /// complete legs that started and ended before the UTC midnight that many days back are
    /// left out of a new checkpoint of the legs; questions about calls before it say so
    /// (device states and incidents then give their calls as null) [default: kept forever].
    #[arg(long, env = "CALLSTATE_RETAIN_LEGS_DAYS")]
    pub retain_legs_days: Option<u64>,
    /// Retention of intervals (service history), in days: with each compaction pass, once
    /// a day, the history before the UTC midnight that many days back is folded into the
    /// log's base (each device's state there kept); questions about service state,
    /// availability, SLA and incidents before it are refused [default: kept forever].
    #[arg(long, env = "CALLSTATE_RETAIN_INTERVALS_DAYS")]
    pub retain_intervals_days: Option<u64>,
    /// Retention of the hourly rollups of the history retention of intervals folded, in
    /// days (at least retain_intervals_days): availability and SLA over whole hours before
    /// the intervals' horizon are answered from them, from the UTC midnight that many days
    /// back [default: kept forever].
    #[arg(long, env = "CALLSTATE_RETAIN_ROLLUPS_DAYS")]
    pub retain_rollups_days: Option<u64>,
    /// Kafka-backed log: bootstrap brokers. The HTTP collector then writes to the canonical
    /// topic and this instance materializes its share of it into DATA.
    #[arg(long, env = "CALLSTATE_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// The canonical topic [default: callstate.events]; rejects go to TOPIC.dlq.
    #[arg(long, env = "CALLSTATE_KAFKA_TOPIC")]
    pub kafka_topic: Option<String>,
    /// Consumer group of the serve instances that split the canonical topic
    /// [default: callstate-serve].
    #[arg(long, env = "CALLSTATE_KAFKA_GROUP")]
    pub kafka_group: Option<String>,
    /// A librdkafka property `key=value`; repeatable.
    #[arg(long = "kafka-option", value_name = "KEY=VALUE")]
    #[serde(default)]
    pub kafka_options: Vec<String>,
    /// RisPort70 pollers run inside the server, one `[[risport]]` table per cluster (settings
    /// file only; the names of `callstate ingest risport`'s flags, docs/cucm.md).
    #[arg(skip)]
    #[serde(default)]
    pub risport: Vec<RisportSettings>,
    /// Remote-syslog receivers run inside the server, one `[[syslog]]` table per cluster
    /// (settings file only; the names of `callstate ingest syslog`'s flags, docs/cucm.md).
    #[arg(skip)]
    #[serde(default)]
    pub syslog: Vec<SyslogSettings>,
}

impl Given {
    /// Each setting from `self`, else from `other`.
    fn or(self, other: Given) -> Given {
        Given {
            data: self.data.or(other.data),
            listen: self.listen.or(other.listen),
            token: self.token.or(other.token),
            read_auth: self.read_auth.or(other.read_auth),
            max_body_bytes: self.max_body_bytes.or(other.max_body_bytes),
            sql_timeout_s: self.sql_timeout_s.or(other.sql_timeout_s),
            sql_memory_mb: self.sql_memory_mb.or(other.sql_memory_mb),
            read_timeout_s: self.read_timeout_s.or(other.read_timeout_s),
            header_timeout_s: self.header_timeout_s.or(other.header_timeout_s),
            max_result_rows: self.max_result_rows.or(other.max_result_rows),
            max_result_bytes: self.max_result_bytes.or(other.max_result_bytes),
            max_concurrent_queries: self.max_concurrent_queries.or(other.max_concurrent_queries),
            max_concurrent_per_client: self
                .max_concurrent_per_client
                .or(other.max_concurrent_per_client),
            max_concurrent_writes: self.max_concurrent_writes.or(other.max_concurrent_writes),
            query_threads: self.query_threads.or(other.query_threads),
            query_nice: self.query_nice.or(other.query_nice),
            targets: self.targets.or(other.targets),
            segment_rows: self.segment_rows.or(other.segment_rows),
            compact_every_s: self.compact_every_s.or(other.compact_every_s),
            retain_raw_days: self.retain_raw_days.or(other.retain_raw_days),
            retain_legs_days: self.retain_legs_days.or(other.retain_legs_days),
            retain_intervals_days: self.retain_intervals_days.or(other.retain_intervals_days),
            retain_rollups_days: self.retain_rollups_days.or(other.retain_rollups_days),
            kafka_brokers: self.kafka_brokers.or(other.kafka_brokers),
            kafka_topic: self.kafka_topic.or(other.kafka_topic),
            kafka_group: self.kafka_group.or(other.kafka_group),
            kafka_options: if self.kafka_options.is_empty() {
                other.kafka_options
            } else {
                self.kafka_options
            },
            risport: if self.risport.is_empty() {
                other.risport
            } else {
                self.risport
            },
            syslog: if self.syslog.is_empty() {
                other.syslog
            } else {
                self.syslog
            },
        }
    }
}

/// Resolved settings.
pub struct Settings {
    /// Data directory.
    pub data: PathBuf,
    /// Listen address.
    pub listen: String,
    /// Log options.
    pub log: LogOptions,
    /// Time between background compactions (`None`: off).
    pub compact_every: Option<Duration>,
    /// Retention of raw events and call legs.
    pub retention: Retention,
    /// API settings.
    pub api: ServerConfig,
    /// The Kafka-backed log, when configured.
    pub kafka: Option<KafkaMode>,
    /// RisPort70 pollers to run inside the server.
    pub pollers: Vec<Poll>,
    /// Syslog receivers to run inside the server.
    pub receivers: Vec<Receive>,
}

/// A syslog receiver run by the server, and its clock.
pub struct Receive {
    /// Its configuration.
    pub config: SyslogConfig,
    /// Its clock.
    pub clock: Arc<dyn Clock>,
}

/// A poller run by the server, and its clock.
pub struct Poll {
    /// Its configuration.
    pub config: PollerConfig,
    /// Its clock.
    pub clock: Arc<dyn Clock>,
}

/// The Kafka-backed log's settings.
pub struct KafkaMode {
    /// Brokers and client options.
    pub config: KafkaConfig,
    /// The canonical topic and the materializer's group.
    pub materializer: MaterializerOptions,
}

impl ServeArgs {
    /// Flags and environment over the file over the defaults.
    pub fn resolve(self) -> anyhow::Result<Settings> {
        let file: Given = match &self.config {
            None => Given::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read {}", p.display()))?;
                toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
            }
        };
        let g = self.given.or(file);
        let data = g.data.clone().unwrap_or_else(|| "callstate-data".into());
        let mut pollers = Vec::new();
        for (i, r) in g.risport.iter().enumerate() {
            let ctx = || format!("[[risport]] #{} ({})", i + 1, r.cluster);
            pollers.push(Poll {
                config: r.config(&data).with_context(ctx)?,
                clock: r.clock().with_context(ctx)?,
            });
        }
        let mut receivers = Vec::new();
        for (i, r) in g.syslog.iter().enumerate() {
            let ctx = || format!("[[syslog]] #{} ({})", i + 1, r.cluster);
            receivers.push(Receive {
                config: r.config(&data).with_context(ctx)?,
                clock: r.clock().with_context(ctx)?,
            });
        }
        let defaults = ServerConfig::default();
        let seconds = |name: &str, v: Option<f64>| {
            let v = v.unwrap_or(30.0);
            if v > 0.0 && v.is_finite() {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(anyhow::anyhow!(
                    "{name} must be a positive number of seconds, not {v}"
                ))
            }
        };
        let sql_timeout = seconds("sql_timeout_s", g.sql_timeout_s)?;
        let read_timeout = seconds("read_timeout_s", g.read_timeout_s)?;
        let header_timeout = seconds("header_timeout_s", g.header_timeout_s)?;
        let positive = |name: &str, v: Option<usize>, default: usize| match v {
            Some(0) => Err(anyhow::anyhow!("{name} must be at least 1")),
            v => Ok(v.unwrap_or(default)),
        };
        let targets = crate::targets::load(g.targets.as_deref())?;
        let token = g.token.filter(|t| !t.is_empty());
        let read_auth = g.read_auth.unwrap_or_default();
        if read_auth == ReadAuth::Token && token.is_none() {
            bail!("read_auth = token needs a token (--token or CALLSTATE_TOKEN)");
        }
        for (name, days) in [
            ("retain_raw_days", g.retain_raw_days),
            ("retain_legs_days", g.retain_legs_days),
            ("retain_intervals_days", g.retain_intervals_days),
            ("retain_rollups_days", g.retain_rollups_days),
        ] {
            if days.is_some() && g.compact_every_s == Some(0) {
                bail!(
                    "{name} runs with the background compaction pass: it needs \
                     compact_every_s above 0"
                );
            }
        }
        match (g.retain_intervals_days, g.retain_rollups_days) {
            (None, Some(_)) => bail!(
                "retain_rollups_days keeps the hourly rollups of the history retention of \
                 intervals folded: it needs retain_intervals_days"
            ),
            (Some(i), Some(r)) if r < i => bail!(
                "retain_rollups_days ({r}) below retain_intervals_days ({i}): rollups are \
                 built from intervals, so they are kept at least as long"
            ),
            _ => {}
        }
        let days = |d: Option<u64>| d.map(|d| Duration::from_secs(d.saturating_mul(86_400)));
        let kafka = match g.kafka_brokers {
            None => None,
            Some(brokers) => {
                let topic = g.kafka_topic.unwrap_or_else(|| "callstate.events".into());
                let group = g.kafka_group.unwrap_or_else(|| "callstate-serve".into());
                Some(KafkaMode {
                    config: KafkaConfig::new(brokers).with_options(&g.kafka_options)?,
                    materializer: MaterializerOptions::new(&topic, &group),
                })
            }
        };
        Ok(Settings {
            kafka,
            pollers,
            receivers,
            data,
            listen: g.listen.unwrap_or_else(|| "127.0.0.1:8080".into()),
            log: LogOptions {
                segment_rows: g.segment_rows.unwrap_or(DEFAULT_SEGMENT_ROWS),
            },
            compact_every: match g.compact_every_s.unwrap_or(DEFAULT_COMPACT_EVERY_S) {
                0 => None,
                s => Some(Duration::from_secs(s)),
            },
            retention: Retention {
                raw: days(g.retain_raw_days),
                legs: days(g.retain_legs_days),
                intervals: days(g.retain_intervals_days),
                rollups: days(g.retain_rollups_days),
            },
            api: ServerConfig {
                token,
                read_auth,
                max_body_bytes: g.max_body_bytes.unwrap_or(defaults.max_body_bytes),
                sql_timeout,
                read_timeout,
                header_timeout,
                sql_memory_bytes: g
                    .sql_memory_mb
                    .map_or(defaults.sql_memory_bytes, |mb| mb << 20),
                max_result_rows: positive(
                    "max_result_rows",
                    g.max_result_rows,
                    defaults.max_result_rows,
                )?,
                max_result_bytes: positive(
                    "max_result_bytes",
                    g.max_result_bytes,
                    defaults.max_result_bytes,
                )?,
                max_concurrent_queries: positive(
                    "max_concurrent_queries",
                    g.max_concurrent_queries,
                    defaults.max_concurrent_queries,
                )?,
                max_concurrent_per_client: positive(
                    "max_concurrent_per_client",
                    g.max_concurrent_per_client,
                    defaults.max_concurrent_per_client,
                )?,
                max_concurrent_writes: positive(
                    "max_concurrent_writes",
                    g.max_concurrent_writes,
                    defaults.max_concurrent_writes,
                )?,
                query_threads: positive("query_threads", g.query_threads, defaults.query_threads)?,
                query_nice: match g.query_nice {
                    None => defaults.query_nice,
                    Some(n @ 0..=19) => n,
                    Some(n) => bail!("query_nice must be from 0 to 19, not {n}"),
                },
                targets,
            },
        })
    }
}

/// Default seconds between background compactions.
pub const DEFAULT_COMPACT_EVERY_S: u64 = 300;

/// How long raw events and call legs are kept (`None`: forever).
#[derive(Debug, Clone, Copy, Default)]
pub struct Retention {
    /// Age beyond which raw events are retired.
    pub raw: Option<Duration>,
    /// Age beyond which complete call legs are removed (from the UTC midnight before).
    pub legs: Option<Duration>,
    /// Age beyond which the service history is folded (from the UTC midnight before).
    pub intervals: Option<Duration>,
    /// Age beyond which the hourly rollups kept of the history folded are removed (from
    /// the UTC midnight before; `None`: kept).
    pub rollups: Option<Duration>,
}

/// The UTC midnight `age` before `now` (µs): the horizon of a retention of `age`.
fn horizon(now: i64, age: Duration) -> i64 {
    back(now, age).div_euclid(US_PER_DAY) * US_PER_DAY
}

/// Whether the horizon of a retention of call legs of `age` moves from `at` (the last one;
/// `None`: none yet) to `h`: in steps of a quarter of `age` (whole days, at least one). Each
/// step writes again, without the legs it removes, every device's legs of the pieces of the
/// checkpoint holding some (the oldest pieces: most of it), so a daily step wrote about the
/// whole checkpoint every day; the legs are kept `age` to 1.25 × `age` instead.
fn legs_horizon_moves(at: Option<i64>, h: i64, age: Duration) -> bool {
    let days = (age.as_secs() / 86_400 / 4).max(1);
    at.is_none_or(|at| {
        h.saturating_sub(at)
            >= i64::try_from(days)
                .unwrap_or(i64::MAX)
                .saturating_mul(US_PER_DAY)
    })
}

/// The instant `age` before `now` (µs), at the earliest representable one.
fn back(now: i64, age: Duration) -> i64 {
    now.saturating_sub(i64::try_from(age.as_micros()).unwrap_or(i64::MAX))
}

/// Merges small segments every `every`, off the HTTP workers, until the runtime stops (a
/// compaction cut off by the stop leaves nothing behind that the next open does not tidy);
/// with `retention.legs`, then moves the horizon of the call legs in steps of a quarter of
/// it ([`legs_horizon_moves`]: a new checkpoint of the legs); with `retention.intervals`, the horizon of the service
/// history (a fold); with `retention.raw`, then retires the raw events older than that whose
/// call legs the checkpoint on disk holds.
async fn compact_in_background(
    log: Arc<Log>,
    app: Arc<App>,
    every: Duration,
    retention: Retention,
) {
    let opts = log.compact_options();
    loop {
        tokio::time::sleep(every).await;
        let (log, app, opts) = (log.clone(), app.clone(), opts.clone());
        let pass = move || -> anyhow::Result<()> {
            let done = log.compact_all(&opts)?;
            if !done.is_empty() {
                tracing::info!(compactions = done.len(), "small segments merged");
            }
            let now = chrono::Utc::now().timestamp_micros();
            if let Some(age) = retention.legs {
                let h = horizon(now, age);
                let live = app.live();
                let at = live.view().legs_retention().map(|r| r.kept_from);
                if legs_horizon_moves(at, h, age) {
                    let w = live.retain_legs_from(h)?;
                    tracing::info!(
                        kept_from = %callstate_schemas::format_instant(h),
                        removed = w.retention.map_or(0, |r| r.removed),
                        "call legs before the horizon removed"
                    );
                }
            }
            if let Some(age) = retention.intervals {
                let h = horizon(now, age);
                let view = app.live().view();
                let r = retention.rollups.map(|age| horizon(now, age));
                if let Some(f) = callstate_query::fold::fold_before(&log, &view, h, r, opts.grace)?
                {
                    tracing::info!(
                        kept_from = %callstate_schemas::format_instant(h),
                        segments = f.segments.len(),
                        events = f.events,
                        "service history before the horizon folded"
                    );
                }
            }
            if let Some(age) = retention.raw {
                let before = back(now, age);
                if let Some(through) = covered_through(&log.snapshot()) {
                    log.retire(before, through, opts.grace)?;
                }
            }
            Ok(())
        };
        match tokio::task::spawn_blocking(pass).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "a compaction or retention failed; retried later")
            }
            Err(e) => tracing::warn!(error = %e, "a compaction stopped"),
        }
    }
}

/// Serves `log` until a signal; `ready` is called with the bound address first. With
/// `kafka`, the collector writes to the canonical topic and a materializer fills `log`;
/// with `compact_every`, small segments are merged in the background (and, with
/// `retention`, old raw events and call legs removed).
#[allow(clippy::too_many_arguments)]
pub fn run(
    log: Arc<Log>,
    listen: &str,
    api: ServerConfig,
    kafka: Option<KafkaMode>,
    pollers: Vec<Poll>,
    receivers: Vec<Receive>,
    compact_every: Option<Duration>,
    retention: Retention,
    ready: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut materializer = None;
    let mut poll_out: Arc<dyn Appender> = log.clone();
    let app = match kafka {
        None => App::new(log.clone(), api)?,
        Some(k) => {
            if !pollers.is_empty() || !receivers.is_empty() {
                poll_out = Arc::new(
                    CanonicalProducer::new(&k.config, &k.materializer.topic)
                        .context("the pollers' canonical-topic producer")?,
                );
            }
            let topic = k.materializer.topic.clone();
            let producer = CanonicalProducer::new(&k.config, &topic)
                .with_context(|| format!("cannot write to the canonical topic {topic}"))?;
            let m = Materializer::start(&k.config, k.materializer, log.clone())
                .with_context(|| format!("cannot materialize the canonical topic {topic}"))?;
            let probe = Box::new(m.failure_probe());
            materializer = Some(m);
            App::with_appender(log.clone(), Arc::new(producer), Some(probe), api)?
        }
    };
    rt.block_on(async {
        let listener = callstate_server::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        ready(listener.local_addr()?);
        if let Some(every) = compact_every {
            tokio::spawn(compact_in_background(
                log.clone(),
                app.clone(),
                every,
                retention,
            ));
        }
        for p in pollers {
            let out = poll_out.clone();
            let cluster = p.config.cluster.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let started = |status| {
                    app.add_metrics_source(crate::collector_metrics::poller(cluster.clone(), status));
                };
                let r = crate::cmd_risport::run(p.config, p.clock, out, false, std::future::pending(), started).await;
                if let Err(e) = r {
                    tracing::error!(cluster = %cluster, error = %format!("{e:#}"), "the RisPort poller stopped");
                }
            });
        }
        let mut running = Vec::new();
        for r in receivers {
            let r_cluster = r.config.cluster.clone();
            let bound = SyslogReceiver::start(r.config, r.clock, poll_out.clone())
                .context("cannot start a syslog receiver")?;
            tracing::info!(listening = ?bound.bound(), "syslog receiver");
            app.add_metrics_source(crate::collector_metrics::syslog(
                r_cluster.clone(),
                bound.status_handle(),
            ));
            running.push(bound);
        }
        callstate_server::serve(listener, app, shutdown_signal()).await?;
        for r in running {
            if let Err(e) = r.stop() {
                tracing::warn!(error = %e, "stopping a syslog receiver");
            }
        }
        anyhow::Ok(())
    })?;
    // Requests still running were cut off by the server's shutdown grace; blocking work
    // (an append's fsync) gets a moment to finish, nothing waits for longer.
    rt.shutdown_timeout(Duration::from_secs(2));
    if let Some(m) = materializer {
        let status = m.stop();
        tracing::info!(?status, "materializer stopped");
    }
    // Every acknowledged append is already synced; wait for an in-flight roll (a roll that
    // failed left its events in the WAL: nothing is lost, the next start rolls them).
    if let Err(e) = log.wait_idle() {
        tracing::warn!(error = %e, "stopping with the log refusing appends");
    }
    eprintln!("callstate: stopped; every acknowledged event is in the log");
    Ok(())
}

/// `callstate serve`.
pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let s = args.resolve()?;
    let began = std::time::Instant::now();
    let log = Log::open(&s.data, s.log)
        .with_context(|| format!("cannot open the log in {}", s.data.display()))?;
    tracing::info!(
        events = log.snapshot().len(),
        seconds = began.elapsed().as_secs_f64(),
        "log opened"
    );
    let data = s.data.clone();
    run(
        Arc::new(log),
        &s.listen,
        s.api,
        s.kafka,
        s.pollers,
        s.receivers,
        s.compact_every,
        s.retention,
        |addr| {
            // One line on stdout for scripts and tests to wait for.
            let _ = outln!(
                "callstate: listening on http://{addr} (data {})",
                data.display()
            );
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_horizon_is_the_utc_midnight_before() {
        let day = Duration::from_secs(86_400);
        let t = |s: &str| callstate_schemas::parse_instant(s).unwrap();
        let now = t("2026-11-29T17:46:43Z");
        assert_eq!(horizon(now, day * 90), t("2026-08-31T00:00:00Z"));
        assert_eq!(
            horizon(t("2026-11-29T00:00:00Z"), day),
            t("2026-11-28T00:00:00Z")
        );
        assert_eq!(horizon(now, Duration::ZERO), t("2026-11-29T00:00:00Z"));
        // before 1970 too
        assert_eq!(
            horizon(t("1969-12-31T12:00:00Z"), Duration::ZERO),
            t("1969-12-31T00:00:00Z")
        );
    }

    #[test]
    fn the_legs_horizon_moves_in_steps_of_a_quarter_of_the_retention() {
        let day = Duration::from_secs(86_400);
        let d = |n: i64| n * US_PER_DAY;
        // the first horizon at once
        assert!(legs_horizon_moves(None, d(100), day * 90));
        // 90 days: every 22 days
        assert!(!legs_horizon_moves(Some(d(100)), d(100), day * 90));
        assert!(!legs_horizon_moves(Some(d(100)), d(121), day * 90));
        assert!(legs_horizon_moves(Some(d(100)), d(122), day * 90));
        // never back
        assert!(!legs_horizon_moves(Some(d(100)), d(50), day * 90));
        // a few days: every day
        for age in [day, day * 3, day * 7] {
            assert!(!legs_horizon_moves(Some(d(100)), d(100), age));
            assert!(legs_horizon_moves(Some(d(100)), d(101), age));
        }
        // 30 days: every 7
        assert!(!legs_horizon_moves(Some(d(100)), d(106), day * 30));
        assert!(legs_horizon_moves(Some(d(100)), d(107), day * 30));
    }
}
