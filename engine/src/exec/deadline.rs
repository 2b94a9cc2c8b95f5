//! `spar.statement_timeout`: a query that runs longer is stopped.
//!
//! The engine's query planner puts a [`DeadlineExec`] on top of every
//! physical plan when the session has a timeout. Its deadline is fixed
//! when the plan is made, which is when a query starts running
//! (`DataFrame::collect`, `execute_stream`); each output stream fails
//! with [`EngineError::StatementTimeout`] once it passes, even while
//! nothing arrives from below. The plan beneath is dropped with the
//! stream, and with it every fragment's statement on its source.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::catalog::Session as DfSession;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::ReplaceChildrenOptions;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::Stream;
use spar_planner::{SparOptions, SparQueryPlanner};
use tokio::time::{Instant, Sleep};

use crate::error::EngineError;

/// Spar's query planner, with the session's statement timeout.
#[derive(Debug, Default)]
pub(crate) struct TimedQueryPlanner;

#[async_trait]
impl QueryPlanner for TimedQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn DfSession,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = SparQueryPlanner
            .create_physical_plan(logical_plan, session)
            .await?;
        let timeout = session
            .config_options()
            .extensions
            .get::<SparOptions>()
            .and_then(|o| o.statement_timeout.0);
        Ok(match timeout {
            Some(limit) => Arc::new(DeadlineExec::new(plan, limit)),
            None => plan,
        })
    }
}

/// Fails its input's streams once `limit` has passed since it was made.
#[derive(Debug)]
pub struct DeadlineExec {
    input: Arc<dyn ExecutionPlan>,
    limit: Duration,
    deadline: Instant,
}

impl DeadlineExec {
    /// `input`, stopped `limit` from now.
    pub fn new(input: Arc<dyn ExecutionPlan>, limit: Duration) -> Self {
        Self {
            input,
            limit,
            deadline: Instant::now() + limit,
        }
    }
}

impl DisplayAs for DeadlineExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let limit = humantime::format_duration(self.limit);
        match t {
            DisplayFormatType::TreeRender => write!(f, "statement_timeout={limit}"),
            _ => write!(f, "DeadlineExec: statement_timeout={limit}"),
        }
    }
}

impl ExecutionPlan for DeadlineExec {
    fn name(&self) -> &str {
        "DeadlineExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return datafusion::common::internal_err!(
                "DeadlineExec has one child, given {}",
                children.len()
            );
        }
        Ok(Arc::new(Self {
            input: children.swap_remove(0),
            limit: self.limit,
            deadline: self.deadline,
        }))
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(
                datafusion::physical_plan::execution_plan::ChildrenPropertiesMode::Recompute,
            ),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        Ok(Box::pin(DeadlineStream {
            input: Some(input),
            schema: self.input.schema(),
            sleep: Box::pin(tokio::time::sleep_until(self.deadline)),
            limit: self.limit,
        }))
    }
}

/// A stream that ends with an error at its deadline.
struct DeadlineStream {
    /// `None` once the deadline has passed (the input is dropped then).
    input: Option<SendableRecordBatchStream>,
    schema: arrow::datatypes::SchemaRef,
    sleep: Pin<Box<Sleep>>,
    limit: Duration,
}

impl Stream for DeadlineStream {
    type Item = Result<arrow::record_batch::RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.input.is_none() {
            return Poll::Ready(None);
        }
        // The deadline first: an input that always has a batch ready
        // must not outrun it.
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.input = None;
            let error = EngineError::StatementTimeout { limit: self.limit };
            return Poll::Ready(Some(Err(DataFusionError::External(Box::new(error)))));
        }
        match self.input.as_mut() {
            Some(input) => input.as_mut().poll_next(cx),
            None => Poll::Ready(None),
        }
    }
}

impl RecordBatchStream for DeadlineStream {
    fn schema(&self) -> arrow::datatypes::SchemaRef {
        Arc::clone(&self.schema)
    }
}
