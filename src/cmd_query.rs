//! `callstate sql` and `callstate state`: DataFusion over the log.

use std::path::Path;

use anyhow::bail;
use arrow::array::RecordBatch;

use callstate_log::Snapshot;
use callstate_schemas::{Us, format_instant};

use crate::answer::{Format, Writer, print};
use crate::out::outln;

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

/// Runs one SQL statement over a snapshot of the log: its batches, at least one (an empty
/// one with the answer's schema when no row matched).
pub fn run_sql(data: &Path, sql: &str, known_at: Option<Us>) -> anyhow::Result<Vec<RecordBatch>> {
    let snap = Snapshot::load(data)?;
    runtime()?.block_on(async {
        let ctx = callstate_query::session::context(&snap, known_at).await?;
        let df = ctx.sql(sql).await?;
        let schema = df.schema().inner().clone();
        let mut batches = df.collect().await?;
        if batches.is_empty() {
            batches.push(RecordBatch::new_empty(schema));
        }
        Ok(batches)
    })
}

/// `callstate sql`: the rows are written as they come (an export is not held whole).
pub fn sql(data: &Path, sql: &str, known_at: Option<&str>, format: Format) -> anyhow::Result<()> {
    use futures::StreamExt;
    let known_at = known_at.map(parse_instant).transpose()?;
    let snap = Snapshot::load(data)?;
    runtime()?.block_on(async {
        let ctx = callstate_query::session::context(&snap, known_at).await?;
        let mut rows = ctx.sql(sql).await?.execute_stream().await?;
        let mut out = Writer::new(format, rows.schema())?;
        while let Some(b) = rows.next().await {
            out.write(&b?)?;
        }
        out.finish()
    })
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
