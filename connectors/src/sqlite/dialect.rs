//! SQLite's spelling and capabilities.

use arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::DFSchema;
use datafusion::logical_expr::Expr;
use datafusion::scalar::ScalarValue;
use datafusion::sql::unparser::dialect::{Dialect, SqliteDialect};

use crate::dialect::{Capabilities, SqlDialect};
use crate::metadata::TableName;
use crate::unparser::{spell_float, SpellFn, WithFunctions, FLOAT};

/// SQLite as a fragment target.
///
/// Spelling is DataFusion's [`SqliteDialect`] (backtick quoting), with one
/// correction: a date literal is spelled as the text `'YYYY-MM-DD'`, which
/// compares correctly with the ISO text that the type mapping requires in
/// `DATE` columns. (The unparser writes `CAST('…' AS DATE)`, which SQLite
/// evaluates to the number 1995 for `'1995-03-15'`.)
///
/// Not pushed (the core of [`SqlDialect::supports_expr`] leaves them out),
/// because SQLite's answer differs from DataFusion's:
/// `LIKE` (case-insensitive for ASCII in SQLite), casts (SQLite's `CAST` to
/// a NUMERIC type keeps only a leading number), arithmetic, `SUM` and `AVG`
/// (integer overflow turns into REAL, and a stored value of the wrong
/// type, such as `'abc'` in an INTEGER column, counts as 0 where reading
/// the column would report it) and timestamp literals (stored text may use
/// `T` or a space). Columns the connector marks as compared otherwise
/// (no declared type, `NOCASE`/`RTRIM`, `DATETIME`, BLOB) are never
/// compared at the source.
#[derive(Debug, Default)]
pub struct SqliteSqlDialect;

/// DataFusion's unparser dialect (a unit struct without `Debug`), with
/// float literals spelled in scientific notation.
static UNPARSER: WithFunctions<SqliteDialect> = WithFunctions {
    inner: SqliteDialect {},
    functions: &[(FLOAT, spell_float as SpellFn)],
};

impl SqlDialect for SqliteSqlDialect {
    fn name(&self) -> &str {
        "sqlite"
    }

    /// SQLite names the schema on the index, not on the table.
    fn create_index(&self, table: &TableName, name: &str, columns: &[String]) -> Option<String> {
        Some(format!(
            "CREATE INDEX {}.{} ON {} ({})",
            self.quoted(&table.schema)?,
            self.quoted(name)?,
            self.quoted(&table.table)?,
            crate::dialect::quoted_list(self, columns)?
        ))
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
            full_joins: true,
            aggregates: true,
            window_functions: true,
        }
    }

    fn arithmetic_alike(&self, _: &DataType) -> bool {
        false
    }

    /// SQLite reads `9e999` as an infinity; it has no `NaN` (it stores
    /// NULL for one).
    fn nonfinite_float_literal(&self, value: f64) -> Option<String> {
        match value {
            v if v.is_nan() => None,
            v if v > 0.0 => Some("9e999".into()),
            _ => Some("-9e999".into()),
        }
    }

    fn supports_cast(&self, _: &DataType, _: &DataType) -> bool {
        false
    }

    fn prepare_expr(&self, expr: Expr, _: &DFSchema) -> datafusion::error::Result<Expr> {
        expr.transform(|e| {
            Ok(match e {
                Expr::Literal(ScalarValue::Date32(Some(days)), meta) => {
                    let text = ScalarValue::Date32(Some(days)).to_string();
                    Transformed::yes(Expr::Literal(ScalarValue::Utf8(Some(text)), meta))
                }
                other => Transformed::no(other),
            })
        })
        .map(|t| t.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{col, lit};

    #[test]
    fn dates_are_spelled_as_iso_text() -> datafusion::error::Result<()> {
        let d = SqliteSqlDialect;
        let expr = col("o_orderdate").lt(lit(ScalarValue::Date32(Some(9204))));
        let fixed = d.prepare_expr(expr, &DFSchema::empty())?;
        let sql = datafusion::sql::unparser::Unparser::new(d.unparser())
            .expr_to_sql(&fixed)?
            .to_string();
        assert_eq!(sql, "(`o_orderdate` < '1995-03-15')");
        Ok(())
    }
}
