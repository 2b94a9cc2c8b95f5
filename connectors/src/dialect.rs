//! How a source spells SQL and what it can run.
//!
//! Spelling (quoting, literals, casts) comes from DataFusion's unparser
//! [`Dialect`]; what a source can run with *exactly* DataFusion's semantics
//! comes from [`SqlDialect::supports_expr`] and [`Capabilities`]. Rules in
//! the planner ask these; they never test for a backend by name.

use std::fmt::Debug;

use arrow::datatypes::DataType;
use datafusion::common::DFSchema;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, ExprSchemable, Operator};
use datafusion::scalar::ScalarValue;
use datafusion::sql::unparser::dialect::Dialect;

/// Which relational operators a source can run inside a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// `WHERE` with the expressions [`SqlDialect::supports_expr`] accepts.
    pub filter: bool,
    /// `LIMIT n`.
    pub limit: bool,
    /// `ORDER BY`, with explicit NULLS FIRST/LAST or an equivalent.
    pub order_by: bool,
    /// Joins between tables of the same source.
    pub joins: bool,
    /// `GROUP BY` and aggregate functions.
    pub aggregates: bool,
    /// Window functions.
    pub window_functions: bool,
}

impl Capabilities {
    /// A source that can run every operator.
    pub const ALL: Self = Self {
        filter: true,
        limit: true,
        order_by: true,
        joins: true,
        aggregates: true,
        window_functions: true,
    };
}

/// A source's SQL dialect: its spelling and what it can run.
pub trait SqlDialect: Debug + Send + Sync {
    /// A short name for messages and EXPLAIN (`sqlite`, `postgres`).
    fn name(&self) -> &str;

    /// DataFusion's unparser dialect that spells SQL for this source.
    fn unparser(&self) -> &dyn Dialect;

    /// The operators this source can run.
    fn capabilities(&self) -> Capabilities;

    /// Whether the source computes `expr` exactly as DataFusion would (same
    /// result for every row, NULLs and types included). Only such
    /// expressions are pushed into a fragment; the rest run locally.
    /// `schema` is the schema `expr` is evaluated against, so that a
    /// dialect can decide by the operands' types.
    ///
    /// The default accepts a conservative core that every SQL database
    /// evaluates alike: column references, literals of
    /// [`SqlDialect::supports_literal`] types, comparisons, `AND`, `OR`,
    /// `NOT`, `IS [NOT] NULL`, `BETWEEN` and `IN` lists.
    fn supports_expr(&self, expr: &Expr, schema: &DFSchema) -> bool {
        default_supports_expr(self, expr, schema)
    }

    /// Whether the source computes the aggregate `expr` (an
    /// `Expr::AggregateFunction` over rows of `schema`) exactly as
    /// DataFusion would, result type included. The default accepts
    /// `count` (also `DISTINCT`, when equality of the argument is exact),
    /// `min` and `max` (when ordering of the argument is exact): their
    /// results have the argument's type, or BIGINT, everywhere.
    fn supports_aggregate(&self, expr: &Expr, schema: &DFSchema) -> bool {
        default_supports_aggregate(self, expr, schema)
    }

    /// Spar's corrections to `expr` before it is spelled for this source,
    /// where DataFusion's unparser would spell it wrongly. Called on every
    /// expression of a fragment. The default changes nothing.
    fn prepare_expr(&self, expr: Expr) -> datafusion::error::Result<Expr> {
        Ok(expr)
    }

    /// Whether a literal of this value's type is spelled so that the source
    /// compares it as DataFusion would. The default accepts booleans,
    /// integers, floats, decimals, strings and dates.
    fn supports_literal(&self, value: &ScalarValue) -> bool {
        matches!(
            value.data_type(),
            DataType::Boolean
                | DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::UInt8
                | DataType::UInt16
                | DataType::UInt32
                | DataType::Float32
                | DataType::Float64
                | DataType::Decimal128(_, _)
                | DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Date32
        )
    }
}

/// Comparisons and boolean connectives: the operators every SQL database
/// evaluates like DataFusion (with three-valued logic).
fn is_core_operator(op: &Operator) -> bool {
    matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
            | Operator::And
            | Operator::Or
    )
}

/// Whether `e` is string-typed in `schema` (for dialects that keep string
/// comparisons local). An expression whose type cannot be determined counts
/// as a string: the answer only ever keeps work local.
pub fn is_string(e: &Expr, schema: &DFSchema) -> bool {
    e.get_type(schema).map_or(true, |t| {
        matches!(
            t,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _)
        )
    })
}

/// The conservative core of [`SqlDialect::supports_expr`], for dialects
/// that override it to exclude more and then defer to the core.
pub fn default_supports_expr<D: SqlDialect + ?Sized>(
    dialect: &D,
    expr: &Expr,
    schema: &DFSchema,
) -> bool {
    let ok = |e: &Expr| dialect.supports_expr(e, schema);
    match expr {
        Expr::Column(c) => schema.has_column(c),
        Expr::Literal(value, _) => dialect.supports_literal(value),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            is_core_operator(op) && ok(left) && ok(right)
        }
        Expr::Not(e) | Expr::IsNull(e) | Expr::IsNotNull(e) => ok(e),
        Expr::Between(Between {
            expr, low, high, ..
        }) => ok(expr) && ok(low) && ok(high),
        Expr::InList(list) => ok(&list.expr) && list.list.iter().all(ok),
        _ => false,
    }
}

/// The core of [`SqlDialect::supports_aggregate`].
pub fn default_supports_aggregate<D: SqlDialect + ?Sized>(
    dialect: &D,
    expr: &Expr,
    schema: &DFSchema,
) -> bool {
    let Expr::AggregateFunction(agg) = expr else {
        return false;
    };
    let params = &agg.params;
    if params.filter.is_some() || !params.order_by.is_empty() || params.null_treatment.is_some() {
        return false;
    }
    let args = &params.args;
    match agg.func.name() {
        "count" if params.distinct => args.iter().all(|a| equals_alike(dialect, a, schema)),
        "count" => args.iter().all(|a| dialect.supports_expr(a, schema)),
        "min" | "max" => args.iter().all(|a| orders_alike(dialect, a, schema)),
        _ => false,
    }
}

/// Whether the source computes `e` and decides equality of its values as
/// DataFusion does (for grouping, joins, `DISTINCT`).
pub fn equals_alike<D: SqlDialect + ?Sized>(dialect: &D, e: &Expr, schema: &DFSchema) -> bool {
    dialect.supports_expr(e, schema) && dialect.supports_expr(&e.clone().eq(e.clone()), schema)
}

/// Whether the source computes `e` and orders its values as DataFusion
/// does (for sorting, `min`, `max`).
pub fn orders_alike<D: SqlDialect + ?Sized>(dialect: &D, e: &Expr, schema: &DFSchema) -> bool {
    dialect.supports_expr(e, schema) && dialect.supports_expr(&e.clone().lt(e.clone()), schema)
}

/// Whether `expr` compares strings anywhere: `=`, `<`, ... with a string
/// operand, `BETWEEN` or `IN` over strings. For dialects whose string
/// comparisons differ from DataFusion's bytewise ones; `ordering_only`
/// limits it to `<`, `<=`, `>`, `>=` and `BETWEEN` (for sources whose
/// equality is exact but whose order follows a collation).
pub fn compares_strings(expr: &Expr, schema: &DFSchema, ordering_only: bool) -> bool {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let ordering = matches!(
                op,
                Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq
            );
            let equality = matches!(op, Operator::Eq | Operator::NotEq);
            ((ordering || (equality && !ordering_only)) && is_string(left, schema))
                || compares_strings(left, schema, ordering_only)
                || compares_strings(right, schema, ordering_only)
        }
        Expr::Between(b) => is_string(&b.expr, schema),
        Expr::InList(list) => !ordering_only && is_string(&list.expr, schema),
        Expr::Not(e) | Expr::IsNull(e) | Expr::IsNotNull(e) => {
            compares_strings(e, schema, ordering_only)
        }
        _ => false,
    }
}
