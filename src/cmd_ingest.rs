//! `callstate ingest file`.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use callstate_ingest::Reject;
use callstate_ingest::ndjson::{self, IngestSink, NdjsonOptions, Summary};
use callstate_log::{Log, LogOptions};

use crate::DataArgs;
use crate::out::outln;

/// Arguments of `callstate ingest file`.
#[derive(Args)]
pub struct FileArgs {
    /// NDJSON file (plain or gzip), or `-` for stdin.
    pub path: String,
    #[command(flatten)]
    pub data: DataArgs,
    /// Rejects file (NDJSON: origin, line, field, error, input). Default: DATA/rejects/<time>-<name>.ndjson,
    /// created only when a line is rejected.
    #[arg(long)]
    pub rejects: Option<PathBuf>,
    /// Events that make the log write a Parquet segment.
    #[arg(long, default_value_t = LogOptions::default().segment_rows)]
    pub segment_rows: usize,
    /// Lines per durable append.
    #[arg(long, default_value_t = NdjsonOptions::default().batch_lines)]
    pub batch_lines: usize,
    /// Parser threads (default: one per core).
    #[arg(long)]
    pub parsers: Option<usize>,
    /// Print `{"acked_through_line": N, ...}` on stdout after each durable append.
    #[arg(long)]
    pub print_acks: bool,
}

/// Writes rejects to a file created on first use, and drives the progress bar.
struct CliSink {
    path: PathBuf,
    file: Option<BufWriter<File>>,
    progress: ProgressBar,
    print_acks: bool,
    last: Summary,
}

impl IngestSink for CliSink {
    fn reject(&mut self, reject: Reject) -> io::Result<()> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&self.path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))?;
            self.file = Some(BufWriter::new(file));
        }
        let w = self.file.as_mut().expect("opened above");
        serde_json::to_writer(&mut *w, &reject)?;
        w.write_all(b"\n")
    }

    fn acknowledged(&mut self, summary: &Summary, through_line: u64) {
        self.last = summary.clone();
        self.progress.set_message(format!(
            "{} accepted, {} duplicates, {} rejected",
            summary.accepted, summary.duplicates, summary.rejected
        ));
        if self.print_acks {
            // Rejects are flushed first so that an acknowledged line's reject is on disk too.
            if let Some(f) = self.file.as_mut() {
                let _ = f.flush();
            }
            let mut out = io::stdout().lock();
            let _ = writeln!(
                out,
                "{}",
                serde_json::json!({"acked_through_line": through_line, "accepted": summary.accepted,
                    "duplicates": summary.duplicates, "rejected": summary.rejected})
            );
            let _ = out.flush();
        }
    }
}

#[derive(Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    summary: &'a Summary,
    rejects_file: Option<String>,
}

fn progress_bar(total: Option<u64>) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    match total {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta}) {msg}",
            )
            .expect("valid template"),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bytes} read ({bytes_per_sec}) {msg}")
                .expect("valid template"),
        ),
    }
}

/// `callstate ingest file PATH|-`.
pub fn file(args: FileArgs) -> anyhow::Result<()> {
    let (input, total, name): (Box<dyn Read + Send>, Option<u64>, String) = if args.path == "-" {
        (Box::new(io::stdin()), None, "stdin".into())
    } else {
        let f = File::open(&args.path).with_context(|| format!("cannot open {}", args.path))?;
        let len = f.metadata().ok().map(|m| m.len());
        let name = PathBuf::from(&args.path)
            .file_name()
            .map(|n| {
                n.to_string_lossy()
                    .split('.')
                    .next()
                    .unwrap_or("input")
                    .to_string()
            })
            .unwrap_or_else(|| "input".into());
        (Box::new(f), len, name)
    };
    let log = Log::open(
        &args.data.data,
        LogOptions {
            segment_rows: args.segment_rows,
        },
    )
    .with_context(|| format!("cannot open the log in {}", args.data.data.display()))?;
    let progress = progress_bar(total);
    let input = progress.wrap_read(input);
    let rejects_path = args.rejects.clone().unwrap_or_else(|| {
        args.data.data.join("rejects").join(format!(
            "{}-{}-{name}.ndjson",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
            std::process::id()
        ))
    });
    let mut sink = CliSink {
        path: rejects_path,
        file: None,
        progress: progress.clone(),
        print_acks: args.print_acks,
        last: Summary::default(),
    };
    let opts = NdjsonOptions {
        origin: if args.path == "-" {
            "stdin".into()
        } else {
            args.path.clone()
        },
        batch_lines: args.batch_lines,
        parsers: args.parsers,
    };
    let result = ndjson::ingest(input, &log, &opts, &mut sink);
    progress.finish_and_clear();
    if let Some(f) = sink.file.as_mut() {
        f.flush().context("writing the rejects file")?;
    }
    log.wait_idle()?;
    let summary = match &result {
        Ok(s) => s.clone(),
        Err(_) => sink.last.clone(),
    };
    let report = Report {
        summary: &summary,
        rejects_file: sink.file.is_some().then(|| sink.path.display().to_string()),
    };
    outln!("{}", serde_json::to_string(&report)?)?;
    result
        .map(|_| ())
        .with_context(|| format!("ingest of {} stopped", args.path))
}
