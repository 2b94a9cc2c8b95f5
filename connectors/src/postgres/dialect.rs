//! PostgreSQL's spelling and capabilities.

use arrow::datatypes::DataType;
use datafusion::common::DFSchema;
use datafusion::logical_expr::Expr;
use datafusion::sql::unparser::dialect::{Dialect, PostgreSqlDialect};

use crate::dialect::{compares_strings, default_supports_expr, Capabilities, SqlDialect};

/// PostgreSQL as a fragment target, spelled by DataFusion's
/// [`PostgreSqlDialect`] (double-quoted identifiers, `CAST(... AS DATE)`).
///
/// Not pushed: ordering comparisons (`<`, `>`, `BETWEEN`) on strings,
/// because PostgreSQL orders text by the column's collation (often not
/// bytewise, as DataFusion does); equality is pushed (default collations
/// are deterministic).
///
/// `AVG` is pushed over integers and `float8` (PostgreSQL's `numeric`
/// result for integers is read as the nearest `Float64`, DataFusion's
/// type), not over decimals, whose result scale differs (DataFusion
/// truncates at the argument's scale + 4).
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
            order_by: true,
            joins: true,
            aggregates: true,
            window_functions: false,
        }
    }

    fn supports_expr(&self, expr: &Expr, schema: &DFSchema) -> bool {
        !compares_strings(expr, schema, true) && default_supports_expr(self, expr, schema)
    }

    fn averages_alike(&self, t: &DataType) -> bool {
        matches!(
            t,
            DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::Float64
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::logical_expr::{col, lit};

    #[test]
    fn string_order_stays_local_equality_is_pushed() -> datafusion::error::Result<()> {
        let schema = DFSchema::try_from(Schema::new(vec![
            Field::new("a", DataType::Utf8, true),
            Field::new("b", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]))?;
        let d = PostgresSqlDialect;
        assert!(!d.supports_expr(&col("a").lt(col("b")), &schema));
        assert!(!d.supports_expr(&col("a").between(lit("a"), lit("b")), &schema));
        assert!(d.supports_expr(&col("a").eq(col("b")), &schema));
        assert!(d.supports_expr(&col("a").in_list(vec![lit("x")], false), &schema));
        assert!(d.supports_expr(&col("n").lt(lit(3_i64)), &schema));
        Ok(())
    }
}
