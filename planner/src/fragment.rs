//! The `Fragment` logical node: one query sent to one source.

use std::cmp::Ordering;
use std::fmt::{self, Debug};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchemaRef, Statistics};
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, LogicalPlan, UserDefinedLogicalNodeCore};
use datafusion::physical_plan::ExecutionPlan;
use spar_connectors::SqlDialect;

use crate::cost::SourceSpeed;
use crate::resume::ResumableScan;

/// Turns a [`Fragment`] into an operator that runs it on its source.
///
/// The engine implements this per source (the replica set that runs the
/// SQL, with failover); the planner only carries it, so the planner stays
/// free of I/O.
pub trait FragmentRunner: Debug + Send + Sync {
    /// The physical operator that runs `fragment` and streams its rows.
    fn plan_fragment(&self, fragment: &Fragment) -> Result<Arc<dyn ExecutionPlan>>;

    /// How fast the source has been, against the cost model's defaults
    /// (see [`crate::cost`]); the defaults until it has been measured.
    fn speed(&self) -> SourceSpeed {
        SourceSpeed::default()
    }

    /// The seconds that recent runs of a fragment sending exactly `sql`
    /// took, when the source has run one.
    fn measured(&self, _sql: &str) -> Option<f64> {
        None
    }
}

/// A sub-plan that one source runs whole, with the SQL it is sent as.
///
/// A leaf of the logical plan: the sub-plan it replaced is kept in
/// [`Fragment::plan`] for EXPLAIN and for later rules, but it is not an
/// input, so DataFusion's rules do not rewrite inside it.
#[derive(Clone)]
pub struct Fragment {
    /// The source's name from the config.
    pub source: String,
    /// The SQL sent to the source, in its dialect.
    pub sql: String,
    /// The sub-plan this fragment computes (in Spar's table names).
    pub plan: LogicalPlan,
    /// What the planner knows of the fragment's output.
    pub statistics: Arc<Statistics>,
    /// The source's dialect: what else the fragment could grow over.
    pub dialect: Arc<dyn SqlDialect>,
    /// Runs the fragment on the source.
    pub runner: Arc<dyn FragmentRunner>,
    /// For a scan of one table with a usable key: how to read it in key
    /// order and continue after any key (see [`crate::resume`]).
    pub resume: Option<Arc<ResumableScan>>,
    /// What `push_or_pull` decided of it (EXPLAIN shows it); a fragment
    /// it split from a larger one is not merged again.
    pub choice: Option<Arc<Choice>>,
}

/// What `push_or_pull` decided for a fragment whose sub-plan it could
/// also run locally, over smaller fragments (see [`crate::push_or_pull`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// Whether the fragment is a piece of a sub-plan that was split.
    pub split: bool,
    /// The seconds of running the sub-plan whole in the source.
    pub whole: f64,
    /// Whether `whole` was measured (a run of the same SQL), not estimated.
    pub whole_measured: bool,
    /// The seconds of the split plan, estimated (with its fragments'
    /// measured times where known).
    pub split_cost: f64,
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = if self.whole_measured {
            "measured"
        } else {
            "estimated"
        };
        write!(
            f,
            "{} (whole {:.3}s {whole}, split {:.3}s estimated)",
            if self.split { "split" } else { "whole" },
            self.whole,
            self.split_cost
        )
    }
}

impl Fragment {
    /// The fragment's output schema (the replaced sub-plan's schema).
    pub fn df_schema(&self) -> &DFSchemaRef {
        self.plan.schema()
    }

    /// What the planner knew of each table the fragment reads, for
    /// EXPLAIN: its name on the source, whether it had a row count, and
    /// how old its statistics were.
    pub fn tables_statistics(&self) -> Vec<TableStatistics> {
        let mut out: Vec<TableStatistics> = Vec::new();
        let _ = self.plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                if let Some(table) = crate::source_plan::source_table(&scan.source) {
                    let meta = table.meta();
                    let name = meta.name.to_string();
                    if !out.iter().any(|t| t.table == name) {
                        out.push(TableStatistics {
                            table: name,
                            has_row_count: meta.stats.row_count.get_value().is_some(),
                            age: table.statistics_age(),
                        });
                    }
                }
            }
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        });
        out
    }
}

impl Fragment {
    /// The indexes that would serve this fragment's selective filters and
    /// the join keys at `join_keys` (positions in its output that a
    /// cross-source join's runtime filter narrows); see
    /// [`crate::index_advice`].
    pub fn index_advice(&self, join_keys: &[usize]) -> Vec<crate::IndexAdvice> {
        crate::index_advice::index_advice(&self.plan, join_keys, self.dialect.as_ref())
    }
}

/// What the planner knew of one table of a fragment (see
/// [`Fragment::tables_statistics`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TableStatistics {
    /// The table's name on its source (`schema.table`).
    pub table: String,
    /// Whether its statistics had a row count (without one, estimates
    /// over it are unknown and the planner keeps the query's own order).
    pub has_row_count: bool,
    /// How long before planning they were read from the source.
    pub age: std::time::Duration,
}

impl Debug for Fragment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fragment")
            .field("source", &self.source)
            .field("sql", &self.sql)
            .finish()
    }
}

impl PartialEq for Fragment {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.sql == other.sql && self.plan == other.plan
    }
}

impl Eq for Fragment {}

impl Hash for Fragment {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.source.hash(state);
        self.sql.hash(state);
    }
}

impl PartialOrd for Fragment {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some((&self.source, &self.sql).cmp(&(&other.source, &other.sql)))
    }
}

impl UserDefinedLogicalNodeCore for Fragment {
    fn name(&self) -> &str {
        "Fragment"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        Vec::new()
    }

    fn schema(&self) -> &DFSchemaRef {
        self.plan.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "Fragment: source={} sql={}", self.source, self.sql)
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, _inputs: Vec<LogicalPlan>) -> Result<Self> {
        Ok(self.clone())
    }
}

/// `expr` with every column reference unqualified, for SQL over one table.
pub(crate) fn unqualify(expr: Expr) -> Result<Expr> {
    expr.transform(|e| {
        Ok(match e {
            Expr::Column(c) if c.relation.is_some() => {
                Transformed::yes(Expr::Column(Column::new_unqualified(c.name)))
            }
            other => Transformed::no(other),
        })
    })
    .map(|t| t.data)
}
