use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::ScalarValue;
use datafusion::prelude::SessionContext;
use spar_connectors::{ColumnStats, IndexMeta, TableKind, TableMeta, TableName, TableStats};

use crate::cost::SourceSpeed;
use crate::fragment::Fragment;
use crate::push_down_fragments::as_fragment;
use crate::test_util::{register_catalog, session, table_with_runner, TestRunner};

/// `shop.main.big` (a million rows; `b_small` is one of 1,000 keys of
/// `small`) and `shop.main.small` (1,000 rows, `s_group` one of 10),
/// run by `runner`.
fn context(runner: TestRunner) -> SessionContext {
    let ctx = session();
    let runner: Arc<TestRunner> = Arc::new(runner);
    let column = |distinct: usize, max: i64| ColumnStats {
        distinct_count: Precision::Inexact(distinct),
        min: Precision::Inexact(ScalarValue::Int64(Some(1))),
        max: Precision::Inexact(ScalarValue::Int64(Some(max))),
        ..ColumnStats::default()
    };
    let primary = |name: &str, column: &str| IndexMeta {
        name: name.into(),
        columns: vec![column.into()],
        unique: true,
        primary: true,
        partial: false,
        expression: false,
    };
    let table = |name: &str, fields: Vec<Field>, rows: usize, columns, indexes| TableMeta {
        name: TableName::new("main", name),
        kind: TableKind::Table,
        schema: Arc::new(Schema::new(fields)),
        stats: TableStats {
            row_count: Precision::Inexact(rows),
            columns,
        },
        indexes,
    };
    let big = table(
        "big",
        vec![
            Field::new("b_id", DataType::Int64, false),
            Field::new("b_small", DataType::Int64, false),
            Field::new("b_v", DataType::Int64, false),
        ],
        1_000_000,
        vec![
            column(1_000_000, 1_000_000),
            column(1_000, 1_000),
            column(1_000, 1_000),
        ],
        vec![primary("big_pkey", "b_id")],
    );
    let small = table(
        "small",
        vec![
            Field::new("s_id", DataType::Int64, false),
            Field::new("s_name", DataType::Utf8, false),
            Field::new("s_group", DataType::Int64, false),
        ],
        1_000,
        vec![
            column(1_000, 1_000),
            ColumnStats {
                distinct_count: Precision::Inexact(1_000),
                ..ColumnStats::default()
            },
            column(10, 10),
        ],
        vec![primary("small_pkey", "s_id")],
    );
    register_catalog(
        &ctx,
        "shop",
        vec![
            table_with_runner("shop", big, Arc::clone(&runner) as _),
            table_with_runner("shop", small, runner),
        ],
    );
    ctx
}

/// A join of the large table with a few rows of the small one, grouped
/// to 10 rows.
const QUERY: &str = "SELECT s_group, sum(b_v) FROM shop.main.big JOIN shop.main.small \
                     ON b_small = s_id WHERE s_name = 'x' GROUP BY s_group";

/// The fragments of `sql`'s optimized plan, and the plan.
async fn planned(ctx: &SessionContext, sql: &str) -> (Vec<Fragment>, String) {
    let plan = ctx
        .sql(sql)
        .await
        .and_then(|df| df.into_optimized_plan())
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut out = Vec::new();
    let _ = plan.apply_with_subqueries(|n| {
        out.extend(as_fragment(n).cloned());
        Ok(TreeNodeRecursion::Continue)
    });
    let text = plan.display_indent().to_string();
    (out, text)
}

fn slow_joins() -> TestRunner {
    TestRunner {
        speed: SourceSpeed {
            scan: 1.0,
            work: 10.0,
        },
        ..TestRunner::default()
    }
}

#[tokio::test]
async fn a_source_at_the_default_speed_runs_the_join_and_aggregate_whole() {
    let (fragments, plan) = planned(&context(TestRunner::default()), QUERY).await;
    assert_eq!(fragments.len(), 1, "{plan}");
    let choice = fragments[0]
        .choice
        .as_deref()
        .unwrap_or_else(|| panic!("{plan}"));
    assert!(!choice.split, "{plan}");
    assert!(!choice.whole_measured);
    // Weighed, and found not worth cutting: the cut costs more than half.
    assert!(
        choice.split_cost > choice.whole * super::SPLIT_AT,
        "{choice}"
    );
    assert!(
        fragments[0].sql.contains("GROUP BY"),
        "{}",
        fragments[0].sql
    );
}

#[tokio::test]
async fn a_source_that_joins_slowly_sends_the_tables_and_spar_joins_them() {
    let (fragments, plan) = planned(&context(slow_joins()), QUERY).await;
    assert_eq!(fragments.len(), 2, "{plan}");
    for f in &fragments {
        let choice = f.choice.as_deref().unwrap_or_else(|| panic!("{plan}"));
        assert!(choice.split, "{choice}");
        assert!(
            choice.split_cost <= choice.whole * super::SPLIT_AT,
            "{choice}"
        );
        assert!(
            !f.sql.contains("JOIN") && !f.sql.contains("GROUP BY"),
            "{}",
            f.sql
        );
    }
    // The filter still goes to the small table's fragment.
    assert!(
        fragments.iter().any(|f| f.sql.contains("'x'")),
        "{fragments:?}"
    );
    // The join and the aggregate run locally, over the two.
    let local = plan
        .lines()
        .take_while(|l| !l.contains("Fragment"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        local.contains("Aggregate") && local.contains("Join"),
        "{plan}"
    );
}

#[tokio::test]
async fn a_measured_slow_run_of_the_whole_fragment_outweighs_the_estimate() {
    let runner = TestRunner {
        measured: vec![("GROUP BY", 5.0)],
        ..TestRunner::default()
    };
    let (fragments, plan) = planned(&context(runner), QUERY).await;
    assert_eq!(fragments.len(), 2, "{plan}");
    let choice = fragments[0]
        .choice
        .as_deref()
        .unwrap_or_else(|| panic!("{plan}"));
    assert!(choice.split && choice.whole_measured, "{choice}");
    assert_eq!(choice.whole, 5.0);
}

#[tokio::test]
async fn pieces_measured_slower_than_the_whole_keep_it_whole() {
    // The large table's scan alone took longer than the whole did.
    let runner = TestRunner {
        speed: SourceSpeed {
            scan: 1.0,
            work: 10.0,
        },
        measured: vec![("GROUP BY", 0.5), ("\"big\"", 2.0)],
    };
    let (fragments, plan) = planned(&context(runner), QUERY).await;
    assert_eq!(fragments.len(), 1, "{plan}");
    let choice = fragments[0]
        .choice
        .as_deref()
        .unwrap_or_else(|| panic!("{plan}"));
    assert!(!choice.split && choice.whole_measured, "{choice}");
    assert!(choice.split_cost > 2.0, "{choice}");
}

#[tokio::test]
async fn the_switch_keeps_every_fragment_whole() {
    let ctx = context(slow_joins());
    ctx.sql("SET spar.push_or_pull = false")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (fragments, plan) = planned(&ctx, QUERY).await;
    assert_eq!(fragments.len(), 1, "{plan}");
    assert!(fragments[0].choice.is_none(), "{plan}");
}

#[tokio::test]
async fn a_scan_alone_is_not_weighed() {
    let (fragments, plan) = planned(
        &context(slow_joins()),
        "SELECT b_v FROM shop.main.big WHERE b_id = 3",
    )
    .await;
    assert_eq!(fragments.len(), 1, "{plan}");
    assert!(fragments[0].choice.is_none(), "{plan}");
}
