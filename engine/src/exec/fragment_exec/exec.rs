//! The `ExecutionPlan` of a fragment.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::Statistics;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_expr::expressions::DynamicFilterPhysicalExpr;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::filter_pushdown::{
    ChildPushdownResult, FilterPushdownPhase, FilterPushdownPropagation, PushedDown,
};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    ReplaceChildrenOptions, StatisticsArgs,
};
use spar_connectors::SqlDialect;
use spar_planner::index_advice::index_advice;
use spar_planner::{
    Choice, Fragment, FragmentRunner, IndexAdvice, SourceSpeed, SparOptions, TableStatistics,
};

use super::stream::{FragmentStream, RuntimeFilters, Served, Spelling, Timing};
use crate::replica::{ReplicaSet, Resume};

/// Runs one fragment's SQL on a replica of its source.
///
/// It carries the fragment's sub-plan and dialect, not only its SQL, so
/// that the SQL can be spelled again when it runs. When its replica fails
/// after rows were emitted, the fragment replays on another replica
/// (the same SQL, its first rows checked against those delivered); with
/// `resume = "key_order"`, a scan of a table with a usable key, estimated
/// larger than the source's `resume_buffer`, is read in key order and
/// continues after the last key read ([`spar_planner::ResumableScan`]).
///
/// It takes the dynamic filters of the hash joins above it (DataFusion's
/// filter pushdown, after physical planning) and, when it starts, spells
/// the keys they hold into its SQL ([`spar_planner::runtime_filter`]).
#[derive(Debug)]
pub struct FragmentExec {
    spelling: Spelling,
    /// The dynamic filters of hash joins above, read when the fragment
    /// starts (by then each join's build side is done).
    runtime_filters: RuntimeFilters,
    plan: LogicalPlan,
    dialect: Arc<dyn SqlDialect>,
    replicas: ReplicaSet,
    statistics: Arc<Statistics>,
    /// For EXPLAIN: the fragment's tables that had no row count, or whose
    /// statistics were older than the source's `statistics_ttl`.
    statistics_note: Option<String>,
    /// Indexes the source lacks for the fragment's selective filters and
    /// for the join keys its runtime filters carry (EXPLAIN,
    /// `system.index_advice`).
    advice: Vec<IndexAdvice>,
    /// What `push_or_pull` decided of the fragment (EXPLAIN).
    choice: Option<Arc<Choice>>,
    /// What its runs are measured against.
    timing: Option<Timing>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
    /// The replicas that served the last execution, for EXPLAIN ANALYZE.
    /// Written by the stream, read by the display.
    served: Arc<Mutex<Served>>,
}

impl FragmentExec {
    /// An operator that runs `fragment` on `replicas`.
    pub fn new(fragment: &Fragment, replicas: ReplicaSet) -> Result<Self> {
        let schema: SchemaRef = Arc::new(fragment.df_schema().as_arrow().clone());
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        let settings = replicas.settings();
        // Reading in key order only pays where there is another replica
        // to resume on: a source with one replica keeps the plain SQL.
        let resume = fragment
            .resume
            .as_ref()
            .filter(|_| {
                settings.resume == Resume::KeyOrder && replicas.connectors().nth(1).is_some()
            })
            .filter(|_| may_exceed(&fragment.statistics, &schema, settings.resume_buffer))
            .map(Arc::clone);
        let sql = match &resume {
            Some(scan) => scan.sql(None, 0)?,
            None => fragment.sql.clone(),
        };
        // Every other fragment replays, unless resuming is off: a rerun
        // on the same replica (one that restarted) is worth it too.
        let replay = resume.is_none() && settings.resume != Resume::Off;
        let statistics_note =
            statistics_note(&fragment.tables_statistics(), settings.statistics_ttl);
        Ok(Self {
            spelling: Spelling {
                source: fragment.source.clone(),
                sql,
                schema,
                resume,
                replay,
            },
            runtime_filters: RuntimeFilters::default(),
            plan: fragment.plan.clone(),
            dialect: Arc::clone(&fragment.dialect),
            replicas,
            statistics: Arc::clone(&fragment.statistics),
            statistics_note,
            advice: fragment.index_advice(&[]),
            choice: fragment.choice.clone(),
            timing: spar_planner::cost::source_cost(&fragment.plan).map(|predicted| Timing {
                sql: fragment.sql.as_str().into(),
                predicted,
            }),
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
            served: Arc::new(Mutex::new(Served::default())),
        })
    }

    /// The source's name.
    pub fn source(&self) -> &str {
        &self.spelling.source
    }

    /// The SQL sent to the source first.
    pub fn sql(&self) -> &str {
        &self.spelling.sql
    }

    /// The sub-plan the fragment computes, in Spar's table names.
    pub fn plan(&self) -> &LogicalPlan {
        &self.plan
    }

    /// The source's dialect.
    pub fn dialect(&self) -> &Arc<dyn SqlDialect> {
        &self.dialect
    }

    /// The key a resumable fragment is read in order of, if it is.
    pub fn resume_key(&self) -> Option<&[String]> {
        self.spelling.resume.as_ref().map(|s| s.key_names())
    }

    /// The same fragment with only the runtime filters `keep` accepts, if
    /// it drops any.
    pub(super) fn keeping_runtime_filters(
        &self,
        keep: impl Fn(&Arc<dyn PhysicalExpr>) -> bool,
    ) -> Option<Self> {
        self.runtime_filters
            .retain(keep)
            .map(|filters| self.with_runtime_filters(filters))
    }

    /// The indexes the source lacks for this fragment.
    pub fn index_advice(&self) -> &[IndexAdvice] {
        &self.advice
    }

    /// The same fragment, also reading `filters` when it starts.
    fn with_runtime_filters(&self, filters: RuntimeFilters) -> Self {
        let advice = index_advice(&self.plan, &filters.key_columns(), self.dialect.as_ref());
        Self {
            spelling: self.spelling.clone(),
            runtime_filters: filters,
            plan: self.plan.clone(),
            dialect: Arc::clone(&self.dialect),
            replicas: self.replicas.clone(),
            statistics: Arc::clone(&self.statistics),
            statistics_note: self.statistics_note.clone(),
            advice,
            choice: self.choice.clone(),
            timing: self.timing.clone(),
            properties: Arc::clone(&self.properties),
            metrics: ExecutionPlanMetricsSet::new(),
            served: Arc::new(Mutex::new(Served::default())),
        }
    }
}

/// `missing for public.t; read 2h 5m ago for public.u`: the tables whose
/// statistics had no row count, and those read longer than `ttl` ago;
/// `None` when every table's were there and fresh.
fn statistics_note(tables: &[TableStatistics], ttl: Duration) -> Option<String> {
    let names = |f: &dyn Fn(&TableStatistics) -> bool| {
        tables
            .iter()
            .filter(|t| f(t))
            .map(|t| t.table.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let missing = names(&|t| !t.has_row_count);
    let oldest = tables
        .iter()
        .filter(|t| t.has_row_count && t.age > ttl)
        .map(|t| t.age)
        .max();
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing for {missing}"));
    }
    if let Some(oldest) = oldest {
        let stale = names(&|t| t.has_row_count && t.age > ttl);
        let age = Duration::from_secs(oldest.as_secs().max(1));
        parts.push(format!(
            "read {} ago for {stale}",
            humantime::format_duration(age)
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// `public.t(a) for filter; public.u(b) for join key`, or `None`.
fn advice_note(advice: &[IndexAdvice]) -> Option<String> {
    (!advice.is_empty()).then(|| {
        advice
            .iter()
            .map(|a| format!("{} for {}", a.target(), a.reason.as_str()))
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// Whether a fragment may return more than `bytes`: its estimated rows
/// times an estimated row width, or unknown.
fn may_exceed(statistics: &Statistics, schema: &SchemaRef, bytes: usize) -> bool {
    let Some(rows) = statistics.num_rows.get_value() else {
        return true;
    };
    let width: usize = schema
        .fields()
        .iter()
        .map(|f| f.data_type().primitive_width().unwrap_or(32))
        .sum::<usize>()
        .max(1);
    rows.saturating_mul(width) > bytes
}

impl DisplayAs for FragmentExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let (served, runtime, sent) = self
            .served
            .lock()
            .map(|s| {
                (
                    s.replicas.join(" -> "),
                    s.runtime_filter.clone(),
                    s.sql.clone(),
                )
            })
            .unwrap_or_default();
        let source = &self.spelling.source;
        let sql = &self.spelling.sql;
        // Before it runs: that it takes runtime filters; after (EXPLAIN
        // ANALYZE): what they added, and in VERBOSE the SQL it sent.
        let runtime =
            runtime.or_else(|| (!self.runtime_filters.is_empty()).then(|| "at start".to_string()));
        match t {
            DisplayFormatType::TreeRender => {
                writeln!(f, "source={source}")?;
                if !served.is_empty() {
                    writeln!(f, "replica={served}")?;
                }
                if let Some(note) = &self.statistics_note {
                    writeln!(f, "statistics={note}")?;
                }
                if let Some(advice) = advice_note(&self.advice) {
                    writeln!(f, "index_advice={advice}")?;
                }
                if let Some(runtime) = &runtime {
                    writeln!(f, "runtime_filter={runtime}")?;
                }
                if let Some(choice) = self.choice.as_ref().filter(|c| c.split) {
                    writeln!(f, "push_or_pull={choice}")?;
                }
                write!(f, "sql={sql}")
            }
            _ => {
                write!(f, "FragmentExec: source={source}")?;
                if !served.is_empty() {
                    write!(f, ", replica={served}")?;
                }
                if let Some(note) = &self.statistics_note {
                    write!(f, ", statistics={note}")?;
                }
                if let Some(advice) = advice_note(&self.advice) {
                    write!(f, ", index_advice={advice}")?;
                }
                if let Some(runtime) = &runtime {
                    write!(f, ", runtime_filter={runtime}")?;
                }
                // A split is shown always; a fragment kept whole, in VERBOSE.
                if let Some(choice) = self
                    .choice
                    .as_ref()
                    .filter(|c| c.split || t == DisplayFormatType::Verbose)
                {
                    write!(f, ", push_or_pull={choice}")?;
                }
                write!(f, ", sql={}", sql.replace('\n', " "))?;
                match sent {
                    Some(sent) if t == DisplayFormatType::Verbose => {
                        write!(f, ", sent={}", sent.replace('\n', " "))
                    }
                    _ => Ok(()),
                }
            }
        }
    }
}

impl ExecutionPlan for FragmentExec {
    fn name(&self) -> &str {
        "FragmentExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        // A hash join computes its dynamic filter only when a node below
        // it shows that it reads the filter.
        datafusion::physical_plan::apply_expression_roots(self.runtime_filters.filters(), f)
    }

    fn handle_child_pushdown_result(
        &self,
        phase: FilterPushdownPhase,
        child_pushdown_result: ChildPushdownResult,
        config: &ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        let filters: Vec<Arc<dyn PhysicalExpr>> = child_pushdown_result
            .parent_filters
            .into_iter()
            .map(|f| f.filter)
            .collect();
        // The fragment never claims a filter: what it adds to its SQL may
        // let more rows through, and the operators above still apply theirs.
        let result = FilterPushdownPropagation::with_parent_pushdown_result(vec![
            PushedDown::No;
            filters.len()
        ]);
        let wanted = phase == FilterPushdownPhase::Post
            // A key-ordered scan is spelled again on resume without them.
            && self.spelling.resume.is_none()
            && config
                .extensions
                .get::<SparOptions>()
                .is_none_or(|o| o.runtime_filters && o.pushdown);
        let new: Vec<_> = filters
            .into_iter()
            .filter(|f| f.downcast_ref::<DynamicFilterPhysicalExpr>().is_some())
            .filter(|f| !self.runtime_filters.filters().contains(f))
            .collect();
        if !wanted || new.is_empty() {
            return Ok(result);
        }
        // DataFusion makes IN lists of at most this many keys per
        // partition; a filter from several partitions joins theirs.
        let max_keys = config
            .optimizer
            .hash_join_inlist_pushdown_max_distinct_values
            .saturating_mul(config.execution.target_partitions.max(1));
        let filters = self.runtime_filters.with(new, max_keys);
        Ok(result.with_updated_node(Arc::new(self.with_runtime_filters(filters))))
    }

    fn replace_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return datafusion::common::internal_err!(
                "FragmentExec has one partition, asked for {partition}"
            );
        }
        if let Ok(mut served) = self.served.lock() {
            *served = Served::default();
        }
        self.replicas.record_index_advice(&self.advice);
        Ok(Box::pin(FragmentStream::new(
            self.replicas.clone(),
            self.spelling.clone(),
            self.runtime_filters.for_plan(&self.plan, &self.statistics),
            self.timing.clone(),
            &self.metrics,
            Arc::clone(&self.served),
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        Ok(Arc::clone(&self.statistics))
    }
}

impl FragmentRunner for ReplicaSet {
    fn plan_fragment(&self, fragment: &Fragment) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(FragmentExec::new(fragment, self.clone())?))
    }

    fn speed(&self) -> SourceSpeed {
        ReplicaSet::speed(self)
    }

    fn measured(&self, sql: &str) -> Option<f64> {
        ReplicaSet::measured(self, sql)
    }
}
