//! `callstate`: CUCM CTI device and call events into an append-only log, and answers from it.

mod answer;
mod cmd_cdr;
mod cmd_demo;
mod cmd_ingest;
mod cmd_kafka;
mod cmd_log;
mod cmd_query;
mod cmd_report;
mod cmd_risport;
mod cmd_serve;
mod cmd_sim;
mod cmd_sla;
mod cmd_slo;
mod cmd_syslog;
mod collector;
mod collector_metrics;
mod live_feed;
mod out;
mod signal;
mod targets;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// mimalloc keeps freed memory for reuse: the ingest path allocates large column buffers per
/// batch, which the system allocator maps and faults in afresh every time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h (v2 and v3), which the Rust bindings do not name.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// `mi_option_allow_thp` in mimalloc.h (v3).
const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

/// Freed memory goes back to the OS after a second unused instead of mimalloc's 10 ms, so
/// that one batch's buffers are reused by the next instead of being faulted in again.
///
/// No transparent huge pages for this process: where the system allows them (`madvise`, the
/// common default, and mimalloc asks), every page fault in memory purged before zeroes 2 MiB
/// however little of it is used, and purging splits them again. A year's server start
/// spent 43% of its time zeroing pages so: 4.0-4.7 s with them, 2.6-3.7 s without, peak
/// memory 867 -> 800 MB; ingest and questions measured the same.
///
/// mimalloc purges only from inside its own calls, so a process that stops allocating (a
/// server idle after its start or after a heavy question) kept what it had freed: at a year
/// of the benchmark fleet, about 200 MB more resident after a start until some later request
/// happened to purge it. A thread asks it every second to purge what has been unused long
/// enough.
fn tune_allocator() {
    // SAFETY: set plain integer options of the allocator in use.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1000);
        libmimalloc_sys::mi_option_set(MI_OPTION_ALLOW_THP, 0);
    }
    // (mimalloc reads its option at its start, before `main`: the process-wide switch does
    // it now, for every mapping; a kernel without it leaves huge pages on)
    // SAFETY: a prctl with integer arguments only.
    let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    let purge = || {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
            // SAFETY: a plain call into the allocator in use; purges expired free memory
            // (program-wide) and what this thread holds.
            unsafe { libmimalloc_sys::mi_collect(false) };
        }
    };
    // (without it memory is still returned, later)
    let _ = std::thread::Builder::new()
        .name("allocator-purge".into())
        .spawn(purge);
}

#[derive(Parser)]
#[command(
    name = "callstate",
    version,
    about = "CUCM CTI device/call state, availability and failover forensics"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the log lives.
#[derive(Args, Clone)]
pub struct DataArgs {
    /// Data directory of the embedded log.
    #[arg(long, env = "CALLSTATE_DATA", default_value = "callstate-data")]
    pub data: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Ingest events into the log.
    Ingest {
        #[command(subcommand)]
        source: IngestSource,
    },
    /// Kafka tools.
    Kafka {
        #[command(subcommand)]
        action: KafkaAction,
    },
    /// Inspect and maintain the log.
    Log {
        #[command(subcommand)]
        action: LogAction,
    },
    /// Simulate a mid-size cluster's day (node failover, CTIManager failover, maintenance) into a fresh log, then serve the API over it.
    Demo(cmd_demo::DemoArgs),
    /// Run the log, the HTTP collector and the API (design.md §5) in one process.
    Serve(Box<cmd_serve::ServeArgs>),
    /// Run read-only SQL over the log: tables events, device_intervals, maintenance_windows, device_pools.
    Sql {
        /// The SQL statement.
        query: String,
        #[command(flatten)]
        data: DataArgs,
        /// Answer with what had been ingested by then (RFC 3339 or epoch ms); derived tables only.
        #[arg(long)]
        known_at: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: answer::Format,
    },
    /// Every device's service state at an instant (or one device's).
    State {
        /// The instant: RFC 3339 or epoch milliseconds.
        #[arg(long)]
        at: String,
        /// Only this device.
        #[arg(long)]
        device: Option<String>,
        #[command(flatten)]
        data: DataArgs,
        /// What was known then (RFC 3339 or epoch ms).
        #[arg(long)]
        known_at: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: answer::Format,
    },
    /// Availability per group over a window: seconds in/out of service, unknown, excluded.
    Availability(cmd_sla::WindowArgs),
    /// SLA report per group: availability vs target, error budget, outages, MTTR, longest outage.
    Sla(cmd_sla::SlaArgs),
    /// Incidents: outages starting together on a node or CTIManager, with recovery, failovers, re-homes, calls.
    Incidents(cmd_sla::IncidentArgs),
    /// The monthly SLA report: one self-contained HTML file (print it to PDF from a browser).
    Report(cmd_report::ReportArgs),
    /// SLO alerting: Prometheus rules and Grafana alert provisioning from the SLA targets.
    Slo {
        #[command(subcommand)]
        action: cmd_slo::SloAction,
    },
    /// Run the cluster simulator: v1 events plus the ground truth of what happened.
    Simulate(cmd_sim::SimArgs),
    /// Print the v1 event JSON Schema, or write the schema files to a directory.
    Schema {
        /// Directory to write `event.v1.schema.json` and `events.v1.schema.json` into.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum IngestSource {
    /// NDJSON from a file or `-` (stdin); gzip is detected.
    File(cmd_ingest::FileArgs),
    /// Consume a Kafka topic of bridge events; offsets are committed after each durable append,
    /// rejects go to a dead-letter topic.
    Kafka(cmd_kafka::IngestKafkaArgs),
    /// Poll a CUCM cluster's RisPort70 (device registration, CTI providers) and AXL
    /// (inventory, device pools): no JTAPI bridge needed. See docs/cucm.md.
    Risport(Box<cmd_risport::IngestRisportArgs>),
    /// Receive a CUCM cluster's remote-syslog alarms (UDP or TCP): registration, node,
    /// service and CTI provider alarms as v1 events. See docs/cucm.md.
    Syslog(Box<cmd_syslog::IngestSyslogArgs>),
    /// Ingest the CDR files a CUCM billing server pushes into a directory: calls and
    /// consultation transfers as v1 events. See docs/cucm.md.
    Cdr(Box<cmd_cdr::IngestCdrArgs>),
}

#[derive(Subcommand)]
enum KafkaAction {
    /// Send NDJSON lines to a topic, one message each (a stand-in bridge).
    Produce(cmd_kafka::ProduceArgs),
}

#[derive(Subcommand)]
enum LogAction {
    /// Print JSON: event count, segments, per-kind counts, min/max event time.
    Stats {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Write the not-yet-rolled tail into a Parquet segment now.
    Roll {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Merge adjacent small segments now (`serve` does it in the background); prints what
    /// was merged and the stats after.
    Compact {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Derive the live state and write the checkpoint of its call legs now (`serve` writes
    /// one every million call events); the next start reads the legs back from it.
    Checkpoint {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Retention: with --before, remove the Parquet files of the raw events' segments wholly
    /// before BEFORE (their digests, hence service state, intervals and SLA, stay, and the
    /// call legs stay in the checkpoint of the legs, written first if needed); with
    /// --legs-before, remove the complete call legs that started and ended before it (a
    /// new checkpoint without them); with --intervals-before, fold the service history
    /// before the UTC hour holding it into the log's base (each device's state there and its
    /// hourly rollups kept: availability and SLA over whole hours before it still answer;
    /// other questions before it are refused); with --rollups-before, remove those hourly
    /// rollups before it. Prints what was removed.
    #[command(group(clap::ArgGroup::new("horizon").required(true).multiple(true).args(["before", "legs_before", "intervals_before", "rollups_before"])))]
    Retire {
        #[command(flatten)]
        data: DataArgs,
        /// Raw events: an RFC 3339 instant, or a duration back from now (`90d`).
        #[arg(long)]
        before: Option<String>,
        /// Call legs: an RFC 3339 instant, or a duration back from now (`90d`).
        #[arg(long)]
        legs_before: Option<String>,
        /// Service history (intervals): an RFC 3339 instant, or a duration back from now
        /// (taken down to its UTC hour).
        #[arg(long)]
        intervals_before: Option<String>,
        /// Hourly rollups kept before the intervals' horizon: an RFC 3339 instant, or a
        /// duration back from now (up to it).
        #[arg(long)]
        rollups_before: Option<String>,
    },
}

fn main() -> ExitCode {
    tune_allocator();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CALLSTATE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // help and version go to stdout; a closed pipe there is a normal end too
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Ingest {
            source: IngestSource::File(args),
        } => cmd_ingest::file(args),
        Command::Ingest {
            source: IngestSource::Kafka(args),
        } => cmd_kafka::ingest(args),
        Command::Ingest {
            source: IngestSource::Risport(args),
        } => cmd_risport::ingest(*args),
        Command::Ingest {
            source: IngestSource::Syslog(args),
        } => cmd_syslog::ingest(*args),
        Command::Ingest {
            source: IngestSource::Cdr(args),
        } => cmd_cdr::ingest(*args),
        Command::Kafka {
            action: KafkaAction::Produce(args),
        } => cmd_kafka::produce(args),
        Command::Log {
            action: LogAction::Stats { data },
        } => cmd_log::stats(&data.data),
        Command::Log {
            action: LogAction::Roll { data },
        } => cmd_log::roll(&data.data),
        Command::Log {
            action: LogAction::Compact { data },
        } => cmd_log::compact(&data.data),
        Command::Log {
            action: LogAction::Checkpoint { data },
        } => cmd_log::checkpoint(&data.data),
        Command::Log {
            action:
                LogAction::Retire {
                    data,
                    before,
                    legs_before,
                    intervals_before,
                    rollups_before,
                },
        } => cmd_log::retire(
            &data.data,
            before.as_deref(),
            legs_before.as_deref(),
            intervals_before.as_deref(),
            rollups_before.as_deref(),
        ),
        Command::Sql {
            query,
            data,
            known_at,
            format,
        } => cmd_query::sql(&data.data, &query, known_at.as_deref(), format),
        Command::State {
            at,
            device,
            data,
            known_at,
            format,
        } => cmd_query::state(
            &data.data,
            &at,
            device.as_deref(),
            known_at.as_deref(),
            format,
        ),
        Command::Availability(args) => cmd_sla::availability(args),
        Command::Sla(args) => cmd_sla::sla(args),
        Command::Incidents(args) => cmd_sla::incidents(args),
        Command::Report(args) => cmd_report::report(args),
        Command::Slo { action } => cmd_slo::slo(action),
        Command::Demo(args) => cmd_demo::demo(args),
        Command::Serve(args) => cmd_serve::serve(*args),
        Command::Simulate(args) => cmd_sim::simulate(args),
        Command::Schema { out } => cmd_log::schema(out.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`callstate sql ... | head`) is not an error.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
