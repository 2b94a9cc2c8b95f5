//! `PushOrPull`: runs a fragment's sub-plan locally, over smaller
//! fragments, where the cost model finds that cheaper than running it
//! whole in its source.
//!
//! Pushing everything a source can run is not always fastest: a source
//! may join slowly (MariaDB's nested loops over a large table), and
//! sending a table's rows to be joined by DataFusion, with a runtime
//! filter from the other side, can cost less. For each fragment that
//! joins, aggregates or unions, the rule weighs every way to cut its
//! sub-plan, bottom-up: each node either runs in the source with all of
//! its inputs, or locally over its inputs, each cut the cheaper way
//! ([`crate::cost`]; scans always run in the source). The sub-plan is cut
//! only when the cheapest cut costs at most half of running it whole,
//! and saves at least 50 ms. Where the source has run the whole fragment
//! before, its measured time ([`crate::FragmentRunner::measured`])
//! stands for the estimate, the model's work in the source is scaled to
//! match it in the pieces too, and the pieces' own measured times stand
//! for theirs. Both ways give the same
//! rows: the pieces are the sub-plan's own subtrees, each pushed as
//! `push_down_fragments` pushes it, and DataFusion computes the rest.
//!
//! ```text
//! Fragment: source=catalog                  Aggregate              (local)
//!   Aggregate                                 Join                 (local)
//!     Join          ==>  (whole 3.3 s          Fragment: partsupp
//!       partsupp          measured, split       Fragment: supplier ⋈ nation
//!       supplier ⋈ nation 0.4 s estimated)
//! ```
//!
//! `SET spar.push_or_pull = false` keeps every fragment whole.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, Extension, Join, JoinType, LogicalPlan};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use crate::cardinality;
use crate::cost::{self, SourceSpeed, FRAGMENT};
use crate::fragment::{Choice, Fragment};
use crate::options::SparOptions;
use crate::push_down_fragments::{as_fragment, PushDownFragments};

/// A sub-plan is cut when the cut costs at most this share of running it
/// whole: the model is rough, and a wrong cut can cost more than the
/// time it was meant to save.
pub const SPLIT_AT: f64 = 0.5;

/// Nor is it cut to save less than this many seconds: a plan that changes
/// for milliseconds only changes.
pub const LEAST_SAVED: f64 = 0.05;

/// Whether a cut of `split` seconds is worth making instead of `whole`.
fn worth_cutting(split: f64, whole: f64) -> bool {
    split <= whole * SPLIT_AT && whole - split >= LEAST_SAVED
}

/// The most distinct keys a runtime filter sends as a list (as in
/// `join_order`): a local join whose smaller side has at most this many
/// keys sends them to the larger side's fragment.
const LIST_KEYS: f64 = 4096.0;

/// Cuts fragments where running part of them locally is cheaper (see the
/// module's documentation).
#[derive(Debug, Default)]
pub struct PushOrPull;

impl PushOrPull {
    /// The rule.
    pub fn new() -> Self {
        Self
    }
}

impl OptimizerRule for PushOrPull {
    fn name(&self) -> &str {
        "push_or_pull"
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let config = config.options();
        let options = config.extensions.get::<SparOptions>();
        if !options.is_none_or(|o| o.pushdown && o.push_or_pull) {
            return Ok(Transformed::no(plan));
        }
        let model = Model {
            runtime_filters: options.is_none_or(|o| o.runtime_filters),
        };
        spar_connectors::depth::deep(|| {
            plan.transform_up_with_subqueries(|node| {
                let Some(fragment) = as_fragment(&node) else {
                    return Ok(Transformed::no(node));
                };
                if fragment.choice.is_some() || !splittable(&fragment.plan) {
                    return Ok(Transformed::no(node));
                }
                Ok(match decide(fragment, &model)? {
                    Some(plan) => Transformed::yes(plan),
                    None => Transformed::no(node),
                })
            })
        })
    }
}

/// What the model assumes of the session.
struct Model {
    /// Whether a local join's keys reach the fragment on its other side.
    runtime_filters: bool,
}

/// Whether `plan` has work that DataFusion could do instead of the
/// source: a join, an aggregate, a window or a union.
fn splittable(plan: &LogicalPlan) -> bool {
    plan.exists(|n| {
        Ok(matches!(
            n,
            LogicalPlan::Join(_)
                | LogicalPlan::Aggregate(_)
                | LogicalPlan::Distinct(_)
                | LogicalPlan::Window(_)
                | LogicalPlan::Union(_)
        ))
    })
    .unwrap_or(false)
}

/// The ways to run one node of a fragment's sub-plan.
#[derive(Debug)]
struct Ways {
    /// Seconds for the source to run the node and everything below it.
    source: f64,
    /// Seconds to send its output (and to open a fragment for it).
    sent: f64,
    /// Running the node locally instead; `None` for a scan.
    split: Option<Split>,
}

#[derive(Debug)]
struct Split {
    /// Seconds of the node locally, over its inputs each run the
    /// cheaper way, and of the scalar subqueries in its expressions.
    cost: f64,
    /// Per input: its ways, and the share of its rows a runtime filter
    /// from this node's join lets it send.
    inputs: Vec<(Ways, f64)>,
    /// The ways of each scalar subquery in its expressions, in order.
    subqueries: Vec<Ways>,
}

impl Ways {
    /// Seconds of running the node whole in the source and sending the
    /// share `kept` of its rows.
    fn whole(&self, kept: f64) -> f64 {
        self.source + self.sent * kept
    }

    /// Whether running it whole is the cheaper way.
    fn whole_is_best(&self, kept: f64) -> bool {
        self.split
            .as_ref()
            .is_none_or(|s| self.whole(kept) <= s.cost)
    }

    fn best(&self, kept: f64) -> f64 {
        match &self.split {
            Some(s) => self.whole(kept).min(s.cost),
            None => self.whole(kept),
        }
    }
}

/// The ways to run `plan` on a source of `speed`, or `None` where the
/// estimates say nothing.
fn weigh(plan: &LogicalPlan, speed: SourceSpeed, model: &Model) -> Option<Ways> {
    let source = cost::source_cost(plan)?.at(speed);
    let sent = cost::sending_plan(plan)? * speed.scan + FRAGMENT;
    let split = match plan {
        LogicalPlan::TableScan(_) => None,
        _ => {
            let inputs = plan
                .inputs()
                .into_iter()
                .map(|i| weigh(i, speed, model))
                .collect::<Option<Vec<_>>>()?;
            let kept = if model.runtime_filters {
                filtered(plan)
            } else {
                vec![1.0; inputs.len()]
            };
            let mut cost = cost::local_cost(plan)?;
            for (ways, kept) in inputs.iter().zip(&kept) {
                cost += ways.best(*kept);
            }
            let subqueries = cost::scalar_subqueries(plan)
                .iter()
                .map(|sub| weigh(sub, speed, model))
                .collect::<Option<Vec<_>>>()?;
            cost += subqueries.iter().map(|w| w.best(1.0)).sum::<f64>();
            Some(Split {
                cost,
                inputs: inputs.into_iter().zip(kept).collect(),
                subqueries,
            })
        }
    };
    Some(Ways {
        source,
        sent,
        split,
    })
}

/// Per input of `plan`, the share of its rows it sends when `plan` is a
/// local hash join whose smaller side has few enough keys for a runtime
/// filter's list: the larger side sends only the rows that match them.
fn filtered(plan: &LogicalPlan) -> Vec<f64> {
    let n = plan.inputs().len();
    let LogicalPlan::Join(join) = plan else {
        return vec![1.0; n];
    };
    let mut kept = vec![1.0; n];
    if let Some((probe, share)) = probe_share(join) {
        kept[probe] = share;
    }
    kept
}

/// Which input of `join` a runtime filter narrows (0 left, 1 right), and
/// to what share of its rows.
fn probe_share(join: &Join) -> Option<(usize, f64)> {
    if !matches!(
        join.join_type,
        JoinType::Inner | JoinType::LeftSemi | JoinType::RightSemi
    ) {
        return None;
    }
    let (left_key, right_key) = join.on.first()?;
    let left = keys(&join.left, left_key)?;
    let right = keys(&join.right, right_key)?;
    // DataFusion builds on the smaller side, which is done first.
    let (build, probe, index) = if left.rows <= right.rows {
        (left, right, 1)
    } else {
        (right, left, 0)
    };
    (build.distinct <= LIST_KEYS).then(|| (index, (build.distinct / probe.distinct).min(1.0)))
}

/// A join input's rows and its key's distinct values.
struct Keys {
    rows: f64,
    distinct: f64,
}

fn keys(input: &LogicalPlan, key: &Expr) -> Option<Keys> {
    let Expr::Column(column) = key else {
        return None;
    };
    let stats = cardinality::estimate(input);
    let rows = *stats.num_rows.get_value()? as f64;
    let index = input.schema().index_of_column(column).ok()?;
    let distinct = stats
        .column_statistics
        .get(index)
        .and_then(|c| c.distinct_count.get_value().map(|d| *d as f64))
        .unwrap_or(rows)
        .clamp(1.0, rows.max(1.0));
    Some(Keys { rows, distinct })
}

/// `fragment` whole (with what was decided) or cut; `None` to leave it
/// as it is.
fn decide(fragment: &Fragment, model: &Model) -> Result<Option<LogicalPlan>> {
    let measured = fragment.runner.measured(&fragment.sql);
    let mut speed = fragment.runner.speed();
    if let Some(seconds) = measured {
        speed = as_measured(&fragment.plan, speed, seconds).unwrap_or(speed);
    }
    let Some(ways) = weigh(&fragment.plan, speed, model) else {
        return Ok(None);
    };
    let Some(split) = &ways.split else {
        return Ok(None);
    };
    let whole = measured.unwrap_or_else(|| ways.whole(1.0));
    let mut choice = Choice {
        split: false,
        whole,
        whole_measured: measured.is_some(),
        split_cost: split.cost,
    };
    if worth_cutting(split.cost, whole) {
        let mut pieces = Vec::new();
        if let Some(cut) = cut_below(&fragment.plan, &ways, &mut pieces)? {
            // The pieces the source ran before: their times, not guesses.
            choice.split_cost += pieces
                .iter()
                .filter_map(|(sql, estimate)| Some(fragment.runner.measured(sql)? - estimate))
                .sum::<f64>();
            if worth_cutting(choice.split_cost, whole) {
                choice.split = true;
                return mark(cut, &choice).map(Some);
            }
        }
    }
    Ok(Some(extension(Fragment {
        choice: Some(Arc::new(choice)),
        ..fragment.clone()
    })))
}

/// `speed` with its work factor scaled so that the model gives `plan`
/// run whole the `seconds` it was measured at: what made the whole slow
/// (or fast) counts in its pieces too, so that a cut that only moves a
/// projection out of a slow join is not taken for a saving.
fn as_measured(plan: &LogicalPlan, speed: SourceSpeed, seconds: f64) -> Option<SourceSpeed> {
    let cost = cost::source_cost(plan)?;
    let sent = cost::sending_plan(plan)? * speed.scan + FRAGMENT;
    let work = cost.work * speed.work;
    if work < 1e-3 {
        return None;
    }
    let factor = ((seconds - cost.read * speed.scan - sent) / work).clamp(0.1, 100.0);
    Some(SourceSpeed {
        scan: speed.scan,
        work: speed.work * factor,
    })
}

/// `plan` run the cheaper way when its output is narrowed to the share
/// `kept` of its rows: whole in the source, or cut (see [`cut_below`]).
fn cut(
    plan: &LogicalPlan,
    ways: &Ways,
    kept: f64,
    pieces: &mut Vec<(String, f64)>,
) -> Result<Option<LogicalPlan>> {
    if ways.whole_is_best(kept) {
        pushed(plan, Some(ways.whole(kept)), pieces)
    } else {
        cut_below(plan, ways, pieces)
    }
}

/// `plan`'s node run locally over its inputs and its scalar subqueries,
/// each cut the cheaper way; `pieces` gets each
/// piece's SQL and estimated seconds. `None` when a piece does not come
/// out as one fragment.
fn cut_below(
    plan: &LogicalPlan,
    ways: &Ways,
    pieces: &mut Vec<(String, f64)>,
) -> Result<Option<LogicalPlan>> {
    let Some(split) = &ways.split else {
        return Ok(None);
    };
    let mut inputs = Vec::new();
    for (input, (ways, kept)) in plan.inputs().into_iter().zip(&split.inputs) {
        match cut(input, ways, *kept, pieces)? {
            Some(piece) => inputs.push(piece),
            None => return Ok(None),
        }
    }
    // Each scalar subquery, cut the cheaper way too (in the order
    // `scalar_subqueries` found them).
    let mut subqueries = split.subqueries.iter();
    let mut cut_all = true;
    let mut exprs = Vec::new();
    for e in plan.expressions() {
        let e = e.transform_down(|e| match e {
            Expr::ScalarSubquery(mut sq) => {
                let piece = match subqueries.next() {
                    Some(ways) => cut(&sq.subquery, ways, 1.0, pieces)?,
                    None => None,
                };
                match piece {
                    Some(piece) => {
                        sq.subquery = Arc::new(piece);
                        Ok(Transformed::yes(Expr::ScalarSubquery(sq)))
                    }
                    None => {
                        cut_all = false;
                        Ok(Transformed::no(Expr::ScalarSubquery(sq)))
                    }
                }
            }
            other => Ok(Transformed::no(other)),
        })?;
        exprs.push(e.data);
    }
    if !cut_all {
        return Ok(None);
    }
    plan.with_new_exprs(exprs, inputs).map(Some)
}

/// `plan` pushed whole, as one fragment (perhaps under its sort), with
/// its SQL and `estimate` (the seconds the model gave it) in `pieces`.
fn pushed(
    plan: &LogicalPlan,
    estimate: Option<f64>,
    pieces: &mut Vec<(String, f64)>,
) -> Result<Option<LogicalPlan>> {
    let piece = PushDownFragments::new().push_down(plan.clone(), true)?.data;
    let top = match &piece {
        LogicalPlan::Sort(sort) => as_fragment(&sort.input),
        other => as_fragment(other),
    };
    Ok(top.map(|f| {
        if let Some(estimate) = estimate {
            pieces.push((f.sql.clone(), estimate));
        }
        piece.clone()
    }))
}

/// `plan` with each fragment in it marked as a piece of a split.
fn mark(plan: LogicalPlan, choice: &Choice) -> Result<LogicalPlan> {
    let choice = Arc::new(choice.clone());
    plan.transform_up_with_subqueries(|node| match as_fragment(&node) {
        Some(f) => Ok(Transformed::yes(extension(Fragment {
            choice: Some(Arc::clone(&choice)),
            ..f.clone()
        }))),
        None => Ok(Transformed::no(node)),
    })
    .map(|t| t.data)
}

fn extension(fragment: Fragment) -> LogicalPlan {
    LogicalPlan::Extension(Extension {
        node: Arc::new(fragment),
    })
}

#[cfg(test)]
mod tests;
