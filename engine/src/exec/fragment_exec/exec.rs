//! The `ExecutionPlan` of a fragment.

use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::Statistics;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    ReplaceChildrenOptions, StatisticsArgs,
};
use spar_planner::{Fragment, FragmentRunner};

use super::stream::FragmentStream;
use crate::replica::ReplicaSet;

/// Runs one fragment's SQL on a replica of its source.
#[derive(Debug)]
pub struct FragmentExec {
    source: String,
    sql: String,
    schema: SchemaRef,
    replicas: ReplicaSet,
    statistics: Arc<Statistics>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
    /// The replica that served the last execution, for EXPLAIN ANALYZE.
    /// Written once per execution by the stream, read by the display.
    served_by: Arc<Mutex<Option<String>>>,
}

impl FragmentExec {
    /// An operator that runs `fragment` on `replicas`.
    pub fn new(fragment: &Fragment, replicas: ReplicaSet) -> Self {
        let schema: SchemaRef = Arc::new(fragment.df_schema().as_arrow().clone());
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self {
            source: fragment.source.clone(),
            sql: fragment.sql.clone(),
            schema,
            replicas,
            statistics: Arc::clone(&fragment.statistics),
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
            served_by: Arc::new(Mutex::new(None)),
        }
    }

    /// The source's name.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The SQL sent to the source.
    pub fn sql(&self) -> &str {
        &self.sql
    }
}

impl DisplayAs for FragmentExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let served_by = self.served_by.lock().ok().and_then(|r| r.clone());
        match t {
            DisplayFormatType::TreeRender => {
                writeln!(f, "source={}", self.source)?;
                if let Some(r) = served_by {
                    writeln!(f, "replica={r}")?;
                }
                write!(f, "sql={}", self.sql)
            }
            _ => {
                write!(f, "FragmentExec: source={}", self.source)?;
                if let Some(r) = served_by {
                    write!(f, ", replica={r}")?;
                }
                write!(f, ", sql={}", self.sql.replace('\n', " "))
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
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
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
        Ok(Box::pin(FragmentStream::new(
            self.replicas.clone(),
            self.sql.clone(),
            Arc::clone(&self.schema),
            &self.metrics,
            Arc::clone(&self.served_by),
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
        Ok(Arc::new(FragmentExec::new(fragment, self.clone())))
    }
}
