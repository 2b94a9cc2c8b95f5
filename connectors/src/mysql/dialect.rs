//! MySQL's and MariaDB's spelling and capabilities.

use datafusion::logical_expr::{Between, BinaryExpr, Expr};
use datafusion::sql::unparser::dialect::{Dialect, MySqlDialect};

use crate::dialect::{default_supports_expr, is_string_literal, Capabilities, SqlDialect};

/// MySQL and MariaDB as fragment targets, spelled by DataFusion's
/// [`MySqlDialect`] (backtick quoting).
///
/// Not pushed: any comparison with a string, because the default
/// collations compare case-insensitively and ignore trailing spaces
/// (`'a' = 'A '` is true), unlike DataFusion.
#[derive(Debug, Default)]
pub struct MySqlSqlDialect;

/// DataFusion's unparser dialect (a unit struct without `Debug`).
static UNPARSER: MySqlDialect = MySqlDialect {};

impl SqlDialect for MySqlSqlDialect {
    fn name(&self) -> &str {
        "mysql"
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
            Expr::BinaryExpr(BinaryExpr { left, right, .. })
                if is_string_literal(left) || is_string_literal(right) =>
            {
                false
            }
            Expr::Between(Between { low, high, .. })
                if is_string_literal(low) || is_string_literal(high) =>
            {
                false
            }
            Expr::InList(list) if list.list.iter().any(is_string_literal) => false,
            _ => default_supports_expr(self, expr),
        }
    }
}
