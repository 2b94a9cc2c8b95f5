//! `PushDownFragments`: replaces scans of source tables by fragments.
//!
//! Runs after DataFusion's own rules, so projections, filters and limits
//! have already been pushed into each `TableScan`. A scan of a
//! [`SourceTable`] becomes a [`Fragment`] whose SQL selects those columns,
//! with those filters and that limit, from the source's own table.
//!
//! ```text
//! Limit: fetch=10                          Limit: fetch=10
//!   TableScan: sales.main.orders     ==>     Fragment: source=sales
//!     projection=[o_orderkey]                  sql=SELECT `o_orderkey` FROM `main`.`orders`
//!     filters=[o_totalprice > 100]                 WHERE `o_totalprice` > 100 LIMIT 10
//!     fetch=10
//! ```
//!
//! (This is the one-table seed of fragment pushdown; joins, aggregates and
//! sorts inside one source are the next step.)

use std::sync::Arc;

use datafusion::common::tree_node::Transformed;
use datafusion::datasource::DefaultTableSource;
use datafusion::error::Result;
use datafusion::logical_expr::{Extension, FetchType, Limit, LogicalPlan, SkipType, TableSource};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use crate::fragment::Fragment;
use crate::source_table::SourceTable;

/// Replaces each scan of a [`SourceTable`] by a [`crate::Fragment`].
#[derive(Debug, Default)]
pub struct PushDownFragments;

impl PushDownFragments {
    /// The rule.
    pub fn new() -> Self {
        Self
    }
}

impl OptimizerRule for PushDownFragments {
    fn name(&self) -> &str {
        "push_down_fragments"
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        plan.transform_up_with_subqueries(|node| match &node {
            LogicalPlan::TableScan(scan) => {
                let Some(table) = source_table(&scan.source) else {
                    return Ok(Transformed::no(node));
                };
                // Every filter in the scan was accepted as exact by
                // `SourceTable::supports_filters_pushdown`, so all of them
                // go into the fragment, and so may the limit.
                let fragment = table.fragment(
                    node.clone(),
                    scan.projection.as_ref(),
                    &scan.filters,
                    scan.fetch,
                )?;
                Ok(Transformed::yes(LogicalPlan::Extension(Extension {
                    node: Arc::new(fragment),
                })))
            }
            LogicalPlan::Limit(limit) => push_limit(limit).map(|pushed| match pushed {
                Some(plan) => Transformed::yes(plan),
                None => Transformed::no(node),
            }),
            _ => Ok(Transformed::no(node)),
        })
    }
}

/// The source table behind a scan's table source, if it is one.
fn source_table(source: &Arc<dyn TableSource>) -> Option<&SourceTable> {
    let provider = source.as_ref().downcast_ref::<DefaultTableSource>()?;
    provider
        .table_provider
        .as_ref()
        .downcast_ref::<SourceTable>()
}

/// A limit over a one-table fragment also goes into the fragment's SQL
/// (the `Limit` stays: it is cheap and keeps `OFFSET` local). DataFusion
/// pushes limits into scans itself, but only in a later optimizer pass than
/// the one in which this rule has already replaced the scan.
fn push_limit(limit: &Limit) -> Result<Option<LogicalPlan>> {
    let LogicalPlan::Extension(ext) = limit.input.as_ref() else {
        return Ok(None);
    };
    let Some(fragment) = ext.node.as_any().downcast_ref::<Fragment>() else {
        return Ok(None);
    };
    let LogicalPlan::TableScan(scan) = &fragment.plan else {
        return Ok(None);
    };
    let Some(table) = source_table(&scan.source) else {
        return Ok(None);
    };
    let (SkipType::Literal(skip), FetchType::Literal(Some(fetch))) =
        (limit.get_skip_type()?, limit.get_fetch_type()?)
    else {
        return Ok(None);
    };
    let rows = skip.saturating_add(fetch);
    if !table.dialect().capabilities().limit || scan.fetch.is_some_and(|f| f <= rows) {
        return Ok(None);
    }
    let mut limited = scan.clone();
    limited.fetch = Some(rows);
    let fragment = table.fragment(
        LogicalPlan::TableScan(limited.clone()),
        limited.projection.as_ref(),
        &limited.filters,
        limited.fetch,
    )?;
    let input = Arc::new(LogicalPlan::Extension(Extension {
        node: Arc::new(fragment),
    }));
    Ok(Some(LogicalPlan::Limit(Limit {
        skip: limit.skip.clone(),
        fetch: limit.fetch.clone(),
        input,
    })))
}

#[cfg(test)]
mod tests {
    use crate::test_util::{optimized_plan, physical_plan};

    #[tokio::test]
    async fn projection_filter_and_limit_go_into_the_sql() {
        let plan = optimized_plan(
            "SELECT o_orderkey, o_totalprice FROM sales.main.orders \
             WHERE o_orderdate < DATE '1995-03-15' AND o_totalprice > 100.5 LIMIT 10",
        )
        .await;
        insta::assert_snapshot!(plan);
    }

    #[tokio::test]
    async fn unsupported_filters_stay_local() {
        let plan = optimized_plan(
            "SELECT o_orderkey FROM sales.main.orders WHERE o_comment LIKE '%x%' AND o_orderkey IN (1, 2, 3)",
        )
        .await;
        insta::assert_snapshot!(plan);
    }

    #[tokio::test]
    async fn limit_with_offset_reads_both() {
        let plan =
            optimized_plan("SELECT o_orderkey FROM sales.main.orders LIMIT 5 OFFSET 20").await;
        insta::assert_snapshot!(plan);
    }

    #[tokio::test]
    async fn counting_reads_no_columns() {
        let plan =
            optimized_plan("SELECT count(*) FROM sales.main.orders WHERE o_orderkey > 5").await;
        insta::assert_snapshot!(plan);
    }

    #[tokio::test]
    async fn identifiers_are_quoted() {
        let plan = optimized_plan(r#"SELECT "we`ird" FROM sales.main."odd table""#).await;
        insta::assert_snapshot!(plan);
    }

    #[tokio::test]
    async fn physical_plan_runs_the_fragment() {
        let plan =
            physical_plan("SELECT o_orderkey FROM sales.main.orders WHERE o_orderkey = 7").await;
        insta::assert_snapshot!(plan);
    }
}
