//! `PushDownFragments`: cuts the plan into fragments, each the largest
//! sub-plan one source can run whole.
//!
//! Runs after DataFusion's own rules, so projections, filters and limits
//! have already been pushed into each `TableScan`. Bottom-up: a scan of a
//! [`SourceTable`] becomes a [`Fragment`]; then a node whose inputs are all
//! fragments of one source, and which that source's [`SqlDialect`] can run
//! with DataFusion's semantics, joins them into one fragment. What a source
//! cannot run stays local, above its fragments: pushdown never makes a
//! query fail or change its answer.
//!
//! ```text
//! Aggregate: count(*)                           Fragment: source=crm
//!   Join: o.custkey = c.custkey                   sql=SELECT count(*) FROM "public"."orders"
//!     TableScan: crm.public.orders     ==>            JOIN "public"."customer" ON ...
//!       filters=[o_total > 10]                        WHERE "orders"."o_total" > 10
//!     TableScan: crm.public.customer
//! ```
//!
//! Merged: projection, filter, inner/left/right/full joins on `ON`
//! conditions, semi and anti joins (as `[NOT] EXISTS`), aggregates the
//! dialect accepts, `DISTINCT`, `UNION ALL`, subquery aliases,
//! limit/offset, and sorts. A sort is run by the source
//! (so that a limit above it can be too) and again locally, because
//! DataFusion is not told that a fragment's rows arrive sorted.

use std::borrow::Cow;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, NullEquality, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{
    Distinct, Expr, Extension, FetchType, JoinConstraint, JoinType, LogicalPlan,
    LogicalPlanBuilder, Projection, SkipType, Sort, TableScan,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use spar_connectors::dialect::{equals_alike, orders_alike};
use spar_connectors::SqlDialect;

use crate::fragment::Fragment;
use crate::options::SparOptions;
use crate::source_plan::{
    plain_column, remote_plan, source_table, unaliased, MAX_IDENTIFIER_BYTES,
};
use crate::source_table::SourceTable;
use crate::unparse::plan_to_source_sql;

/// Replaces scans of [`SourceTable`]s by [`Fragment`]s and grows each
/// fragment over the operators its source can run (unless the session says
/// `SET spar.pushdown = false`).
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
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let pushdown = config
            .options()
            .extensions
            .get::<SparOptions>()
            .is_none_or(|o| o.pushdown);
        // Deep expressions (long AND chains) are walked recursively by
        // DataFusion's and sqlparser's own code (clone, print): on a deep
        // stack, whatever thread the caller plans on.
        spar_connectors::depth::deep(|| self.push_down(plan, pushdown))
    }
}

impl PushDownFragments {
    pub(crate) fn push_down(
        &self,
        plan: LogicalPlan,
        pushdown: bool,
    ) -> Result<Transformed<LogicalPlan>> {
        plan.transform_up_with_subqueries(|node| match &node {
            LogicalPlan::TableScan(scan) => {
                let Some(table) = source_table(&scan.source) else {
                    return Ok(Transformed::no(node));
                };
                if !pushdown {
                    return scan_only(table, scan).map(Transformed::yes);
                }
                // Every filter in the scan was accepted as exact by
                // `SourceTable::supports_filters_pushdown`, so all of them
                // go into the fragment, and so may the limit.
                let fragment = table.fragment(
                    node.clone(),
                    scan.projection.as_ref(),
                    &scan.filters,
                    scan.fetch,
                )?;
                Ok(Transformed::yes(extension(fragment)))
            }
            _ if pushdown => merge(node),
            _ => Ok(Transformed::no(node)),
        })
    }
}

/// With pushdown off: the fragment reads the scan's columns and those its
/// filters need, and the filters and limit run locally.
fn scan_only(table: &SourceTable, scan: &TableScan) -> Result<LogicalPlan> {
    let mut projection = scan
        .projection
        .clone()
        .unwrap_or_else(|| (0..table.meta().schema.fields().len()).collect());
    let wanted = projection.len();
    for filter in &scan.filters {
        for column in filter.column_refs() {
            if let Ok(i) = table.meta().schema.index_of(&column.name) {
                if !projection.contains(&i) {
                    projection.push(i);
                }
            }
        }
    }
    let read = LogicalPlanBuilder::scan(
        scan.table_name.clone(),
        Arc::clone(&scan.source),
        Some(projection.clone()),
    )?
    .build()?;
    let fragment = table.fragment(read, Some(&projection), &[], None)?;
    let mut plan = LogicalPlanBuilder::from(extension(fragment));
    if let Some(predicate) = conjunction(scan.filters.clone()) {
        plan = plan.filter(predicate)?;
    }
    if projection.len() > wanted {
        let columns: Vec<Expr> = plan.schema().columns()[..wanted]
            .iter()
            .cloned()
            .map(Expr::Column)
            .collect();
        plan = plan.project(columns)?;
    }
    if let Some(fetch) = scan.fetch {
        plan = plan.limit(0, Some(fetch))?;
    }
    plan.build()
}

fn extension(fragment: Fragment) -> LogicalPlan {
    LogicalPlan::Extension(Extension {
        node: Arc::new(fragment),
    })
}

pub(crate) fn as_fragment(plan: &LogicalPlan) -> Option<&Fragment> {
    match plan {
        LogicalPlan::Extension(ext) => ext.node.as_any().downcast_ref::<Fragment>(),
        _ => None,
    }
}

/// `node` and its inputs as one fragment, when its inputs are fragments of
/// one source that can run `node`.
fn merge(node: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let inputs = node.inputs();
    let Some(fragments) = inputs
        .iter()
        .map(|input| as_fragment(input))
        .collect::<Option<Vec<_>>>()
    else {
        return Ok(Transformed::no(node));
    };
    let Some(first) = fragments.first() else {
        return Ok(Transformed::no(node));
    };
    // A piece of a sub-plan `push_or_pull` split stays apart: the node
    // above it was found cheaper to run locally.
    if fragments.iter().any(|f| f.source != first.source)
        || fragments
            .iter()
            .any(|f| f.choice.as_ref().is_some_and(|c| c.split))
        || !node
            .expressions()
            .iter()
            .all(|e| subqueries_in(e, &first.source))
        || !can_run(&node, first.dialect.as_ref())
    {
        return Ok(Transformed::no(node));
    }
    let exprs = node
        .expressions()
        .into_iter()
        .map(|e| with_subquery_plans(e).map(|t| t.data))
        .collect::<Result<Vec<_>>>()?;
    let sub_plan =
        node.with_new_exprs(exprs, fragments.iter().map(|f| f.plan.clone()).collect())?;
    let Some(sql) = sql_for(&sub_plan, first.dialect.as_ref()) else {
        return Ok(Transformed::no(node));
    };
    let statistics = Arc::new(crate::cardinality::estimate(&sub_plan));
    let fragment = Fragment {
        source: first.source.clone(),
        sql,
        plan: sub_plan,
        statistics,
        dialect: Arc::clone(&first.dialect),
        runner: Arc::clone(&first.runner),
        resume: None,
        choice: None,
    };
    Ok(Transformed::yes(match node {
        // Sorted again locally: the order is not known to survive.
        LogicalPlan::Sort(sort) => LogicalPlan::Sort(Sort {
            expr: sort.expr,
            input: Arc::new(extension(fragment)),
            fetch: sort.fetch,
        }),
        _ => extension(fragment),
    }))
}

/// Whether every subquery in `e` can run inside a fragment of `source`:
/// only uncorrelated scalar subqueries that are themselves whole fragments
/// of `source` (`x > (SELECT avg(y) FROM t)`).
fn subqueries_in(e: &Expr, source: &str) -> bool {
    let elsewhere = e.exists(|e| {
        Ok(match e {
            Expr::ScalarSubquery(sq) => {
                !sq.outer_ref_columns.is_empty()
                    || as_fragment(&sq.subquery).is_none_or(|f| f.source != source)
            }
            Expr::Exists(_) | Expr::InSubquery(_) | Expr::SetComparison(_) => true,
            _ => false,
        })
    });
    elsewhere.is_ok_and(|found| !found)
}

/// `e` with each scalar subquery's fragment replaced by the fragment's
/// sub-plan, so that the merged fragment holds the whole query.
fn with_subquery_plans(e: Expr) -> Result<Transformed<Expr>> {
    e.transform(|e| match e {
        Expr::ScalarSubquery(mut sq) => match as_fragment(&sq.subquery) {
            Some(fragment) => {
                sq.subquery = Arc::new(fragment.plan.clone());
                Ok(Transformed::yes(Expr::ScalarSubquery(sq)))
            }
            None => Ok(Transformed::no(Expr::ScalarSubquery(sq))),
        },
        other => Ok(Transformed::no(other)),
    })
}

/// `e` with each scalar subquery replaced by a NULL of its type: what the
/// dialect must be able to compute around the subquery's value (the
/// subquery itself was checked by `subqueries_in`).
fn subqueries_as_values(e: &Expr) -> Cow<'_, Expr> {
    if !e
        .exists(|e| Ok(matches!(e, Expr::ScalarSubquery(_))))
        .unwrap_or(true)
    {
        return Cow::Borrowed(e);
    }
    let values = e
        .clone()
        .transform(|e| match e {
            Expr::ScalarSubquery(sq) => {
                let null = sq
                    .subquery
                    .schema()
                    .fields()
                    .first()
                    .and_then(|f| ScalarValue::try_from(f.data_type()).ok());
                Ok(match null {
                    Some(null) => Transformed::yes(Expr::Literal(null, None)),
                    None => Transformed::no(Expr::ScalarSubquery(sq)),
                })
            }
            other => Ok(Transformed::no(other)),
        })
        .map_or_else(|_| e.clone(), |t| t.data);
    Cow::Owned(values)
}

/// The source SQL of `plan`, or `None` if it cannot be spelled for the
/// source (the fragment then does not grow).
fn sql_for(plan: &LogicalPlan, dialect: &dyn SqlDialect) -> Option<String> {
    let mut plan = plan;
    // The fragment's outermost alias names nothing the source sees: its
    // columns are read by position.
    while let LogicalPlan::SubqueryAlias(alias) = plan {
        plan = alias.input.as_ref();
    }
    let remote = pin_columns(remote_plan(plan, dialect).ok()??).ok()?;
    plan_to_source_sql(&remote, dialect).ok()
}

/// Makes the SELECT list name the output columns in order: without a
/// projection the unparser may write `SELECT *`, which is every column of
/// the remote tables. The projection goes under a top sort or limit, so
/// that it does not become an outer query over a derived table (where the
/// tables' qualifiers would not be visible).
fn pin_columns(plan: LogicalPlan) -> Result<LogicalPlan> {
    Ok(match plan {
        // (An aggregate alone is written with its aggregates first.)
        LogicalPlan::Projection(_) | LogicalPlan::Distinct(_) | LogicalPlan::Union(_) => plan,
        LogicalPlan::Sort(mut sort) => {
            sort.input = Arc::new(pin_columns(Arc::unwrap_or_clone(sort.input))?);
            LogicalPlan::Sort(sort)
        }
        LogicalPlan::Limit(mut limit) => {
            limit.input = Arc::new(pin_columns(Arc::unwrap_or_clone(limit.input))?);
            LogicalPlan::Limit(limit)
        }
        other => {
            let columns = other
                .schema()
                .columns()
                .into_iter()
                .map(Expr::Column)
                .collect();
            LogicalPlan::Projection(Projection::try_new(columns, Arc::new(other))?)
        }
    })
}

/// Whether the source can run `node` (over inputs it runs) with
/// DataFusion's semantics.
fn can_run(node: &LogicalPlan, dialect: &dyn SqlDialect) -> bool {
    let caps = dialect.capabilities();
    let supports = |e: &Expr, schema: &DFSchema| {
        dialect.supports_expr(&subqueries_as_values(unaliased(e)), schema)
    };
    // Over a window, anything but a projection or another window is
    // spelled over a derived table whose columns are named as the window
    // functions are (`row_number() PARTITION BY …`): too long for the
    // source's identifiers, which would cut them and could make two alike.
    if !matches!(node, LogicalPlan::Projection(_) | LogicalPlan::Window(_))
        && node.inputs().into_iter().any(long_derived_names)
    {
        return false;
    }
    match node {
        // A projection over another in the same SELECT (DataFusion's
        // common subexpressions, `__common_expr_1`) stays local, over the
        // pushed inner one (see `below_in_select`).
        LogicalPlan::Projection(p) => {
            !below_in_select(&p.input, &|n| matches!(n, LogicalPlan::Projection(_)))
                && p.expr.iter().all(|e| supports(e, p.input.schema()))
        }
        LogicalPlan::Filter(f) => {
            caps.filter
                && !matches!(unfragmented(&f.input), LogicalPlan::Projection(_))
                && supports(&f.predicate, f.input.schema())
        }
        LogicalPlan::Limit(limit) => {
            caps.limit
                && matches!(limit.get_skip_type(), Ok(SkipType::Literal(_)))
                && matches!(limit.get_fetch_type(), Ok(FetchType::Literal(_)))
        }
        LogicalPlan::Sort(sort) => {
            caps.order_by
                && (sort.fetch.is_none() || caps.limit)
                && sort
                    .expr
                    .iter()
                    .all(|s| orders_alike(dialect, &s.expr, sort.input.schema()))
        }
        // Its columns are named in the SQL (a derived table's), so each
        // name must fit the source's identifiers. Not over a projection
        // that reads no column (`SELECT 1.5 FROM t AS a WHERE …`, as
        // INTERSECT of constants makes): the unparser gives the scan the
        // outer alias but keeps the inner one in the scan's filters.
        LogicalPlan::SubqueryAlias(alias) => {
            let constants = matches!(
                unfragmented(&alias.input),
                LogicalPlan::Projection(p) if p.expr.iter().all(|e| e.column_refs().is_empty())
            );
            !constants
                && alias
                    .schema
                    .fields()
                    .iter()
                    .all(|f| f.name().len() <= MAX_IDENTIFIER_BYTES)
        }
        LogicalPlan::Join(join) => {
            let Ok(schema) = join.left.schema().join(join.right.schema()) else {
                return false;
            };
            let semi = matches!(join.join_type, JoinType::LeftSemi | JoinType::LeftAnti);
            caps.joins
                && !join_on_right(join)
                && (matches!(
                    join.join_type,
                    JoinType::Inner | JoinType::Left | JoinType::Right
                ) || (join.join_type == JoinType::Full && caps.full_joins)
                    || (semi && semi_join_spellable(join)))
                && join.join_constraint == JoinConstraint::On
                && join.null_equality == NullEquality::NullEqualsNothing
                && join.on.iter().all(|(l, r)| {
                    equals_alike(dialect, l, &schema)
                        && equals_alike(dialect, r, &schema)
                        && supports(&l.clone().eq(r.clone()), &schema)
                })
                && join.filter.as_ref().is_none_or(|f| supports(f, &schema))
        }
        LogicalPlan::Aggregate(agg) => {
            let schema = agg.input.schema();
            // DataFusion's rewrite of `count(DISTINCT x) … GROUP BY g` is an
            // aggregate straight over another: the outer one runs locally
            // (see `below_in_select`; without grouping keys it names only
            // the inner one's unqualified outputs, which works).
            let over_aggregate = !agg.group_expr.is_empty()
                && below_in_select(&agg.input, &|n| matches!(n, LogicalPlan::Aggregate(_)));
            caps.aggregates
                && !over_aggregate
                && agg
                    .group_expr
                    .iter()
                    .all(|g| !matches!(g, Expr::GroupingSet(_)) && equals_alike(dialect, g, schema))
                && agg
                    .aggr_expr
                    .iter()
                    .all(|e| dialect.supports_aggregate(unaliased(e), schema))
        }
        LogicalPlan::Distinct(Distinct::All(input)) => {
            caps.aggregates
                && input
                    .schema()
                    .columns()
                    .into_iter()
                    .all(|c| equals_alike(dialect, &Expr::Column(c), input.schema()))
        }
        LogicalPlan::Union(_) => caps.filter,
        // Windows of different OVER clauses are stacked window nodes,
        // with projections of their columns between them, which
        // `remote_plan` drops so that they share one SELECT. Anything else
        // between them would be a derived table hiding the tables' names
        // from the window above: then only the lower one is pushed.
        LogicalPlan::Window(window) => {
            caps.window_functions
                && !window_below(&window.input, true)
                && window
                    .window_expr
                    .iter()
                    .all(|e| dialect.supports_window(unaliased(e), window.input.schema()))
        }
        _ => false,
    }
}

/// The sub-plan of `plan` if it is a fragment, else `plan`.
fn unfragmented(plan: &LogicalPlan) -> &LogicalPlan {
    as_fragment(plan).map_or(plan, |f| &f.plan)
}

/// Whether `plan` (or the fragment it is) is a window node, or a
/// projection with a computed column, with an output name longer than an
/// identifier may be: a node above that reads it from a derived table
/// (an aggregate, a join) would name a column the source cut short or
/// left unnamed.
fn long_derived_names(plan: &LogicalPlan) -> bool {
    let long = |name: &str| name.len() > MAX_IDENTIFIER_BYTES;
    match unfragmented(plan) {
        LogicalPlan::Window(w) => w.schema.fields().iter().any(|f| long(f.name())),
        LogicalPlan::Projection(p) => p
            .expr
            .iter()
            .zip(p.schema.fields())
            .any(|(e, f)| !matches!(e, Expr::Column(_)) && long(f.name())),
        _ => false,
    }
}

/// Whether `plan` (or the fragment it is) is a node `is`, perhaps under
/// filters and sorts, that a projection or aggregate above cannot share a
/// SELECT with. The unparser then puts it in a derived table
/// (`derived_projection`) whose columns the outer SELECT's qualified
/// names (`"a"."id"`) cannot reach, and the source refuses the SQL; so
/// the node above stays local. The same goes for a filter straight over a
/// projection.
fn below_in_select(plan: &LogicalPlan, is: &dyn Fn(&LogicalPlan) -> bool) -> bool {
    let plan = unfragmented(plan);
    is(plan)
        || match plan {
            LogicalPlan::Filter(f) => below_in_select(&f.input, is),
            LogicalPlan::Sort(s) => below_in_select(&s.input, is),
            _ => false,
        }
}

/// Whether `plan` (or the fragment it is) has a window node in the same
/// SELECT (not under a derived table's alias) that a window above cannot
/// share the SELECT with: `stacked` while only windows and projections of
/// plain columns lie between.
fn window_below(plan: &LogicalPlan, stacked: bool) -> bool {
    match unfragmented(plan) {
        LogicalPlan::Window(window) => !stacked || window_below(&window.input, true),
        LogicalPlan::Projection(p) if stacked && p.expr.iter().all(plain_column) => {
            window_below(&p.input, true)
        }
        LogicalPlan::SubqueryAlias(_) => false,
        other => other.inputs().into_iter().any(|i| window_below(i, false)),
    }
}

/// Whether the join's right input is itself a join (under projections
/// and filters): DataFusion's unparser writes it into the same FROM
/// clause, `a LEFT JOIN (b JOIN c ON p) ON q` as `a LEFT JOIN b ON q JOIN
/// c ON p` (another answer), or names a table before it is in scope. Such
/// a join stays local, over the two fragments.
fn join_on_right(join: &datafusion::logical_expr::Join) -> bool {
    let mut plan = unfragmented(&join.right);
    loop {
        match plan {
            LogicalPlan::Projection(p) => plan = p.input.as_ref(),
            LogicalPlan::Filter(f) => plan = f.input.as_ref(),
            LogicalPlan::Join(_) => return true,
            _ => return false,
        }
    }
}

/// Whether a semi or anti join can be spelled as `[NOT] EXISTS (SELECT 1
/// FROM right WHERE on AND filter)` (see `source_plan::semi_join_as_exists`):
/// not for `NOT IN`'s null-aware anti join, whose answer depends on NULLs
/// in the subquery; and the two sides must not share a table qualifier,
/// or a column in the subquery could name the wrong table.
fn semi_join_spellable(join: &datafusion::logical_expr::Join) -> bool {
    let qualifiers = |plan: &LogicalPlan| {
        plan.schema()
            .iter()
            .filter_map(|(q, _)| q.cloned())
            .collect::<std::collections::HashSet<_>>()
    };
    !join.null_aware && qualifiers(&join.left).is_disjoint(&qualifiers(&join.right))
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
    async fn a_join_with_a_join_on_its_right_is_spelled_in_scope() {
        // DataFusion's unparser writes `a JOIN (b JOIN c ON p) ON q` as
        // `a JOIN c ON p JOIN b ON q`, naming `b` before it is in scope.
        let plan = optimized_plan(
            "SELECT o_orderkey, c2.c_name FROM sales.main.orders JOIN \
             (sales.main.customer c1 JOIN sales.main.customer c2 ON c1.c_nationkey = c2.c_nationkey) \
             ON o_custkey = c1.c_custkey",
        )
        .await;
        insta::assert_snapshot!(plan);
        let plan = optimized_plan(
            "SELECT o_orderkey, c2.c_name FROM sales.main.orders LEFT JOIN \
             (sales.main.customer c1 JOIN sales.main.customer c2 ON c1.c_nationkey = c2.c_nationkey) \
             ON o_custkey = c1.c_custkey",
        )
        .await;
        insta::assert_snapshot!("a_join_with_a_join_on_its_right_left", plan);
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
    async fn a_scalar_subquery_of_the_same_source_goes_into_the_sql() {
        let same = optimized_plan(
            "SELECT o_orderkey FROM sales.main.orders \
             WHERE o_totalprice > (SELECT max(o_totalprice) FROM sales.main.orders WHERE o_custkey = 7)",
        )
        .await;
        insta::assert_snapshot!(same);
        let other = optimized_plan(
            "SELECT o_orderkey FROM sales.main.orders \
             WHERE o_custkey > (SELECT max(n_nationkey) FROM crm.main.nation)",
        )
        .await;
        assert!(other.matches("Fragment: source=").count() == 2, "{other}");
    }

    #[tokio::test]
    async fn window_functions_go_into_the_sql() {
        let plan = optimized_plan(
            "SELECT o_orderkey, \
               row_number() OVER (PARTITION BY o_custkey ORDER BY o_orderdate DESC) AS rn, \
               sum(o_totalprice) OVER (PARTITION BY o_custkey ORDER BY o_orderdate DESC \
                 ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS s \
             FROM sales.main.orders",
        )
        .await;
        insta::assert_snapshot!(plan);
        // Two OVER clauses are two window nodes, spelled in one SELECT.
        let stacked = optimized_plan(
            "SELECT o_orderkey, \
               row_number() OVER (PARTITION BY o_custkey ORDER BY o_orderdate DESC) AS rn, \
               sum(o_totalprice) OVER (ORDER BY o_orderkey ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS s \
             FROM sales.main.orders",
        )
        .await;
        insta::assert_snapshot!(stacked);
    }

    #[tokio::test]
    async fn window_functions_stay_local_where_the_source_would_order_nulls_otherwise() {
        // crm cannot spell NULLS LAST: a nullable key ascending stays local,
        // one that is never NULL or asks for MySQL's own order is pushed.
        let local = optimized_plan(
            "SELECT n_nationkey, rank() OVER (ORDER BY n_name) AS r FROM crm.main.nation",
        )
        .await;
        assert!(local.contains("WindowAggr:"), "{local}");
        for pushed in [
            "SELECT n_nationkey, rank() OVER (ORDER BY n_name NULLS FIRST) AS r FROM crm.main.nation",
            "SELECT n_name, rank() OVER (ORDER BY n_nationkey) AS r FROM crm.main.nation",
        ] {
            let plan = optimized_plan(pushed).await;
            assert!(!plan.contains("WindowAggr:"), "{plan}");
            assert!(plan.contains("rank() OVER"), "{plan}");
        }
        // Offsets in a RANGE frame compare values: local.
        let range = optimized_plan(
            "SELECT sum(o_totalprice) OVER (ORDER BY o_orderkey RANGE BETWEEN 2 PRECEDING AND CURRENT ROW) \
             FROM sales.main.orders",
        )
        .await;
        assert!(range.contains("WindowAggr:"), "{range}");
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
    async fn a_side_that_only_counts_selects_a_constant() {
        let plan = optimized_plan(
            "SELECT o_orderkey FROM sales.main.orders CROSS JOIN crm.main.nation WHERE o_orderkey < 3",
        )
        .await;
        insta::assert_snapshot!(plan);
        let aliased = optimized_plan(
            "SELECT o.o_orderkey FROM sales.main.orders o CROSS JOIN crm.main.nation n CROSS JOIN crm.main.nation m",
        )
        .await;
        insta::assert_snapshot!(aliased);
    }

    #[tokio::test]
    async fn identifiers_are_quoted() {
        let plan = optimized_plan(r#"SELECT "we`ird" FROM sales.main."odd table""#).await;
        insta::assert_snapshot!(plan);
    }

    #[tokio::test]
    async fn a_join_aggregate_and_top_k_in_one_source_is_one_fragment() {
        let plan = optimized_plan(
            "SELECT c.c_name, count(*) AS n, max(o.o_totalprice) AS top \
             FROM sales.main.orders o JOIN sales.main.customer c ON o.o_custkey = c.c_custkey \
             WHERE o.o_orderdate < DATE '1995-03-15' \
             GROUP BY c.c_name ORDER BY n DESC, c.c_name LIMIT 10",
        )
        .await;
        insta::assert_snapshot!(plan);
    }

    #[tokio::test]
    async fn outer_joins_distinct_and_union_all_are_pushed() {
        let plan = optimized_plan(
            "SELECT DISTINCT o_orderkey, c_name FROM sales.main.orders \
               LEFT JOIN sales.main.customer ON o_custkey = c_custkey \
             UNION ALL SELECT o_orderkey, c_name FROM sales.main.orders \
               FULL JOIN sales.main.customer ON o_custkey = c_custkey",
        )
        .await;
        insta::assert_snapshot!(plan);
    }

    #[tokio::test]
    async fn a_join_across_sources_keeps_one_fragment_per_source() {
        let plan = optimized_plan(
            "SELECT c_name, n_name FROM sales.main.customer \
             JOIN crm.main.nation ON c_nationkey = n_nationkey WHERE n_nationkey > 3",
        )
        .await;
        insta::assert_snapshot!(plan);
    }

    #[tokio::test]
    async fn what_the_source_cannot_run_stays_above_it() {
        // A scalar function the dialect does not map, and an aggregate it
        // does not accept (avg): both local, the join still pushed.
        let plan = optimized_plan(
            "SELECT upper(c_name) AS u, avg(o_totalprice) AS s FROM sales.main.orders \
             JOIN sales.main.customer ON o_custkey = c_custkey GROUP BY upper(c_name)",
        )
        .await;
        insta::assert_snapshot!(plan);
    }

    #[tokio::test]
    async fn sources_without_nulls_first_get_it_spelled() {
        let plan = optimized_plan(
            "SELECT n_name FROM crm.main.nation ORDER BY n_name DESC NULLS LAST LIMIT 3",
        )
        .await;
        insta::assert_snapshot!(plan);
        // A key that cannot be NULL needs no NULL key.
        let plan = optimized_plan(
            "SELECT n_nationkey FROM crm.main.nation ORDER BY n_nationkey DESC NULLS LAST LIMIT 3",
        )
        .await;
        assert!(
            plan.contains("ORDER BY `nation`.`n_nationkey` DESC LIMIT 3"),
            "{plan}"
        );
    }

    #[tokio::test]
    async fn a_self_join_keeps_its_aliases() {
        let plan = optimized_plan(
            "SELECT a.o_orderkey, b.o_orderkey FROM sales.main.orders a \
             JOIN sales.main.orders b ON a.o_custkey = b.o_orderkey",
        )
        .await;
        insta::assert_snapshot!(plan);
    }

    #[tokio::test]
    async fn or_filters_keep_their_parentheses() {
        // Each scan filter is parenthesized before they are joined with
        // AND (the unparser's pretty mode dropped them: `a OR b AND c`).
        let plan = optimized_plan(
            "SELECT o_orderkey, c_name FROM sales.main.orders \
             JOIN sales.main.customer ON o_custkey = c_custkey \
             WHERE (o_orderkey = 1 OR o_orderkey = 2) AND o_custkey > 5",
        )
        .await;
        assert!(
            plan.contains(r#"(("orders"."o_orderkey" = 1) OR ("orders"."o_orderkey" = 2))"#),
            "{plan}"
        );
        insta::assert_snapshot!(plan);
    }

    #[tokio::test]
    async fn sums_and_exact_arithmetic_are_pushed() {
        let plan = optimized_plan(
            "SELECT c_name, sum(o_totalprice * (1 - 0.05)) AS s, sum(o_custkey + 1) AS k, \
               sum(DISTINCT o_custkey) AS d \
             FROM sales.main.orders JOIN sales.main.customer ON o_custkey = c_custkey \
             GROUP BY c_name",
        )
        .await;
        assert_eq!(plan.lines().count(), 1, "one fragment: {plan}");
        insta::assert_snapshot!(plan);
    }

    #[tokio::test]
    async fn a_derived_table_names_its_computed_columns() {
        // The decorrelated subquery is a derived table inside the
        // fragment; its `2 * max(...)` column is named by an alias that
        // the join condition refers to.
        let plan = optimized_plan(
            "SELECT c_name FROM sales.main.customer WHERE c_custkey < \
               (SELECT 2 * max(o_custkey) FROM sales.main.orders WHERE o_orderkey = c_nationkey)",
        )
        .await;
        assert_eq!(plan.lines().count(), 1, "one fragment: {plan}");
        insta::assert_snapshot!(plan);
    }

    #[tokio::test]
    async fn nested_aliases_name_one_table() {
        // `EXISTS (… orders o2 …)` becomes `(o2) AS __correlated_sq_1`:
        // the semi join is spelled as EXISTS again, the inner scan's
        // filter inside it.
        let plan = optimized_plan(
            "SELECT o_orderkey FROM sales.main.orders o1 WHERE EXISTS \
               (SELECT 1 FROM sales.main.orders o2 \
                WHERE o2.o_custkey = o1.o_custkey AND o2.o_totalprice > 10)",
        )
        .await;
        insta::assert_snapshot!(plan);
    }

    #[tokio::test]
    async fn anti_joins_and_in_over_an_aggregate_are_pushed() {
        let plan = optimized_plan(
            "SELECT c_name FROM sales.main.customer c WHERE NOT EXISTS \
               (SELECT 1 FROM sales.main.orders o WHERE o.o_custkey = c.c_custkey \
                AND o.o_totalprice > c.c_custkey) \
             AND c_custkey IN (SELECT o_custkey FROM sales.main.orders \
               GROUP BY o_custkey HAVING count(*) > 2)",
        )
        .await;
        assert_eq!(plan.lines().count(), 1, "one fragment: {plan}");
        assert!(plan.contains("NOT EXISTS (SELECT 1"), "{plan}");
        assert!(plan.contains("HAVING"), "{plan}");
        insta::assert_snapshot!(plan);
    }

    #[tokio::test]
    async fn not_in_and_semi_joins_across_sources_stay_local() {
        // NOT IN over a nullable column is a null-aware anti join: a NULL
        // in the subquery empties the answer, which NOT EXISTS would not.
        // The semi join's sides are in two sources.
        let plan = optimized_plan(
            "SELECT c_name FROM sales.main.customer WHERE c_custkey NOT IN \
               (SELECT c_nationkey FROM sales.main.customer) \
             AND c_nationkey IN (SELECT n_nationkey FROM crm.main.nation)",
        )
        .await;
        assert!(!plan.contains("EXISTS"), "{plan}");
        assert!(plan.contains("LeftAnti Join"), "{plan}");
        assert!(plan.contains("LeftSemi Join"), "{plan}");
    }

    #[tokio::test]
    async fn physical_plan_runs_the_fragment() {
        let plan =
            physical_plan("SELECT o_orderkey FROM sales.main.orders WHERE o_orderkey = 7").await;
        insta::assert_snapshot!(plan);
    }
}
