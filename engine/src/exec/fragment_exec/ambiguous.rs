//! `DropAmbiguousRuntimeFilters`: a fragment gives up the runtime filters
//! that may have reached it through the wrong column.
//!
//! DataFusion moves a filter from an operator to its child by column
//! *name* (`Schema::index_of`, the first column of that name). Where a
//! schema on the way holds two columns of one name (`q0.id` and `q1.id`
//! of a self-join: physical schemas drop the qualifiers), a key meant for
//! one lands on the other, and a fragment that spelled it into its SQL
//! would drop rows it must return. So after DataFusion's filter pushdown,
//! a fragment keeps its runtime filters only if no schema between it and
//! any operator that makes such filters (a hash join, for its probe side;
//! a top-k sort or an aggregate, for its input) has two columns of one
//! name; otherwise its SQL stays as planned.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::Schema;
use datafusion::common::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::joins::HashJoinExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{replace_children_if_necessary, ExecutionPlan};

use super::exec::FragmentExec;

/// See the module's documentation.
#[derive(Debug, Default)]
pub struct DropAmbiguousRuntimeFilters;

impl PhysicalOptimizerRule for DropAmbiguousRuntimeFilters {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        spar_connectors::depth::deep(|| visit(plan, None))
    }

    fn name(&self) -> &str {
        "drop_ambiguous_runtime_filters"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `below_origin`: `None` where no operator above makes filters that reach
/// here; else whether a schema between the highest such operator and this
/// node (this node's included) has two columns of one name.
fn visit(
    plan: Arc<dyn ExecutionPlan>,
    below_origin: Option<bool>,
) -> Result<Arc<dyn ExecutionPlan>> {
    if let Some(fragment) = plan.downcast_ref::<FragmentExec>() {
        return Ok(match (below_origin, fragment.without_runtime_filters()) {
            (Some(true), Some(plain)) => Arc::new(plain),
            _ => plan,
        });
    }
    let children = plan.children();
    if children.is_empty() {
        return Ok(plan);
    }
    let join = plan.downcast_ref::<HashJoinExec>().is_some();
    let origin = plan.downcast_ref::<AggregateExec>().is_some()
        || plan
            .downcast_ref::<SortExec>()
            .is_some_and(|s| s.fetch().is_some());
    let mut new_children = Vec::with_capacity(children.len());
    for (i, child) in children.into_iter().enumerate() {
        let twice = repeats_a_name(&child.schema());
        let state = if origin || (join && i == 1) {
            Some(below_origin.unwrap_or(false) || twice)
        } else {
            below_origin.map(|b| b || twice)
        };
        new_children.push(visit(Arc::clone(child), state)?);
    }
    // Rebuilds the node only when a child changed.
    replace_children_if_necessary(plan, new_children)
}

fn repeats_a_name(schema: &Schema) -> bool {
    let mut seen = HashSet::new();
    !schema.fields().iter().all(|f| seen.insert(f.name()))
}
