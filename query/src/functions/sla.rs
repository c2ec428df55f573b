//! `sla(from, to [, group_by [, period [, tz [, known_at]]]])`: default group_by
//! `device_pool`; with a period (`day`, `week`, `month`), one row per group and calendar
//! period in `tz` (default UTC).

use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::Result;

use super::args::{group_by, instant, required, text};
use crate::derived::LazyDerived;
use crate::model::calendar::report_windows;
use crate::model::sla::{GroupBy, sla_over};
use crate::tables;

/// The function, over a log version.
#[derive(Debug)]
pub struct SlaFn(pub Arc<LazyDerived>);

impl TableFunctionImpl for SlaFn {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let (from, to) = (required(&args, 0, "from")?, required(&args, 1, "to")?);
        let by = group_by(&args, 2, GroupBy::DevicePool)?;
        let period = text(&args, 3, "period")?;
        let tz = text(&args, 4, "tz")?;
        let d = self.0.get_known_at(instant(&args, 5, "known_at")?)?;
        let windows = report_windows(from, to, period.as_deref(), tz.as_deref())?;
        let rows = sla_over(&d.intervals, &d.rows.windows, &windows, by, &d.targets);
        let b = tables::sla::batch(&rows);
        Ok(Arc::new(MemTable::try_new(b.schema(), vec![vec![b]])?))
    }
}
