//! `DropAmbiguousRuntimeFilters`: a fragment gives up the runtime filters
//! that may have reached it through the wrong column.
//!
//! DataFusion moves a filter from an operator to its child by column
//! *name* (`Schema::index_of`, the first column of that name). Where a
//! schema on the way holds two columns of one name (`q0.id` and `q1.id`
//! of a self-join: physical schemas drop the qualifiers), a key meant for
//! one lands on the other, and a fragment that spelled it into its SQL
//! would drop rows it must return. So after DataFusion's filter pushdown,
//! a fragment keeps a runtime filter only if no schema between it and the
//! operator that made that filter (a hash join, for its probe side; a
//! top-k sort or an aggregate, for its input) has two columns of one name.
//! Each filter is followed on its own path (by its expression id, which
//! the copies DataFusion makes on the way keep): a name repeated above a
//! join does not cost the join's own filter. A filter whose maker is not
//! found above the fragment is dropped too.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::Schema;
use datafusion::common::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::joins::HashJoinExec;
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
        spar_connectors::depth::deep(|| visit(plan, &[]))
    }

    fn name(&self) -> &str {
        "drop_ambiguous_runtime_filters"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `active`: the filters made above this node that may reach it, by
/// expression id, each with whether a schema between its maker and this
/// node (this node's included) has two columns of one name.
fn visit(plan: Arc<dyn ExecutionPlan>, active: &[(u64, bool)]) -> Result<Arc<dyn ExecutionPlan>> {
    if let Some(fragment) = plan.downcast_ref::<FragmentExec>() {
        let keep = |f: &Arc<dyn PhysicalExpr>| {
            f.expression_id()
                .is_some_and(|id| active.iter().any(|(a, twice)| *a == id && !twice))
        };
        return Ok(match fragment.keeping_runtime_filters(keep) {
            Some(kept) => Arc::new(kept),
            None => plan,
        });
    }
    let children = plan.children();
    if children.is_empty() {
        return Ok(plan);
    }
    // The filters this node makes: a hash join's go to its probe side
    // (its second child), others' to every child.
    let made: Vec<u64> = plan
        .dynamic_expressions_produced()
        .iter()
        .filter_map(|e| e.expression_id())
        .collect();
    let join = plan.downcast_ref::<HashJoinExec>().is_some();
    let mut new_children = Vec::with_capacity(children.len());
    for (i, child) in children.into_iter().enumerate() {
        let twice = repeats_a_name(&child.schema());
        let mut below: Vec<(u64, bool)> = active.iter().map(|(id, t)| (*id, *t || twice)).collect();
        if !join || i == 1 {
            below.extend(made.iter().map(|id| (*id, twice)));
        }
        new_children.push(visit(Arc::clone(child), &below)?);
    }
    // Rebuilds the node only when a child changed.
    replace_children_if_necessary(plan, new_children)
}

fn repeats_a_name(schema: &Schema) -> bool {
    let mut seen = HashSet::new();
    !schema.fields().iter().all(|f| seen.insert(f.name()))
}
