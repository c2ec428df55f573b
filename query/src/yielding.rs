//! Cancellation that takes effect within one batch: every edge of a SQL plan is wrapped so
//! that each operator hands its task back to the runtime before each batch it takes in.
//!
//! A query is cancelled by dropping its task, which tokio does at the task's next yield.
//! DataFusion's own cooperation yields once a task has used its budget of 128 batches, and
//! an operator such as a nested-loop join can do a whole cross product of work between two
//! polls of its inputs, or never yield at all while the channel it reads from is full. With a
//! yield before every batch on every edge, and the probe side of nested-loop and cross joins
//! sliced so that one batch is [`PROBE_PAIRS`] comparisons, work stops within one small batch's worth of it (a
//! time limit or a client gone frees the CPU at once).

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, StatisticsArgs, StatisticsContext,
};
use futures::{Stream, StreamExt};

/// Wraps a leaf so that its stream yields before every batch.
#[derive(Debug)]
pub struct YieldExec {
    input: Arc<dyn ExecutionPlan>,
    /// Most rows per batch handed on.
    slice_rows: usize,
}

impl DisplayAs for YieldExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "YieldExec")
    }
}

impl ExecutionPlan for YieldExec {
    fn name(&self) -> &str {
        "YieldExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(YieldExec {
            input: children.swap_remove(0),
            slice_rows: self.slice_rows,
        }))
    }

    fn execute(
        &self,
        partition: usize,
        ctx: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        Ok(Box::pin(YieldStream {
            inner: self.input.execute(partition, ctx)?,
            slice_rows: self.slice_rows,
            yielded: false,
            pending: None,
        }))
    }
}

/// Most rows a batch may have on an ordinary edge (larger ones are passed on in zero-copy
/// slices): DataFusion's own batch size.
pub const SLICE_ROWS: usize = 8192;

/// Row pairs a nested-loop or cross join may compare between two yields. Such a join
/// compares each probe row with every buffered row in one go, so its probe side is sliced to
/// this many pairs divided by the buffered side's rows (1 when unknown): a few milliseconds
/// of work in a release build.
pub const PROBE_PAIRS: usize = 64 * 1024;

/// Rows per probe-side batch of a nested-loop or cross join over `plan`'s build side.
fn probe_slice_rows(build: &Arc<dyn ExecutionPlan>) -> usize {
    let rows = StatisticsContext::new()
        .compute(build.as_ref(), &StatisticsArgs::new())
        .ok()
        .and_then(|s| s.num_rows.get_value().copied());
    match rows {
        Some(n) if n > 0 => (PROBE_PAIRS / n).clamp(1, SLICE_ROWS),
        _ => 1,
    }
}

struct YieldStream {
    inner: SendableRecordBatchStream,
    slice_rows: usize,
    yielded: bool,
    /// What is left of the current batch, and where the next slice starts.
    pending: Option<(RecordBatch, usize)>,
}

impl Stream for YieldStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if !self.yielded {
            self.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if let Some((batch, at)) = self.pending.take() {
            self.yielded = false;
            let n = self.slice_rows.min(batch.num_rows() - at);
            if at + n < batch.num_rows() {
                self.pending = Some((batch.clone(), at + n));
            }
            return Poll::Ready(Some(Ok(batch.slice(at, n))));
        }
        match self.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(batch))) if batch.num_rows() > self.slice_rows => {
                self.yielded = false;
                let n = self.slice_rows;
                self.pending = Some((batch.clone(), n));
                Poll::Ready(Some(Ok(batch.slice(0, n))))
            }
            Poll::Ready(r) => {
                self.yielded = false;
                Poll::Ready(r)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl RecordBatchStream for YieldStream {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

/// The optimizer rule that puts a [`YieldExec`] on every edge of a plan (and above it).
#[derive(Debug, Default)]
pub struct YieldEveryBatch;

impl PhysicalOptimizerRule for YieldEveryBatch {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // every edge of the plan: an operator polling a channel that is never empty (a
        // repartition's output) would otherwise never see a Pending
        let wrapped = plan.transform_up(|p| {
            if p.children().is_empty() || p.name() == "YieldExec" {
                return Ok(Transformed::no(p));
            }
            let nested_loop = matches!(p.name(), "NestedLoopJoinExec" | "CrossJoinExec");
            let probe_rows = nested_loop.then(|| probe_slice_rows(p.children()[0]));
            let children: Vec<Arc<dyn ExecutionPlan>> = p
                .children()
                .into_iter()
                .enumerate()
                .map(|(i, c)| {
                    let slice_rows = match probe_rows {
                        Some(rows) if i == 1 => rows,
                        _ => SLICE_ROWS,
                    };
                    if c.name() == "YieldExec" {
                        c.clone()
                    } else {
                        Arc::new(YieldExec {
                            input: c.clone(),
                            slice_rows,
                        }) as Arc<dyn ExecutionPlan>
                    }
                })
                .collect();
            #[allow(deprecated)]
            let p = p.with_new_children(children)?;
            Ok(Transformed::yes(p))
        })?;
        Ok(Arc::new(YieldExec {
            input: wrapped.data,
            slice_rows: SLICE_ROWS,
        }))
    }

    fn name(&self) -> &str {
        "yield_every_batch"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
