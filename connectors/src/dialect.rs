//! How a source spells SQL and what it can run.
//!
//! Spelling (quoting, literals, casts) comes from DataFusion's unparser
//! [`Dialect`]; what a source can run with *exactly* DataFusion's semantics
//! comes from [`SqlDialect::supports_expr`] and [`Capabilities`]. Rules in
//! the planner ask these; they never test for a backend by name.

use std::fmt::Debug;

use arrow::datatypes::DataType;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
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
    /// A source that can only be scanned (projection only).
    pub const SCAN_ONLY: Self = Self {
        filter: false,
        limit: false,
        order_by: false,
        joins: false,
        aggregates: false,
        window_functions: false,
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
    ///
    /// The default accepts a conservative core that every SQL database
    /// evaluates alike: column references, literals of
    /// [`SqlDialect::supports_literal`] types, comparisons, `AND`, `OR`,
    /// `NOT`, `IS [NOT] NULL`, `BETWEEN` and `IN` lists.
    fn supports_expr(&self, expr: &Expr) -> bool {
        default_supports_expr(self, expr)
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

/// Whether `e` is a string literal (for dialects that keep string
/// comparisons local).
pub fn is_string_literal(e: &Expr) -> bool {
    matches!(e, Expr::Literal(v, _) if v.data_type().is_string())
}

/// The conservative core of [`SqlDialect::supports_expr`], for dialects
/// that override it to exclude more and then defer to the core.
pub fn default_supports_expr<D: SqlDialect + ?Sized>(dialect: &D, expr: &Expr) -> bool {
    match expr {
        Expr::Column(_) => true,
        Expr::Literal(value, _) => dialect.supports_literal(value),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            is_core_operator(op) && dialect.supports_expr(left) && dialect.supports_expr(right)
        }
        Expr::Not(e) | Expr::IsNull(e) | Expr::IsNotNull(e) => dialect.supports_expr(e),
        Expr::Between(Between {
            expr, low, high, ..
        }) => {
            dialect.supports_expr(expr) && dialect.supports_expr(low) && dialect.supports_expr(high)
        }
        Expr::InList(list) => {
            dialect.supports_expr(&list.expr) && list.list.iter().all(|e| dialect.supports_expr(e))
        }
        _ => false,
    }
}
