//! Derived tables built on first use: a query that reads only `events` pays nothing for
//! intervals, calls or incidents.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use callstate_ingest::Snapshot;

use crate::functions::Shared;
use crate::rows::Us;
use crate::sla::Targets;

/// The snapshot and, loaded and derived on first use, what the derived tables answer from.
pub struct LazyShared {
    snap: Snapshot,
    known_at: Option<Us>,
    targets: Targets,
    cell: OnceLock<Arc<Shared>>,
    init: Mutex<()>,
}

impl fmt::Debug for LazyShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyShared")
            .field("known_at", &self.known_at)
            .finish()
    }
}

impl LazyShared {
    /// Nothing is read until [`LazyShared::get`].
    pub fn new(snap: Snapshot, known_at: Option<Us>, targets: Targets) -> Self {
        LazyShared {
            snap,
            known_at,
            targets,
            cell: OnceLock::new(),
            init: Mutex::new(()),
        }
    }

    /// The snapshot.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snap
    }

    /// The SLA targets.
    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    /// What was known at `known_at` (derived now, not cached); without it, [`LazyShared::get`].
    pub fn get_known_at(&self, known_at: Option<Us>) -> Result<Arc<Shared>> {
        match known_at {
            None => self.get(),
            Some(k) => Ok(Arc::new(
                Shared::new(self.snap.clone(), Some(k), self.targets.clone())
                    .map_err(|e| DataFusionError::External(Box::new(e)))?,
            )),
        }
    }

    /// Loads and derives once.
    pub fn get(&self) -> Result<Arc<Shared>> {
        if let Some(s) = self.cell.get() {
            return Ok(s.clone());
        }
        let _guard = self.init.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = self.cell.get() {
            return Ok(s.clone());
        }
        let shared = Shared::new(self.snap.clone(), self.known_at, self.targets.clone())
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(self.cell.get_or_init(|| Arc::new(shared)).clone())
    }
}

type Build = dyn Fn(&Shared) -> Result<Arc<MemTable>> + Send + Sync;

/// A table computed from [`Shared`] when first scanned.
pub struct LazyTable {
    schema: SchemaRef,
    shared: Arc<LazyShared>,
    build: Box<Build>,
    table: OnceLock<Arc<MemTable>>,
}

impl fmt::Debug for LazyTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyTable")
            .field("schema", &self.schema)
            .finish()
    }
}

impl LazyTable {
    /// A table of `schema` that `build` makes on first use.
    pub fn new(
        schema: SchemaRef,
        shared: Arc<LazyShared>,
        build: impl Fn(&Shared) -> Result<Arc<MemTable>> + Send + Sync + 'static,
    ) -> Self {
        LazyTable {
            schema,
            shared,
            build: Box::new(build),
            table: OnceLock::new(),
        }
    }

    fn get(&self) -> Result<Arc<MemTable>> {
        if let Some(t) = self.table.get() {
            return Ok(t.clone());
        }
        let t = (self.build)(&*self.shared.get()?)?;
        Ok(self.table.get_or_init(|| t).clone())
    }
}

#[async_trait]
impl TableProvider for LazyTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.get()?.scan(state, projection, filters, limit).await
    }
}
