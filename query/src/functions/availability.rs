//! `availability(from, to [, group_by [, known_at [, edges]]])`, default group_by `device`;
//! `edges` `exact` (default) or `hours` ([`Edges`](crate::model::frozen::Edges)).

use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::error::Result;

use super::args::{edges, group_by, instant, required};
use crate::model::sla::GroupBy;
use crate::source::SharedSource;
use crate::tables::provider::{DerivedTable, What};

/// The function, over a source.
#[derive(Debug)]
pub struct AvailabilityFn(pub SharedSource);

impl TableFunctionImpl for AvailabilityFn {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let (from, to) = (required(&args, 0, "from")?, required(&args, 1, "to")?);
        let by = group_by(&args, 2, GroupBy::Device)?;
        let known_at = instant(&args, 3, "known_at")?;
        let what = What::Availability(vec![(from, to)], by, edges(&args, 4)?);
        Ok(Arc::new(DerivedTable::new(self.0.clone(), known_at, what)))
    }
}
