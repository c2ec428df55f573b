//! `availability(from, to [, group_by [, known_at]])`, default group_by `device`.

use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::Result;

use super::args::{group_by, instant, required};
use crate::derived::LazyDerived;
use crate::model::sla::{GroupBy, availability};
use crate::tables;

/// The function, over a log version.
#[derive(Debug)]
pub struct AvailabilityFn(pub Arc<LazyDerived>);

impl TableFunctionImpl for AvailabilityFn {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let (from, to) = (required(&args, 0, "from")?, required(&args, 1, "to")?);
        let by = group_by(&args, 2, GroupBy::Device)?;
        let d = self.0.get_known_at(instant(&args, 3, "known_at")?)?;
        let b =
            tables::availability::batch(&availability(&d.intervals, &d.rows.windows, from, to, by));
        Ok(Arc::new(MemTable::try_new(b.schema(), vec![vec![b]])?))
    }
}
