//! Arguments of the table functions: constants evaluated once, instants as timestamps, RFC
//! 3339 strings, epoch milliseconds or `now` (the one instant grammar of the contract).

use std::sync::Arc;

use arrow::array::{RecordBatch, RecordBatchOptions};
use arrow::datatypes::Schema;
use datafusion::catalog::TableFunctionArgs;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::ColumnarValue;

use callstate_schemas::{Us, parse_instant};

use crate::error::{QueryError, Result};
use crate::model::frozen::Edges;
use crate::model::sla::GroupBy;

/// The value of argument `i`, evaluated (`None` when absent).
pub fn scalar(args: &TableFunctionArgs, i: usize) -> Result<Option<ScalarValue>> {
    let Some(expr) = args.exprs().get(i) else {
        return Ok(None);
    };
    let phys = args
        .session()
        .create_physical_expr(expr.clone(), &DFSchema::empty())?;
    let one = RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )?;
    Ok(Some(match phys.evaluate(&one)? {
        ColumnarValue::Scalar(s) => s,
        ColumnarValue::Array(a) => ScalarValue::try_from_array(&a, 0)?,
    }))
}

/// An instant argument; `None` when absent or NULL.
pub fn instant(args: &TableFunctionArgs, i: usize, name: &str) -> Result<Option<Us>> {
    let Some(v) = scalar(args, i)? else {
        return Ok(None);
    };
    let bad = || {
        QueryError::bad(
            name,
            format!("expected a timestamp, an RFC 3339 string or epoch milliseconds, got {v}"),
        )
    };
    Ok(match &v {
        v if v.is_null() => None,
        ScalarValue::TimestampMicrosecond(Some(x), _) => Some(*x),
        ScalarValue::TimestampNanosecond(Some(x), _) => Some(x.div_euclid(1000)),
        ScalarValue::TimestampMillisecond(Some(x), _) => Some(x.checked_mul(1000).ok_or_else(bad)?),
        ScalarValue::TimestampSecond(Some(x), _) => Some(x.checked_mul(1_000_000).ok_or_else(bad)?),
        ScalarValue::Int64(Some(x)) => Some(x.checked_mul(1000).ok_or_else(bad)?),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => {
            Some(parse_instant(s).map_err(|e| QueryError::bad(name, e))?)
        }
        _ => return Err(bad()),
    })
}

/// A required instant argument.
pub fn required(args: &TableFunctionArgs, i: usize, name: &str) -> Result<Us> {
    instant(args, i, name)?.ok_or_else(|| QueryError::Missing(name.to_string()))
}

/// A string argument; `None` when absent or NULL.
pub fn text(args: &TableFunctionArgs, i: usize, name: &str) -> Result<Option<String>> {
    match scalar(args, i)? {
        None => Ok(None),
        Some(v) if v.is_null() => Ok(None),
        Some(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)),
        ) => Ok(Some(s)),
        Some(v) => Err(QueryError::bad(name, format!("expected a string, got {v}"))),
    }
}

/// An `edges` argument (`exact` when absent): [`Edges`].
pub fn edges(args: &TableFunctionArgs, i: usize) -> Result<Edges> {
    match text(args, i, "edges")? {
        None => Ok(Edges::Exact),
        Some(s) => Ok(s.parse().map_err(|e: String| QueryError::bad("edges", e))?),
    }
}

/// A `group_by` argument (`default` when absent).
pub fn group_by(args: &TableFunctionArgs, i: usize, default: GroupBy) -> Result<GroupBy> {
    match text(args, i, "group_by")? {
        None => Ok(default),
        Some(s) => s
            .parse()
            .map_err(|e: String| QueryError::bad("group_by", e)),
    }
}
