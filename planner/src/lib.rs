//! Spar's planner: optimizer rules over plain data, no I/O.
//!
//! # Layout
//!
//! - [`cost`]: the seconds a sub-plan costs in a source, to send, and
//!   locally, and [`SourceSpeed`], a source's measured speed.
//! - [`cardinality`]: estimated rows and distinct values of a fragment's
//!   sub-plan, from the source's statistics.
//! - [`source_table`]: [`SourceTable`], the DataFusion table of a SQL
//!   source, carrying the connector's metadata and the source's dialect.
//! - [`fragment`]: the [`Fragment`] logical node (one query to one source)
//!   and [`FragmentRunner`], which the engine implements to run one.
//! - [`push_down_fragments`]: the rule that cuts the plan into fragments,
//!   each the largest sub-plan one source can run.
//! - `source_plan`: a fragment's sub-plan in the source's own table names.
//! - [`physical`]: [`SparQueryPlanner`], DataFusion's physical planner
//!   that also plans fragments.
//! - [`unparse`]: SQL for a sub-plan in a source's dialect.
//! - [`options`]: [`SparOptions`], the `spar.*` session settings.
//! - [`pad_space`]: [`PadSpace`], `CHAR(n)` comparisons as the databases
//!   make them.
//! - [`resume`]: [`ResumableScan`], a scan read in key order that can be
//!   spelled again to continue after the last row read.
//! - [`join_order`]: [`ReorderJoins`], the order of a tree of inner joins
//!   chosen by cost.
//! - [`push_or_pull`]: [`PushOrPull`], a fragment's sub-plan run partly
//!   locally where that is cheaper than running it whole.
//! - [`index_advice`]: the indexes that would serve a fragment's
//!   selective filters and cross-source join keys.
//! - [`runtime_filter`]: a hash join's build-side keys read from
//!   DataFusion's dynamic filters and spelled into the SQL of the fragment
//!   on its probe side.
//!
//! [`spar_rules`] is the one ordered list of Spar's optimizer rules; the
//! engine appends it to DataFusion's optimizer rules, and
//! [`spar_analyzer_rules`] to DataFusion's analyzer rules.

pub mod cardinality;
pub mod cost;
pub mod fragment;
pub mod index_advice;
pub mod join_order;
pub mod options;
pub mod pad_space;
pub mod physical;
pub mod push_down_fragments;
pub mod push_or_pull;
pub mod resume;
pub mod runtime_filter;
mod source_plan;
pub mod source_table;
pub mod unparse;

#[cfg(test)]
mod test_util;

use std::sync::Arc;

use datafusion::optimizer::{AnalyzerRule, OptimizerRule};

pub use cost::{SourceCost, SourceSpeed};
pub use fragment::{Choice, Fragment, FragmentRunner, TableStatistics};
pub use index_advice::{AdviceReason, IndexAdvice};
pub use join_order::ReorderJoins;
pub use options::{SparOptions, Timeout};
pub use pad_space::PadSpace;
pub use physical::SparQueryPlanner;
pub use push_down_fragments::PushDownFragments;
pub use push_or_pull::PushOrPull;
pub use resume::ResumableScan;
pub use source_table::{RefreshClaim, SourceTable};

/// Spar's optimizer rules, in the order they run after DataFusion's own.
pub fn spar_rules() -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    vec![
        // Comparisons that DataFusion's simplifications made (see
        // `pad_space`), before any SQL is spelled.
        Arc::new(PadSpace),
        // Before the plan is cut into fragments: the order decides which
        // tables meet in one source.
        Arc::new(ReorderJoins::new()),
        // Then: it needs DataFusion's projection, filter and limit pushdown
        // into the scans to have happened, and it hides the scans it
        // replaces from every rule after it.
        Arc::new(PushDownFragments::new()),
        // Over the fragments just cut: which to run partly locally.
        Arc::new(PushOrPull::new()),
    ]
}

/// Spar's analyzer rules, in the order they run after DataFusion's own
/// (type coercion last among those).
pub fn spar_analyzer_rules() -> Vec<Arc<dyn AnalyzerRule + Send + Sync>> {
    vec![Arc::new(PadSpace)]
}
