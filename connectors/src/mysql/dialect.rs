//! MySQL's and MariaDB's spelling and capabilities.

use arrow::datatypes::DataType;
use datafusion::common::DFSchema;
use datafusion::logical_expr::Expr;
use datafusion::sql::unparser::dialect::{Dialect, MySqlDialect};

use crate::dialect::{
    compares_strings, default_arithmetic_alike, default_supports_expr, widening_cast, Capabilities,
    SqlDialect,
};

/// MySQL and MariaDB as fragment targets, spelled by DataFusion's
/// [`MySqlDialect`] (backtick quoting).
///
/// Not pushed: any comparison of strings (with a literal or another
/// column), because the default
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
            order_by: true,
            joins: true,
            aggregates: true,
            window_functions: false,
        }
    }

    fn supports_expr(&self, expr: &Expr, schema: &DFSchema) -> bool {
        !compares_strings(expr, schema, false) && default_supports_expr(self, expr, schema)
    }

    /// MySQL's decimals hold at most 30 fractional digits.
    fn arithmetic_alike(&self, t: &DataType) -> bool {
        !matches!(t, DataType::Decimal128(_, s) if *s > 30) && default_arithmetic_alike(t)
    }

    /// MySQL's `CAST` knows `SIGNED` and `DECIMAL(p,s)` but not `TINYINT`
    /// or `SMALLINT`, which the unparser writes for 8- and 16-bit targets.
    fn supports_cast(&self, from: &DataType, to: &DataType) -> bool {
        !matches!(to, DataType::Int8 | DataType::Int16)
            && self.arithmetic_alike(to)
            && widening_cast(from, to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::logical_expr::{col, lit};

    #[test]
    fn string_comparisons_stay_local_whatever_the_operands() -> datafusion::error::Result<()> {
        let schema = DFSchema::try_from(Schema::new(vec![
            Field::new("a", DataType::Utf8, true),
            Field::new("b", DataType::Utf8, true),
            Field::new("n", DataType::Int32, true),
            Field::new("m", DataType::Int32, true),
        ]))?;
        let d = MySqlSqlDialect;
        assert!(!d.supports_expr(&col("a").eq(col("b")), &schema));
        assert!(!d.supports_expr(&col("a").eq(lit("x")), &schema));
        assert!(!d.supports_expr(&col("n").gt(lit(1)).and(col("a").lt(col("b"))), &schema));
        assert!(!d.supports_expr(&col("a").in_list(vec![lit("x")], false), &schema));
        assert!(d.supports_expr(&col("n").eq(col("m")).and(col("a").is_null()), &schema));
        Ok(())
    }
}
