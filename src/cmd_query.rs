//! `callstate sql` and `callstate state`: DataFusion over the log.

use std::path::Path;

use anyhow::bail;
use arrow::array::RecordBatch;
use clap::ValueEnum;

use callstate_log::Snapshot;
use callstate_schemas::{Us, format_instant};

use crate::out::outln;

/// Output format of tabular answers.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    /// Aligned text table.
    Table,
    /// CSV with a header line.
    Csv,
    /// A JSON array of objects.
    Json,
    /// Apache Parquet (zstd), for DuckDB, pandas or a BI tool; binary, so standard output
    /// must be redirected to a file.
    Parquet,
}

/// Parses an instant: RFC 3339, epoch milliseconds (as Grafana's `${__from}`) or `now`.
pub fn parse_instant(text: &str) -> anyhow::Result<Us> {
    Ok(callstate_schemas::parse_instant(text)?)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Prints batches in a format (at least one batch, empty or not: its schema is the
/// answer's, which a Parquet file records even with no rows).
pub fn print(batches: &[RecordBatch], format: Format) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match format {
        Format::Table => {
            use std::io::Write;
            writeln!(
                out,
                "{}",
                arrow::util::pretty::pretty_format_batches(batches)?
            )?;
        }
        Format::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            for b in batches {
                w.write(b)?;
            }
        }
        Format::Json => {
            use std::io::Write;
            let mut w = arrow::json::ArrayWriter::new(&mut out);
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            w.write_batches(&refs)?;
            w.finish()?;
            drop(w);
            if batches.iter().all(|b| b.num_rows() == 0) {
                write!(out, "[]")?;
            }
            writeln!(out)?;
        }
        Format::Parquet => {
            drop(out);
            write_parquet(batches, stdout)?;
        }
    }
    Ok(())
}

/// Writes batches as one Parquet file to standard output, refused on a terminal.
fn write_parquet(batches: &[RecordBatch], out: std::io::Stdout) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    if out.is_terminal() {
        bail!(
            "--format parquet writes a binary file: redirect standard output (`> answer.parquet`)"
        );
    }
    let Some(first) = batches.first() else {
        bail!("no answer to write");
    };
    let out = std::io::BufWriter::new(out);
    callstate_server::respond::write_parquet(out, first.schema(), batches)?
        .into_inner()
        .map_err(|e| e.into_error())?;
    Ok(())
}

/// Runs one SQL statement over a snapshot of the log: its batches, at least one (an empty
/// one with the answer's schema when no row matched).
pub fn run_sql(data: &Path, sql: &str, known_at: Option<Us>) -> anyhow::Result<Vec<RecordBatch>> {
    let snap = Snapshot::load(data)?;
    runtime()?.block_on(async {
        let ctx = callstate_query::session::context(&snap, known_at).await?;
        let df = ctx.sql(sql).await?;
        let schema = std::sync::Arc::new(df.schema().as_arrow().clone());
        let mut batches = df.collect().await?;
        if batches.is_empty() {
            batches.push(RecordBatch::new_empty(schema));
        }
        Ok(batches)
    })
}

/// `callstate sql`.
pub fn sql(data: &Path, sql: &str, known_at: Option<&str>, format: Format) -> anyhow::Result<()> {
    let known_at = known_at.map(parse_instant).transpose()?;
    print(&run_sql(data, sql, known_at)?, format)
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `callstate state --at T [--device D]`.
pub fn state(
    data: &Path,
    at: &str,
    device: Option<&str>,
    known_at: Option<&str>,
    format: Format,
) -> anyhow::Result<()> {
    let t = parse_instant(at)?;
    let known = known_at.map(parse_instant).transpose()?;
    let filter = device
        .map(|d| format!(" AND device = {}", quote(d)))
        .unwrap_or_default();
    // every device with a state at `t` (one with no event before it is left out)
    let at_t = format!("device_state_at(TIMESTAMP '{}')", format_instant(t));
    let sql = format!(
        "SELECT device, state, node, home_node, on_home_node, since, device_type, \
         device_pool, cluster, last_node, cause FROM {at_t} \
         WHERE since IS NOT NULL{filter} ORDER BY device"
    );
    let batches = run_sql(data, &sql, known)?;
    if let Some(d) = device
        && batches.iter().all(|b| b.num_rows() == 0)
    {
        let known_device = run_sql(
            data,
            &format!("SELECT 1 FROM {at_t} WHERE device = {} LIMIT 1", quote(d)),
            known,
        )?;
        if known_device.iter().all(|b| b.num_rows() == 0) {
            bail!("device `{d}` is not in the log");
        }
        outln!(
            "{}",
            serde_json::json!({"device": d, "state": callstate_schemas::ServiceState::Unknown.as_str(), "reason": "no service event before this instant"})
        )?;
        return Ok(());
    }
    print(&batches, format)
}
