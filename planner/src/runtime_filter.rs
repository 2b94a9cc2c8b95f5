//! Runtime join filters: the keys a hash join's build side produced,
//! spelled into the SQL of a fragment on the probe side before that
//! fragment starts.
//!
//! ```text
//!  HashJoinExec ── build side done ──▶ DynamicFilterPhysicalExpr
//!       │ probe                         (bounds, IN list, CASE per partition)
//!       ▼                                   │ allowed_by: per column, a set
//!  FragmentExec ── first poll ─────────────┘ of values and/or a range
//!       │  spell(): Filter(keys, fragment plan) ─▶ DataFusion's
//!       │  PushDownFilter ─▶ PushDownFragments ─▶ one fragment's SQL
//!       ▼
//!  SELECT … FROM lineitem WHERE l_partkey IN (…)   (or the SQL as planned)
//! ```
//!
//! DataFusion computes the filters (its hash joins' dynamic filters); Spar
//! only reads them. [`allowed_by`] reads a filter's current expression into
//! something every source can run: per column of the fragment's output, a
//! set of values, a range, and whether NULL passes. It is never stricter
//! than the filter: every row the filter keeps, it keeps (parts it cannot
//! read, such as DataFusion's hash-table lookups, let everything through).
//! The hash join still joins every row it gets, so a filter that lets more
//! through costs only transfer, never an answer.
//!
//! [`spell`] puts the keys over the fragment's sub-plan as a filter, pushes
//! it down with DataFusion's own `PushDownFilter` (through projections,
//! aliases, joins on the key, aggregates grouped by it) and cuts the result
//! into fragments with [`PushDownFragments`]'s own rules, so that the same
//! exactness checks and the same spelling apply as to any query. When that
//! does not give one fragment, the fragment runs its SQL as planned.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::Array;
use arrow::datatypes::{DataType, Schema};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column as LogicalColumn, ColumnStatistics, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, Filter, LogicalPlan, Operator};
use datafusion::optimizer::push_down_filter::PushDownFilter;
use datafusion::optimizer::{Optimizer, OptimizerContext};
use datafusion::physical_expr::expressions::{
    BinaryExpr, CaseExpr, CastExpr, Column, DynamicFilterPhysicalExpr, InListExpr, IsNullExpr,
    Literal,
};
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};

use crate::cardinality::position;
use crate::push_down_fragments::{as_fragment, PushDownFragments};

/// What a filter lets through.
#[derive(Debug, Clone, PartialEq)]
pub enum Allowed {
    /// No row (the build side is empty).
    Nothing,
    /// Rows whose every listed column is allowed (no column listed: every
    /// row), by column index in the fragment's output.
    Columns(BTreeMap<usize, ColumnAllowed>),
}

/// What one column may hold for a row to pass.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ColumnAllowed {
    /// The values allowed, sorted and distinct (`None`: any).
    pub values: Option<Vec<ScalarValue>>,
    /// The least value allowed, inclusive.
    pub low: Option<ScalarValue>,
    /// The greatest value allowed, inclusive.
    pub high: Option<ScalarValue>,
    /// Whether NULL passes.
    pub nulls: bool,
}

impl ColumnAllowed {
    fn is_anything(&self) -> bool {
        self.nulls && self.values.is_none() && self.low.is_none() && self.high.is_none()
    }

    fn values(values: Vec<ScalarValue>) -> Self {
        let mut values: Vec<ScalarValue> = values.into_iter().filter(|v| !v.is_null()).collect();
        values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        values.dedup();
        Self {
            values: Some(values),
            ..Self::default()
        }
    }

    /// The least and greatest non-NULL value that may pass, from the range
    /// and the values together.
    fn hull(&self) -> (Option<ScalarValue>, Option<ScalarValue>) {
        let (first, last) = match &self.values {
            Some(v) => (v.first().cloned(), v.last().cloned()),
            None => (None, None),
        };
        (
            greatest(self.low.clone(), first),
            least(self.high.clone(), last),
        )
    }

    /// Both must hold.
    fn and(self, other: Self) -> Self {
        let values = match (self.values, other.values) {
            (Some(a), Some(b)) => Some(a.into_iter().filter(|v| b.contains(v)).collect()),
            (a, b) => a.or(b),
        };
        Self {
            values,
            low: greatest(self.low, other.low),
            high: least(self.high, other.high),
            nulls: self.nulls && other.nulls,
        }
    }

    /// Whether no non-NULL value passes.
    fn no_values(&self) -> bool {
        self.values.as_ref().is_some_and(Vec::is_empty)
    }

    /// Either may hold.
    fn or(self, other: Self) -> Self {
        let nulls = self.nulls || other.nulls;
        if self.no_values() {
            return Self { nulls, ..other };
        }
        if other.no_values() {
            return Self { nulls, ..self };
        }
        let (low_a, high_a) = self.hull();
        let (low_b, high_b) = other.hull();
        let values = match (self.values, other.values) {
            (Some(a), Some(b)) => {
                let mut all = a;
                all.extend(b);
                Some(Self::values(all).values.unwrap_or_default())
            }
            _ => None,
        };
        // An unbounded side leaves the union unbounded.
        let low = low_a.zip(low_b).map(|(a, b)| least_of(a, b));
        let high = high_a.zip(high_b).map(|(a, b)| greatest_of(a, b));
        Self {
            values,
            low,
            high,
            nulls,
        }
    }
}

fn least_of(a: ScalarValue, b: ScalarValue) -> ScalarValue {
    match a.partial_cmp(&b) {
        Some(std::cmp::Ordering::Greater) => b,
        _ => a,
    }
}

fn greatest_of(a: ScalarValue, b: ScalarValue) -> ScalarValue {
    match a.partial_cmp(&b) {
        Some(std::cmp::Ordering::Less) => b,
        _ => a,
    }
}

/// The greater of two lower bounds (a missing one bounds nothing).
fn greatest(a: Option<ScalarValue>, b: Option<ScalarValue>) -> Option<ScalarValue> {
    match (a, b) {
        (Some(a), Some(b)) => Some(greatest_of(a, b)),
        (a, b) => a.or(b),
    }
}

/// The lesser of two upper bounds.
fn least(a: Option<ScalarValue>, b: Option<ScalarValue>) -> Option<ScalarValue> {
    match (a, b) {
        (Some(a), Some(b)) => Some(least_of(a, b)),
        (a, b) => a.or(b),
    }
}

impl Allowed {
    /// Every row.
    pub fn everything() -> Self {
        Self::Columns(BTreeMap::new())
    }

    fn column(index: usize, allowed: ColumnAllowed) -> Self {
        let mut columns = BTreeMap::new();
        if !allowed.is_anything() {
            columns.insert(index, allowed);
        }
        Self::Columns(columns)
    }

    /// Whether every row passes.
    pub fn is_everything(&self) -> bool {
        matches!(self, Self::Columns(c) if c.is_empty())
    }

    /// Rows both let through.
    pub fn and(self, other: Self) -> Self {
        match (self, other) {
            (Self::Nothing, _) | (_, Self::Nothing) => Self::Nothing,
            (Self::Columns(mut a), Self::Columns(b)) => {
                for (index, allowed) in b {
                    let merged = match a.remove(&index) {
                        Some(mine) => mine.and(allowed),
                        None => allowed,
                    };
                    a.insert(index, merged);
                }
                Self::Columns(a)
            }
        }
    }

    /// Rows either lets through.
    pub fn or(self, other: Self) -> Self {
        match (self, other) {
            (Self::Nothing, x) | (x, Self::Nothing) => x,
            (Self::Columns(a), Self::Columns(mut b)) => Self::Columns(
                a.into_iter()
                    .filter_map(|(index, mine)| {
                        let theirs = b.remove(&index)?;
                        let either = mine.or(theirs);
                        (!either.is_anything()).then_some((index, either))
                    })
                    .collect(),
            ),
        }
    }
}

/// What `expr` (a filter over a fragment's output, whose schema is
/// `schema`) lets through, as far as it can be read; never less than the
/// filter does.
pub fn allowed_by(expr: &Arc<dyn PhysicalExpr>, schema: &Schema) -> Allowed {
    spar_connectors::depth::deep(|| read(expr, schema))
}

fn read(expr: &Arc<dyn PhysicalExpr>, schema: &Schema) -> Allowed {
    if let Some(dynamic) = expr.downcast_ref::<DynamicFilterPhysicalExpr>() {
        return dynamic
            .current()
            .map_or_else(|_| Allowed::everything(), |current| read(&current, schema));
    }
    if let Some(literal) = expr.downcast_ref::<Literal>() {
        return match literal.value() {
            ScalarValue::Boolean(Some(true)) => Allowed::everything(),
            ScalarValue::Boolean(_) => Allowed::Nothing,
            _ => Allowed::everything(),
        };
    }
    if let Some(binary) = expr.downcast_ref::<BinaryExpr>() {
        return match binary.op() {
            Operator::And => read(binary.left(), schema).and(read(binary.right(), schema)),
            Operator::Or => read(binary.left(), schema).or(read(binary.right(), schema)),
            op => comparison(binary.left(), *op, binary.right(), schema)
                .unwrap_or_else(Allowed::everything),
        };
    }
    if let Some(in_list) = expr.downcast_ref::<InListExpr>() {
        return (!in_list.negated())
            .then(|| members(in_list, schema))
            .flatten()
            .unwrap_or_else(Allowed::everything);
    }
    if let Some(is_null) = expr.downcast_ref::<IsNullExpr>() {
        // A cast keeps NULL and only NULL NULL.
        return match Key::of(is_null.arg(), schema) {
            Some(key) => Allowed::column(
                key.index,
                ColumnAllowed {
                    values: Some(Vec::new()),
                    nulls: true,
                    ..ColumnAllowed::default()
                },
            ),
            None => Allowed::everything(),
        };
    }
    if let Some(case) = expr.downcast_ref::<CaseExpr>() {
        // Whichever branch a row takes, it passes only through that
        // branch's filter; no ELSE is NULL, which passes nothing.
        let branches = case
            .when_then_expr()
            .iter()
            .map(|(_, then)| read(then, schema))
            .chain(std::iter::once(
                case.else_expr()
                    .map_or(Allowed::Nothing, |e| read(e, schema)),
            ));
        return branches.fold(Allowed::Nothing, Allowed::or);
    }
    Allowed::everything()
}

/// Whether `column` surely names the fragment's output column at its
/// index: DataFusion moves filters between operators by column *name*
/// (`index_of`, the first of that name), so where two output columns share
/// a name (`q0.a` and `q1.a` of a self-join) a key may point at the wrong
/// one, and is not read.
fn unambiguous(column: &Column, schema: &Schema) -> bool {
    schema.fields().get(column.index()).is_some_and(|field| {
        schema
            .fields()
            .iter()
            .filter(|f| f.name() == field.name())
            .count()
            == 1
    })
}

/// A column of the fragment's output, perhaps under a cast that keeps
/// values apart and in order (`CAST(int4 AS BIGINT)`: DataFusion joins
/// keys of different types through such casts).
struct Key {
    index: usize,
    /// The column's own type, where the filter reads it through a cast.
    cast_from: Option<DataType>,
}

impl Key {
    fn of(expr: &Arc<dyn PhysicalExpr>, schema: &Schema) -> Option<Self> {
        if let Some(column) = expr.downcast_ref::<Column>() {
            return unambiguous(column, schema).then(|| Self {
                index: column.index(),
                cast_from: None,
            });
        }
        let cast = expr.downcast_ref::<CastExpr>()?;
        let column = cast
            .expr()
            .downcast_ref::<Column>()
            .filter(|c| unambiguous(c, schema))?;
        let from = schema.fields().get(column.index())?.data_type();
        exact_cast(from, cast.cast_type()).then(|| Self {
            index: column.index(),
            cast_from: Some(from.clone()),
        })
    }

    /// `value` (of the filter's type) as a value of the column, if some
    /// value of the column casts to exactly it.
    fn value(&self, value: &ScalarValue) -> Option<ScalarValue> {
        let Some(from) = &self.cast_from else {
            return Some(value.clone());
        };
        let own = value.cast_to(from).ok()?;
        let back = own.cast_to(&value.data_type()).ok()?;
        (!own.is_null() && back == *value).then_some(own)
    }
}

/// Whether casting `from` to `to` keeps distinct values distinct and in
/// the same order, so that a key's values and bounds can be cast back.
fn exact_cast(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let signed_width = |t: &DataType| match t {
        Int8 => Some(8),
        Int16 => Some(16),
        Int32 => Some(32),
        Int64 => Some(64),
        _ => None,
    };
    let unsigned_width = |t: &DataType| match t {
        UInt8 => Some(8),
        UInt16 => Some(16),
        UInt32 => Some(32),
        UInt64 => Some(64),
        _ => None,
    };
    let text = |t: &DataType| matches!(t, Utf8 | LargeUtf8 | Utf8View);
    match (from, to) {
        _ if from == to => true,
        _ if text(from) && text(to) => true,
        (Date32, Date64) | (Float32, Float64) => true,
        (Int8 | Int16 | Int32 | UInt8 | UInt16 | UInt32, Float64) => true,
        (Decimal128(p, s), Decimal128(p2, s2)) => {
            s2 >= s && i16::from(*p2) - i16::from(*s2) >= i16::from(*p) - i16::from(*s)
        }
        _ => match (
            signed_width(to),
            signed_width(from),
            unsigned_width(from),
            unsigned_width(to),
        ) {
            (Some(to), Some(from), _, _) => to >= from,
            (Some(to), None, Some(from), _) => to > from,
            (None, _, Some(from), Some(to)) => to >= from,
            _ => false,
        },
    }
}

/// `key op literal` (either way round).
fn comparison(
    left: &Arc<dyn PhysicalExpr>,
    op: Operator,
    right: &Arc<dyn PhysicalExpr>,
    schema: &Schema,
) -> Option<Allowed> {
    let (key, op, value) = match (
        right.downcast_ref::<Literal>(),
        left.downcast_ref::<Literal>(),
    ) {
        (Some(v), _) => (Key::of(left, schema)?, op, v.value()),
        (_, Some(v)) => (Key::of(right, schema)?, op.swap()?, v.value()),
        _ => return None,
    };
    if value.is_null() {
        // A comparison with NULL passes no row.
        return Some(Allowed::Nothing);
    }
    // A bound the column cannot hold exactly is dropped (letting more
    // through); a value it cannot hold matches none of its values.
    let own = key.value(value);
    let allowed = match op {
        Operator::Eq => ColumnAllowed::values(own.into_iter().collect()),
        // Strict bounds are read as inclusive ones: let more through.
        Operator::Gt | Operator::GtEq => ColumnAllowed {
            low: Some(own?),
            ..ColumnAllowed::default()
        },
        Operator::Lt | Operator::LtEq => ColumnAllowed {
            high: Some(own?),
            ..ColumnAllowed::default()
        },
        _ => return None,
    };
    Some(Allowed::column(key.index, allowed))
}

/// `key IN (literals)`, or `struct(k1, k2) IN (struct literals)` (a join
/// on several keys), read as each key's own values.
fn members(in_list: &InListExpr, schema: &Schema) -> Option<Allowed> {
    let literals: Vec<&ScalarValue> = in_list
        .list()
        .iter()
        .map(|e| e.downcast_ref::<Literal>().map(Literal::value))
        .collect::<Option<_>>()?;
    if let Some(key) = Key::of(in_list.expr(), schema) {
        let values = literals.into_iter().filter_map(|v| key.value(v)).collect();
        return Some(Allowed::column(key.index, ColumnAllowed::values(values)));
    }
    let function = in_list.expr().downcast_ref::<ScalarFunctionExpr>()?;
    if function.name() != "struct" {
        return None;
    }
    let mut allowed = Allowed::everything();
    for (position, arg) in function.args().iter().enumerate() {
        let Some(key) = Key::of(arg, schema) else {
            continue;
        };
        let values = literals
            .iter()
            .map(|v| match v {
                ScalarValue::Struct(s) if s.num_columns() > position && s.len() == 1 => {
                    ScalarValue::try_from_array(s.column(position), 0).ok()
                }
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        let values = values.iter().filter_map(|v| key.value(v)).collect();
        allowed = allowed.and(Allowed::column(key.index, ColumnAllowed::values(values)));
    }
    Some(allowed)
}

/// A list of at least this share of a column's distinct values keeps
/// nearly every row: it is sent as a range instead.
const NOT_SELECTIVE: f64 = 0.9;

/// What [`spell`] made of a fragment's runtime filters.
#[derive(Debug, Clone, PartialEq)]
pub enum Respelled {
    /// Run this SQL instead of the planned one.
    Sql {
        /// The fragment's SQL with the keys in it.
        sql: String,
        /// What was added, for EXPLAIN ANALYZE (`l_partkey IN (203 keys)`).
        summary: String,
    },
    /// No row can pass: the fragment need not run at all.
    Nothing,
    /// Run the SQL as planned (nothing to add, or it could not be added).
    Unchanged,
}

/// The fragment's SQL with the keys `allowed` (over `plan`'s output
/// columns) in it: an IN list of at most `max_values` values, else the
/// values' range. `columns` holds what is estimated of each output column
/// (the fragment's statistics): distinct values, least and greatest.
///
/// Only one column gets its list: the one whose values are the smallest
/// share of its distinct values (the fewest values where that is not
/// known), and none whose values are nearly all of its distinct values;
/// the others get their range. Lists on two columns of one index make
/// PostgreSQL (before 17) descend the index once per pair of values, and
/// a list that keeps nearly every row costs its length on every row.
/// Likewise a range that spans nearly all of a column's known values is
/// left out: it narrows nothing, and it can lead the source to read a
/// whole index in order rather than the table.
pub fn spell(
    plan: &LogicalPlan,
    allowed: &Allowed,
    max_values: usize,
    statistics: &[ColumnStatistics],
) -> Result<Respelled> {
    let columns = match allowed {
        Allowed::Nothing => return Ok(Respelled::Nothing),
        Allowed::Columns(columns) => columns,
    };
    // The share of a column's distinct values a list holds; unknown
    // counts rank after every known share.
    let share = |i: usize, n: usize| match statistics
        .get(i)
        .and_then(|c| c.distinct_count.get_value())
        .copied()
    {
        Some(d) if d > 0 => Some(n as f64 / d as f64),
        _ => None,
    };
    let rank = |i: usize, n: usize| share(i, n).unwrap_or(f64::MAX);
    let listed = columns
        .iter()
        .filter_map(|(&i, c)| Some((c.values.as_ref()?.len(), i)))
        .filter(|&(n, i)| n <= max_values && share(i, n).is_none_or(|s| s < NOT_SELECTIVE))
        .min_by(|&(n, i), &(m, j)| {
            rank(i, n)
                .partial_cmp(&rank(j, m))
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(n.cmp(&m))
        })
        .map(|(_, i)| i);
    let schema = plan.schema();
    let mut predicates = Vec::new();
    let mut summary = Vec::new();
    for (&index, column) in columns {
        if index >= schema.fields().len() {
            continue;
        }
        let expr = Expr::Column(LogicalColumn::from(schema.qualified_field(index)));
        let name = schema.field(index).name();
        let max_values = if listed == Some(index) { max_values } else { 0 };
        let known = statistics.get(index).and_then(|c| {
            Some((
                c.min_value.get_value()?.clone(),
                c.max_value.get_value()?.clone(),
            ))
        });
        match key_predicate(expr, column, max_values, known) {
            KeyPredicate::Nothing => return Ok(Respelled::Nothing),
            KeyPredicate::Any => {}
            KeyPredicate::Predicate(predicate, text) => {
                predicates.push(predicate);
                summary.push(format!("{name} {text}"));
            }
        }
    }
    let Some(predicate) = conjunction(predicates) else {
        return Ok(Respelled::Unchanged);
    };
    let sql = spar_connectors::depth::deep(|| filtered_sql(plan, predicate))?;
    Ok(match sql {
        Some(sql) => Respelled::Sql {
            sql,
            summary: summary.join(" AND "),
        },
        None => Respelled::Unchanged,
    })
}

enum KeyPredicate {
    Nothing,
    Any,
    Predicate(Expr, String),
}

fn key_predicate(
    expr: Expr,
    column: &ColumnAllowed,
    max_values: usize,
    known: Option<(ScalarValue, ScalarValue)>,
) -> KeyPredicate {
    let (low, high) = column.hull();
    let in_range = |v: &&ScalarValue| {
        low.as_ref()
            .is_none_or(|l| l.partial_cmp(v) != Some(std::cmp::Ordering::Greater))
            && high
                .as_ref()
                .is_none_or(|h| h.partial_cmp(v) != Some(std::cmp::Ordering::Less))
    };
    let values: Option<Vec<ScalarValue>> = column
        .values
        .as_ref()
        .map(|v| v.iter().filter(in_range).cloned().collect());
    let empty = values.as_ref().is_some_and(Vec::is_empty)
        || low
            .as_ref()
            .zip(high.as_ref())
            .is_some_and(|(l, h)| l.partial_cmp(h) == Some(std::cmp::Ordering::Greater));
    let not_null = if empty {
        None
    } else {
        match values {
            Some(values) if values.len() <= max_values => Some((
                Expr::InList(InList::new(
                    Box::new(expr.clone()),
                    values
                        .iter()
                        .cloned()
                        .map(|v| Expr::Literal(v, None))
                        .collect(),
                    false,
                )),
                format!("IN ({} keys)", values.len()),
            )),
            _ if spans(low.as_ref(), high.as_ref(), known.as_ref()) => None,
            _ => range(&expr, low, high),
        }
    };
    match (not_null, column.nulls) {
        (None, false) if empty => KeyPredicate::Nothing,
        (None, false) => KeyPredicate::Any,
        (None, true) if empty => KeyPredicate::Predicate(expr.is_null(), "IS NULL".into()),
        (None, true) => KeyPredicate::Any,
        (Some((p, text)), false) => KeyPredicate::Predicate(p, text),
        (Some((p, text)), true) => {
            KeyPredicate::Predicate(expr.is_null().or(p), format!("IS NULL OR {text}"))
        }
    }
}

/// Whether `low..high` spans nearly all of the column's known values.
fn spans(
    low: Option<&ScalarValue>,
    high: Option<&ScalarValue>,
    known: Option<&(ScalarValue, ScalarValue)>,
) -> bool {
    let Some((min, max)) = known else {
        return false;
    };
    let at = |v: Option<&ScalarValue>, or: &ScalarValue| position(v.unwrap_or(or));
    match (at(low, min), at(high, max), position(min), position(max)) {
        (Some(l), Some(h), Some(min), Some(max)) if max > min => {
            (h.min(max) - l.max(min)) / (max - min) >= NOT_SELECTIVE
        }
        _ => false,
    }
}

fn range(
    expr: &Expr,
    low: Option<ScalarValue>,
    high: Option<ScalarValue>,
) -> Option<(Expr, String)> {
    let shown = |v: &Option<ScalarValue>| v.as_ref().map(ToString::to_string);
    let text = match (shown(&low), shown(&high)) {
        (Some(l), Some(h)) => format!("BETWEEN {l} AND {h}"),
        (Some(l), None) => format!(">= {l}"),
        (None, Some(h)) => format!("<= {h}"),
        (None, None) => return None,
    };
    let parts: Vec<Expr> = [
        low.map(|l| expr.clone().gt_eq(Expr::Literal(l, None))),
        high.map(|h| expr.clone().lt_eq(Expr::Literal(h, None))),
    ]
    .into_iter()
    .flatten()
    .collect();
    conjunction(parts).map(|p| (p, text))
}

/// The SQL of `plan` filtered by `predicate`, if the filter pushes down so
/// that the whole is still one fragment.
fn filtered_sql(plan: &LogicalPlan, predicate: Expr) -> Result<Option<String>> {
    let filtered = LogicalPlan::Filter(Filter::try_new(predicate, Arc::new(plan.clone()))?);
    let optimizer = Optimizer::with_rules(vec![Arc::new(PushDownFilter::new())]);
    let pushed = optimizer.optimize(filtered, &OptimizerContext::new(), |_, _| {})?;
    let cut = PushDownFragments::new().push_down(pushed, true)?;
    let Transformed { data, .. } = cut;
    let mut top = &data;
    // A fragment that sorts is sorted again locally (see `merge`).
    if let LogicalPlan::Sort(sort) = top {
        top = sort.input.as_ref();
    }
    Ok(as_fragment(top).map(|f| f.sql.clone()))
}

impl fmt::Display for Respelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sql { summary, .. } => f.write_str(summary),
            Self::Nothing => f.write_str("no rows can match"),
            Self::Unchanged => f.write_str("none"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, StructArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::{LogicalPlan, Operator};
    use datafusion::physical_expr::expressions::{
        lit, BinaryExpr, CaseExpr, CastExpr, Column, DynamicFilterPhysicalExpr, InListExpr,
        IsNullExpr, NotExpr,
    };
    use datafusion::physical_expr::PhysicalExpr;

    use super::{allowed_by, spell, Allowed, Respelled};
    use crate::push_down_fragments::as_fragment;
    use crate::test_util::context;

    fn col(name: &str, index: usize) -> Arc<dyn PhysicalExpr> {
        Arc::new(Column::new(name, index))
    }

    fn bin(
        l: Arc<dyn PhysicalExpr>,
        op: Operator,
        r: Arc<dyn PhysicalExpr>,
    ) -> Arc<dyn PhysicalExpr> {
        Arc::new(BinaryExpr::new(l, op, r))
    }

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
        ])
    }

    fn in_list(c: Arc<dyn PhysicalExpr>, values: &[i64]) -> Arc<dyn PhysicalExpr> {
        let array: ArrayRef = Arc::new(Int64Array::from(values.to_vec()));
        let list = InListExpr::try_new_from_array(c, array, false, &schema());
        Arc::new(list.unwrap_or_else(|e| panic!("{e}")))
    }

    /// What DataFusion's hash join puts in its filter for a small build
    /// side: `a >= min AND a <= max AND a IN (...)`.
    fn bounds_and_list(c: Arc<dyn PhysicalExpr>, values: &[i64]) -> Arc<dyn PhysicalExpr> {
        let low = values.iter().min().copied().unwrap_or_default();
        let high = values.iter().max().copied().unwrap_or_default();
        let range = bin(
            bin(Arc::clone(&c), Operator::GtEq, lit(low)),
            Operator::And,
            bin(Arc::clone(&c), Operator::LtEq, lit(high)),
        );
        bin(range, Operator::And, in_list(c, values))
    }

    fn described(allowed: &Allowed) -> String {
        match allowed {
            Allowed::Nothing => "nothing".into(),
            Allowed::Columns(c) => c
                .iter()
                .map(|(i, a)| {
                    let values = a.values.as_ref().map(|v| {
                        v.iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(",")
                    });
                    format!(
                        "#{i}: values={values:?} low={:?} high={:?} nulls={}",
                        a.low.as_ref().map(ToString::to_string),
                        a.high.as_ref().map(ToString::to_string),
                        a.nulls
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        }
    }

    #[test]
    fn a_collect_left_filter_gives_its_keys_and_range() {
        let allowed = allowed_by(&bounds_and_list(col("b", 1), &[7, 3, 5, 3]), &schema());
        assert_eq!(
            described(&allowed),
            r#"#1: values=Some("3,5,7") low=Some("3") high=Some("7") nulls=false"#
        );
    }

    #[test]
    fn a_dynamic_filter_is_read_at_its_current_value() {
        let dynamic = Arc::new(DynamicFilterPhysicalExpr::new(vec![col("a", 0)], lit(true)));
        let as_expr: Arc<dyn PhysicalExpr> = Arc::clone(&dynamic) as _;
        assert!(allowed_by(&as_expr, &schema()).is_everything());
        dynamic
            .update(bounds_and_list(col("a", 0), &[1, 2]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            described(&allowed_by(&as_expr, &schema())),
            r#"#0: values=Some("1,2") low=Some("1") high=Some("2") nulls=false"#
        );
    }

    #[test]
    fn partitions_are_read_as_the_union_of_their_filters() {
        // CASE hash(a) % 3 WHEN 0 THEN <p0> WHEN 1 THEN <p1> ELSE false END,
        // with a third, empty, partition.
        let route = bin(col("a", 0), Operator::Modulo, lit(3_i64));
        let case = CaseExpr::try_new(
            Some(route),
            vec![
                (lit(0_i64), bounds_and_list(col("a", 0), &[1, 9])),
                (lit(1_i64), bounds_and_list(col("a", 0), &[4])),
            ],
            Some(lit(false)),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let case: Arc<dyn PhysicalExpr> = Arc::new(case);
        assert_eq!(
            described(&allowed_by(&case, &schema())),
            r#"#0: values=Some("1,4,9") low=Some("1") high=Some("9") nulls=false"#
        );
        // A partition whose keys were too many for a list (a hash-table
        // lookup, which Spar cannot read) leaves only the range of all.
        let lookup: Arc<dyn PhysicalExpr> = Arc::new(NotExpr::new(col("a", 0)));
        let range_only = bin(
            bin(
                bin(col("a", 0), Operator::GtEq, lit(20_i64)),
                Operator::And,
                bin(col("a", 0), Operator::LtEq, lit(30_i64)),
            ),
            Operator::And,
            lookup,
        );
        let case = CaseExpr::try_new(
            Some(bin(col("a", 0), Operator::Modulo, lit(2_i64))),
            vec![(lit(0_i64), bounds_and_list(col("a", 0), &[1, 9]))],
            Some(range_only),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let case: Arc<dyn PhysicalExpr> = Arc::new(case);
        assert_eq!(
            described(&allowed_by(&case, &schema())),
            r#"#0: values=None low=Some("1") high=Some("30") nulls=false"#
        );
    }

    #[test]
    fn what_cannot_be_read_lets_everything_through() {
        let unknown: Arc<dyn PhysicalExpr> = Arc::new(NotExpr::new(col("a", 0)));
        assert!(allowed_by(&unknown, &schema()).is_everything());
        // OR with an unreadable side: no column is constrained.
        let either = bin(bounds_and_list(col("a", 0), &[1]), Operator::Or, unknown);
        assert!(allowed_by(&either, &schema()).is_everything());
        // A negated list is not a set of allowed values.
        let array: ArrayRef = Arc::new(Int64Array::from(vec![1_i64]));
        let not_in = InListExpr::try_new_from_array(col("a", 0), array, true, &schema())
            .unwrap_or_else(|e| panic!("{e}"));
        let not_in: Arc<dyn PhysicalExpr> = Arc::new(not_in);
        assert!(allowed_by(&not_in, &schema()).is_everything());
    }

    #[test]
    fn keys_read_through_a_widening_cast_are_the_columns_own_values() {
        let narrow = Schema::new(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("f", DataType::Float64, true),
        ]);
        let widened = |i: usize, name: &str| -> Arc<dyn PhysicalExpr> {
            Arc::new(CastExpr::new(col(name, i), DataType::Int64, None))
        };
        // 5e9 is no int4 value: no row can have it, and as a bound it is
        // dropped.
        let array: ArrayRef = Arc::new(Int64Array::from(vec![1_i64, 5_000_000_000]));
        let list = InListExpr::try_new_from_array(widened(0, "a"), array, false, &narrow)
            .unwrap_or_else(|e| panic!("{e}"));
        let filter = bin(
            bin(widened(0, "a"), Operator::LtEq, lit(5_000_000_000_i64)),
            Operator::And,
            Arc::new(list),
        );
        let allowed = allowed_by(&filter, &narrow);
        assert_eq!(
            described(&allowed),
            r#"#0: values=Some("1") low=None high=None nulls=false"#
        );
        let Allowed::Columns(columns) = &allowed else {
            panic!("nothing allowed");
        };
        assert_eq!(
            columns.get(&0).and_then(|c| c.values.clone()),
            Some(vec![ScalarValue::Int32(Some(1))])
        );
        // A cast that merges values (a float truncated) tells nothing.
        let truncated = bin(widened(1, "f"), Operator::Eq, lit(2_i64));
        assert!(allowed_by(&truncated, &narrow).is_everything());
    }

    #[test]
    fn an_empty_build_side_passes_nothing() {
        assert_eq!(allowed_by(&lit(false), &schema()), Allowed::Nothing);
        let case = CaseExpr::try_new(
            Some(col("a", 0)),
            vec![(lit(0_i64), lit(false))],
            Some(lit(false)),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let case: Arc<dyn PhysicalExpr> = Arc::new(case);
        assert_eq!(allowed_by(&case, &schema()), Allowed::Nothing);
    }

    #[test]
    fn nulls_kept_for_a_null_aware_join_stay_allowed() {
        let is_null: Arc<dyn PhysicalExpr> = Arc::new(IsNullExpr::new(col("a", 0)));
        let kept = bin(is_null, Operator::Or, bounds_and_list(col("a", 0), &[2, 4]));
        assert_eq!(
            described(&allowed_by(&kept, &schema())),
            r#"#0: values=Some("2,4") low=Some("2") high=Some("4") nulls=true"#
        );
    }

    #[test]
    fn several_join_keys_give_each_column_its_values() {
        let fields = vec![
            Field::new("c0", DataType::Int64, true),
            Field::new("c1", DataType::Int64, true),
        ];
        let rows = StructArray::from(vec![
            (
                Arc::new(fields[0].clone()),
                Arc::new(Int64Array::from(vec![1_i64, 2, 2])) as ArrayRef,
            ),
            (
                Arc::new(fields[1].clone()),
                Arc::new(Int64Array::from(vec![10_i64, 20, 30])) as ArrayRef,
            ),
        ]);
        let args = vec![col("a", 0), col("b", 1)];
        let return_field = Arc::new(Field::new(
            "struct",
            DataType::Struct(fields.clone().into()),
            true,
        ));
        let key = datafusion::physical_expr::ScalarFunctionExpr::new(
            "struct",
            datafusion::functions::core::r#struct(),
            args,
            return_field,
            Arc::new(datafusion::common::config::ConfigOptions::default()),
        );
        let list = InListExpr::try_new_from_array(Arc::new(key), Arc::new(rows), false, &schema())
            .unwrap_or_else(|e| panic!("{e}"));
        let list: Arc<dyn PhysicalExpr> = Arc::new(list);
        assert_eq!(
            described(&allowed_by(&list, &schema())),
            r#"#0: values=Some("1,2") low=None high=None nulls=false; #1: values=Some("10,20,30") low=None high=None nulls=false"#
        );
    }

    /// The plan of the one fragment `sql` plans to.
    async fn fragment_plan(sql: &str) -> LogicalPlan {
        let ctx = context();
        let df = ctx.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        let plan = df
            .into_optimized_plan()
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let mut found = None;
        plan.apply(|node| {
            if let Some(fragment) = as_fragment(node) {
                found = Some(fragment.plan.clone());
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .unwrap_or_else(|e| panic!("{e}"));
        found.unwrap_or_else(|| panic!("no fragment in {}", plan.display_indent()))
    }

    fn keys(index: usize, values: &[i64]) -> Allowed {
        allowed_by(&bounds_and_list(col("k", index), values), &schema())
    }

    fn sql_of(respelled: Respelled) -> String {
        match respelled {
            Respelled::Sql { sql, summary } => format!("{summary}\n{sql}"),
            other => format!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn keys_join_a_scans_own_filters() {
        let plan = fragment_plan(
            "SELECT o_orderkey, o_custkey FROM sales.main.orders WHERE o_totalprice > 10",
        )
        .await;
        let respelled =
            spell(&plan, &keys(1, &[3, 1, 2]), 100, &[]).unwrap_or_else(|e| panic!("{e}"));
        insta::assert_snapshot!(sql_of(respelled), @r#"
        o_custkey IN (3 keys)
        SELECT "orders"."o_orderkey", "orders"."o_custkey" FROM "main"."orders" WHERE (("orders"."o_totalprice" > 10.00) AND ("orders"."o_custkey" IN (1, 2, 3)))
        "#);
    }

    #[tokio::test]
    async fn more_keys_than_the_cap_are_sent_as_their_range() {
        let plan = fragment_plan("SELECT o_orderkey, o_custkey FROM sales.main.orders").await;
        let respelled =
            spell(&plan, &keys(0, &[40, 7, 12]), 2, &[]).unwrap_or_else(|e| panic!("{e}"));
        insta::assert_snapshot!(sql_of(respelled), @r#"
        o_orderkey BETWEEN 7 AND 40
        SELECT "orders"."o_orderkey", "orders"."o_custkey" FROM "main"."orders" WHERE (("orders"."o_orderkey" >= 7) AND ("orders"."o_orderkey" <= 40))
        "#);
    }

    #[tokio::test]
    async fn keys_reach_both_sides_of_a_join_below_an_aggregate() {
        let plan = fragment_plan(
            "SELECT o_custkey, count(*) AS n FROM sales.main.orders \
             JOIN sales.main.customer ON c_custkey = o_custkey GROUP BY o_custkey",
        )
        .await;
        let respelled = spell(&plan, &keys(0, &[5, 6]), 100, &[]).unwrap_or_else(|e| panic!("{e}"));
        insta::assert_snapshot!(sql_of(respelled), @r#"
        o_custkey IN (2 keys)
        SELECT "o_custkey" AS "o_custkey", count(1) AS "n" FROM (SELECT "orders"."o_custkey" FROM "main"."orders" INNER JOIN "main"."customer" ON "orders"."o_custkey" = "customer"."c_custkey" WHERE ("orders"."o_custkey" IN (5, 6)) AND ("customer"."c_custkey" IN (5, 6))) AS "derived_projection" GROUP BY "o_custkey"
        "#);
    }

    #[test]
    fn keys_of_a_column_whose_name_another_shares_are_not_read() {
        // A self-join's fragment returns `q0.a` and `q1.a`: DataFusion moves
        // filters by name, so a key on either may be meant for the other.
        let twice = Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
        ]);
        let filter = |i: usize, name: &str| {
            let array: ArrayRef = Arc::new(Int64Array::from(vec![1_i64, 2]));
            let list = InListExpr::try_new_from_array(
                Arc::new(Column::new(name, i)),
                array,
                false,
                &twice,
            )
            .unwrap_or_else(|e| panic!("{e}"));
            let list: Arc<dyn PhysicalExpr> = Arc::new(list);
            allowed_by(&list, &twice)
        };
        assert!(filter(1, "a").is_everything());
        assert!(filter(0, "a").is_everything());
        assert!(!filter(2, "b").is_everything());
    }

    #[tokio::test]
    async fn only_the_column_with_fewest_keys_gets_a_list() {
        let plan = fragment_plan("SELECT o_orderkey, o_custkey FROM sales.main.orders").await;
        let both = keys(0, &[1, 2, 3]).and(keys(1, &[10, 20]));
        let respelled = spell(&plan, &both, 100, &[]).unwrap_or_else(|e| panic!("{e}"));
        insta::assert_snapshot!(sql_of(respelled), @r#"
        o_orderkey BETWEEN 1 AND 3 AND o_custkey IN (2 keys)
        SELECT "orders"."o_orderkey", "orders"."o_custkey" FROM "main"."orders" WHERE ((("orders"."o_orderkey" >= 1) AND ("orders"."o_orderkey" <= 3)) AND ("orders"."o_custkey" IN (10, 20)))
        "#);
    }

    #[tokio::test]
    async fn the_list_goes_to_the_column_it_narrows_most() {
        let plan = fragment_plan("SELECT o_orderkey, o_custkey FROM sales.main.orders").await;
        let both = keys(0, &[1, 2, 3]).and(keys(1, &[10, 20]));
        // Three of 1,000 order keys narrow more than two of 4 customers;
        // with all 3 of 3 order keys listed, neither list is worth sending.
        let respelled =
            spell(&plan, &both, 100, &distinct(&[1_000, 4])).unwrap_or_else(|e| panic!("{e}"));
        let Respelled::Sql { summary, .. } = respelled else {
            panic!("{respelled:?}");
        };
        assert_eq!(
            summary,
            "o_orderkey IN (3 keys) AND o_custkey BETWEEN 10 AND 20"
        );
        let respelled =
            spell(&plan, &both, 100, &distinct(&[3, 2])).unwrap_or_else(|e| panic!("{e}"));
        let Respelled::Sql { summary, .. } = respelled else {
            panic!("{respelled:?}");
        };
        assert_eq!(
            summary,
            "o_orderkey BETWEEN 1 AND 3 AND o_custkey BETWEEN 10 AND 20"
        );
    }

    fn distinct(counts: &[usize]) -> Vec<datafusion::common::ColumnStatistics> {
        counts
            .iter()
            .map(|&d| {
                let mut c = datafusion::common::ColumnStatistics::new_unknown();
                c.distinct_count = datafusion::common::stats::Precision::Inexact(d);
                c
            })
            .collect()
    }

    #[tokio::test]
    async fn a_range_over_nearly_all_known_values_is_left_out() {
        let plan = fragment_plan("SELECT o_orderkey, o_custkey FROM sales.main.orders").await;
        let mut stats = distinct(&[1_000, 1_000]);
        for c in &mut stats {
            c.min_value =
                datafusion::common::stats::Precision::Inexact(ScalarValue::Int64(Some(1)));
            c.max_value =
                datafusion::common::stats::Precision::Inexact(ScalarValue::Int64(Some(1_000)));
        }
        // 950 of 1,000 values, as a range (over the cap): nothing to send.
        let wide = keys(0, &(2..952).collect::<Vec<i64>>());
        let respelled = spell(&plan, &wide, 10, &stats).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(respelled, Respelled::Unchanged);
        let narrow = keys(0, &(2..52).collect::<Vec<i64>>());
        let respelled = spell(&plan, &narrow, 10, &stats).unwrap_or_else(|e| panic!("{e}"));
        let Respelled::Sql { summary, .. } = respelled else {
            panic!("{respelled:?}");
        };
        assert_eq!(summary, "o_orderkey BETWEEN 2 AND 51");
    }

    #[tokio::test]
    async fn no_row_can_pass_an_empty_set_of_keys() {
        let plan = fragment_plan("SELECT o_orderkey FROM sales.main.orders").await;
        let respelled = spell(&plan, &Allowed::Nothing, 100, &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(respelled, Respelled::Nothing);
        let respelled =
            spell(&plan, &Allowed::everything(), 100, &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(respelled, Respelled::Unchanged);
    }
}
