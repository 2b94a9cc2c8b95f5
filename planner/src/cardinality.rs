//! Cardinality estimates of a fragment's sub-plan, from the source's
//! statistics: how many rows a scan, a filter, a join or an aggregate
//! returns, and how many distinct values each output column holds.
//!
//! ```text
//!  TableScan    table rows × selectivity of its filters, capped by its limit
//!  Filter       input × selectivity:  a = 1: 1/ndv   a < 5: by min/max
//!               a IN (k values): k/ndv   LIKE 'p%': 1/20   AND: product
//!               OR: s1 + s2 - s1·s2   NOT: 1 - s   IS NULL: null fraction
//!  Join         |L|·|R| / max(ndv of the key) (unknown: the larger side);
//!               outer joins keep their preserved sides; semi: at most |L|
//!  Aggregate    product of the grouping columns' ndv, at most the input
//! ```
//!
//! Every estimate is inexact. What the statistics do not cover (no row
//! count, a node it does not know) makes the whole estimate unknown, so
//! DataFusion keeps its own default choices rather than trust a guess.
//! The estimates give DataFusion's join selection (which side of a hash
//! join to build) a size for merged fragments, which had none, and a
//! filtered scan a size smaller than its table's.

use datafusion::common::stats::Precision;
use datafusion::common::{ColumnStatistics, ScalarValue, Statistics};
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::{
    Aggregate, BinaryExpr, Distinct, Expr, Join, JoinType, Like, Limit, LogicalPlan, Operator,
};

use spar_connectors::TableMeta;

use crate::source_plan::source_table;

/// Selectivity of a predicate nothing is known about (DataFusion's own
/// default filter selectivity).
const UNKNOWN_SELECTIVITY: f64 = 0.2;

/// Selectivity of `a = b` where `a`'s distinct count is unknown.
const EQUALITY_SELECTIVITY: f64 = 0.1;

/// Selectivity of a range on a column whose bounds are unknown.
const RANGE_SELECTIVITY: f64 = 1.0 / 3.0;

/// Selectivity of `LIKE 'prefix%'`, and of other patterns.
const PREFIX_SELECTIVITY: f64 = 0.05;
const PATTERN_SELECTIVITY: f64 = 0.1;

/// What is estimated of one output column.
#[derive(Debug, Clone, Default)]
struct ColumnEstimate {
    distinct: Option<f64>,
    /// The fraction of rows that are NULL.
    null_fraction: Option<f64>,
    min: Option<ScalarValue>,
    max: Option<ScalarValue>,
}

/// What is estimated of a plan's output.
#[derive(Debug, Clone)]
struct Estimate {
    rows: f64,
    columns: Vec<ColumnEstimate>,
}

impl Estimate {
    /// The same columns over `rows` rows (distinct counts capped by it).
    fn with_rows(mut self, rows: f64) -> Self {
        let rows = rows.max(0.0);
        for c in &mut self.columns {
            c.distinct = c.distinct.map(|d| d.min(rows.max(1.0)));
        }
        self.rows = rows;
        self
    }
}

/// The estimated statistics of `plan`'s output: row count and, per
/// column, distinct count, null count and bounds where they are known.
/// Unknown when the plan reads a table without a row count or holds a
/// node the estimate does not cover.
pub fn estimate(plan: &LogicalPlan) -> Statistics {
    let schema = plan.schema().as_arrow().clone();
    let Some(estimate) = spar_connectors::depth::deep(|| estimate_plan(plan)) else {
        return Statistics::new_unknown(&schema);
    };
    let rows = estimate.rows.round().max(0.0) as usize;
    let column_statistics = (0..schema.fields().len())
        .map(|i| {
            let Some(c) = estimate.columns.get(i) else {
                return ColumnStatistics::new_unknown();
            };
            let mut s = ColumnStatistics::new_unknown();
            if let Some(d) = c.distinct {
                s.distinct_count = Precision::Inexact(d.round().max(1.0) as usize);
            }
            if let Some(f) = c.null_fraction {
                s.null_count = Precision::Inexact((f * estimate.rows).round().max(0.0) as usize);
            }
            if let Some(min) = &c.min {
                s.min_value = Precision::Inexact(min.clone());
            }
            if let Some(max) = &c.max {
                s.max_value = Precision::Inexact(max.clone());
            }
            s
        })
        .collect();
    Statistics {
        num_rows: Precision::Inexact(rows),
        total_byte_size: Precision::Absent,
        column_statistics,
    }
}

/// The share of the rows of the table `meta` describes that `predicate`
/// (naming its columns) keeps; `None` without a row count.
pub(crate) fn table_selectivity(meta: &TableMeta, predicate: &Expr) -> Option<f64> {
    let (_, all) = table_columns(meta)?;
    Some(selectivity(predicate, &|c| by_name(meta, &all, c)))
}

/// The table's rows and what its statistics say of each column.
fn table_columns(meta: &TableMeta) -> Option<(f64, Vec<ColumnEstimate>)> {
    let stats = &meta.stats;
    let rows = *stats.row_count.get_value()? as f64;
    let column = |i: usize| {
        let Some(c) = stats.columns.get(i) else {
            return ColumnEstimate::default();
        };
        ColumnEstimate {
            distinct: c.distinct_count.get_value().map(|d| *d as f64),
            null_fraction: c
                .null_count
                .get_value()
                .filter(|_| rows > 0.0)
                .map(|n| *n as f64 / rows),
            min: c.min.get_value().cloned(),
            max: c.max.get_value().cloned(),
        }
    };
    Some((rows, (0..meta.schema.fields().len()).map(column).collect()))
}

/// The estimate of the table's column named as `c` is.
fn by_name<'a>(
    meta: &TableMeta,
    all: &'a [ColumnEstimate],
    c: &datafusion::common::Column,
) -> Option<&'a ColumnEstimate> {
    meta.schema
        .fields()
        .iter()
        .position(|f| *f.name() == c.name)
        .and_then(|i| all.get(i))
}

fn estimate_plan(plan: &LogicalPlan) -> Option<Estimate> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            let table = source_table(&scan.source)?;
            let meta = table.meta();
            let (rows, all) = table_columns(&meta)?;
            // Filters name the table's columns, projected or not.
            let lookup = |c: &datafusion::common::Column| by_name(&meta, &all, c);
            let selectivity: f64 = scan
                .filters
                .iter()
                .map(|f| selectivity(f, &lookup))
                .product();
            let columns = match &scan.projection {
                Some(p) => p
                    .iter()
                    .map(|&i| all.get(i).cloned().unwrap_or_default())
                    .collect(),
                None => all.clone(),
            };
            let mut rows = rows * selectivity;
            if let Some(fetch) = scan.fetch {
                rows = rows.min(fetch as f64);
            }
            Some(Estimate { rows, columns }.with_rows(rows))
        }
        LogicalPlan::Filter(filter) => {
            let input = estimate_plan(&filter.input)?;
            let schema = filter.input.schema();
            let lookup = |c: &datafusion::common::Column| {
                schema
                    .index_of_column(c)
                    .ok()
                    .and_then(|i| input.columns.get(i))
            };
            let rows = input.rows * selectivity(&filter.predicate, &lookup);
            Some(input.clone().with_rows(rows))
        }
        LogicalPlan::Projection(projection) => {
            let input = estimate_plan(&projection.input)?;
            let schema = projection.input.schema();
            let columns = projection
                .expr
                .iter()
                .map(|e| column_of(e, schema, &input).unwrap_or_default())
                .collect();
            Some(Estimate {
                rows: input.rows,
                columns,
            })
        }
        LogicalPlan::SubqueryAlias(alias) => estimate_plan(&alias.input),
        LogicalPlan::Sort(sort) => {
            let input = estimate_plan(&sort.input)?;
            let rows = sort.fetch.map_or(input.rows, |f| input.rows.min(f as f64));
            Some(input.with_rows(rows))
        }
        LogicalPlan::Limit(limit) => limited(limit),
        LogicalPlan::Join(join) => joined(join),
        LogicalPlan::Aggregate(aggregate) => aggregated(aggregate),
        LogicalPlan::Distinct(Distinct::All(input)) => {
            let input = estimate_plan(input)?;
            let groups = groups(input.columns.iter().map(|c| c.distinct), input.rows);
            Some(input.with_rows(groups))
        }
        LogicalPlan::Union(union) => {
            let inputs = union
                .inputs
                .iter()
                .map(|i| estimate_plan(i))
                .collect::<Option<Vec<_>>>()?;
            let rows = inputs.iter().map(|i| i.rows).sum();
            let width = union.schema.fields().len();
            Some(Estimate {
                rows,
                columns: vec![ColumnEstimate::default(); width],
            })
        }
        LogicalPlan::Window(window) => {
            let mut input = estimate_plan(&window.input)?;
            input.columns.extend(std::iter::repeat_n(
                ColumnEstimate::default(),
                window.window_expr.len(),
            ));
            Some(input)
        }
        _ => None,
    }
}

fn limited(limit: &Limit) -> Option<Estimate> {
    let input = estimate_plan(&limit.input)?;
    let skip = match limit.get_skip_type().ok()? {
        datafusion::logical_expr::SkipType::Literal(n) => n as f64,
        datafusion::logical_expr::SkipType::UnsupportedExpr => 0.0,
    };
    let mut rows = (input.rows - skip).max(0.0);
    if let datafusion::logical_expr::FetchType::Literal(Some(n)) = limit.get_fetch_type().ok()? {
        rows = rows.min(n as f64);
    }
    Some(input.with_rows(rows))
}

/// The estimate of an output column that is `e` over `input`: a plain
/// column (perhaps aliased) keeps the input column's estimate.
fn column_of(
    e: &Expr,
    schema: &datafusion::common::DFSchema,
    input: &Estimate,
) -> Option<ColumnEstimate> {
    match e {
        Expr::Alias(alias) => column_of(&alias.expr, schema, input),
        Expr::Column(c) => schema
            .index_of_column(c)
            .ok()
            .and_then(|i| input.columns.get(i))
            .cloned(),
        _ => None,
    }
}

fn joined(join: &Join) -> Option<Estimate> {
    let left = estimate_plan(&join.left)?;
    let right = estimate_plan(&join.right)?;
    let (l, r) = (left.rows, right.rows);
    // Each key pair divides the cross product by the larger distinct
    // count of its two sides; the most selective pair is taken (keys of
    // one join are often correlated, as a composite foreign key is).
    let divisor = join
        .on
        .iter()
        .filter_map(|(a, b)| {
            let a = column_of(a, join.left.schema(), &left)?.distinct;
            let b = column_of(b, join.right.schema(), &right)?.distinct;
            match (a, b) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (Some(d), None) | (None, Some(d)) => Some(d),
                (None, None) => None,
            }
        })
        .fold(None, |best: Option<f64>, d| {
            Some(best.map_or(d, |b| b.max(d)))
        });
    let inner = match (divisor, join.on.is_empty()) {
        (Some(d), _) => l * r / d.max(1.0),
        // Keys without distinct counts: each row of the larger side
        // meets one of the other, as along a foreign key.
        (None, false) => l.max(r),
        (None, true) => l * r,
    };
    let inner = match &join.filter {
        Some(f) => inner * selectivity(f, &|_| None),
        None => inner,
    };
    let mut columns = left.columns.clone();
    let rows = match join.join_type {
        JoinType::Inner => inner,
        JoinType::Left => inner.max(l),
        JoinType::Right => inner.max(r),
        JoinType::Full => inner.max(l).max(r),
        JoinType::LeftSemi | JoinType::LeftMark => inner.min(l),
        JoinType::LeftAnti => (l - inner.min(l)).max(l * 0.1),
        JoinType::RightSemi | JoinType::RightMark => {
            columns = right.columns.clone();
            inner.min(r)
        }
        JoinType::RightAnti => {
            columns = right.columns.clone();
            (r - inner.min(r)).max(r * 0.1)
        }
    };
    if matches!(
        join.join_type,
        JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full
    ) {
        columns.extend(right.columns);
    }
    // Mark joins add their mark column.
    columns.resize(join.schema.fields().len(), ColumnEstimate::default());
    Some(Estimate { rows, columns }.with_rows(rows))
}

fn aggregated(aggregate: &Aggregate) -> Option<Estimate> {
    let input = estimate_plan(&aggregate.input)?;
    let schema = aggregate.input.schema();
    let keys: Vec<ColumnEstimate> = aggregate
        .group_expr
        .iter()
        .map(|e| column_of(e, schema, &input).unwrap_or_default())
        .collect();
    let rows = if keys.is_empty() {
        1.0
    } else {
        groups(keys.iter().map(|k| k.distinct), input.rows)
    };
    let mut columns = keys;
    columns.resize(aggregate.schema.fields().len(), ColumnEstimate::default());
    Some(Estimate { rows, columns }.with_rows(rows))
}

/// Groups of columns with these distinct counts among `rows` rows: their
/// product, at most `rows` (a column without a count: a tenth of them).
fn groups(distinct: impl Iterator<Item = Option<f64>>, rows: f64) -> f64 {
    distinct
        .map(|d| d.unwrap_or(rows / 10.0).max(1.0))
        .product::<f64>()
        .min(rows)
}

/// The fraction of rows `predicate` keeps, given what `column` tells of
/// each column it names.
fn selectivity<'a>(
    predicate: &Expr,
    column: &dyn Fn(&datafusion::common::Column) -> Option<&'a ColumnEstimate>,
) -> f64 {
    let of = |e: &Expr| match e {
        Expr::Column(c) => column(c),
        Expr::Cast(cast) => match cast.expr.as_ref() {
            Expr::Column(c) => column(c),
            _ => None,
        },
        _ => None,
    };
    let s = match predicate {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And => selectivity(left, column) * selectivity(right, column),
            Operator::Or => {
                let (a, b) = (selectivity(left, column), selectivity(right, column));
                a + b - a * b
            }
            Operator::Eq => equality(of(left), of(right)),
            Operator::NotEq => 1.0 - equality(of(left), of(right)),
            Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq => {
                match (of(left), literal(right), of(right), literal(left)) {
                    (Some(c), Some(v), _, _) => range(c, *op, v),
                    (_, _, Some(c), Some(v)) => {
                        op.swap().map_or(RANGE_SELECTIVITY, |op| range(c, op, v))
                    }
                    _ => RANGE_SELECTIVITY,
                }
            }
            _ => UNKNOWN_SELECTIVITY,
        },
        Expr::Between(between) => {
            let c = of(&between.expr);
            let inside = match (c, literal(&between.low), literal(&between.high)) {
                (Some(c), Some(low), Some(high)) => {
                    range(c, Operator::GtEq, low) + range(c, Operator::LtEq, high) - 1.0
                }
                _ => RANGE_SELECTIVITY * RANGE_SELECTIVITY,
            };
            let inside = inside.clamp(0.0, 1.0);
            if between.negated {
                1.0 - inside
            } else {
                inside
            }
        }
        Expr::InList(InList {
            expr,
            list,
            negated,
        }) => {
            let one = equality(of(expr), None);
            let inside = (one * list.len() as f64).min(1.0);
            if *negated {
                1.0 - inside
            } else {
                inside
            }
        }
        Expr::Like(Like {
            negated, pattern, ..
        }) => {
            let s = match literal(pattern) {
                Some(
                    ScalarValue::Utf8(Some(p))
                    | ScalarValue::LargeUtf8(Some(p))
                    | ScalarValue::Utf8View(Some(p)),
                ) if !p.starts_with('%') && !p.starts_with('_') => PREFIX_SELECTIVITY,
                _ => PATTERN_SELECTIVITY,
            };
            if *negated {
                1.0 - s
            } else {
                s
            }
        }
        Expr::IsNull(e) => of(e).and_then(|c| c.null_fraction).unwrap_or(0.01),
        Expr::IsNotNull(e) => 1.0 - of(e).and_then(|c| c.null_fraction).unwrap_or(0.0),
        Expr::Not(e) => 1.0 - selectivity(e, column),
        Expr::Literal(ScalarValue::Boolean(Some(true)), _) => 1.0,
        Expr::Literal(ScalarValue::Boolean(_), _) => 0.0,
        Expr::Alias(alias) => selectivity(&alias.expr, column),
        _ => UNKNOWN_SELECTIVITY,
    };
    s.clamp(0.0, 1.0)
}

fn literal(e: &Expr) -> Option<&ScalarValue> {
    match e {
        Expr::Literal(v, _) if !v.is_null() => Some(v),
        Expr::Cast(cast) => literal(&cast.expr),
        _ => None,
    }
}

/// `a = b` where `a` (and `b`, if a column) are so estimated.
fn equality(a: Option<&ColumnEstimate>, b: Option<&ColumnEstimate>) -> f64 {
    let distinct = [a, b]
        .into_iter()
        .flatten()
        .filter_map(|c| c.distinct)
        .fold(None, |m: Option<f64>, d| Some(m.map_or(d, |m| m.max(d))));
    distinct.map_or(EQUALITY_SELECTIVITY, |d| 1.0 / d.max(1.0))
}

/// `column op value` for a range operator, from the column's bounds.
fn range(column: &ColumnEstimate, op: Operator, value: &ScalarValue) -> f64 {
    let (Some(min), Some(max), Some(v)) = (
        column.min.as_ref().and_then(position),
        column.max.as_ref().and_then(position),
        position(value),
    ) else {
        return RANGE_SELECTIVITY;
    };
    if max <= min {
        return RANGE_SELECTIVITY;
    }
    let below = ((v - min) / (max - min)).clamp(0.0, 1.0);
    match op {
        Operator::Lt | Operator::LtEq => below,
        _ => 1.0 - below,
    }
}

/// Where a value lies on a line, for comparing it with a column's bounds:
/// numbers and dates.
pub(crate) fn position(v: &ScalarValue) -> Option<f64> {
    Some(match v {
        ScalarValue::Int8(Some(x)) => f64::from(*x),
        ScalarValue::Int16(Some(x)) => f64::from(*x),
        ScalarValue::Int32(Some(x)) => f64::from(*x),
        ScalarValue::Int64(Some(x)) => *x as f64,
        ScalarValue::UInt8(Some(x)) => f64::from(*x),
        ScalarValue::UInt16(Some(x)) => f64::from(*x),
        ScalarValue::UInt32(Some(x)) => f64::from(*x),
        ScalarValue::UInt64(Some(x)) => *x as f64,
        ScalarValue::Float32(Some(x)) => f64::from(*x),
        ScalarValue::Float64(Some(x)) => *x,
        ScalarValue::Decimal128(Some(x), _, s) => *x as f64 / 10f64.powi(i32::from(*s)),
        ScalarValue::Date32(Some(d)) => f64::from(*d),
        ScalarValue::Date64(Some(ms)) => *ms as f64 / 86_400_000.0,
        _ => return None,
    })
    .filter(|x: &f64| x.is_finite())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::common::stats::Precision;
    use datafusion::common::{JoinType, ScalarValue};
    use datafusion::datasource::provider_as_source;
    use datafusion::functions_aggregate::expr_fn::count;
    use datafusion::logical_expr::{col, lit, LogicalPlan, LogicalPlanBuilder};
    use spar_connectors::{ColumnStats, TableKind, TableMeta, TableName, TableStats};

    use super::estimate;
    use crate::source_table::SourceTable;
    use crate::test_util::{postgres_dialect, TestRunner};

    /// `orders`: 1,000,000 rows; `o_custkey` 100,000 distinct values,
    /// `o_date` days 0 to 1,000, `o_note` a tenth NULL.
    /// `customer`: 100,000 rows, `c_custkey` unique, `c_nation` 25 values.
    fn scan(table: &str) -> LogicalPlanBuilder {
        let (fields, rows, columns) = match table {
            "orders" => (
                vec![
                    Field::new("o_orderkey", DataType::Int64, false),
                    Field::new("o_custkey", DataType::Int64, false),
                    Field::new("o_date", DataType::Date32, false),
                    Field::new("o_note", DataType::Utf8, true),
                ],
                1_000_000,
                vec![
                    stats(Some(1_000_000), None, None),
                    stats(Some(100_000), None, None),
                    stats(
                        Some(1_000),
                        Some(ScalarValue::Date32(Some(0))),
                        Some(ScalarValue::Date32(Some(1_000))),
                    ),
                    ColumnStats {
                        null_count: Precision::Inexact(100_000),
                        ..ColumnStats::default()
                    },
                ],
            ),
            _ => (
                vec![
                    Field::new("c_custkey", DataType::Int64, false),
                    Field::new("c_nation", DataType::Int64, false),
                ],
                100_000,
                vec![
                    stats(Some(100_000), None, None),
                    stats(Some(25), None, None),
                ],
            ),
        };
        let meta = TableMeta {
            name: TableName::new("main", table),
            kind: TableKind::Table,
            schema: Arc::new(Schema::new(fields)),
            stats: TableStats {
                row_count: Precision::Inexact(rows),
                columns,
            },
            indexes: vec![],
        };
        let source = SourceTable::new(
            "sales",
            meta,
            postgres_dialect(),
            Arc::new(TestRunner::default()),
        );
        LogicalPlanBuilder::scan(table, provider_as_source(Arc::new(source)), None)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn stats(
        distinct: Option<usize>,
        min: Option<ScalarValue>,
        max: Option<ScalarValue>,
    ) -> ColumnStats {
        ColumnStats {
            distinct_count: distinct.map_or(Precision::Absent, Precision::Inexact),
            min: min.map_or(Precision::Absent, Precision::Inexact),
            max: max.map_or(Precision::Absent, Precision::Inexact),
            ..ColumnStats::default()
        }
    }

    fn rows(plan: LogicalPlanBuilder) -> usize {
        let plan: LogicalPlan = plan.build().unwrap_or_else(|e| panic!("{e}"));
        let stats = estimate(&plan);
        assert!(
            !stats.num_rows.is_exact().unwrap_or(true),
            "estimates are inexact"
        );
        stats
            .num_rows
            .get_value()
            .copied()
            .unwrap_or_else(|| panic!("no estimate for {}", plan.display_indent()))
    }

    fn filtered(e: datafusion::logical_expr::Expr) -> usize {
        rows(scan("orders").filter(e).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn filters_keep_a_fraction_by_what_the_columns_hold() {
        assert_eq!(filtered(col("o_custkey").eq(lit(7_i64))), 10);
        assert_eq!(
            filtered(col("o_custkey").in_list(vec![lit(1_i64), lit(2_i64), lit(3_i64)], false)),
            30
        );
        let day = |d: i32| lit(ScalarValue::Date32(Some(d)));
        assert_eq!(filtered(col("o_date").lt(day(250))), 250_000);
        assert_eq!(filtered(col("o_date").between(day(100), day(300))), 200_000);
        assert_eq!(
            filtered(
                col("o_date")
                    .lt(day(250))
                    .and(col("o_custkey").eq(lit(7_i64)))
            ),
            3
        );
        assert_eq!(
            filtered(
                col("o_custkey")
                    .eq(lit(7_i64))
                    .or(col("o_custkey").eq(lit(8_i64)))
            ),
            20
        );
        assert_eq!(filtered(col("o_note").is_null()), 100_000);
        assert_eq!(filtered(col("o_note").is_not_null()), 900_000);
        assert_eq!(filtered(col("o_note").like(lit("abc%"))), 50_000);
        assert_eq!(filtered(col("o_note").like(lit("%abc%"))), 100_000);
        assert_eq!(filtered(!col("o_note").eq(lit("x"))), 900_000);
    }

    #[test]
    fn a_join_divides_by_the_larger_distinct_count_of_its_key() {
        let joined = scan("orders")
            .join(
                scan("customer").build().unwrap_or_else(|e| panic!("{e}")),
                JoinType::Inner,
                (vec!["o_custkey"], vec!["c_custkey"]),
                None,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rows(joined), 1_000_000);
        // A filtered dimension keeps its share of the fact table.
        let few = scan("customer")
            .filter(col("c_nation").eq(lit(3_i64)))
            .and_then(|b| b.build())
            .unwrap_or_else(|e| panic!("{e}"));
        let joined = scan("orders")
            .join(
                few,
                JoinType::Inner,
                (vec!["o_custkey"], vec!["c_custkey"]),
                None,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rows(joined), 40_000);
    }

    #[test]
    fn an_aggregate_has_as_many_rows_as_groups() {
        let grouped = scan("orders")
            .aggregate(vec![col("o_custkey")], vec![count(lit(1))])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rows(grouped), 100_000);
        let total = scan("orders")
            .aggregate(
                Vec::<datafusion::logical_expr::Expr>::new(),
                vec![count(lit(1))],
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rows(total), 1);
        let limited = scan("orders")
            .limit(0, Some(10))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rows(limited), 10);
    }

    #[test]
    fn a_table_without_a_row_count_gives_no_estimate() {
        let meta = TableMeta {
            name: TableName::new("main", "t"),
            kind: TableKind::Table,
            schema: Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)])),
            stats: TableStats::unknown(1),
            indexes: vec![],
        };
        let source = SourceTable::new(
            "sales",
            meta,
            postgres_dialect(),
            Arc::new(TestRunner::default()),
        );
        let plan = LogicalPlanBuilder::scan("t", provider_as_source(Arc::new(source)), None)
            .and_then(|b| b.filter(col("a").eq(lit(1_i64))))
            .and_then(|b| b.build())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(estimate(&plan).num_rows.get_value().is_none());
    }
}
