//! `device_state_at(ts [, known_at])`: every device's state at an instant.

use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::Result;

use super::args::{instant, required};
use crate::derived::LazyDerived;
use crate::model::state::states_at;
use crate::tables::device_state;

/// The function, over a log version.
#[derive(Debug)]
pub struct DeviceStateAt(pub Arc<LazyDerived>);

impl TableFunctionImpl for DeviceStateAt {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let t = required(&args, 0, "ts")?;
        let d = self.0.get_known_at(instant(&args, 1, "known_at")?)?;
        let rows = states_at(&d.intervals, d.calls()?, t);
        let b = device_state::batch(&rows);
        Ok(Arc::new(MemTable::try_new(b.schema(), vec![vec![b]])?))
    }
}
