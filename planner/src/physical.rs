//! Physical planning of Spar's logical nodes.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::error::Result;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{LogicalPlan, UserDefinedLogicalNode};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};

use crate::fragment::Fragment;

/// Plans a [`Fragment`] through its source's [`crate::FragmentRunner`].
#[derive(Debug, Default)]
pub struct FragmentPlanner;

#[async_trait]
impl ExtensionPlanner for FragmentPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        _physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        match node.as_any().downcast_ref::<Fragment>() {
            Some(fragment) => fragment.runner.plan_fragment(fragment).map(Some),
            None => Ok(None),
        }
    }
}

/// DataFusion's physical planner with Spar's extension planners.
#[derive(Debug, Default)]
pub struct SparQueryPlanner;

#[async_trait]
impl QueryPlanner for SparQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(FragmentPlanner)])
            .create_physical_plan(logical_plan, session)
            .await
    }
}
