//! Filters a derived table can use: `device = 'X'` / `device IN (…)`, `cluster = …`,
//! `device_pool = …`, and bounds on the table's time column. They are pushed down as
//! *inexact* (DataFusion still applies them): a provider uses them to skip devices and
//! history it does not need to compute.

use std::collections::BTreeSet;

use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};

use callstate_schemas::Us;

use crate::model::fleet::DeviceHistory;
use crate::model::pack::Field;

/// What the pushed filters select.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// Only these devices.
    pub devices: Option<BTreeSet<String>>,
    /// Only this cluster.
    pub cluster: Option<String>,
    /// Only this device pool.
    pub device_pool: Option<String>,
    /// Only rows whose time column is at or after this.
    pub from: Option<Us>,
    /// Only rows whose time column is before (or at, inclusive bounds widen) this.
    pub to: Option<Us>,
}

fn column(e: &Expr) -> Option<&Column> {
    match e {
        Expr::Column(c) => Some(c),
        Expr::Cast(c) => column(&c.expr),
        _ => None,
    }
}

fn text(e: &Expr) -> Option<String> {
    match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)),
            _,
        ) => Some(s.clone()),
        Expr::Cast(c) => text(&c.expr),
        _ => None,
    }
}

fn instant(e: &Expr) -> Option<Us> {
    match e {
        Expr::Literal(v, _) => match v {
            ScalarValue::TimestampMicrosecond(Some(x), _) => Some(*x),
            ScalarValue::TimestampNanosecond(Some(x), _) => Some(x.div_euclid(1000)),
            ScalarValue::TimestampMillisecond(Some(x), _) => x.checked_mul(1000),
            ScalarValue::TimestampSecond(Some(x), _) => x.checked_mul(1_000_000),
            _ => None,
        },
        Expr::Cast(c) => instant(&c.expr),
        _ => None,
    }
}

/// The least time `filters` (a conjunction) let through on `time_column`, exactly: `> t`
/// gives `t + 1` (where [`Selection::from`] widens it to `t`).
pub fn exact_from(filters: &[Expr], time_column: &str) -> Option<Us> {
    filters
        .iter()
        .filter_map(|f| match f {
            Expr::BinaryExpr(b) => {
                let (col, value, op) = comparison(b)?;
                if col.name != time_column {
                    return None;
                }
                match op {
                    Operator::GtEq => instant(value),
                    Operator::Gt => instant(value)?.checked_add(1),
                    _ => None,
                }
            }
            _ => None,
        })
        .max()
}

/// A comparison of a column with a value, as `column op value` (the operator swapped when
/// the column is on the right).
fn comparison(b: &BinaryExpr) -> Option<(&Column, &Expr, Operator)> {
    match (column(&b.left), column(&b.right)) {
        (Some(c), None) => Some((c, b.right.as_ref(), b.op)),
        (None, Some(c)) => Some((c, b.left.as_ref(), b.op.swap()?)),
        _ => None,
    }
}

/// One filter's selection, when it is of a form the table can use.
fn of(filter: &Expr, time_column: Option<&str>) -> Option<Selection> {
    let mut s = Selection::default();
    match filter {
        // `device = 'a' OR device IN ('b', 'c')` (DataFusion writes short IN lists so)
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            let only_devices = |x: Selection| {
                let d = x.devices.clone()?;
                (x == Selection {
                    devices: Some(d.clone()),
                    ..Selection::default()
                })
                .then_some(d)
            };
            let a = only_devices(of(left, time_column)?)?;
            let b = only_devices(of(right, time_column)?)?;
            s.devices = Some(a.union(&b).cloned().collect());
        }
        Expr::BinaryExpr(b) => {
            let (col, value, op) = comparison(b)?;
            match (col.name.as_str(), op) {
                ("device", Operator::Eq) => s.devices = Some([text(value)?].into()),
                ("cluster", Operator::Eq) => s.cluster = Some(text(value)?),
                ("device_pool", Operator::Eq) => s.device_pool = Some(text(value)?),
                (c, Operator::Gt | Operator::GtEq) if Some(c) == time_column => {
                    s.from = Some(instant(value)?)
                }
                (c, Operator::Lt) if Some(c) == time_column => s.to = Some(instant(value)?),
                (c, Operator::LtEq) if Some(c) == time_column => {
                    s.to = Some(instant(value)?.checked_add(1)?)
                }
                _ => return None,
            }
        }
        Expr::InList(l) if !l.negated && column(&l.expr).is_some_and(|c| c.name == "device") => {
            s.devices = Some(l.list.iter().map(text).collect::<Option<_>>()?);
        }
        _ => return None,
    }
    Some(s)
}

/// Which of `filters` a table with `device` keys (and the given time column) can use.
pub fn pushdown(filters: &[&Expr], time_column: Option<&str>) -> Vec<TableProviderFilterPushDown> {
    filters
        .iter()
        .map(|f| match of(f, time_column) {
            Some(_) => TableProviderFilterPushDown::Inexact,
            None => TableProviderFilterPushDown::Unsupported,
        })
        .collect()
}

impl Selection {
    /// The selection of every usable filter (the conjunction).
    pub fn of(filters: &[Expr], time_column: Option<&str>) -> Selection {
        let mut all = Selection::default();
        for s in filters.iter().filter_map(|f| of(f, time_column)) {
            if let Some(d) = s.devices {
                all.devices = Some(match all.devices {
                    None => d,
                    Some(prev) => prev.intersection(&d).cloned().collect(),
                });
            }
            all.cluster = s.cluster.or(all.cluster);
            all.device_pool = s.device_pool.or(all.device_pool);
            all.from = all.from.max(s.from);
            all.to = match (all.to, s.to) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        all
    }

    /// Whether a device may have rows the filters keep: it is one of the devices asked for,
    /// and some interval of it was in the cluster and pool asked for (a device that moved
    /// keeps its older rows).
    pub fn keeps(&self, d: &DeviceHistory<'_>) -> bool {
        self.devices.as_ref().is_none_or(|s| s.contains(d.name()))
            && self
                .cluster
                .as_deref()
                .is_none_or(|c| d.intervals.has(Field::Cluster, c))
            && self
                .device_pool
                .as_deref()
                .is_none_or(|p| d.intervals.has(Field::DevicePool, p))
    }

    /// Whether a device name may have rows (for tables without intervals: calls).
    pub fn keeps_name(&self, device: &str) -> bool {
        self.devices.as_ref().is_none_or(|s| s.contains(device))
    }
}
