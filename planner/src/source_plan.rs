//! A fragment's sub-plan as its source sees it: Spar's table names
//! replaced by the source's own, every expression corrected for the
//! dialect, ready for the unparser.
//!
//! ```text
//! Join: sales.main.orders.o_custkey = c.c_custkey  ==>  (the same)
//!   TableScan: sales.main.orders                         TableScan: main.orders
//!   SubqueryAlias: c                                     SubqueryAlias: c
//!     TableScan: sales.main.customer                       TableScan: main.customer
//! ```
//!
//! Column qualifiers are left as they are: the unparser writes a column as
//! `table.column` (the last part of its qualifier), the same for Spar's
//! name and the remote one. So two scans whose tables share a name (`a.t`,
//! `b.t`) could not be told apart: such plans are refused (`None`) and
//! their fragments stay separate.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{plan_err, DFSchema, Spans, TableReference};
use datafusion::datasource::DefaultTableSource;
use datafusion::error::Result;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{
    expr::Exists, lit, Expr, ExprSchemable, Filter, Join, JoinType, LogicalPlan,
    LogicalPlanBuilder, Projection, SortExpr, Subquery, SubqueryAlias, TableSource, Window,
};
use spar_connectors::{prepare, SqlDialect};

use crate::source_table::SourceTable;

/// The source table behind a scan's table source, if it is one.
pub(crate) fn source_table(source: &Arc<dyn TableSource>) -> Option<&SourceTable> {
    let provider = source.as_ref().downcast_ref::<DefaultTableSource>()?;
    provider
        .table_provider
        .as_ref()
        .downcast_ref::<SourceTable>()
}

/// `plan` with remote table names and dialect-corrected expressions, or
/// `None` when two of its tables would be spelled alike.
///
/// Only the scans' table names change: column qualifiers stay Spar's, and
/// no schema is recomputed, so every output name above (such as
/// `min(orders.o_orderdate)`) still matches. This works because the
/// unparser writes a column's qualifier as its last part, which is the
/// remote table's name (or an alias).
pub(crate) fn remote_plan(
    plan: &LogicalPlan,
    dialect: &dyn SqlDialect,
) -> Result<Option<LogicalPlan>> {
    let mut renames: HashMap<TableReference, TableReference> = HashMap::new();
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            if let Some(table) = source_table(&scan.source) {
                let meta = table.meta();
                let name = &meta.name;
                renames.insert(
                    scan.table_name.clone(),
                    TableReference::partial(name.schema.as_str(), name.table.as_str()),
                );
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    // Each remote table once (scans of one table under several aliases
    // share one Spar name), with no two alike in their last part, which
    // is also the last part of Spar's name.
    let mut spelled = std::collections::HashSet::new();
    if !renames
        .iter()
        .all(|(spar, remote)| spar.table() == remote.table() && spelled.insert(remote.table()))
    {
        return Ok(None);
    }
    // Scalar subqueries in expressions are fragments of the same source
    // too (see `push_down_fragments::subqueries_in`): renamed alike.
    let rewritten = plan.clone().transform_up_with_subqueries(|node| {
        let node = match node {
            // `SELECT FROM t` (no columns, e.g. under `count(*)`) is not
            // SQL: select a constant instead; nothing above reads it.
            LogicalPlan::Projection(mut projection) if projection.expr.is_empty() => {
                projection.expr = vec![lit(1_i64).alias("spar_none")];
                LogicalPlan::Projection(projection)
            }
            // A projection over a limit is spelled as one SELECT with the
            // limit above it: the unparser would put the limit in a
            // derived table, whose columns the projection's qualified
            // names could not reach. (The projection computes row by row,
            // so it commutes with the limit.)
            LogicalPlan::Projection(projection)
                if matches!(projection.input.as_ref(), LogicalPlan::Limit(_)) =>
            {
                let Projection { expr, input, .. } = projection;
                let LogicalPlan::Limit(mut limit) = Arc::unwrap_or_clone(input) else {
                    return plan_err!("a projection's input changed while it was read");
                };
                let below = Projection::try_new(expr, Arc::clone(&limit.input))?;
                limit.input = Arc::new(name_outputs(below, dialect)?);
                LogicalPlan::Limit(limit)
            }
            LogicalPlan::Projection(projection) => name_outputs(projection, dialect)?,
            // `(… AS b) AS a`: only `a` is visible above, so `b` can go.
            // (The unparser would name the table `a` but keep `b` in the
            // scan's filters.)
            LogicalPlan::SubqueryAlias(alias) => match alias.input.as_ref() {
                LogicalPlan::SubqueryAlias(inner) => LogicalPlan::SubqueryAlias(
                    SubqueryAlias::try_new(Arc::clone(&inner.input), alias.alias)?,
                ),
                // A derived table straight over an aggregate: its
                // `min(o.amount)` column needs a name the outer query uses.
                LogicalPlan::Aggregate(_) | LogicalPlan::Window(_) => {
                    let columns = alias.input.schema().columns();
                    let named = name_outputs(
                        Projection::try_new(
                            columns.into_iter().map(Expr::Column).collect(),
                            Arc::clone(&alias.input),
                        )?,
                        dialect,
                    )?;
                    LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(
                        Arc::new(named),
                        alias.alias,
                    )?)
                }
                _ => LogicalPlan::SubqueryAlias(alias),
            },
            LogicalPlan::Join(join)
                if matches!(join.join_type, JoinType::LeftSemi | JoinType::LeftAnti) =>
            {
                semi_join_as_exists(join, dialect)?
            }
            LogicalPlan::Join(join)
                if matches!(
                    join.join_type,
                    JoinType::Left | JoinType::Right | JoinType::Full
                ) =>
            {
                preserved_filters_after(join)?
            }
            LogicalPlan::Window(window) => prepare_window(window, dialect)?,
            LogicalPlan::TableScan(mut scan) => {
                // The filters are typed by the table's columns under
                // Spar's name, which they use.
                let columns = DFSchema::try_from_qualified_schema(
                    scan.table_name.clone(),
                    &scan.source.schema(),
                )?;
                scan.filters = scan
                    .filters
                    .into_iter()
                    .map(|f| prepare(dialect, f, &columns))
                    .collect::<Result<Vec<_>>>()?;
                if let Some(remote) = renames.get(&scan.table_name) {
                    scan.table_name = remote.clone();
                }
                // The fetch is dropped: DataFusion sets it only below a
                // limit that it keeps, which is either in this plan too or
                // runs locally; and the unparser would spell it as a
                // derived table whose columns the outer query could not
                // name.
                scan.fetch = None;
                LogicalPlan::TableScan(scan)
            }
            other => {
                let columns = input_columns(&other);
                spell_null_order(
                    other
                        .map_expressions(|e| Ok(Transformed::yes(prepare(dialect, e, &columns)?)))?
                        .data,
                    dialect,
                )
            }
        };
        Ok(Transformed::yes(node))
    })?;
    let rewritten = rewritten.data;
    // A fragment with no columns (a join side that only counts rows):
    // `SELECT FROM …` is not SQL, so it selects a constant; the connectors
    // count rows when the fragment's schema has no columns.
    if rewritten.schema().fields().is_empty() && !matches!(rewritten, LogicalPlan::Projection(_)) {
        return Ok(Some(
            LogicalPlanBuilder::from(rewritten)
                .project(vec![lit(1_i64).alias("spar_none")])?
                .build()?,
        ));
    }
    Ok(Some(rewritten))
}

/// An outer join with the filters of its preserved sides' scans moved
/// above it, into a `WHERE`. The unparser writes a joined scan's filters
/// into the join's `ON`, which is right for an inner join and for the side
/// an outer join may fill with NULLs, but wrong for a side it keeps whole:
/// `a LEFT JOIN b ON … AND a.x > 1` keeps every row of `a`. A filter of
/// the kept side gives the same rows before the join or after it.
fn preserved_filters_after(join: Join) -> Result<LogicalPlan> {
    let (left_kept, right_kept) = match join.join_type {
        JoinType::Left => (true, false),
        JoinType::Right => (false, true),
        _ => (true, true),
    };
    let mut lifted = Vec::new();
    let mut take = |side: Arc<LogicalPlan>, kept: bool| -> Result<Arc<LogicalPlan>> {
        if !kept {
            return Ok(side);
        }
        Ok(match without_scan_filters(&side)? {
            Some((plan, filters)) => {
                lifted.extend(filters);
                Arc::new(plan)
            }
            None => side,
        })
    };
    let left = take(Arc::clone(&join.left), left_kept)?;
    let right = take(Arc::clone(&join.right), right_kept)?;
    let join = LogicalPlan::Join(Join {
        left,
        right,
        ..join
    });
    match conjunction(lifted) {
        Some(predicate) => Ok(LogicalPlan::Filter(Filter::try_new(
            predicate,
            Arc::new(join),
        )?)),
        None => Ok(join),
    }
}

/// `side` (a scan, or an alias of one) without its scan's filters, and
/// those filters as the side's output names its columns; `None` when it
/// is not such a side or has no filters.
fn without_scan_filters(side: &LogicalPlan) -> Result<Option<(LogicalPlan, Vec<Expr>)>> {
    match side {
        LogicalPlan::TableScan(scan) if !scan.filters.is_empty() => {
            let mut bare = scan.clone();
            let filters = std::mem::take(&mut bare.filters);
            Ok(Some((LogicalPlan::TableScan(bare), filters)))
        }
        LogicalPlan::SubqueryAlias(alias) => {
            let Some((inner, filters)) = without_scan_filters(&alias.input)? else {
                return Ok(None);
            };
            let qualifier = alias.alias.clone();
            let filters = filters
                .into_iter()
                .map(|f| {
                    f.transform_up(|e| {
                        Ok(match e {
                            Expr::Column(c) => Transformed::yes(Expr::Column(
                                datafusion::common::Column::new(Some(qualifier.clone()), c.name),
                            )),
                            other => Transformed::no(other),
                        })
                    })
                    .map(|t| t.data)
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Some((
                LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(Arc::new(inner), qualifier)?),
                filters,
            )))
        }
        _ => Ok(None),
    }
}

/// A window node with its functions corrected for the dialect. The
/// unparser finds the function behind a column of the window's output by
/// the function's name, so a corrected function keeps its old name as an
/// alias (which the unparser does not spell inside the SELECT list).
///
/// A projection of plain columns between two windows goes (see
/// `push_down_fragments::can_run`): the window above then reads the
/// columns of the one below, names unchanged, and the unparser writes both
/// in one SELECT.
fn prepare_window(window: Window, dialect: &dyn SqlDialect) -> Result<LogicalPlan> {
    let Window {
        input,
        window_expr,
        schema,
        ..
    } = window;
    if let LogicalPlan::Projection(projection) = input.as_ref() {
        if matches!(projection.input.as_ref(), LogicalPlan::Window(_))
            && projection.expr.iter().all(plain_column)
        {
            let below = Arc::clone(&projection.input);
            let window_expr = prepare_window_exprs(window_expr, below.schema(), dialect)?;
            return Ok(LogicalPlan::Window(Window::try_new(window_expr, below)?));
        }
    }
    let window_expr = prepare_window_exprs(window_expr, input.schema(), dialect)?;
    Ok(LogicalPlan::Window(Window::try_new_with_schema(
        window_expr,
        input,
        schema,
    )?))
}

/// Whether `e` selects a column as it is (perhaps aliased with its own
/// name, as `name_outputs` does).
pub(crate) fn plain_column(e: &Expr) -> bool {
    match e {
        Expr::Column(_) => true,
        Expr::Alias(alias) => {
            matches!(alias.expr.as_ref(), Expr::Column(c) if c.name == alias.name)
        }
        _ => false,
    }
}

/// Window functions corrected for the dialect, each keeping its name.
fn prepare_window_exprs(
    window_expr: Vec<Expr>,
    input: &DFSchema,
    dialect: &dyn SqlDialect,
) -> Result<Vec<Expr>> {
    window_expr
        .into_iter()
        .map(|e| {
            let prepared = prepare(dialect, e.clone(), input)?;
            Ok(if prepared == e {
                e
            } else {
                prepared.alias(e.schema_name().to_string())
            })
        })
        .collect()
}

/// The columns a node's expressions are evaluated against: those of its
/// inputs.
fn input_columns(node: &LogicalPlan) -> DFSchema {
    let mut columns = DFSchema::empty();
    for input in node.inputs() {
        columns.merge(input.schema());
    }
    columns
}

/// A semi (anti) join as the filter `[NOT] EXISTS (SELECT 1 FROM right
/// WHERE left_key = right_key AND … AND filter)` over its left input, the
/// same rows with the same schema. The unparser's own spelling of semi
/// joins loses the filters of the tables' scans, so it is not used.
/// Left columns in the subquery are outer references; `can_run` made sure
/// no qualifier names a table on both sides.
fn semi_join_as_exists(join: Join, dialect: &dyn SqlDialect) -> Result<LogicalPlan> {
    let left_schema = Arc::clone(join.left.schema());
    let both_sides = left_schema.join(join.right.schema())?;
    // The filter goes under a projection that only passes columns on (the
    // outer references name its input's columns as well); above anything
    // else that the unparser would make a derived table, the subquery's
    // outer references would name tables no longer in scope.
    let (left, columns) = match Arc::unwrap_or_clone(join.left) {
        LogicalPlan::Projection(p) if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => {
            (p.input, Some(p.expr))
        }
        other => (Arc::new(other), None),
    };
    if !selects_from_tables(&left) {
        return plan_err!(
            "a semi join over {} is not spelled as EXISTS",
            left.display()
        );
    }
    let outer = |e: Expr| -> Result<Expr> {
        let e = e
            .transform(|e| {
                Ok(match e {
                    Expr::Column(c) if left_schema.has_column(&c) => {
                        let (_, field) = left_schema.qualified_field_from_column(&c)?;
                        Transformed::yes(Expr::OuterReferenceColumn(Arc::clone(field), c))
                    }
                    other => Transformed::no(other),
                })
            })?
            .data;
        prepare(dialect, e, &both_sides)
    };
    let mut conditions = Vec::new();
    for (l, r) in join.on {
        conditions.push(outer(l)?.eq(outer(r)?));
    }
    if let Some(filter) = join.filter {
        conditions.push(outer(filter)?);
    }
    let mut subquery = Arc::clone(&join.right);
    if let Some(predicate) = conjunction(conditions) {
        subquery = Arc::new(LogicalPlan::Filter(Filter::try_new(predicate, subquery)?));
    }
    let subquery = LogicalPlan::Projection(Projection::try_new(
        vec![lit(1_i64).alias("spar_one")],
        subquery,
    )?);
    let exists = Expr::Exists(Exists::new(
        Subquery {
            subquery: Arc::new(subquery),
            outer_ref_columns: vec![],
            spans: Spans::new(),
        },
        join.join_type == JoinType::LeftAnti,
    ));
    let filtered = LogicalPlan::Filter(Filter::try_new(exists, left)?);
    Ok(match columns {
        Some(columns) => LogicalPlan::Projection(Projection::try_new(columns, Arc::new(filtered))?),
        None => filtered,
    })
}

/// Whether the unparser spells `plan` as a `FROM … WHERE …` whose tables
/// (or their aliases) stay visible to a `WHERE` added on top.
fn selects_from_tables(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::TableScan(_) | LogicalPlan::SubqueryAlias(_) | LogicalPlan::Join(_) => true,
        LogicalPlan::Filter(f) => selects_from_tables(&f.input),
        _ => false,
    }
}

/// The longest identifier every supported source keeps whole (PostgreSQL
/// cuts longer ones to 63 bytes; MySQL refuses more than 64).
pub(crate) const MAX_IDENTIFIER_BYTES: usize = 63;

/// A projection whose computed columns carry their output names as
/// aliases, so that a query over it as a derived table can name them (the
/// source would otherwise name `0.5 * sum(x)` as it likes). Expressions
/// are corrected for the dialect on the way.
fn name_outputs(projection: Projection, dialect: &dyn SqlDialect) -> Result<LogicalPlan> {
    let Projection {
        expr,
        input,
        schema,
        ..
    } = projection;
    // Columns computed by the input (`min(o.amount)`) are spelled as their
    // expressions, so they need aliases too; plain table columns keep
    // their names.
    let computed_input = matches!(
        input.as_ref(),
        LogicalPlan::Aggregate(_) | LogicalPlan::Window(_)
    );
    let expr = expr
        .into_iter()
        .zip(schema.fields())
        .map(|(e, field)| {
            let e = prepare(dialect, e, input.schema())?;
            // Longer names would be cut by the source (a derived table's
            // columns are never that long: see `can_run`).
            let fits = field.name().len() <= MAX_IDENTIFIER_BYTES;
            Ok(match e {
                Expr::Alias(_) => e,
                Expr::Column(_) if !computed_input => e,
                other if fits => other.alias(field.name()),
                other => other,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(LogicalPlan::Projection(Projection::try_new_with_schema(
        expr, input, schema,
    )?))
}

/// For sources that cannot write `NULLS FIRST`/`LAST` (MySQL), each sort
/// key `e` that can be NULL is preceded by `e IS NULL`, ordered so that
/// NULLs land where DataFusion puts them (MySQL itself puts them first
/// ascending).
///
/// A key that names a computed column of the projection below is tested
/// as that column's expression, and a window function's column as the
/// window function: MySQL refuses `value IS NULL` where `value` is an
/// aggregate's alias ("reference to group function"), and knows no column
/// named as DataFusion names a window function's output.
fn spell_null_order(plan: LogicalPlan, dialect: &dyn SqlDialect) -> LogicalPlan {
    match plan {
        LogicalPlan::Sort(mut sort) if !dialect.unparser().supports_nulls_first_in_sort() => {
            let input = Arc::clone(&sort.input);
            sort.expr = sort
                .expr
                .into_iter()
                .flat_map(|s| {
                    let nullable = s.expr.nullable(input.schema()).unwrap_or(true);
                    let nulls = nullable.then(|| {
                        SortExpr::new(computed(&s.expr, &input).is_null(), !s.nulls_first, false)
                    });
                    nulls.into_iter().chain([s])
                })
                .collect();
            LogicalPlan::Sort(sort)
        }
        other => other,
    }
}

/// `e`, a sort key over `input`, with a column that a projection computes
/// replaced by its expression, and a window function's output column by the
/// window function.
fn computed(e: &Expr, input: &LogicalPlan) -> Expr {
    let Expr::Column(c) = e else {
        return e.clone();
    };
    match input {
        LogicalPlan::Projection(p) => {
            match p.schema.index_of_column(c).ok().and_then(|i| p.expr.get(i)) {
                Some(x) => computed(unaliased(x), &p.input),
                None => e.clone(),
            }
        }
        LogicalPlan::Window(w) => w
            .window_expr
            .iter()
            .find(|x| x.schema_name().to_string() == c.name)
            .map_or_else(|| computed(e, &w.input), |x| unaliased(x).clone()),
        _ => e.clone(),
    }
}

/// `e` without the names given to it.
pub(crate) fn unaliased(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(alias) => unaliased(&alias.expr),
        other => other,
    }
}
