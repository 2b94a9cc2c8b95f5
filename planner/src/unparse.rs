//! SQL for a fragment, in its source's dialect.

use datafusion::error::Result;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::unparser::Unparser;
use spar_connectors::spell::spell_statement;
use spar_connectors::SqlDialect;

/// Spells `plan` (whose table scans carry the source's own table names) as
/// one SQL statement for `dialect`'s source. Every literal and identifier
/// is spelled by [`spell_statement`] (identifiers always quoted), so no
/// value and no name can change the statement.
///
/// Not in the unparser's "pretty" mode: it drops the parentheses around
/// each table-scan filter before joining them with `AND`, so
/// `a = 1 OR a = 2` and `b > 0` became `a = 1 OR a = 2 AND b > 0`.
/// Every sub-expression is parenthesized instead.
pub fn plan_to_source_sql(plan: &LogicalPlan, dialect: &dyn SqlDialect) -> Result<String> {
    let unparser = Unparser::new(dialect.unparser());
    spell_statement(unparser.plan_to_sql(plan)?, dialect)
}
