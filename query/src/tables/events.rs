//! The `events` table: the committed Parquet segments plus the not-yet-rolled tail, so a
//! just-acknowledged event is visible; segments whose raw events retention removed are not
//! read, and a question reaching into them is refused with what was removed.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;

use callstate_log::{RetiredSpan, Snapshot};
use callstate_schemas::{events_schema, format_instant};

use super::selection::{exact_from, pushdown};

/// Registers `events` (and the `transfers` view over it) of `snap` in `ctx`. With segments
/// whose raw events retention removed, a scan of `events` not bounded to after them is an
/// error that says so, instead of an answer silently missing them.
pub async fn register(ctx: &SessionContext, snap: &Snapshot) -> Result<()> {
    let tail = Arc::new(MemTable::try_new(
        events_schema(),
        vec![snap.batches.clone()],
    )?);
    let retired = snap.retired();
    if snap.segments.is_empty() {
        ctx.register_table("events", tail)?;
    } else {
        let segments: Arc<dyn TableProvider> = match snap.held_segments().next() {
            None => Arc::new(MemTable::try_new(events_schema(), vec![vec![]])?),
            Some(_) => {
                let urls = snap
                    .held_segments()
                    .map(|s| {
                        let path = std::fs::canonicalize(snap.segment_path(s))
                            .map_err(|e| DataFusionError::External(Box::new(e)))?;
                        ListingTableUrl::parse(path.to_string_lossy())
                    })
                    .collect::<Result<Vec<_>>>()?;
                let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                    .with_file_extension(".parquet");
                let config = ListingTableConfig::new_with_multi_paths(urls)
                    .with_listing_options(options)
                    .with_schema(events_schema());
                Arc::new(ListingTable::try_new(config)?)
            }
        };
        let segments: Arc<dyn TableProvider> = match retired {
            Some(retired) => Arc::new(Retained {
                inner: segments,
                retired,
            }),
            None => segments,
        };
        ctx.register_table("events_segments", segments)?;
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

/// The segments of `events` when retention removed some: a scan must be bounded to after
/// the latest retired event time (`time > …`), else it fails saying what was removed.
#[derive(Debug)]
struct Retained {
    inner: Arc<dyn TableProvider>,
    retired: RetiredSpan,
}

#[async_trait]
impl TableProvider for Retained {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // the time bounds must reach `scan`, to be checked there
        let inner = self.inner.supports_filters_pushdown(filters)?;
        Ok(inner
            .into_iter()
            .zip(pushdown(filters, Some("time")))
            .map(|(i, ours)| match (i, ours) {
                (TableProviderFilterPushDown::Unsupported, ours) => ours,
                (i, _) => i,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let r = &self.retired;
        let from = exact_from(filters, "time");
        if from.is_none_or(|f| f <= r.max_time_us) {
            return Err(DataFusionError::Plan(format!(
                "the raw events from {} to {} ({} events, {} segments) were removed by \
                 retention: bound the query to after them (time > '{}'); service state, \
                 intervals, availability, SLA, call legs and incidents keep that history",
                format_instant(r.min_time_us),
                format_instant(r.max_time_us),
                r.events,
                r.segments,
                format_instant(r.max_time_us),
            )));
        }
        self.inner.scan(state, projection, filters, limit).await
    }
}
