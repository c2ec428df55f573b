//! A derived table built on first scan: a query that reads only `events` pays nothing for
//! intervals, calls or incidents.

use std::fmt;
use std::sync::{Arc, OnceLock};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::derived::{Derived, LazyDerived};

type Build = dyn Fn(&Derived) -> crate::error::Result<RecordBatch> + Send + Sync;

/// A table computed from the [`Derived`] state of a [`LazyDerived`] when first scanned.
pub struct LazyTable {
    schema: SchemaRef,
    derived: Arc<LazyDerived>,
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
    /// A table of `schema` whose one batch `build` makes on first use.
    pub fn new(
        schema: SchemaRef,
        derived: Arc<LazyDerived>,
        build: impl Fn(&Derived) -> crate::error::Result<RecordBatch> + Send + Sync + 'static,
    ) -> Self {
        LazyTable {
            schema,
            derived,
            build: Box::new(build),
            table: OnceLock::new(),
        }
    }

    fn get(&self) -> Result<Arc<MemTable>> {
        if let Some(t) = self.table.get() {
            return Ok(t.clone());
        }
        let batch = (self.build)(&*self.derived.get()?)?;
        let t = Arc::new(MemTable::try_new(self.schema.clone(), vec![vec![batch]])?);
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
