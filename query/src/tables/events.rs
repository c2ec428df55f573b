//! The `events` table: the committed Parquet segments plus the not-yet-rolled tail, so a
//! just-acknowledged event is visible.

use std::sync::Arc;

use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::SessionContext;

use callstate_log::Snapshot;
use callstate_schemas::events_schema;

/// Registers `events` (and the `transfers` view over it) of `snap` in `ctx`.
pub async fn register(ctx: &SessionContext, snap: &Snapshot) -> Result<()> {
    let tail = Arc::new(MemTable::try_new(
        events_schema(),
        vec![snap.batches.clone()],
    )?);
    if snap.segments.is_empty() {
        ctx.register_table("events", tail)?;
    } else {
        let urls = snap
            .segments
            .iter()
            .map(|s| {
                let path = std::fs::canonicalize(snap.segment_path(s))
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                ListingTableUrl::parse(path.to_string_lossy())
            })
            .collect::<Result<Vec<_>>>()?;
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(events_schema());
        ctx.register_table("events_segments", Arc::new(ListingTable::try_new(config)?))?;
        ctx.register_table("events_tail", tail)?;
        ctx.sql(
            "CREATE VIEW events AS SELECT * FROM events_segments UNION ALL SELECT * FROM events_tail",
        )
        .await?;
    }
    ctx.sql(
        "CREATE VIEW transfers AS SELECT time, cluster, device, call_id, consult_call_id, \
         transferred_to, source, ingest_time FROM events WHERE kind = 'transfer_completed'",
    )
    .await?;
    Ok(())
}
