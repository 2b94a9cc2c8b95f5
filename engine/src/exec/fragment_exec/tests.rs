//! The fragment stream's rerun and give-up rules, with replicas whose
//! failures are scripted (the real servers are in tests/tests/replicas.rs).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{AsArray, Int64Array};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use spar_connectors::{
    Connector, ConnectorError, IndexMeta, SqlDialect, TableKind, TableName, TableStats,
};

use super::stream::{FragmentStream, Served, Spelling};
use crate::replica::{Policy, ReplicaSet, ReplicaSettings, Resume};

/// What a scripted replica does with a query.
#[derive(Debug, Clone, Copy)]
enum Script {
    /// Sends `n` batches of one row each (values 0..n), then ends.
    Rows(i64),
    /// Sends `n` batches of one row each (values 1..=n: other data).
    Shifted(i64),
    /// Sends `n` batches, then fails as a lost connection does.
    FailAfter(i64),
    /// Sends `n` batches, then never another.
    StallAfter(i64),
    /// Waits this many milliseconds, then sends `n` batches.
    SlowFirst(u64, i64),
    /// Sends nothing, ever, and fails its health checks.
    Hung,
    /// Sends `n` batches, then nothing, and fails its health checks.
    HungAfter(i64),
}

#[derive(Debug)]
struct Scripted {
    target: String,
    script: Script,
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]))
}

#[async_trait]
impl Connector for Scripted {
    fn target(&self) -> &str {
        &self.target
    }
    fn dialect(&self) -> Arc<dyn SqlDialect> {
        Arc::new(spar_connectors::sqlite::SqliteSqlDialect)
    }
    async fn list_schemas(&self) -> spar_connectors::Result<Vec<String>> {
        Ok(Vec::new())
    }
    async fn list_tables(&self, _: &str) -> spar_connectors::Result<Vec<(String, TableKind)>> {
        Ok(Vec::new())
    }
    async fn table_schema(&self, _: &TableName) -> spar_connectors::Result<SchemaRef> {
        Ok(schema())
    }
    async fn table_statistics(
        &self,
        _: &TableName,
        _: &SchemaRef,
    ) -> spar_connectors::Result<TableStats> {
        Ok(TableStats::unknown(1))
    }
    async fn indexes(&self, _: &TableName) -> spar_connectors::Result<Vec<IndexMeta>> {
        Ok(Vec::new())
    }
    async fn execute(
        &self,
        _sql: &str,
        schema: SchemaRef,
    ) -> spar_connectors::Result<SendableRecordBatchStream> {
        let (n, end, wait) = match self.script {
            Script::Rows(n) | Script::Shifted(n) => (n, 0, 0),
            Script::FailAfter(n) => (n, 1, 0),
            Script::StallAfter(n) => (n, 2, 0),
            Script::SlowFirst(ms, n) => (n, 0, ms),
            Script::Hung => (0, 2, 0),
            Script::HungAfter(n) => (n, 2, 0),
        };
        let target = self.target.clone();
        let batch_schema = Arc::clone(&schema);
        let first = i64::from(matches!(self.script, Script::Shifted(_)));
        let rows = futures::stream::iter(first..first + n).then(move |v| {
            let batch_schema = Arc::clone(&batch_schema);
            async move {
                if v == first && wait > 0 {
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
                Ok(RecordBatch::try_new(
                    batch_schema,
                    vec![Arc::new(Int64Array::from(vec![v]))],
                )?)
            }
        });
        let tail: futures::stream::BoxStream<'static, _> = match end {
            1 => futures::stream::once(async move {
                Err(ConnectorError::Unavailable {
                    target,
                    message: "connection reset".into(),
                }
                .into())
            })
            .boxed(),
            2 => futures::stream::pending().boxed(),
            _ => futures::stream::empty().boxed(),
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            rows.chain(tail),
        )))
    }
    async fn health_check(&self) -> spar_connectors::Result<()> {
        match self.script {
            Script::Hung | Script::HungAfter(_) => Err(ConnectorError::Transient {
                target: self.target.clone(),
                message: "the health check timed out".into(),
            }),
            _ => Ok(()),
        }
    }
}

fn replicas(scripts: &[Script], resume_buffer: usize) -> ReplicaSet {
    replicas_with(
        scripts,
        ReplicaSettings {
            stall_timeout: Duration::from_millis(200),
            first_batch_timeout: Duration::from_millis(500),
            resume_buffer,
            ..ReplicaSettings::default()
        },
    )
}

fn replicas_with(scripts: &[Script], settings: ReplicaSettings) -> ReplicaSet {
    let connectors = scripts
        .iter()
        .enumerate()
        .map(|(i, &script)| {
            Arc::new(Scripted {
                target: format!("r{i}"),
                script,
            }) as Arc<dyn Connector>
        })
        .collect();
    ReplicaSet::with_settings("src", connectors, Policy::PrimaryFirst, settings)
}

/// Runs the fragment to its end: the values read, the error that ended
/// it (if any), the replicas that served it and its metrics.
async fn run(set: &ReplicaSet) -> (Vec<i64>, Option<String>, Vec<String>, String) {
    let metrics = ExecutionPlanMetricsSet::new();
    let served = Arc::new(Mutex::new(Served::default()));
    let spelling = Spelling {
        source: "src".into(),
        sql: "SELECT v FROM t".into(),
        schema: schema(),
        resume: None,
        replay: set.settings().resume != Resume::Off,
    };
    let mut stream = FragmentStream::new(
        set.clone(),
        spelling,
        None,
        None,
        &metrics,
        Arc::clone(&served),
    );
    let mut values = Vec::new();
    let mut error = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(b) => values.extend(b.column(0).as_primitive::<Int64Type>().values().iter()),
            Err(e) => error = Some(e.to_string()),
        }
    }
    let served = served
        .lock()
        .map(|s| s.replicas.clone())
        .unwrap_or_default();
    (values, error, served, metrics.clone_inner().to_string())
}

#[tokio::test]
async fn a_failure_before_anything_was_emitted_reruns_invisibly() {
    let set = replicas(&[Script::FailAfter(3), Script::Rows(5)], 1 << 20);
    let (values, error, served, metrics) = run(&set).await;
    assert_eq!(error, None);
    assert_eq!(
        values,
        [0, 1, 2, 3, 4],
        "the first replica's rows were dropped"
    );
    assert_eq!(served, ["r0", "r1"]);
    assert!(metrics.contains("reruns{partition=0}=1"), "{metrics}");
    assert_eq!(set.stats().replicas[0].failures, 1);
}

#[tokio::test]
async fn a_stalled_replica_is_given_up_on_and_the_fragment_reruns() {
    let set = replicas(&[Script::StallAfter(2), Script::Rows(3)], 1 << 20);
    let (values, error, served, _) = run(&set).await;
    assert_eq!(error, None);
    assert_eq!(values, [0, 1, 2]);
    assert_eq!(served, ["r0", "r1"]);
    let last = set.stats().replicas[0]
        .last_error
        .clone()
        .unwrap_or_default();
    assert!(last.contains("stall_timeout"), "{last}");
}

#[tokio::test]
async fn a_fragment_replays_on_another_replica_and_emits_only_what_follows() {
    // A one-byte buffer: every batch is emitted at once.
    let set = replicas(&[Script::FailAfter(3), Script::Rows(5)], 1);
    let (values, error, served, metrics) = run(&set).await;
    assert_eq!(error, None);
    assert_eq!(values, [0, 1, 2, 3, 4], "none lost or repeated");
    assert_eq!(served, ["r0", "r1"]);
    assert!(metrics.contains("resumes{partition=0}=1"), "{metrics}");
    assert_eq!(set.stats().resumes, 1);
}

#[tokio::test]
async fn a_replay_that_fails_while_reading_again_moves_on_again() {
    // r1 fails before it has read again the three rows r0 delivered; r2,
    // the one replica that has not failed the fragment yet, replays
    // them and goes on.
    let set = replicas(
        &[Script::FailAfter(3), Script::FailAfter(2), Script::Rows(5)],
        1,
    );
    let (values, error, served, metrics) = run(&set).await;
    assert_eq!(error, None);
    assert_eq!(values, [0, 1, 2, 3, 4]);
    assert_eq!(served, ["r0", "r1", "r2"]);
    assert!(metrics.contains("resumes{partition=0}=2"), "{metrics}");
}

#[tokio::test]
async fn a_replay_whose_first_rows_differ_fails_rather_than_mix_answers() {
    let set = replicas(&[Script::FailAfter(3), Script::Shifted(5)], 1);
    let (values, error, _, _) = run(&set).await;
    assert_eq!(values, [0, 1, 2], "nothing after the failure");
    let error = error.unwrap_or_default();
    assert!(
        error.contains("replica r0 failed after the fragment had delivered rows")
            && error.contains("its first 3 rows are not the rows already delivered")
            && error.contains("connection reset")
            && error.contains("SELECT v FROM t"),
        "{error}"
    );
    assert_eq!(set.stats().failed, 1);
    // Fewer rows than were delivered: the same.
    let set = replicas(&[Script::FailAfter(3), Script::Rows(2)], 1);
    let (values, error, _, _) = run(&set).await;
    assert_eq!(values, [0, 1, 2]);
    let error = error.unwrap_or_default();
    assert!(
        error.contains("it returned 2 rows, fewer than the 3 already delivered"),
        "{error}"
    );
}

#[tokio::test]
async fn replicas_that_all_fail_at_the_same_row_end_the_fragment() {
    let set = replicas(&[Script::FailAfter(3), Script::FailAfter(3)], 1);
    let (values, error, _, _) = tokio::time::timeout(Duration::from_secs(20), run(&set))
        .await
        .unwrap_or_else(|_| panic!("the fragment kept replaying"));
    assert_eq!(values, [0, 1, 2]);
    let error = error.unwrap_or_default();
    assert!(
        error.contains("resumed 3 times in a row without a new row"),
        "{error}"
    );
}

#[tokio::test]
async fn with_resume_off_a_fragment_fails_rather_than_repeat_rows() {
    let set = replicas_with(
        &[Script::FailAfter(3), Script::Rows(5)],
        ReplicaSettings {
            resume_buffer: 1,
            resume: Resume::Off,
            ..ReplicaSettings::default()
        },
    );
    let (values, error, _, _) = run(&set).await;
    assert_eq!(values, [0, 1, 2], "what was delivered before the failure");
    let error = error.unwrap_or_default();
    assert!(
        error.contains("replica r0 failed after the fragment had delivered rows")
            && error.contains("cannot be resumed")
            && error.contains("`resume` is \"off\"")
            && error.contains("connection reset"),
        "{error}"
    );
    assert_eq!(set.stats().failed, 1);
}

fn hedged(hedge_after: &str) -> ReplicaSettings {
    ReplicaSettings {
        first_batch_timeout: Duration::from_secs(5),
        hedge_after: Some(
            hedge_after
                .parse()
                .unwrap_or_else(|e: String| panic!("{e}")),
        ),
        ..ReplicaSettings::default()
    }
}

#[tokio::test]
async fn a_late_first_batch_is_hedged_and_the_hedge_wins() {
    let set = replicas_with(
        &[Script::SlowFirst(3_000, 3), Script::Rows(3)],
        hedged("50ms"),
    );
    let (values, error, served, metrics) = run(&set).await;
    assert_eq!(error, None);
    assert_eq!(values, [0, 1, 2]);
    assert_eq!(served, ["r1"]);
    assert!(metrics.contains("hedges{partition=0}=1"), "{metrics}");
    assert!(metrics.contains("attempts{partition=0}=2"), "{metrics}");
    let stats = set.stats();
    assert_eq!(
        (stats.hedges, stats.hedges_won, stats.hedges_lost),
        (1, 1, 0)
    );
    // The slow attempt was cancelled, and counts against its replica.
    assert_eq!(stats.replicas[0].in_flight, 0);
    assert_eq!(stats.replicas[0].failures, 1);
    let last = stats.replicas[0].last_error.clone().unwrap_or_default();
    assert!(
        last.contains("no first batch within 50ms (hedge_after); r1 answered first"),
        "{last}"
    );
    assert_eq!(stats.replicas[1].first_batch.count, 1);
}

#[tokio::test]
async fn a_replica_overtaken_again_and_again_gets_no_more_fragments() {
    let settings = ReplicaSettings {
        circuit_failures: 2,
        circuit_backoff: Duration::from_secs(30),
        ..hedged("30ms")
    };
    let set = replicas_with(&[Script::SlowFirst(3_000, 1), Script::Rows(1)], settings);
    for _ in 0..2 {
        let (_, _, served, _) = run(&set).await;
        assert_eq!(served, ["r1"]);
    }
    assert_eq!(set.stats().replicas[0].state, "open");
    // Its circuit open, the next fragment goes straight to r1: no hedge.
    let (_, _, served, metrics) = run(&set).await;
    assert_eq!(served, ["r1"]);
    assert!(metrics.contains("hedges{partition=0}=0"), "{metrics}");
}

#[tokio::test]
async fn fragments_do_not_probe_an_open_circuit_while_another_is_closed() {
    let settings = ReplicaSettings {
        circuit_failures: 1,
        circuit_backoff: Duration::from_millis(10),
        ..hedged("30ms")
    };
    let set = replicas_with(&[Script::SlowFirst(3_000, 1), Script::Rows(1)], settings);
    let (_, _, served, _) = run(&set).await;
    assert_eq!(served, ["r1"]);
    assert_eq!(set.stats().replicas[0].state, "open");
    // Its back-off long over, r0 is left to the health checks: fragments
    // keep going to r1, unhedged.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..3 {
        let (_, error, served, metrics) = run(&set).await;
        assert_eq!(error, None);
        assert_eq!(served, ["r1"]);
        assert!(metrics.contains("hedges{partition=0}=0"), "{metrics}");
    }
    assert_eq!(set.stats().replicas[0].state, "open");
}

#[tokio::test]
async fn the_hedged_attempt_may_still_win() {
    let set = replicas_with(
        &[Script::SlowFirst(150, 2), Script::SlowFirst(3_000, 2)],
        hedged("20ms"),
    );
    let (values, error, served, _) = run(&set).await;
    assert_eq!(error, None);
    assert_eq!(values, [0, 1]);
    assert_eq!(served, ["r0"]);
    let stats = set.stats();
    assert_eq!(
        (stats.hedges, stats.hedges_won, stats.hedges_lost),
        (1, 0, 1)
    );
    assert_eq!(stats.replicas[1].in_flight, 0, "the hedge was cancelled");
}

#[tokio::test]
async fn no_hedge_when_the_first_batch_is_in_time_or_too_few_are_measured() {
    let set = replicas_with(&[Script::Rows(2), Script::Rows(2)], hedged("1s"));
    let (_, error, _, metrics) = run(&set).await;
    assert_eq!(error, None);
    assert!(metrics.contains("hedges{partition=0}=0"), "{metrics}");
    // A percentile needs 20 measured fragments before it hedges.
    let set = replicas_with(&[Script::SlowFirst(100, 1), Script::Rows(1)], hedged("p50"));
    let (_, _, served, _) = run(&set).await;
    assert_eq!(served, ["r0"]);
    assert_eq!(set.stats().hedges, 0);
}

#[tokio::test]
async fn a_fragment_waiting_on_a_replica_judged_down_moves_on() {
    let settings = ReplicaSettings {
        first_batch_timeout: Duration::from_secs(60),
        health_check_interval: Duration::from_millis(50),
        circuit_failures: 2,
        circuit_backoff: Duration::from_secs(30),
        ..ReplicaSettings::default()
    };
    let set = replicas_with(&[Script::Hung, Script::Rows(2)], settings);
    set.start_health_checks();
    let (values, error, served, metrics) = tokio::time::timeout(Duration::from_secs(20), run(&set))
        .await
        .unwrap_or_else(|_| panic!("the fragment waited for its first-batch timeout"));
    assert_eq!(error, None);
    assert_eq!(values, [0, 1]);
    assert_eq!(served, ["r1"]);
    assert!(metrics.contains("failovers{partition=0}=1"), "{metrics}");
    let last = set.stats().replicas[0]
        .last_error
        .clone()
        .unwrap_or_default();
    assert!(last.contains("circuit opened"), "{last}");
}

#[tokio::test]
async fn a_stream_waiting_on_a_replica_judged_down_moves_on() {
    let settings = ReplicaSettings {
        stall_timeout: Duration::from_secs(60),
        health_check_interval: Duration::from_millis(50),
        circuit_failures: 2,
        circuit_backoff: Duration::from_secs(30),
        resume_buffer: 1 << 20,
        ..ReplicaSettings::default()
    };
    // r0 sends two batches and hangs; nothing was emitted, so the
    // fragment reruns on r1 once r0's circuit opens.
    let set = replicas_with(&[Script::HungAfter(2), Script::Rows(3)], settings);
    set.start_health_checks();
    let (values, error, served, _) = tokio::time::timeout(Duration::from_secs(20), run(&set))
        .await
        .unwrap_or_else(|_| panic!("the stream waited for its stall timeout"));
    assert_eq!(error, None);
    assert_eq!(values, [0, 1, 2]);
    assert_eq!(served, ["r0", "r1"]);
}

/// Planner-side stand-in: fragments here are run by `FragmentExec::new`.
#[derive(Debug)]
struct NoRunner;

impl spar_planner::FragmentRunner for NoRunner {
    fn plan_fragment(
        &self,
        _: &spar_planner::Fragment,
    ) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        datafusion::common::internal_err!("not used")
    }
}

/// What `FragmentExec` makes of the filters DataFusion pushes to it in
/// `phase`, with `spar.runtime_filters` as given: whether it takes any,
/// and how many expressions the new node shows.
fn pushed(
    phase: datafusion::physical_plan::filter_pushdown::FilterPushdownPhase,
    runtime_filters: bool,
) -> (bool, usize, usize) {
    use datafusion::common::config::ConfigOptions;
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
    use datafusion::physical_expr::expressions::{lit, Column, DynamicFilterPhysicalExpr};
    use datafusion::physical_expr::PhysicalExpr;
    use datafusion::physical_plan::filter_pushdown::{
        ChildFilterPushdownResult, ChildPushdownResult, PushedDown,
    };
    use datafusion::physical_plan::ExecutionPlan;

    let df_schema = datafusion::common::DFSchema::try_from(schema().as_ref().clone())
        .unwrap_or_else(|e| panic!("{e}"));
    let plan = LogicalPlan::EmptyRelation(EmptyRelation {
        produce_one_row: false,
        schema: Arc::new(df_schema),
    });
    let fragment = spar_planner::Fragment {
        source: "src".into(),
        sql: "SELECT v FROM t".into(),
        statistics: Arc::new(datafusion::common::Statistics::new_unknown(&schema())),
        plan,
        dialect: Arc::new(spar_connectors::sqlite::SqliteSqlDialect),
        runner: Arc::new(NoRunner),
        resume: None,
        choice: None,
    };
    let exec = super::FragmentExec::new(&fragment, replicas(&[Script::Rows(1)], 1))
        .unwrap_or_else(|e| panic!("{e}"));
    let dynamic: Arc<dyn PhysicalExpr> = Arc::new(DynamicFilterPhysicalExpr::new(
        vec![Arc::new(Column::new("v", 0))],
        lit(true),
    ));
    let result = ChildPushdownResult {
        parent_filters: [dynamic, lit(true)]
            .into_iter()
            .map(|filter| ChildFilterPushdownResult {
                filter,
                child_results: vec![],
            })
            .collect(),
        self_filters: vec![],
    };
    let mut config = ConfigOptions::new();
    let mut options = spar_planner::SparOptions::default();
    options.runtime_filters = runtime_filters;
    config.extensions.insert(options);
    let propagated = exec
        .handle_child_pushdown_result(phase, result, &config)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        propagated
            .filters
            .iter()
            .all(|p| matches!(p, PushedDown::No)),
        "a fragment never claims a filter"
    );
    let Some(node) = propagated.updated_node else {
        return (false, 0, propagated.filters.len());
    };
    let mut shown = 0;
    node.apply_expressions(&mut |_| {
        shown += 1;
        Ok(TreeNodeRecursion::Continue)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let text = datafusion::physical_plan::displayable(node.as_ref())
        .one_line()
        .to_string();
    assert!(text.contains("runtime_filter=at start"), "{text}");
    (true, shown, propagated.filters.len())
}

#[test]
fn a_fragment_takes_the_dynamic_filters_of_joins_above_it_after_planning() {
    use datafusion::physical_plan::filter_pushdown::FilterPushdownPhase;
    // The dynamic filter is taken and shown (so that the join computes
    // it); the static one is not.
    assert_eq!(pushed(FilterPushdownPhase::Post, true), (true, 1, 2));
    assert_eq!(pushed(FilterPushdownPhase::Pre, true), (false, 0, 2));
    assert_eq!(pushed(FilterPushdownPhase::Post, false), (false, 0, 2));
}
