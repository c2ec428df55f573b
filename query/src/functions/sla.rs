//! `sla(from, to [, group_by [, period [, tz [, known_at [, edges]]]]])`: default group_by
//! `device_pool`; with a period (`day`, `week`, `month`), one row per group and calendar
//! period in `tz` (default UTC); `edges` `exact` (default) or `hours`
//! ([`Edges`](crate::model::frozen::Edges)).

use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::error::Result;

use super::args::{edges, group_by, instant, required, text};
use crate::model::calendar::report_windows;
use crate::model::sla::GroupBy;
use crate::source::SharedSource;
use crate::tables::provider::{DerivedTable, What};

/// The function, over a source.
#[derive(Debug)]
pub struct SlaFn(pub SharedSource);

impl TableFunctionImpl for SlaFn {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let (from, to) = (required(&args, 0, "from")?, required(&args, 1, "to")?);
        let by = group_by(&args, 2, GroupBy::DevicePool)?;
        let period = text(&args, 3, "period")?;
        let tz = text(&args, 4, "tz")?;
        let known_at = instant(&args, 5, "known_at")?;
        let windows = report_windows(from, to, period.as_deref(), tz.as_deref())?;
        Ok(Arc::new(DerivedTable::new(
            self.0.clone(),
            known_at,
            What::Sla(windows, by, edges(&args, 6)?),
        )))
    }
}
