//! `device_state_at(ts [, known_at])`: every device's state at an instant.

use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::error::Result;

use super::args::{instant, required};
use crate::source::SharedSource;
use crate::tables::provider::{DerivedTable, What};

/// The function, over a source.
#[derive(Debug)]
pub struct DeviceStateAt(pub SharedSource);

impl TableFunctionImpl for DeviceStateAt {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let t = required(&args, 0, "ts")?;
        let known_at = instant(&args, 1, "known_at")?;
        Ok(Arc::new(DerivedTable::new(
            self.0.clone(),
            known_at,
            What::StatesAt(t),
        )))
    }
}
