//! `callstate`: CUCM CTI device and call events into an append-only log, and answers from it.

mod cmd_demo;
mod cmd_ingest;
mod cmd_log;
mod cmd_sim;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

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
    /// Inspect and maintain the log.
    Log {
        #[command(subcommand)]
        action: LogAction,
    },
    /// Simulate a mid-size cluster's day (node failover, CTIManager failover, maintenance) into a fresh log and report it.
    Demo(cmd_demo::DemoArgs),
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
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CALLSTATE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ingest {
            source: IngestSource::File(args),
        } => cmd_ingest::file(args),
        Command::Log {
            action: LogAction::Stats { data },
        } => cmd_log::stats(&data.data),
        Command::Log {
            action: LogAction::Roll { data },
        } => cmd_log::roll(&data.data),
        Command::Demo(args) => cmd_demo::demo(args),
        Command::Simulate(args) => cmd_sim::simulate(args),
        Command::Schema { out } => cmd_log::schema(out.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
