//! The derived tables and table-function results as DataFusion providers (as DataFusion's
//! `simple_udtf` and InfluxDB's last-value cache do): planning only records what is asked
//! (the table, its arguments, the filters it can use); all the work happens in `execute`,
//! on a blocking thread, as a stream of batches. So `EXPLAIN` computes nothing, and the
//! query's time and memory limits and its cancellation reach the work: the producer stops
//! at its next batch once the stream is dropped.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};

use callstate_schemas::Us;

use super::selection::{Selection, pushdown};
use super::{
    availability, calls, device_intervals, device_pools, device_state, incidents,
    maintenance_windows, sla,
};
use crate::exec::Cancel;
use crate::model::fleet::Fleet;
use crate::model::frozen::Edges;
use crate::model::incidents::{IncidentOptions, detect};
use crate::model::intervals::ServiceInterval;
use crate::model::sla::{GroupBy, availability_over, sla_over};
use crate::model::state::state_at;
use crate::source::SharedSource;

/// Rows per batch a producer hands on.
const BATCH_ROWS: usize = 8192;

/// Which derived table, with its arguments.
#[derive(Debug, Clone)]
pub enum What {
    /// `device_intervals`, `device_intervals_at(known_at)`.
    Intervals,
    /// `device_state_at(ts)`.
    StatesAt(Us),
    /// `availability(from, to, group_by, known_at, edges)` over the windows.
    Availability(Vec<(Us, Us)>, GroupBy, Edges),
    /// `sla(from, to, group_by, period, tz, known_at, edges)` over the windows.
    Sla(Vec<(Us, Us)>, GroupBy, Edges),
    /// `calls`.
    Calls,
    /// `incidents`.
    Incidents,
    /// `maintenance_windows`.
    Windows,
    /// `device_pools`.
    Pools,
}

impl What {
    /// The table's schema.
    pub fn schema(&self) -> SchemaRef {
        match self {
            What::Intervals => device_intervals::schema_of(),
            What::StatesAt(_) => device_state::schema_of(),
            What::Availability(..) => availability::schema_of(),
            What::Sla(..) => sla::schema_of(),
            What::Calls => calls::schema_of(),
            What::Incidents => incidents::schema_of(),
            What::Windows => maintenance_windows::batch(&[]).schema(),
            What::Pools => device_pools::batch(&[]).schema(),
        }
    }

    /// The column whose bounds the table can use, if any.
    fn time_column(&self) -> Option<&'static str> {
        match self {
            What::Intervals => Some("valid_from"),
            What::Calls | What::Incidents => Some("started_at"),
            _ => None,
        }
    }

    /// Whether rows are per device (so device, cluster and pool filters select them).
    fn per_device(&self) -> bool {
        matches!(self, What::Intervals | What::StatesAt(_) | What::Calls)
    }
}

/// A derived table over a [`Source`](crate::source::Source), as known at `known_at` if set.
pub struct DerivedTable {
    source: SharedSource,
    known_at: Option<Us>,
    what: What,
    schema: SchemaRef,
}

impl fmt::Debug for DerivedTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DerivedTable")
            .field("what", &self.what)
            .field("known_at", &self.known_at)
            .finish()
    }
}

impl DerivedTable {
    /// The table `what` of `source` (as known at `known_at`).
    pub fn new(source: SharedSource, known_at: Option<Us>, what: What) -> Self {
        DerivedTable {
            schema: what.schema(),
            source,
            known_at,
            what,
        }
    }
}

#[async_trait]
impl TableProvider for DerivedTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(match (self.what.per_device(), self.what.time_column()) {
            (false, None) => vec![TableProviderFilterPushDown::Unsupported; filters.len()],
            (_, time) => pushdown(filters, time),
        })
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let selection = Selection::of(filters, self.what.time_column());
        let partition = Arc::new(Partition {
            schema: self.schema.clone(),
            source: self.source.clone(),
            known_at: self.known_at,
            what: self.what.clone(),
            selection,
        });
        Ok(Arc::new(StreamingTableExec::try_new(
            self.schema.clone(),
            vec![partition],
            projection,
            [],
            false,
            limit,
        )?))
    }
}

/// The one partition of a derived table: its producer.
struct Partition {
    schema: SchemaRef,
    source: SharedSource,
    known_at: Option<Us>,
    what: What,
    selection: Selection,
}

impl fmt::Debug for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {:?}", self.what, self.selection)
    }
}

impl PartitionStream for Partition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let mut builder = RecordBatchReceiverStreamBuilder::new(self.schema.clone(), 2);
        let tx = builder.tx();
        let (source, known_at, what, selection) = (
            self.source.clone(),
            self.known_at,
            self.what.clone(),
            self.selection.clone(),
        );
        builder.spawn_blocking(move || {
            // the stream gone (a time limit, a client gone, a LIMIT satisfied): stop at the
            // next check, even in the middle of a batch
            let probe = tx.clone();
            let cancel = Cancel::watching(move || probe.is_closed());
            let mut emit = |b: RecordBatch| {
                if tx.blocking_send(Ok(b)).is_err() {
                    cancel.cancel();
                }
            };
            let fleet = match known_at {
                None => source.fleet(),
                Some(k) => source.fleet_at(k),
            }?;
            produce(&*fleet, &what, &selection, &cancel, &mut emit).map_err(DataFusionError::from)
        });
        builder.build()
    }
}

/// A question about call legs reaching before `h`, where retention removed them.
fn legs_retired(h: Us) -> crate::error::QueryError {
    let h = callstate_schemas::format_instant(h);
    crate::error::QueryError::Retired(format!(
        "call legs that started and ended before {h} were removed by retention \
         (retain_legs_days): bound the question to calls started at or after it \
         (WHERE started_at >= '{h}')"
    ))
}

/// Computes the rows of `what` and hands them on in batches; stops once `cancel` is set.
pub fn produce(
    fleet: &dyn Fleet,
    what: &What,
    sel: &Selection,
    cancel: &Cancel,
    emit: &mut dyn FnMut(RecordBatch),
) -> crate::error::Result<()> {
    let from = sel.from.unwrap_or(Us::MIN);
    let to = sel.to.unwrap_or(Us::MAX);
    let devices = || {
        // a device list is looked up; otherwise every device, filtered
        let listed: Option<Vec<_>> = sel
            .devices
            .as_ref()
            .map(|ds| ds.iter().filter_map(|d| fleet.device(d)).collect());
        let all: Box<dyn Iterator<Item = _>> = match listed {
            Some(l) => Box::new(l.into_iter()),
            None => fleet.devices(),
        };
        all.filter(|d| sel.keeps(d))
    };
    // the windows asked, their edges taken as asked where only hourly rollups are kept
    let mut asked = Vec::new();
    match what {
        What::Intervals => fleet.intervals_known(from).map_err(|e| {
            crate::error::QueryError::Retired(format!(
                "{e} (WHERE valid_from >= '{}')",
                callstate_schemas::format_instant(fleet.intervals_kept_from().unwrap_or(from))
            ))
        })?,
        What::StatesAt(t) => fleet.intervals_known(*t)?,
        What::Availability(w, _, edges) | What::Sla(w, _, edges) => {
            asked = fleet.availability_windows(w.clone(), *edges)?;
        }
        _ => {}
    }
    match what {
        What::Intervals => {
            let mut chunk: Vec<ServiceInterval> = Vec::with_capacity(BATCH_ROWS);
            for d in devices() {
                cancel.check()?;
                chunk.extend_from_slice(&d.window(from, to));
                if chunk.len() >= BATCH_ROWS {
                    emit(device_intervals::batch(&std::mem::take(&mut chunk)));
                }
            }
            emit(device_intervals::batch(&chunk));
        }
        What::StatesAt(t) => {
            // the whole fleet in one pass with its active legs; a device list by lookups
            let known = fleet.calls_known_at(*t);
            let rows: Box<dyn Iterator<Item = _>> = match sel.devices {
                Some(_) => Box::new(devices().map(|d| {
                    let n = fleet.active_calls(d.name(), *t);
                    (d, n)
                })),
                None => Box::new(
                    fleet
                        .devices_with_active_calls(*t)
                        .filter(|(d, _)| sel.keeps(d)),
                ),
            };
            let mut chunk = Vec::with_capacity(BATCH_ROWS);
            for (d, calls) in rows {
                cancel.check()?;
                chunk.push(state_at(&d, known.then_some(calls), *t));
                if chunk.len() >= BATCH_ROWS {
                    emit(device_state::batch(&std::mem::take(&mut chunk)));
                }
            }
            emit(device_state::batch(&chunk));
        }
        What::Availability(_, by, _) => {
            let rows = availability_over(devices(), fleet.windows(), &asked, *by, cancel)?;
            emit(availability::batch(&rows));
        }
        What::Sla(_, by, _) => {
            let rows = sla_over(
                devices(),
                fleet.windows(),
                &asked,
                *by,
                fleet.targets(),
                cancel,
            )?;
            emit(sla::batch(&rows));
        }
        What::Calls => {
            if let Some(h) = fleet.calls_kept_from().filter(|h| from < *h) {
                return Err(legs_retired(h));
            }
            let mut chunk = Vec::with_capacity(BATCH_ROWS);
            for legs in fleet.calls() {
                cancel.check()?;
                let Some(first) = legs.first() else { continue };
                if !sel.keeps_name(&first.device) {
                    continue;
                }
                chunk.extend(
                    legs.iter()
                        .filter(|c| c.start >= from && c.start < to)
                        .cloned(),
                );
                if chunk.len() >= BATCH_ROWS {
                    emit(calls::batch(&std::mem::take(&mut chunk)));
                }
            }
            emit(calls::batch(&chunk));
        }
        What::Incidents => {
            let found = detect(fleet, from, to, &IncidentOptions::default(), cancel)?;
            emit(incidents::batch(&found));
        }
        What::Windows => emit(maintenance_windows::batch(fleet.windows())),
        What::Pools => emit(device_pools::batch(fleet.pool_configs())),
    }
    Ok(())
}
