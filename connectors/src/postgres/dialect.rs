//! PostgreSQL's spelling and capabilities.

use arrow::datatypes::DataType;
use datafusion::common::DFSchema;
use datafusion::logical_expr::expr::Like;
use datafusion::logical_expr::Expr;
use datafusion::scalar::ScalarValue;
use datafusion::sql::unparser::dialect::{Dialect, PostgreSqlDialect};

use crate::dialect::{
    compares_differently, compares_strings, default_supports_expr, is_string, Capabilities,
    SqlDialect,
};

/// PostgreSQL as a fragment target, spelled by DataFusion's
/// [`PostgreSqlDialect`] (double-quoted identifiers, `CAST(... AS DATE)`).
///
/// `LIKE` with a literal pattern is pushed (see `like_alike`).
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
        match expr {
            Expr::Like(like) => like_alike(like, schema) && self.supports_expr(&like.expr, schema),
            _ => !compares_strings(expr, schema, true) && default_supports_expr(self, expr, schema),
        }
    }

    fn averages_alike(&self, t: &DataType) -> bool {
        matches!(
            t,
            DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::Float64
        )
    }
}

/// Whether PostgreSQL matches `like` as DataFusion does: case-sensitive
/// `[NOT] LIKE` of a text value (not one compared unlike its text) with a
/// literal pattern, backslash the escape character in both. Not a pattern
/// ending in a lone backslash (PostgreSQL refuses it), not `ILIKE`
/// (case folding follows the server's locale).
fn like_alike(like: &Like, schema: &DFSchema) -> bool {
    let pattern_ok = match like.pattern.as_ref() {
        Expr::Literal(ScalarValue::Utf8(Some(p)) | ScalarValue::Utf8View(Some(p)), _) => {
            p.chars().rev().take_while(|c| *c == '\\').count() % 2 == 0
        }
        _ => false,
    };
    pattern_ok
        && !like.case_insensitive
        && matches!(like.escape_char, None | Some('\\'))
        && is_string(&like.expr, schema)
        && !compares_differently(&like.expr, schema)
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

    #[test]
    fn like_with_a_literal_pattern_is_pushed() -> datafusion::error::Result<()> {
        let schema = DFSchema::try_from(Schema::new(vec![
            Field::new("a", DataType::Utf8, true),
            Field::new("b", DataType::Utf8, true),
        ]))?;
        let d = PostgresSqlDialect;
        assert!(d.supports_expr(&col("a").like(lit("%x\\%")), &schema));
        assert!(d.supports_expr(&col("a").not_like(lit("a\\\\")), &schema));
        assert!(!d.supports_expr(&col("a").like(lit("ab\\")), &schema));
        assert!(!d.supports_expr(&col("a").like(col("b")), &schema));
        assert!(!d.supports_expr(&col("a").ilike(lit("x%")), &schema));
        Ok(())
    }

    #[test]
    fn columns_compared_unlike_their_text_are_never_compared() -> datafusion::error::Result<()> {
        let padded = Field::new("c", DataType::Utf8, true).with_metadata(
            [(
                crate::dialect::COMPARES_DIFFERENTLY.to_string(),
                "bpchar".to_string(),
            )]
            .into(),
        );
        let schema = DFSchema::try_from(Schema::new(vec![
            padded,
            Field::new("a", DataType::Utf8, true),
        ]))?;
        let d = PostgresSqlDialect;
        assert!(!d.supports_expr(&col("c").eq(lit("ab")), &schema));
        assert!(!d.supports_expr(&col("a").eq(col("c")), &schema));
        assert!(!d.supports_expr(&col("c").in_list(vec![lit("x")], false), &schema));
        assert!(!d.supports_expr(&col("c").between(lit("a"), lit("b")), &schema));
        assert!(d.supports_expr(&col("c").is_null().or(col("a").eq(lit("x"))), &schema));
        assert!(d.supports_expr(&col("c"), &schema));
        Ok(())
    }
}
