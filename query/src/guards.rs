//! SQL functions whose one call can produce far more than it reads (`repeat('x', 2e9)`,
//! `lpad`, `replace`, `array_repeat`, `range`…) are wrapped: before the built-in runs, the
//! size of what it would produce is computed from its arguments, and a call over the query's
//! memory limit fails naming the function and the limit. DataFusion's memory pool accounts
//! for operators (sorts, joins, aggregates), not for function results; this covers the rest.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature,
};
use datafusion::prelude::SessionContext;

/// How a guarded function's output size is bounded from its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Bound {
    /// `repeat(s, n)`: |s| × n.
    Repeat,
    /// `lpad(s, n [, fill])`, `rpad`: n characters of up to 4 bytes.
    Pad,
    /// `replace(s, from, to)`: at most (|s| + 1) × (|to| + 1).
    Replace,
    /// `array_repeat(e, n)`, `array_resize(a, n [, fill])`: n elements.
    Elements,
    /// `range(start, stop [, step])`, `generate_series`: (stop − start) / step elements.
    Range,
}

const GUARDED: &[(&str, Bound)] = &[
    ("repeat", Bound::Repeat),
    ("lpad", Bound::Pad),
    ("rpad", Bound::Pad),
    ("replace", Bound::Replace),
    ("array_repeat", Bound::Elements),
    ("array_resize", Bound::Elements),
    ("range", Bound::Range),
    ("generate_series", Bound::Range),
];

/// Replaces the amplifying built-ins of `ctx` with guarded ones allowing at most
/// `max_bytes` of output per call.
pub fn register(ctx: &SessionContext, max_bytes: usize) {
    for (name, bound) in GUARDED {
        if let Ok(inner) = ctx.udf(name) {
            ctx.register_udf(ScalarUDF::new_from_impl(Guarded {
                inner,
                bound: *bound,
                max_bytes,
            }));
        }
    }
}

#[derive(Debug)]
struct Guarded {
    inner: Arc<ScalarUDF>,
    bound: Bound,
    max_bytes: usize,
}

impl PartialEq for Guarded {
    fn eq(&self, other: &Self) -> bool {
        self.inner == other.inner && self.bound == other.bound && self.max_bytes == other.max_bytes
    }
}

impl Eq for Guarded {}

impl Hash for Guarded {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.hash(state);
        self.max_bytes.hash(state);
    }
}

/// The values of argument `i` as i64 (`None` when it is not an integer).
fn ints(args: &[ColumnarValue], i: usize) -> Option<Vec<i64>> {
    match args.get(i)? {
        ColumnarValue::Scalar(s) => match s.cast_to(&DataType::Int64).ok()? {
            ScalarValue::Int64(v) => Some(vec![v.unwrap_or(0)]),
            _ => None,
        },
        ColumnarValue::Array(a) => {
            let a = arrow::compute::cast(a, &DataType::Int64).ok()?;
            Some(
                a.as_primitive::<Int64Type>()
                    .iter()
                    .map(|v| v.unwrap_or(0))
                    .collect(),
            )
        }
    }
}

/// The byte lengths of argument `i`'s values (strings: their bytes; anything else: the
/// array's memory per value).
fn lengths(args: &[ColumnarValue], i: usize) -> Vec<u64> {
    match args.get(i) {
        Some(ColumnarValue::Scalar(s)) => vec![match s {
            ScalarValue::Utf8(Some(v))
            | ScalarValue::LargeUtf8(Some(v))
            | ScalarValue::Utf8View(Some(v)) => v.len() as u64,
            other => other.size() as u64,
        }],
        Some(ColumnarValue::Array(a)) => match a.data_type() {
            DataType::Utf8 => a
                .as_string::<i32>()
                .iter()
                .map(|v| v.map_or(0, |s| s.len() as u64))
                .collect(),
            DataType::LargeUtf8 => a
                .as_string::<i64>()
                .iter()
                .map(|v| v.map_or(0, |s| s.len() as u64))
                .collect(),
            DataType::Utf8View => a
                .as_string_view()
                .iter()
                .map(|v| v.map_or(0, |s| s.len() as u64))
                .collect(),
            _ => {
                let per = a.get_array_memory_size() as u64 / a.len().max(1) as u64;
                vec![per.max(1); a.len()]
            }
        },
        None => vec![0],
    }
}

/// Row `r` of a column given as one value (a scalar) or one per row.
fn at<T: Copy + Default>(v: &[T], r: usize) -> T {
    match v.len() {
        0 => T::default(),
        1 => v[0],
        _ => v.get(r).copied().unwrap_or_default(),
    }
}

impl Guarded {
    /// The most bytes the call could produce (saturating).
    fn output_bytes(&self, args: &[ColumnarValue], rows: usize) -> u64 {
        let rows = rows.max(1);
        let mut total: u64 = 0;
        let mut add = |x: u64| total = total.saturating_add(x);
        match self.bound {
            Bound::Repeat => {
                let (len, n) = (lengths(args, 0), ints(args, 1).unwrap_or_default());
                for r in 0..rows {
                    add(at(&len, r).saturating_mul(at(&n, r).max(0) as u64));
                }
            }
            Bound::Pad => {
                let n = ints(args, 1).unwrap_or_default();
                for r in 0..rows {
                    add((at(&n, r).max(0) as u64).saturating_mul(4));
                }
            }
            Bound::Replace => {
                let (len, to) = (lengths(args, 0), lengths(args, 2));
                for r in 0..rows {
                    add((at(&len, r) + 1).saturating_mul(at(&to, r) + 1));
                }
            }
            Bound::Elements => {
                let (size, n) = (lengths(args, 0), ints(args, 1).unwrap_or_default());
                for r in 0..rows {
                    add((at(&n, r).max(0) as u64).saturating_mul(at(&size, r).max(8)));
                }
            }
            Bound::Range => {
                // numbers only: the bounds of dates and timestamps are checked by their step
                let (Some(a), Some(b)) = (ints(args, 0), ints(args, 1)) else {
                    return 0;
                };
                let (a, b) = if args.len() == 1 {
                    (vec![0], a)
                } else {
                    (a, b)
                };
                let step = if args.len() == 3 {
                    ints(args, 2).unwrap_or(vec![1])
                } else {
                    vec![1]
                };
                for r in 0..rows {
                    let span = at(&b, r).abs_diff(at(&a, r));
                    let step = at(&step, r).unsigned_abs().max(1);
                    add((span / step + 1).saturating_mul(8));
                }
            }
        }
        total
    }
}

impl ScalarUDFImpl for Guarded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.inner().schema_name(args)
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn is_strict(&self) -> bool {
        self.inner.inner().is_strict()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let bytes = self.output_bytes(&args.args, args.number_rows);
        if bytes > self.max_bytes as u64 {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "`{}` would produce {bytes} bytes, over the query memory limit of {} bytes \
                 (sql_memory_mb)",
                self.name(),
                self.max_bytes
            )));
        }
        self.inner.invoke_with_args(args)
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        self.inner.simplify(args, info)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}
