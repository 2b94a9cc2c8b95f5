//! MySQL's and MariaDB's spelling and capabilities.

use std::fmt::Write;
use std::sync::{Arc, LazyLock};

use arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::DFSchema;
use datafusion::logical_expr::expr::{InList, Like};
use datafusion::logical_expr::{Between, BinaryExpr, Expr, ExprSchemable, ScalarUDF};
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{self, CastKind, Ident, ObjectName};
use datafusion::sql::unparser::dialect::{Dialect, MySqlDialect};
use datafusion::sql::unparser::Unparser;

use crate::dialect::{
    default_arithmetic_alike, default_supports_expr, is_comparison, is_string, like_over_text,
    widening_cast, Capabilities, SqlDialect,
};
use crate::unparser::{mark, spell_float, Marker, SpellFn, WithFunctions, FLOAT};

/// MySQL and MariaDB as fragment targets, spelled by DataFusion's
/// [`MySqlDialect`] (backtick quoting).
///
/// Strings are compared as bytes: the default collations compare
/// case-insensitively and ignore trailing spaces (`'a' = 'A '` is true),
/// unlike DataFusion, so every operand of a string comparison (`=`, `<`,
/// `BETWEEN`, `IN`, `LIKE`) is spelled `CAST(CONVERT(x USING utf8mb4) AS
/// BINARY)`: the UTF-8 bytes Spar reads, compared bytewise as DataFusion
/// does, whatever the column's character set and collation. (MariaDB and
/// MySQL have no such no-pad binary collation in common.) `LIKE` is pushed
/// only for patterns without an unescaped `_`, which matches one byte of a
/// binary string, not one character, and always with `ESCAPE '\'`
/// (without it, `NO_BACKSLASH_ESCAPES` leaves `LIKE` no escape character).
///
/// Not pushed: strings as keys (`GROUP BY`, `DISTINCT`, join keys, `ORDER
/// BY`, `min`/`max`), which the source would group and sort by its
/// collation; `ILIKE`.
#[derive(Debug, Default)]
pub struct MySqlSqlDialect;

/// Name of the marker function for "compare as UTF-8 bytes".
const AS_BYTES: &str = "spar_mysql_utf8_bytes";

static AS_BYTES_UDF: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| Marker::udf(AS_BYTES));

/// DataFusion's unparser dialect with [`AS_BYTES`] spelled in.
static UNPARSER: WithFunctions<MySqlDialect> = WithFunctions {
    inner: MySqlDialect {},
    functions: &[
        (AS_BYTES, spell_as_bytes as SpellFn),
        (FLOAT, spell_float as SpellFn),
    ],
};

/// `CAST(CONVERT(x USING utf8mb4) AS BINARY)`.
fn spell_as_bytes(unparser: &Unparser, args: &[Expr]) -> datafusion::error::Result<ast::Expr> {
    let [arg] = args else {
        return datafusion::common::internal_err!("{AS_BYTES} takes one argument");
    };
    let converted = ast::Expr::Convert {
        is_try: false,
        expr: Box::new(unparser.expr_to_sql(arg)?),
        data_type: None,
        charset: Some(ObjectName::from(vec![Ident::new("utf8mb4")])),
        target_before_value: false,
        styles: vec![],
    };
    Ok(ast::Expr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(converted),
        data_type: ast::DataType::Binary(None),
        array: false,
        format: None,
    })
}

impl SqlDialect for MySqlSqlDialect {
    fn name(&self) -> &str {
        "mysql"
    }

    /// Not for strings: they are compared as `CAST(CONVERT(x USING
    /// utf8mb4) AS BINARY)`, which no index on the column serves.
    fn index_serves(&self, data_type: &DataType) -> bool {
        !matches!(
            data_type,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        )
    }

    fn unparser(&self) -> &dyn Dialect {
        &UNPARSER
    }

    /// A value without a backslash or NUL in standard quotes (the same with
    /// and without `NO_BACKSLASH_ESCAPES`); any other as its UTF-8 bytes in
    /// hex with the character set named, `_utf8mb4 X'…'`, which no SQL
    /// mode reads otherwise.
    fn string_literal(&self, value: &str) -> Option<String> {
        if !value.contains(['\\', '\0']) {
            return crate::spell::standard_string_literal(value);
        }
        let mut out = String::with_capacity(2 * value.len() + 12);
        out.push_str("_utf8mb4 X'");
        for byte in value.bytes() {
            let _ = write!(out, "{byte:02X}");
        }
        out.push('\'');
        Some(out)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            filter: true,
            limit: true,
            order_by: true,
            joins: true,
            full_joins: false,
            aggregates: true,
            window_functions: true,
        }
    }

    fn supports_expr(&self, expr: &Expr, schema: &DFSchema) -> bool {
        match expr {
            Expr::Like(like) => like_alike(like, schema) && self.supports_expr(&like.expr, schema),
            _ => default_supports_expr(self, expr, schema),
        }
    }

    fn keys_alike(&self, e: &Expr, schema: &DFSchema) -> bool {
        !is_string(e, schema)
    }

    /// Every operand of a string comparison compared as UTF-8 bytes (see
    /// the type's documentation); `LIKE` with its escape character.
    fn prepare_expr(&self, expr: Expr, schema: &DFSchema) -> datafusion::error::Result<Expr> {
        // An operand whose type is unknown cannot be spelled safely: the
        // error keeps the expression local.
        let text = |e: &Expr| -> datafusion::error::Result<bool> {
            Ok(matches!(
                e.get_type(schema)?,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ))
        };
        let bytes = |e: Box<Expr>| Box::new(mark(&AS_BYTES_UDF, *e));
        expr.transform_up(|e| {
            Ok(match e {
                Expr::BinaryExpr(BinaryExpr { left, op, right })
                    if is_comparison(op) && (text(&left)? || text(&right)?) =>
                {
                    Transformed::yes(Expr::BinaryExpr(BinaryExpr {
                        left: bytes(left),
                        op,
                        right: bytes(right),
                    }))
                }
                Expr::Between(b) if text(&b.expr)? => Transformed::yes(Expr::Between(Between {
                    expr: bytes(b.expr),
                    negated: b.negated,
                    low: bytes(b.low),
                    high: bytes(b.high),
                })),
                Expr::InList(list) if text(&list.expr)? => Transformed::yes(Expr::InList(InList {
                    expr: bytes(list.expr),
                    list: list
                        .list
                        .into_iter()
                        .map(|e| mark(&AS_BYTES_UDF, e))
                        .collect(),
                    negated: list.negated,
                })),
                Expr::Like(like) if !like.case_insensitive && text(&like.expr)? => {
                    Transformed::yes(Expr::Like(Like {
                        expr: bytes(like.expr),
                        pattern: bytes(like.pattern),
                        escape_char: Some(like.escape_char.unwrap_or('\\')),
                        ..like
                    }))
                }
                other => Transformed::no(other),
            })
        })
        .map(|t| t.data)
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

/// Whether MySQL matches `like`, spelled over bytes with `ESCAPE '\'`, as
/// DataFusion does: case-sensitive `[NOT] LIKE` of a string (not one
/// compared unlike its text) with a literal pattern whose escape
/// character is backslash, with no unescaped `_` (one byte, not one
/// character, in a binary string) and not ending in a lone backslash.
fn like_alike(like: &Like, schema: &DFSchema) -> bool {
    let pattern_ok = match like.pattern.as_ref() {
        Expr::Literal(ScalarValue::Utf8(Some(p)) | ScalarValue::Utf8View(Some(p)), _) => {
            let mut escaped = false;
            let mut ok = true;
            for c in p.chars() {
                match (escaped, c) {
                    (false, '\\') => escaped = true,
                    (false, '_') => ok = false,
                    _ => escaped = false,
                }
            }
            ok && !escaped
        }
        _ => false,
    };
    !like.case_insensitive && pattern_ok && like_over_text(like, schema)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::{equals_alike, orders_alike};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::logical_expr::{col, lit};

    fn schema() -> DFSchema {
        DFSchema::try_from(Schema::new(vec![
            Field::new("a", DataType::Utf8, true),
            Field::new("b", DataType::Utf8, true),
            Field::new("n", DataType::Int32, true),
            Field::new("m", DataType::Int32, true),
        ]))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn spelled(expr: Expr) -> datafusion::error::Result<String> {
        let d = MySqlSqlDialect;
        let prepared = d.prepare_expr(expr, &schema())?;
        Ok(Unparser::new(d.unparser())
            .expr_to_sql(&prepared)?
            .to_string())
    }

    #[test]
    fn string_comparisons_are_pushed_as_bytes() -> datafusion::error::Result<()> {
        let d = MySqlSqlDialect;
        let schema = schema();
        assert!(d.supports_expr(&col("a").eq(col("b")), &schema));
        assert!(d.supports_expr(&col("a").eq(lit("x")), &schema));
        assert!(d.supports_expr(&col("n").gt(lit(1)).and(col("a").lt(col("b"))), &schema));
        assert!(d.supports_expr(&col("a").in_list(vec![lit("x")], false), &schema));
        assert_eq!(
            spelled(col("a").eq(lit("x")).and(col("n").eq(lit(1))))?,
            "((CAST(CONVERT(`a` USING utf8mb4) AS BINARY) = CAST(CONVERT('x' USING utf8mb4) AS BINARY)) AND (`n` = 1))"
        );
        assert_eq!(
            spelled(col("a").between(lit("p"), col("b")))?,
            "(CAST(CONVERT(`a` USING utf8mb4) AS BINARY) BETWEEN CAST(CONVERT('p' USING utf8mb4) AS BINARY) AND CAST(CONVERT(`b` USING utf8mb4) AS BINARY))"
        );
        assert_eq!(
            spelled(col("a").in_list(vec![lit("x"), lit("y")], true))?,
            "CAST(CONVERT(`a` USING utf8mb4) AS BINARY) NOT IN (CAST(CONVERT('x' USING utf8mb4) AS BINARY), CAST(CONVERT('y' USING utf8mb4) AS BINARY))"
        );
        // Prepared twice (a filter seen again), still one conversion.
        let once = d.prepare_expr(col("a").eq(lit("x")), &schema)?;
        assert_eq!(d.prepare_expr(once.clone(), &schema)?, once);
        Ok(())
    }

    #[test]
    fn strings_are_never_keys() -> datafusion::error::Result<()> {
        use datafusion::logical_expr::{case, when};
        let d = MySqlSqlDialect;
        let schema = schema();
        assert!(!equals_alike(&d, &col("a"), &schema));
        assert!(!orders_alike(&d, &col("a"), &schema));
        assert!(equals_alike(&d, &col("n"), &schema));
        assert!(orders_alike(&d, &col("n"), &schema));
        // `CASE a WHEN 'x'` compares as written; a searched CASE is fixed.
        assert!(!d.supports_expr(&case(col("a")).when(lit("x"), lit(1)).end()?, &schema));
        assert!(d.supports_expr(&case(col("n")).when(lit(1), lit("x")).end()?, &schema));
        assert!(d.supports_expr(&when(col("a").eq(lit("x")), lit(1)).end()?, &schema));
        Ok(())
    }

    #[test]
    fn like_without_single_character_wildcards() -> datafusion::error::Result<()> {
        let d = MySqlSqlDialect;
        let schema = schema();
        assert!(d.supports_expr(&col("a").like(lit("%BRASS")), &schema));
        assert!(d.supports_expr(&col("a").not_like(lit("a\\_b%")), &schema));
        assert!(!d.supports_expr(&col("a").like(lit("a_b")), &schema));
        assert!(!d.supports_expr(&col("a").like(lit("ab\\")), &schema));
        assert!(!d.supports_expr(&col("a").like(col("b")), &schema));
        assert!(!d.supports_expr(&col("a").ilike(lit("x%")), &schema));
        assert_eq!(
            spelled(col("a").like(lit("%x\\%")))?,
            "CAST(CONVERT(`a` USING utf8mb4) AS BINARY) LIKE CAST(CONVERT('%x\\%' USING utf8mb4) AS BINARY) ESCAPE '\\'"
        );
        Ok(())
    }
}
