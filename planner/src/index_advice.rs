//! The index advisor: filters and join keys on a source's tables that no
//! index of the table can serve.
//!
//! A fragment's sub-plan is read for two kinds of use of a table's
//! columns:
//!
//! - a *filter* the source can answer from an index: `c = 5`, `c < 5`,
//!   `c BETWEEN …`, `c IN (…)`, `c LIKE 'abc%'` on a bare column, where
//!   the table's statistics say it keeps at most [`SELECTIVE`] of the rows
//!   (an index does not pay for one that keeps most of them);
//! - a *join key* whose values reach the fragment's SQL from the other
//!   side of a cross-source join (a runtime filter's key list or range).
//!
//! Advice names a table (never a view) only when no index (not partial,
//! not on an expression) has the column first, and only tables estimated at
//! [`LARGE_TABLE`] rows or more (or of unknown size): a full scan of a
//! small table costs little, nor where the SQL Spar spells on the column
//! could not use an index ([`SqlDialect::index_serves`]: MySQL's strings,
//! compared as binary casts). For filters on a table, one index is advised,
//! on the most selective column, and none when some filtered column
//! already leads an index (the source has an index to start from). Each
//! advice carries the `CREATE INDEX` the source's dialect spells.

use std::sync::Arc;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Column, TableReference};
use datafusion::logical_expr::expr::{InList, Like};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, LogicalPlan, Operator};
use datafusion::scalar::ScalarValue;
use spar_connectors::{index_name, SqlDialect, TableKind, TableMeta, TableName};

use crate::cardinality::table_selectivity;
use crate::source_plan::source_table;

/// A filter is worth an index when it keeps at most this share of rows.
pub const SELECTIVE: f64 = 0.1;

/// Tables estimated smaller than this are read whole cheaply.
pub const LARGE_TABLE: usize = 10_000;

/// Why an index is advised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AdviceReason {
    /// A selective filter on the column.
    Filter,
    /// The column is a key of a cross-source join whose keys reach the
    /// fragment's SQL.
    JoinKey,
}

impl AdviceReason {
    /// `filter` or `join key`.
    pub fn as_str(self) -> &'static str {
        match self {
            AdviceReason::Filter => "filter",
            AdviceReason::JoinKey => "join key",
        }
    }
}

/// An index that would serve a fragment's filter or join key.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexAdvice {
    /// The table, as its source names it.
    pub table: TableName,
    /// The columns to index, in order.
    pub columns: Vec<String>,
    /// What the index would serve.
    pub reason: AdviceReason,
    /// The table's estimated rows: what the source reads without the
    /// index (a full scan).
    pub table_rows: Option<usize>,
    /// The statement that creates it, in the source's dialect (`None` for
    /// a name no SQL text can carry).
    pub create_index: Option<String>,
}

impl IndexAdvice {
    /// `public.t(a, b)`.
    pub fn target(&self) -> String {
        format!("{}({})", self.table, self.columns.join(", "))
    }
}

/// A table the fragment reads, under the name its columns are qualified
/// with.
struct Read {
    qualifier: TableReference,
    meta: Arc<TableMeta>,
}

/// The indexes that would serve `plan`'s selective filters and the join
/// keys at `join_keys` (positions in `plan`'s output), in `dialect`.
pub fn index_advice(
    plan: &LogicalPlan,
    join_keys: &[usize],
    dialect: &dyn SqlDialect,
) -> Vec<IndexAdvice> {
    let mut reads: Vec<Read> = Vec::new();
    let mut predicates: Vec<Expr> = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        match node {
            LogicalPlan::TableScan(scan) => {
                if let Some(table) = source_table(&scan.source) {
                    reads.push(Read {
                        qualifier: scan.table_name.clone(),
                        meta: table.meta(),
                    });
                    predicates.extend(scan.filters.iter().cloned());
                }
            }
            LogicalPlan::SubqueryAlias(alias) => {
                if let Some(meta) = aliased_table(&alias.input) {
                    reads.push(Read {
                        qualifier: alias.alias.clone(),
                        meta,
                    });
                }
            }
            LogicalPlan::Filter(filter) => predicates.push(filter.predicate.clone()),
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    let mut advice: Vec<IndexAdvice> = Vec::new();
    // Per table read, its selective filters' columns and how much they keep.
    let mut filtered: Vec<(usize, Vec<(String, f64)>)> = Vec::new();
    for predicate in &predicates {
        for conjunct in split_conjunction(predicate) {
            let Some(column) = indexable_column(conjunct) else {
                continue;
            };
            let Some(r) = resolve(&reads, column) else {
                continue;
            };
            let meta = &reads[r].meta;
            let unqualified = crate::fragment::unqualify(conjunct.clone()).ok();
            let kept = unqualified
                .as_ref()
                .and_then(|e| table_selectivity(meta, e))
                .unwrap_or(1.0);
            let at = match filtered.iter().position(|(i, _)| *i == r) {
                Some(at) => at,
                None => {
                    filtered.push((r, Vec::new()));
                    filtered.len() - 1
                }
            };
            filtered[at].1.push((column.name.clone(), kept));
        }
    }
    for (r, columns) in filtered {
        let meta = &reads[r].meta;
        if columns.iter().any(|(c, _)| leads_an_index(meta, c)) || !large(meta) {
            continue;
        }
        let best = columns
            .iter()
            .filter(|(_, kept)| *kept <= SELECTIVE)
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((column, _)) = best {
            push(&mut advice, meta, column, AdviceReason::Filter, dialect);
        }
    }
    let output = plan.schema();
    for &k in join_keys {
        if k >= output.fields().len() {
            continue;
        }
        let (qualifier, field) = output.qualified_field(k);
        let column = Column::new(qualifier.cloned(), field.name());
        let Some(r) = resolve(&reads, &column) else {
            continue;
        };
        let meta = &reads[r].meta;
        if !leads_an_index(meta, field.name()) && large(meta) {
            push(
                &mut advice,
                meta,
                field.name(),
                AdviceReason::JoinKey,
                dialect,
            );
        }
    }
    advice
}

/// Adds advice for an index on `column` of `meta`, once.
fn push(
    advice: &mut Vec<IndexAdvice>,
    meta: &TableMeta,
    column: &str,
    reason: AdviceReason,
    dialect: &dyn SqlDialect,
) {
    // An index the SQL Spar spells on the column could not use.
    let serves = meta
        .schema
        .field_with_name(column)
        .is_ok_and(|f| dialect.index_serves(f.data_type()));
    if !serves {
        return;
    }
    let columns = vec![column.to_string()];
    if advice
        .iter()
        .any(|a| a.table == meta.name && a.columns == columns)
    {
        return;
    }
    let name = index_name(&meta.name.table, &columns);
    advice.push(IndexAdvice {
        create_index: dialect.create_index(&meta.name, &name, &columns),
        table: meta.name.clone(),
        columns,
        reason,
        table_rows: meta.stats.row_count.get_value().copied(),
    });
}

/// The table under an alias, when the alias names a scan of a source
/// table (through filters and plain column projections).
fn aliased_table(plan: &LogicalPlan) -> Option<Arc<TableMeta>> {
    match plan {
        LogicalPlan::TableScan(scan) => source_table(&scan.source).map(|t| t.meta()),
        LogicalPlan::Filter(filter) => aliased_table(&filter.input),
        LogicalPlan::Projection(p) if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => {
            aliased_table(&p.input)
        }
        _ => None,
    }
}

/// The table read whose column `column` names: by its qualifier, or the
/// one table with a column of that name.
fn resolve(reads: &[Read], column: &Column) -> Option<usize> {
    let has = |r: &Read| r.meta.schema.field_with_name(&column.name).is_ok();
    let mut found = reads.iter().enumerate().filter(|(_, r)| {
        has(r)
            && column.relation.as_ref().is_none_or(|q| {
                *q == r.qualifier || (q.schema().is_none() && q.table() == r.qualifier.table())
            })
    });
    let (i, _) = found.next()?;
    // Two tables it could be: no advice rather than a guess.
    found.next().is_none().then_some(i)
}

/// The bare column a conjunct compares with constants in a way an index
/// on it serves.
pub(crate) fn indexable_column(e: &Expr) -> Option<&Column> {
    match e {
        // `c = 1 OR c = 2` (DataFusion's spelling of a short IN list).
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => match (indexable_column(left), indexable_column(right)) {
            (Some(a), Some(b)) if a == b => Some(a),
            _ => None,
        },
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq,
            right,
        }) => match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(..)) | (Expr::Literal(..), Expr::Column(c)) => Some(c),
            _ => None,
        },
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) => match (expr.as_ref(), low.as_ref(), high.as_ref()) {
            (Expr::Column(c), Expr::Literal(..), Expr::Literal(..)) => Some(c),
            _ => None,
        },
        Expr::InList(InList {
            expr,
            list,
            negated: false,
        }) => match expr.as_ref() {
            Expr::Column(c) if list.iter().all(|v| matches!(v, Expr::Literal(..))) => Some(c),
            _ => None,
        },
        Expr::Like(Like {
            negated: false,
            expr,
            pattern,
            case_insensitive: false,
            ..
        }) => match (expr.as_ref(), pattern.as_ref()) {
            (Expr::Column(c), Expr::Literal(v, _)) if has_prefix(v) => Some(c),
            _ => None,
        },
        _ => None,
    }
}

/// Whether a LIKE pattern starts with a fixed character.
fn has_prefix(pattern: &ScalarValue) -> bool {
    pattern
        .try_as_str()
        .flatten()
        .and_then(|p| p.chars().next())
        .is_some_and(|c| !matches!(c, '%' | '_' | '\\'))
}

/// Whether an index a lookup on `column` can use has it first.
pub(crate) fn leads_an_index(meta: &TableMeta, column: &str) -> bool {
    meta.indexes
        .iter()
        .any(|i| !i.partial && !i.expression && i.columns.first().is_some_and(|c| c == column))
}

/// Whether the table is one (a view takes no index) large enough, or of
/// unknown size, for an index to pay.
fn large(meta: &TableMeta) -> bool {
    meta.kind == TableKind::Table
        && meta
            .stats
            .row_count
            .get_value()
            .is_none_or(|rows| *rows >= LARGE_TABLE)
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::common::stats::Precision;
    use datafusion::common::tree_node::TreeNode;
    use datafusion::prelude::SessionContext;
    use spar_connectors::{ColumnStats, IndexMeta, TableKind, TableStats};

    use super::*;
    use crate::push_down_fragments::as_fragment;
    use crate::test_util::{register_catalog, session, table_with_meta};
    use crate::Fragment;

    /// `sales.main.orders` (`o_orderkey` its primary key, `o_custkey`
    /// indexed only when `indexed`, `o_status` and `o_total` not) and
    /// `sales.main.nation` (25 rows), with statistics.
    fn context(orders_rows: usize, indexed: bool) -> SessionContext {
        let ctx = session();
        let column = |distinct: usize, min: i64, max: i64| ColumnStats {
            distinct_count: Precision::Inexact(distinct),
            min: Precision::Inexact(ScalarValue::Int64(Some(min))),
            max: Precision::Inexact(ScalarValue::Int64(Some(max))),
            ..ColumnStats::default()
        };
        let index = |name: &str, columns: &[&str], primary: bool| IndexMeta {
            name: name.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            unique: primary,
            primary,
            partial: false,
            expression: false,
        };
        let mut indexes = vec![index("orders_pkey", &["o_orderkey"], true)];
        if indexed {
            indexes.push(index("orders_cust", &["o_custkey", "o_status"], false));
        }
        let orders = TableMeta {
            name: TableName::new("main", "orders"),
            kind: TableKind::Table,
            schema: Arc::new(Schema::new(vec![
                Field::new("o_orderkey", DataType::Int64, false),
                Field::new("o_custkey", DataType::Int64, false),
                Field::new("o_status", DataType::Int64, false),
                Field::new("o_total", DataType::Int64, false),
            ])),
            stats: TableStats {
                row_count: Precision::Inexact(orders_rows),
                columns: vec![
                    column(orders_rows, 1, orders_rows as i64),
                    column(orders_rows / 10, 1, orders_rows as i64 / 10),
                    column(3, 1, 3),
                    column(orders_rows, 0, 1_000_000),
                ],
            },
            indexes,
        };
        let nation = TableMeta {
            name: TableName::new("main", "nation"),
            kind: TableKind::Table,
            schema: Arc::new(Schema::new(vec![
                Field::new("n_nationkey", DataType::Int64, false),
                Field::new("n_name", DataType::Utf8, false),
            ])),
            stats: TableStats {
                row_count: Precision::Inexact(25),
                columns: vec![column(25, 0, 24), ColumnStats::default()],
            },
            indexes: vec![],
        };
        // The same rows as a view, which takes no index.
        let mut view = orders.clone();
        view.name = TableName::new("main", "orders_v");
        view.kind = TableKind::View;
        view.indexes.clear();
        register_catalog(
            &ctx,
            "sales",
            vec![
                table_with_meta("sales", orders),
                table_with_meta("sales", nation),
                table_with_meta("sales", view),
            ],
        );
        ctx
    }

    /// The fragments of `sql`'s optimized plan.
    async fn fragments(ctx: &SessionContext, sql: &str) -> Vec<Fragment> {
        let plan = ctx
            .sql(sql)
            .await
            .and_then(|df| df.into_optimized_plan())
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let mut out = Vec::new();
        let _ = plan.apply(|n| {
            out.extend(as_fragment(n).cloned());
            Ok(TreeNodeRecursion::Continue)
        });
        out
    }

    /// The advice for the one fragment of `sql`, as `table(columns) reason`.
    async fn advice(ctx: &SessionContext, sql: &str, join_keys: &[usize]) -> Vec<String> {
        let f = fragments(ctx, sql).await;
        assert_eq!(f.len(), 1, "{sql}: {f:?}");
        f[0].index_advice(join_keys)
            .iter()
            .map(|a| format!("{} {}", a.target(), a.reason.as_str()))
            .collect()
    }

    #[tokio::test]
    async fn a_selective_filter_on_an_unindexed_column_is_advised_with_its_create_index() {
        let ctx = context(1_000_000, false);
        let sql = "SELECT o_orderkey FROM sales.main.orders WHERE o_custkey = 7";
        let f = fragments(&ctx, sql).await;
        let found = f[0].index_advice(&[]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].target(), "main.orders(o_custkey)");
        assert_eq!(found[0].reason, AdviceReason::Filter);
        assert_eq!(found[0].table_rows, Some(1_000_000));
        assert_eq!(
            found[0].create_index.as_deref(),
            Some(r#"CREATE INDEX "orders_o_custkey_idx" ON "main"."orders" ("o_custkey")"#)
        );
        // Through an alias, in IN lists, ranges and prefixes alike.
        for sql in [
            "SELECT o.o_orderkey FROM sales.main.orders o WHERE o.o_custkey = 7",
            "SELECT o_orderkey FROM sales.main.orders WHERE o_custkey IN (1, 2, 3)",
            "SELECT o_orderkey FROM sales.main.orders WHERE o_custkey BETWEEN 10 AND 20",
            "SELECT o_orderkey FROM sales.main.orders WHERE o_total < 5000 AND o_status = 1",
        ] {
            let column = if sql.contains("o_total") {
                "o_total"
            } else {
                "o_custkey"
            };
            assert_eq!(
                advice(&ctx, sql, &[]).await,
                [format!("main.orders({column}) filter")],
                "{sql}"
            );
        }
    }

    #[tokio::test]
    async fn no_advice_where_an_index_serves_or_would_not_pay() {
        let indexed = context(1_000_000, true);
        let small = context(5_000, false);
        let big = context(1_000_000, false);
        for (ctx, sql) in [
            // o_custkey leads an index (and o_total gets none beside it).
            (
                &indexed,
                "SELECT o_orderkey FROM sales.main.orders WHERE o_custkey = 7 AND o_total < 5000",
            ),
            // The primary key.
            (
                &big,
                "SELECT o_total FROM sales.main.orders WHERE o_orderkey = 7",
            ),
            // A table read whole cheaply.
            (
                &small,
                "SELECT o_orderkey FROM sales.main.orders WHERE o_custkey = 7",
            ),
            // Keeps most rows: a third of them, by o_status's 3 values.
            (
                &big,
                "SELECT o_orderkey FROM sales.main.orders WHERE o_status = 2",
            ),
            (
                &big,
                "SELECT o_orderkey FROM sales.main.orders WHERE o_total > 100",
            ),
            // Not served by an index on the column.
            (
                &big,
                "SELECT o_orderkey FROM sales.main.orders WHERE o_custkey + 1 = 7",
            ),
            (
                &big,
                "SELECT o_orderkey FROM sales.main.orders WHERE o_custkey <> 7",
            ),
            // A small table's filter.
            (
                &big,
                "SELECT n_nationkey FROM sales.main.nation WHERE n_name = 'x'",
            ),
            // A view's.
            (
                &big,
                "SELECT o_orderkey FROM sales.main.orders_v WHERE o_custkey = 7",
            ),
        ] {
            assert_eq!(advice(ctx, sql, &[]).await, Vec::<String>::new(), "{sql}");
        }
    }

    #[tokio::test]
    async fn a_join_key_that_runtime_filters_reach_is_advised_unless_indexed() {
        let sql = "SELECT o_total, o_custkey, o_orderkey FROM sales.main.orders";
        assert_eq!(
            advice(&context(1_000_000, false), sql, &[1]).await,
            ["main.orders(o_custkey) join key"]
        );
        assert_eq!(
            advice(&context(1_000_000, true), sql, &[1, 2]).await,
            Vec::<String>::new()
        );
        // A merged fragment: the key is nation's, and nation is small.
        let joined = "SELECT o.o_total, n.n_nationkey FROM sales.main.orders o \
                      JOIN sales.main.nation n ON o.o_custkey = n.n_nationkey";
        let ctx = context(1_000_000, false);
        assert_eq!(advice(&ctx, joined, &[1]).await, Vec::<String>::new());
        assert_eq!(
            advice(&ctx, joined, &[0]).await,
            ["main.orders(o_total) join key"]
        );
    }
}
