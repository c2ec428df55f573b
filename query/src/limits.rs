//! The bounds of one question: time, memory (operators and function results), and the size
//! of the answer (rows and bytes). Whatever goes over one fails naming the setting.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, RecordBatch};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use crate::error::{QueryError, Result};

/// The bounds of one question.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time limit.
    pub timeout: Duration,
    /// Memory its operators and function results may use, bytes.
    pub memory_bytes: usize,
    /// Most rows in an answer.
    pub max_rows: usize,
    /// Most bytes in an answer (Arrow memory of its rows).
    pub max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(30),
            memory_bytes: 1 << 30,
            max_rows: 1_000_000,
            max_bytes: 256 << 20,
        }
    }
}

/// A context for one query over the tables and functions of `base`, with its own memory
/// pool of `limits.memory_bytes` (nothing spills to disk) and the amplifying functions
/// guarded to that size.
pub fn query_context(base: &SessionContext, limits: &Limits) -> Result<SessionContext> {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(limits.memory_bytes, 1.0)
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
        )
        .build_arc()?;
    let state = SessionStateBuilder::new_from_existing(base.state())
        .with_runtime_env(runtime)
        .with_physical_optimizer_rule(Arc::new(crate::yielding::YieldEveryBatch))
        .build();
    let ctx = SessionContext::new_with_state(state);
    crate::guards::register(&ctx, limits.memory_bytes);
    Ok(ctx)
}

/// Bytes of a batch's rows (the slices, not the buffers they share).
pub fn batch_bytes(b: &RecordBatch) -> usize {
    b.columns()
        .iter()
        .map(|c| c.to_data().get_slice_memory_size().unwrap_or(0))
        .sum()
}

/// Answer-size accounting: rows and bytes so far against the limits.
#[derive(Debug)]
pub struct AnswerSize<'a> {
    limits: &'a Limits,
    rows: usize,
    bytes: usize,
}

impl<'a> AnswerSize<'a> {
    /// Nothing counted yet.
    pub fn new(limits: &'a Limits) -> Self {
        AnswerSize {
            limits,
            rows: 0,
            bytes: 0,
        }
    }

    /// Counts a batch; `Err` naming the setting once the answer is over a limit.
    pub fn add(&mut self, b: &RecordBatch) -> Result<()> {
        self.rows += b.num_rows();
        self.bytes += batch_bytes(b);
        if self.rows > self.limits.max_rows {
            return Err(QueryError::OverLimit {
                setting: "max_result_rows",
                message: format!(
                    "the answer has more than {} rows; narrow the question (a LIMIT, a shorter window) or raise max_result_rows",
                    self.limits.max_rows
                ),
            });
        }
        if self.bytes > self.limits.max_bytes {
            return Err(QueryError::OverLimit {
                setting: "max_result_bytes",
                message: format!(
                    "the answer is larger than {} bytes; narrow the question or raise max_result_bytes",
                    self.limits.max_bytes
                ),
            });
        }
        Ok(())
    }
}

/// Every batch of `stream`, stopping with an error as soon as the answer is over a limit
/// (the stream is dropped then, which stops its work).
pub async fn collect(
    mut stream: SendableRecordBatchStream,
    limits: &Limits,
) -> Result<Vec<RecordBatch>> {
    let mut size = AnswerSize::new(limits);
    let mut out = Vec::new();
    while let Some(b) = stream.next().await {
        let b = b?;
        size.add(&b)?;
        out.push(b);
    }
    Ok(out)
}

/// An `Arc` of the limits (handlers share them).
pub type SharedLimits = Arc<Limits>;
