//! `CHAR(n)` columns compared as their databases compare them.
//!
//! A `CHAR(n)` value is read without its padding (see
//! [`spar_connectors::dialect::PADDED_CHAR`]). PostgreSQL, MySQL and
//! MariaDB also compare it without trailing spaces on the other side when
//! that side is a string literal (PAD SPACE): `c = 'AB  '` holds where `c`
//! is `AB`. [`PadSpace`] trims the trailing spaces of every string literal
//! compared with such a column (`=`, `<>`, `<`, `<=`, `>`, `>=`, `IN`,
//! `BETWEEN`, `CASE c WHEN`), so that DataFusion's comparison of the read
//! value gives the database's answer, and the SQL a source receives says
//! the same. It runs as an analyzer rule, after type coercion and before
//! any filter reaches a source (prepared statements' parameters are
//! literals by then), and again as an optimizer rule after DataFusion's
//! own, whose simplifications make new comparisons.

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr::{Case, InList};
use datafusion::logical_expr::{Between, BinaryExpr, Expr, LogicalPlan};
use datafusion::optimizer::{AnalyzerRule, OptimizerConfig, OptimizerRule};
use datafusion::scalar::ScalarValue;
use spar_connectors::dialect::{is_comparison, is_padded_char};

/// The analyzer rule of the module documentation.
#[derive(Debug, Default)]
pub struct PadSpace;

impl PadSpace {
    fn trim_plan(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
        plan.transform_up_with_subqueries(|node| {
            let mut schema = DFSchema::empty();
            for input in node.inputs() {
                schema.merge(input.schema());
            }
            if let LogicalPlan::TableScan(scan) = &node {
                // Its filters, typed by the table's columns.
                if let Ok(columns) = DFSchema::try_from_qualified_schema(
                    scan.table_name.clone(),
                    &scan.source.schema(),
                ) {
                    schema.merge(&columns);
                }
            }
            node.map_expressions(|e| e.transform_up(|e| Ok(trim_compared(e, &schema))))
        })
    }
}

impl AnalyzerRule for PadSpace {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        Self::trim_plan(plan).map(|t| t.data)
    }

    fn name(&self) -> &str {
        "spar_pad_space"
    }
}

/// Also an optimizer rule, after DataFusion's own: simplification makes
/// new comparisons (`CASE WHEN true THEN c END = 'x '` becomes `c = 'x '`),
/// including filters already in a scan, which a source will receive.
impl OptimizerRule for PadSpace {
    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        Self::trim_plan(plan)
    }

    fn name(&self) -> &str {
        "spar_pad_space"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }
}

/// `e` with the string literals it compares with a `CHAR(n)` value
/// trimmed of trailing spaces.
fn trim_compared(mut e: Expr, schema: &DFSchema) -> Transformed<Expr> {
    let padded = |e: &Expr| is_padded_char(e, schema);
    let changed = match &mut e {
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if is_comparison(*op) && (padded(left) || padded(right)) =>
        {
            trim(left) | trim(right)
        }
        Expr::InList(InList { expr, list, .. }) if padded(expr) => {
            list.iter_mut().fold(false, |changed, v| trim(v) | changed)
        }
        Expr::Between(Between {
            expr, low, high, ..
        }) if padded(expr) => trim(low) | trim(high),
        Expr::Case(Case {
            expr: Some(expr),
            when_then_expr,
            ..
        }) if padded(expr) => when_then_expr
            .iter_mut()
            .fold(false, |changed, (when, _)| trim(when) | changed),
        _ => false,
    };
    Transformed::new_transformed(e, changed)
}

/// Trims the trailing spaces of `e` if it is a string literal; whether it
/// changed.
fn trim(e: &mut Expr) -> bool {
    let Expr::Literal(value, _) = e else {
        return false;
    };
    let (ScalarValue::Utf8(Some(s))
    | ScalarValue::LargeUtf8(Some(s))
    | ScalarValue::Utf8View(Some(s))) = value
    else {
        return false;
    };
    let kept = s.trim_end_matches(' ').len();
    let changed = kept < s.len();
    s.truncate(kept);
    changed
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::logical_expr::{col, lit, LogicalPlanBuilder};
    use datafusion::scalar::ScalarValue;
    use spar_connectors::dialect::PADDED_CHAR;

    use super::*;

    fn plan(filter: Expr) -> Result<LogicalPlan> {
        let schema = Schema::new(vec![
            Field::new("c", DataType::Utf8, true)
                .with_metadata([(PADDED_CHAR.to_string(), "bpchar".to_string())].into()),
            Field::new("v", DataType::Utf8, true),
        ]);
        let source = datafusion::logical_expr::logical_plan::builder::LogicalTableSource::new(
            Arc::new(schema),
        );
        LogicalPlanBuilder::scan("t", Arc::new(source), None)?
            .filter(filter)?
            .build()
    }

    fn predicate(plan: &LogicalPlan) -> String {
        match plan {
            LogicalPlan::Filter(f) => f.predicate.to_string(),
            other => panic!("not a filter: {other}"),
        }
    }

    #[test]
    fn literals_compared_with_char_columns_lose_trailing_spaces() -> Result<()> {
        let rule = PadSpace;
        let options = ConfigOptions::default();
        let cases = [
            (col("c").eq(lit("AB  ")), "t.c = Utf8(\"AB\")"),
            (lit(" AB ").lt_eq(col("c")), "Utf8(\" AB\") <= t.c"),
            (
                col("c").in_list(vec![lit("x "), lit("y")], true),
                "t.c NOT IN ([Utf8(\"x\"), Utf8(\"y\")])",
            ),
            (
                col("c").between(lit("a "), lit("b\t ")),
                "t.c BETWEEN Utf8(\"a\") AND Utf8(\"b\t\")",
            ),
            // Not a CHAR(n) column, not a comparison: unchanged.
            (col("v").eq(lit("AB  ")), "t.v = Utf8(\"AB  \")"),
            (col("c").like(lit("AB  ")), "t.c LIKE Utf8(\"AB  \")"),
        ];
        for (filter, expected) in cases {
            let analyzed = rule.analyze(plan(filter)?, &options)?;
            assert_eq!(predicate(&analyzed), expected);
        }
        // A NULL literal stays NULL.
        let analyzed = rule.analyze(plan(col("c").eq(lit(ScalarValue::Utf8(None))))?, &options)?;
        assert_eq!(predicate(&analyzed), "t.c = Utf8(NULL)");
        Ok(())
    }
}
