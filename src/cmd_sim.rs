//! `callstate simulate`.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;

use callstate_log::{Log, LogOptions};
use callstate_schemas::Event;
use callstate_sim::{BUILT_IN, Scenario, Truth};

use crate::out::outln;

/// Arguments of `callstate simulate`.
#[derive(Args)]
pub struct SimArgs {
    /// A built-in scenario name, or a scenario TOML file.
    #[arg(long, default_value = "quiet-day", help = format!("built-in ({}) or a TOML file", BUILT_IN.join(", ")))]
    pub scenario: String,
    /// Random seed: the same seed gives byte-identical output.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write events as NDJSON here (`-` for stdout).
    #[arg(long)]
    pub out: Option<String>,
    /// Write the ground truth (JSON) here.
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// Append the events straight into the log in this data directory.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Override the devices per cluster.
    #[arg(long)]
    pub devices: Option<usize>,
    /// Override the duration (e.g. `6h`).
    #[arg(long)]
    pub duration: Option<String>,
    /// Serve the run as a CUCM cluster (RisPort70 and AXL over HTTP) on this address, with
    /// the scenario starting now, for `callstate ingest risport` to poll (docs/cucm.md).
    #[arg(long, value_name = "ADDR")]
    pub serve_cucm: Option<String>,
    /// With --serve-cucm: simulated time runs N times faster than real time.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// With --serve-cucm: the accepted user (password: CALLSTATE_CUCM_PASSWORD, else `secret`).
    #[arg(long, default_value = "callstate-ris")]
    pub cucm_user: String,
    /// With --serve-cucm: records per answer at most, cut silently as CUCM does.
    #[arg(long, default_value_t = 1000)]
    pub answer_cap: usize,
    /// With --serve-cucm: RisPort requests per minute before `Server.RateControl` faults.
    #[arg(long, default_value_t = 15)]
    pub rate_per_minute: u32,
    /// Send the run as the cluster's remote-syslog alarms to `udp://ADDR:PORT` or
    /// `tcp://ADDR:PORT` (octet-counted), with the scenario starting now, at --speed.
    #[arg(long, value_name = "URL")]
    pub syslog_to: Option<String>,
    /// With --syslog-to: share of alarms in a lenient variant (no host, 12-hour clock, no
    /// year, keys with spaces, unescaped brackets).
    #[arg(long, default_value_t = 0.2)]
    pub syslog_variants: f64,
    /// With --syslog-to: share of alarms cut after their reason.
    #[arg(long, default_value_t = 0.02)]
    pub syslog_truncated: f64,
    /// Write the run's CDR files (one per node per minute, as the billing server pushes
    /// them) into this directory.
    #[arg(long)]
    pub cdr_dir: Option<PathBuf>,
}

/// Loads a scenario with the command-line overrides applied.
pub fn scenario(
    name: &str,
    devices: Option<usize>,
    duration: Option<&str>,
) -> anyhow::Result<Scenario> {
    let mut sc = Scenario::load(name)?;
    if let Some(d) = devices {
        sc.topology.devices = d;
    }
    if let Some(d) = duration {
        sc.duration = d.to_string();
        sc.end_time()?;
    }
    Ok(sc)
}

/// Appends events to the log in batches.
pub struct LogWriter<'a> {
    log: &'a Log,
    batch: Vec<Event>,
    /// Events the log stored.
    pub accepted: u64,
    /// Duplicates it dropped.
    pub duplicates: u64,
}

impl<'a> LogWriter<'a> {
    /// A writer into `log`.
    pub fn new(log: &'a Log) -> Self {
        LogWriter {
            log,
            batch: Vec::with_capacity(16_384),
            accepted: 0,
            duplicates: 0,
        }
    }
    /// Queues one event, appending a full batch.
    pub fn push(&mut self, e: &Event) -> anyhow::Result<()> {
        self.batch.push(e.clone());
        if self.batch.len() >= 16_384 {
            self.flush()?;
        }
        Ok(())
    }
    /// Appends what is queued.
    pub fn flush(&mut self) -> anyhow::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let r = self.log.append(&self.batch)?;
        if r.conflicts > 0 {
            bail!(
                "{} events conflict with events already in the log (same source and seq, other content): \
                 use a fresh data directory or another seed",
                r.conflicts
            );
        }
        self.accepted += r.accepted as u64;
        self.duplicates += r.duplicates as u64;
        self.batch.clear();
        Ok(())
    }
}

/// One-line summary of a run.
pub fn summary(truth: &Truth) -> serde_json::Value {
    serde_json::json!({
        "scenario": truth.scenario,
        "seed": truth.seed,
        "start": truth.start,
        "end": truth.end,
        "devices": truth.device_info.len(),
        "events": truth.stream.events,
        "distinct_events": truth.stream.distinct,
        "duplicates_injected": truth.stream.duplicates,
        "late": truth.stream.late + truth.stream.replayed,
        "calls": truth.calls.len(),
        "incidents": truth.incidents.iter().filter(|i| !i.devices.is_empty()).count(),
        "failovers": truth.failovers.len(),
        "rehomes": truth.rehomes.len(),
        "maintenance_windows": truth.maintenance_windows.len(),
    })
}

/// `callstate simulate`.
pub fn simulate(args: SimArgs) -> anyhow::Result<()> {
    if args.serve_cucm.is_some() {
        return serve_cucm(&args);
    }
    if args.syslog_to.is_some() {
        return send_syslog(&args);
    }
    if args.out.is_none() && args.data.is_none() && args.truth.is_none() && args.cdr_dir.is_none() {
        bail!("nothing to write: give --out, --data, --truth and/or --cdr-dir");
    }
    let sc = scenario(&args.scenario, args.devices, args.duration.as_deref())?;
    let mut out: Option<Box<dyn Write>> = match args.out.as_deref() {
        None => None,
        Some("-") => Some(Box::new(BufWriter::with_capacity(
            1 << 20,
            io::stdout().lock(),
        ))),
        Some(p) => Some(Box::new(BufWriter::with_capacity(
            1 << 20,
            File::create(p).with_context(|| format!("cannot create {p}"))?,
        ))),
    };
    let log = match &args.data {
        Some(d) => Some(
            Log::open(d, LogOptions::default())
                .with_context(|| format!("cannot open the log in {}", d.display()))?,
        ),
        None => None,
    };
    let mut writer = log.as_ref().map(LogWriter::new);
    let mut line = Vec::with_capacity(512);
    let mut all: Vec<Event> = Vec::new();
    let truth = callstate_sim::run(&sc, args.seed, &mut |e: &Event| {
        if let Some(o) = out.as_mut() {
            line.clear();
            serde_json::to_writer(&mut line, e)?;
            line.push(b'\n');
            o.write_all(&line)?;
        }
        if let Some(w) = writer.as_mut() {
            w.push(e)?;
        }
        if args.cdr_dir.is_some() {
            all.push(e.clone());
        }
        Ok(())
    })?;
    let mut cdr = None;
    if let Some(dir) = &args.cdr_dir {
        let w = callstate_mockcucm::cdr::write(&all, dir)
            .with_context(|| format!("cannot write CDR files into {}", dir.display()))?;
        cdr = Some((w.files.len(), w.records));
    }
    if let Some(o) = out.as_mut() {
        o.flush()?;
    }
    if let Some(w) = writer.as_mut() {
        w.flush()?;
    }
    if let Some(log) = &log {
        log.wait_idle()?;
    }
    if let Some(path) = &args.truth {
        let f = BufWriter::new(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        );
        serde_json::to_writer(f, &truth)?;
    }
    let mut s = summary(&truth);
    if let Some((files, records)) = cdr {
        s["cdr_files"] = files.into();
        s["cdr_records"] = records.into();
    }
    if let Some(w) = &writer {
        s["log_accepted"] = w.accepted.into();
        s["log_duplicates"] = w.duplicates.into();
    }
    if args.out.as_deref() == Some("-") {
        eprintln!("{s}");
    } else {
        outln!("{s}")?;
    }
    Ok(())
}

/// `callstate simulate --serve-cucm ADDR`: the run as a mock CUCM cluster, until the
/// scenario's end (in simulated time) or a signal.
fn serve_cucm(args: &SimArgs) -> anyhow::Result<()> {
    use callstate_mockcucm::{APP_USER, CucmModel, MockCucm, MockOptions};
    use chrono::{SubsecRound, Utc};
    if !(args.speed.is_finite() && args.speed > 0.0) {
        bail!("--speed must be a positive number, not {}", args.speed);
    }
    let addr = args.serve_cucm.clone().unwrap_or_default();
    let sc = scenario(&args.scenario, args.devices, args.duration.as_deref())?;
    let (model, truth) = CucmModel::simulate(&sc, args.seed)?;
    let origin = Utc::now().trunc_subsecs(0);
    let speed = args.speed;
    // the same function of the wall clock the poller's --clock-speed/--clock-origin compute
    let clock = callstate_cucm::WallClock::scaled(origin, speed);
    let now = std::sync::Arc::new(move || callstate_cucm::Clock::now(&clock));
    let opts = MockOptions {
        user: args.cucm_user.clone(),
        password: std::env::var(crate::cmd_risport::PASSWORD_ENV)
            .unwrap_or_else(|_| "secret".into()),
        answer_cap: args.answer_cap.max(1),
        rate_per_minute: args.rate_per_minute.max(1),
        duplicates: true,
    };
    let cluster = model.cluster.clone();
    let mock = MockCucm::new(model, opts, origin, now);
    let real_len = (truth.end - truth.start)
        .to_std()
        .unwrap_or_default()
        .div_f64(speed);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let bound = listener.local_addr()?;
        outln!(
            "{}",
            serde_json::json!({
                "mock_cucm": format!("http://{bound}"),
                "cluster": cluster,
                "user": args.cucm_user,
                "password_env": crate::cmd_risport::PASSWORD_ENV,
                "cti_user": APP_USER,
                "clock_origin": callstate_schemas::time::format_time(&origin),
                "speed": speed,
                "scenario": truth.scenario,
                "devices": truth.device_info.len(),
                "ends_at": callstate_schemas::time::format_time(&(origin + chrono::Duration::from_std(real_len).unwrap_or_default())),
            })
        )?;
        let router = mock.router(None);
        tokio::select! {
            r = axum::serve(listener, router) => r?,
            _ = crate::signal::shutdown_signal() => {},
            _ = tokio::time::sleep(real_len) => {},
        }
        eprintln!("{}", serde_json::to_string(&mock.stats())?);
        anyhow::Ok(())
    })
}

/// `callstate simulate --syslog-to URL`: the run's alarms, shifted to start now, sent when
/// their (sped-up) time comes.
fn send_syslog(args: &SimArgs) -> anyhow::Result<()> {
    use callstate_mockcucm::APP_USER;
    use callstate_mockcucm::alarms::{AlarmOptions, render};
    use chrono::{SubsecRound, Utc};
    if !(args.speed.is_finite() && args.speed > 0.0) {
        bail!("--speed must be a positive number, not {}", args.speed);
    }
    let url = args.syslog_to.clone().unwrap_or_default();
    let (proto, addr) = url
        .split_once("://")
        .filter(|(p, _)| *p == "udp" || *p == "tcp")
        .ok_or_else(|| {
            anyhow::anyhow!("--syslog-to {url}: give udp://ADDR:PORT or tcp://ADDR:PORT")
        })?;
    let sc = scenario(&args.scenario, args.devices, args.duration.as_deref())?;
    let (mut events, truth) = callstate_sim::collect(&sc, args.seed)?;
    let origin = Utc::now().trunc_subsecs(0);
    let shift = origin - truth.start;
    for e in &mut events {
        e.time += shift;
    }
    let opts = AlarmOptions {
        variants: args.syslog_variants.clamp(0.0, 1.0),
        truncated: args.syslog_truncated.clamp(0.0, 1.0),
        seed: args.seed,
        ..AlarmOptions::default()
    };
    let lines = render(&events, &opts);
    outln!(
        "{}",
        serde_json::json!({
            "syslog_to": url,
            "lines": lines.len(),
            "cluster": truth.device_info.values().next().map(|d| d.cluster.clone()),
            "cti_user": APP_USER,
            "clock_origin": callstate_schemas::time::format_time(&origin),
            "speed": args.speed,
            "scenario": truth.scenario,
        })
    )?;
    let udp = std::net::UdpSocket::bind(if addr.starts_with('[') {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    })?;
    let mut tcp = match proto {
        "tcp" => Some(
            std::net::TcpStream::connect(addr)
                .with_context(|| format!("cannot connect to {url}"))?,
        ),
        _ => None,
    };
    let start = std::time::Instant::now();
    for (t, line) in &lines {
        let due = (*t - origin.timestamp_micros()).max(0) as f64 / args.speed / 1e6;
        let wait = due - start.elapsed().as_secs_f64();
        if wait > 0.0 {
            std::thread::sleep(std::time::Duration::from_secs_f64(wait));
        }
        match tcp.as_mut() {
            Some(s) => s.write_all(format!("{} {line}", line.len()).as_bytes())?,
            None => {
                udp.send_to(line.as_bytes(), addr)?;
            }
        }
    }
    if let Some(s) = tcp.as_mut() {
        s.flush()?;
    }
    eprintln!("sent {} syslog lines to {url}", lines.len());
    Ok(())
}
