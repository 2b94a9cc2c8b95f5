//! PostgreSQL's spelling and capabilities.

use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use datafusion::sql::unparser::dialect::{Dialect, PostgreSqlDialect};

use crate::dialect::{default_supports_expr, is_string_literal, Capabilities, SqlDialect};

/// PostgreSQL as a fragment target, spelled by DataFusion's
/// [`PostgreSqlDialect`] (double-quoted identifiers, `CAST(... AS DATE)`).
///
/// Not pushed: ordering comparisons (`<`, `>`, `BETWEEN`) on strings,
/// because PostgreSQL orders text by the column's collation (often not
/// bytewise, as DataFusion does); equality is pushed (default collations
/// are deterministic).
#[derive(Debug, Default)]
pub struct PostgresSqlDialect;

/// DataFusion's unparser dialect (a unit struct without `Debug`).
static UNPARSER: PostgreSqlDialect = PostgreSqlDialect {};

impl SqlDialect for PostgresSqlDialect {
    fn name(&self) -> &str {
        "postgres"
    }

    fn unparser(&self) -> &dyn Dialect {
        &UNPARSER
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            filter: true,
            limit: true,
            ..Capabilities::SCAN_ONLY
        }
    }

    fn supports_expr(&self, expr: &Expr) -> bool {
        match expr {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq,
                right,
            }) if is_string_literal(left) || is_string_literal(right) => false,
            Expr::Between(b) if is_string_literal(&b.low) || is_string_literal(&b.high) => false,
            _ => default_supports_expr(self, expr),
        }
    }
}
