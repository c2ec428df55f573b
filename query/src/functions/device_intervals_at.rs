//! `device_intervals_at(known_at)`: the `device_intervals` table as it was known at
//! `known_at` (only events ingested by then count).

use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::Result;

use super::args::required;
use crate::derived::LazyDerived;
use crate::tables::device_intervals;

/// The function, over a log version.
#[derive(Debug)]
pub struct DeviceIntervalsAt(pub Arc<LazyDerived>);

impl TableFunctionImpl for DeviceIntervalsAt {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let k = required(&args, 0, "known_at")?;
        let d = self.0.get_known_at(Some(k))?;
        let b = device_intervals::batch(&d.intervals);
        Ok(Arc::new(MemTable::try_new(b.schema(), vec![vec![b]])?))
    }
}
