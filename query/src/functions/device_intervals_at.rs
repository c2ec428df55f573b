//! `device_intervals_at(known_at)`: the `device_intervals` table as it was known at
//! `known_at` (only events ingested by then count).

use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::error::Result;

use super::args::required;
use crate::source::SharedSource;
use crate::tables::provider::{DerivedTable, What};

/// The function, over a source.
#[derive(Debug)]
pub struct DeviceIntervalsAt(pub SharedSource);

impl TableFunctionImpl for DeviceIntervalsAt {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let k = required(&args, 0, "known_at")?;
        Ok(Arc::new(DerivedTable::new(
            self.0.clone(),
            Some(k),
            What::Intervals,
        )))
    }
}
