//! PostgreSQL's spelling and capabilities.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::DFSchema;
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::logical_expr::expr::{AggregateFunction, Like, ScalarFunction};
use datafusion::logical_expr::{lit, Cast, Expr, ExprSchemable, ScalarUDF};
use datafusion::scalar::ScalarValue;
use datafusion::sql::unparser::dialect::{Dialect, PostgreSqlDialect};

use crate::dialect::{
    compares_differently, compares_strings, default_supports_expr, is_padded_char, is_string,
    like_over_text, Capabilities, SqlDialect,
};
use crate::metadata::TableName;
use crate::unparser::{spell_float, SourceOnly, SpellFn, WithFunctions, FLOAT};

/// PostgreSQL as a fragment target, spelled by DataFusion's
/// [`PostgreSqlDialect`] (double-quoted identifiers, `CAST(... AS DATE)`).
///
/// `LIKE` with a literal pattern is pushed (see `like_alike`), and `ILIKE`
/// where every pattern character folds alike (see `folds_alike`).
///
/// Not pushed: ordering comparisons (`<`, `>`, `BETWEEN`) on strings,
/// because PostgreSQL orders text by the column's collation (often not
/// bytewise, as DataFusion does); equality is pushed (default collations
/// are deterministic).
///
/// `AVG` is pushed over integers (PostgreSQL's `numeric` result is read
/// as the nearest `Float64`, DataFusion's type) and over decimals, spelled
/// so that PostgreSQL computes DataFusion's answer exactly: DataFusion's mean of `decimal(p, s)` is
/// the quotient truncated toward zero at scale `t = min(s + 4, 38)`, which
/// is `div(sum(x) * 10^t, count(x)) * 10^-t` (`div` is numeric's exact
/// truncating division; PostgreSQL's own `avg` rounds at another scale).
#[derive(Debug, Default)]
pub struct PostgresSqlDialect;

/// DataFusion's unparser dialect (a unit struct without `Debug`), with
/// float literals spelled in scientific notation.
static UNPARSER: WithFunctions<PostgreSqlDialect> = WithFunctions {
    inner: PostgreSqlDialect {},
    functions: &[(FLOAT, spell_float as SpellFn)],
};

impl SqlDialect for PostgresSqlDialect {
    fn name(&self) -> &str {
        "postgres"
    }

    /// `CONCURRENTLY`, so that building it does not block the table's
    /// writers.
    fn create_index(&self, table: &TableName, name: &str, columns: &[String]) -> Option<String> {
        Some(format!(
            "CREATE INDEX CONCURRENTLY {} ON {}.{} ({})",
            self.quoted(name)?,
            self.quoted(&table.schema)?,
            self.quoted(&table.table)?,
            crate::dialect::quoted_list(self, columns)?
        ))
    }

    fn unparser(&self) -> &dyn Dialect {
        &UNPARSER
    }

    /// A value without a backslash in standard quotes (the same in every
    /// setting of `standard_conforming_strings`); one with a backslash as an
    /// escape string, `E'…'`, where each backslash and quote is doubled
    /// (read the same whatever that setting). PostgreSQL text has no NUL.
    fn string_literal(&self, value: &str) -> Option<String> {
        if !value.contains('\\') {
            return crate::spell::standard_string_literal(value);
        }
        if value.contains('\0') {
            return None;
        }
        Some(crate::spell::enclose("E'", value, '\'', |c| {
            matches!(c, '\'' | '\\')
        }))
    }

    /// `'NaN'::float8`, `'Infinity'::float8`, `'-Infinity'::float8`
    /// (PostgreSQL's float types compare `NaN` equal to itself and above
    /// every number, as DataFusion does).
    fn nonfinite_float_literal(&self, value: f64) -> Option<String> {
        Some(
            match value {
                v if v.is_nan() => "'NaN'::float8",
                v if v > 0.0 => "'Infinity'::float8",
                _ => "'-Infinity'::float8",
            }
            .to_string(),
        )
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

    fn supports_expr(&self, expr: &Expr, schema: &DFSchema) -> bool {
        match expr {
            Expr::Like(like) => like_alike(like, schema) && self.supports_expr(&like.expr, schema),
            Expr::ScalarFunction(f) if f.name() == "substr" => {
                substr_alike(&f.args, schema)
                    && f.args
                        .first()
                        .is_some_and(|e| self.supports_expr(e, schema))
            }
            _ => !compares_strings(expr, schema, true) && default_supports_expr(self, expr, schema),
        }
    }

    /// Not `float8`: PostgreSQL's sum inside `avg` raises an error where
    /// DataFusion's overflows to an infinity.
    fn averages_alike(&self, t: &DataType) -> bool {
        matches!(
            t,
            DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::Decimal128(_, _)
        )
    }

    /// `avg` of decimals as an exact truncating division (see the type's
    /// documentation); a `char(n)` value matched by `LIKE` as its text
    /// (PostgreSQL matches `char(n)` with its padding: `'ab'::char(4) LIKE
    /// '%b'` is false there, but Spar reads the value as `ab`).
    fn prepare_expr(&self, expr: Expr, schema: &DFSchema) -> datafusion::error::Result<Expr> {
        expr.transform_up(|e| match e {
            Expr::Like(mut like) => {
                let cast = as_text(&mut like.expr, schema);
                Ok(Transformed::new_transformed(Expr::Like(like), cast))
            }
            // A CASE mixing char(n) with text is char(n) in PostgreSQL,
            // which pads the text (and Spar then reads it without its
            // trailing spaces): its char(n) results are cast to text.
            Expr::Case(mut case) => {
                let results = case.when_then_expr.iter_mut().map(|(_, then)| then);
                let cast = results
                    .chain(case.else_expr.iter_mut())
                    .fold(false, |cast, e| as_text(e, schema) | cast);
                Ok(Transformed::new_transformed(Expr::Case(case), cast))
            }
            Expr::AggregateFunction(agg) if agg.func.name() == "avg" => decimal_avg(&agg, schema)
                .map(|exact| match exact {
                    Some(exact) => Transformed::yes(exact),
                    None => Transformed::no(Expr::AggregateFunction(agg)),
                }),
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
    }
}

/// Casts `e` to text if it is a `char(n)` value (PostgreSQL's text is
/// the value without its padding); whether it did.
fn as_text(e: &mut Box<Expr>, schema: &DFSchema) -> bool {
    if !is_padded_char(e, schema) {
        return false;
    }
    let value = std::mem::replace(e.as_mut(), lit(ScalarValue::Null));
    **e = Expr::Cast(Cast::new(Box::new(value), DataType::Utf8));
    true
}

/// PostgreSQL's `div(numeric, numeric)`: the quotient truncated toward
/// zero.
static DIV: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| SourceOnly::udf("div", 2, DataType::Decimal128(38, 0)));

/// `avg(x)` over `decimal(p, s)` as `div(sum(x) * 10^t, count(x)) *
/// 10^-t` with `t = min(s + 4, 38)`, or `None` for any other `avg`.
fn decimal_avg(
    agg: &AggregateFunction,
    schema: &DFSchema,
) -> datafusion::error::Result<Option<Expr>> {
    let params = &agg.params;
    let [arg] = params.args.as_slice() else {
        return Ok(None);
    };
    if params.distinct
        || params.filter.is_some()
        || !params.order_by.is_empty()
        || params.null_treatment.is_some()
    {
        return Ok(None);
    }
    let DataType::Decimal128(_, scale) = arg.get_type(schema)? else {
        return Ok(None);
    };
    let target = scale.saturating_add(4).clamp(0, 38);
    let Some(power) = 10_i128.checked_pow(target.unsigned_abs().into()) else {
        return Ok(None);
    };
    let aggregate = |f| {
        Expr::AggregateFunction(AggregateFunction::new_udf(
            f,
            vec![arg.clone()],
            false,
            None,
            vec![],
            None,
        ))
    };
    let scaled_sum = aggregate(sum_udaf()) * lit(ScalarValue::Decimal128(Some(power), 38, 0));
    let quotient = Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::clone(&DIV),
        vec![scaled_sum, aggregate(count_udaf())],
    ));
    let unit = lit(ScalarValue::Decimal128(Some(1), 38, target));
    Ok(Some(quotient * unit))
}

/// Whether PostgreSQL's `substr(s, start[, length])` gives DataFusion's
/// answer: both count characters from 1 and cut the range
/// `[start, start + length)` to the string; with a literal `start` of at
/// least 1 and a literal `length` of at least 0 (negative lengths are an
/// error in PostgreSQL) over a text value read as PostgreSQL holds it
/// (`char(n)` too: PostgreSQL drops its padding first, as Spar does when
/// reading it).
fn substr_alike(args: &[Expr], schema: &DFSchema) -> bool {
    let positive = |e: &Expr, least: i64| matches!(e, Expr::Literal(ScalarValue::Int64(Some(n)), _) if *n >= least && *n <= i64::from(i32::MAX));
    match args {
        [s, start] => {
            is_string(s, schema) && !compares_differently(s, schema) && positive(start, 1)
        }
        [s, start, length] => {
            is_string(s, schema)
                && !compares_differently(s, schema)
                && positive(start, 1)
                && positive(length, 0)
        }
        _ => false,
    }
}

/// Whether PostgreSQL matches `like` as DataFusion does: `[NOT] LIKE` of
/// a text value (not one compared unlike its text) with a literal pattern,
/// backslash the escape character in both. Not a pattern ending in a lone
/// backslash (PostgreSQL refuses it). `[NOT] ILIKE` only where case folding
/// cannot differ (PostgreSQL folds by the server's locale): see
/// `folds_alike`.
fn like_alike(like: &Like, schema: &DFSchema) -> bool {
    let pattern_ok = match like.pattern.as_ref() {
        Expr::Literal(ScalarValue::Utf8(Some(p)) | ScalarValue::Utf8View(Some(p)), _) => {
            p.chars().rev().take_while(|c| *c == '\\').count() % 2 == 0
                && (!like.case_insensitive || p.chars().all(folds_alike))
        }
        _ => false,
    };
    pattern_ok && like_over_text(like, schema)
}

/// Whether `ILIKE` matches pattern character `c` against the same
/// characters in PostgreSQL, whatever the database's locale, as in
/// DataFusion (Unicode simple case folding): ASCII characters other than
/// the letters `i` (Turkish locales lower `I` to `ı`, and `İ` to `i`), `k`
/// and `s` (DataFusion also matches the KELVIN SIGN and LONG S to them).
fn folds_alike(c: char) -> bool {
    c.is_ascii() && !matches!(c.to_ascii_lowercase(), 'i' | 'k' | 's')
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
        // ILIKE only where every pattern character folds alike.
        assert!(d.supports_expr(&col("a").ilike(lit("%ab_\\%9%")), &schema));
        assert!(d.supports_expr(&col("a").ilike(lit("x%")), &schema));
        for differs in ["%k%", "S%", "%i", "é%", "%ǅ%"] {
            assert!(
                !d.supports_expr(&col("a").ilike(lit(differs)), &schema),
                "{differs}"
            );
        }
        Ok(())
    }

    fn padded(name: &str) -> Field {
        Field::new(name, DataType::Utf8, true).with_metadata(
            [(
                crate::dialect::PADDED_CHAR.to_string(),
                "bpchar".to_string(),
            )]
            .into(),
        )
    }

    #[test]
    fn char_columns_compare_at_the_source_and_like_matches_their_text(
    ) -> datafusion::error::Result<()> {
        let schema = DFSchema::try_from(Schema::new(vec![
            padded("c"),
            Field::new("a", DataType::Utf8, true),
        ]))?;
        let d = PostgresSqlDialect;
        assert!(d.supports_expr(&col("c").eq(lit("ab")), &schema));
        assert!(d.supports_expr(&col("a").eq(col("c")), &schema));
        assert!(d.supports_expr(&col("c").in_list(vec![lit("x")], false), &schema));
        // Ordering follows the database's collation, as for any text.
        assert!(!d.supports_expr(&col("c").lt(lit("b")), &schema));
        let like = col("c").like(lit("%b"));
        assert!(d.supports_expr(&like, &schema));
        let spelled = datafusion::sql::unparser::Unparser::new(d.unparser())
            .expr_to_sql(&d.prepare_expr(like, &schema)?)?
            .to_string();
        assert_eq!(spelled, "CAST(\"c\" AS VARCHAR) LIKE '%b'");
        Ok(())
    }

    #[test]
    fn columns_compared_unlike_their_text_are_never_compared() -> datafusion::error::Result<()> {
        let uuid = Field::new("c", DataType::Utf8, true).with_metadata(
            [(
                crate::dialect::COMPARES_DIFFERENTLY.to_string(),
                "uuid".to_string(),
            )]
            .into(),
        );
        let schema = DFSchema::try_from(Schema::new(vec![
            uuid,
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

    #[test]
    fn decimal_avg_is_an_exact_truncating_division() -> datafusion::error::Result<()> {
        use datafusion::functions_aggregate::average::avg;
        let schema = DFSchema::try_from(Schema::new(vec![
            Field::new("q", DataType::Decimal128(15, 2), true),
            Field::new("n", DataType::Int64, true),
        ]))?;
        let d = PostgresSqlDialect;
        let spell = |e: Expr| -> datafusion::error::Result<String> {
            let prepared = d.prepare_expr(e, &schema)?;
            Ok(datafusion::sql::unparser::Unparser::new(d.unparser())
                .expr_to_sql(&prepared)?
                .to_string())
        };
        assert!(d.supports_aggregate(&avg(col("q")), &schema));
        assert_eq!(
            spell(avg(col("q")))?,
            "(div((sum(\"q\") * 1000000), count(\"q\")) * 0.000001)"
        );
        // Other averages are PostgreSQL's own.
        assert_eq!(spell(avg(col("n")))?, "avg(\"n\")");
        Ok(())
    }

    #[test]
    fn substr_from_a_positive_literal_start() -> datafusion::error::Result<()> {
        use datafusion::functions::unicode::expr_fn::substr;
        let uuid = Field::new("c", DataType::Utf8, true).with_metadata(
            [(
                crate::dialect::COMPARES_DIFFERENTLY.to_string(),
                "uuid".to_string(),
            )]
            .into(),
        );
        let schema = DFSchema::try_from(Schema::new(vec![
            Field::new("a", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            uuid,
        ]))?;
        let d = PostgresSqlDialect;
        let two = |s: Expr, start: Expr, len: Expr| {
            Expr::ScalarFunction(datafusion::logical_expr::expr::ScalarFunction::new_udf(
                datafusion::functions::unicode::substr(),
                vec![s, start, len],
            ))
        };
        assert!(d.supports_expr(&substr(col("a"), lit(1_i64)), &schema));
        assert!(d.supports_expr(
            &two(col("a"), lit(1_i64), lit(2_i64)).in_list(vec![lit("13")], false),
            &schema
        ));
        assert!(!d.supports_expr(&two(col("a"), lit(0_i64), lit(2_i64)), &schema));
        assert!(!d.supports_expr(&two(col("a"), lit(1_i64), lit(-1_i64)), &schema));
        assert!(!d.supports_expr(&two(col("a"), col("n"), lit(2_i64)), &schema));
        assert!(!d.supports_expr(&two(col("c"), lit(1_i64), lit(2_i64)), &schema));
        Ok(())
    }
}
