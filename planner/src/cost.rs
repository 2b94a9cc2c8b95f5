//! What running a sub-plan costs, in seconds: in a source (reading its
//! tables, then joining, aggregating and sorting there), sending its rows
//! to Spar, and the same work done locally by DataFusion.
//!
//! ```text
//!  source   read     table rows × 30 ns (an index serving a selective
//!                    filter: the rows it finds × 120 ns)
//!           work     join: (left + right) × 50 ns + output × 30 ns
//!                    aggregate: input × 50 ns; sort, window: n·log2 n × 5 ns
//!  sending           rows × 200 ns + bytes × 4 ns + 1 ms per fragment
//!  local             join: (left + right) × 30 ns + output × 10 ns
//!                    aggregate: input × 30 ns; sort, window: n·log2 n × 2 ns
//! ```
//!
//! The source figures are defaults: each source's [`SourceSpeed`]
//! (measured by the engine from the fragments it ran, see
//! `system.source_calibration`) scales its reading and sending (`scan`)
//! and its work (`work`). Rows come from [`crate::cardinality`]; a plan it
//! cannot estimate has no cost, and the rules that read costs then keep
//! the plan as it is.

use std::sync::Arc;

use arrow::datatypes::{DataType, Schema};
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, LogicalPlan};

use crate::cardinality;
use crate::source_plan::source_table;

/// Seconds to read one row of a table in a source.
const READ_ROW: f64 = 30e-9;
/// Seconds to find one row through an index (a random read).
const INDEX_ROW: f64 = 120e-9;
/// Seconds per input row of a join in a source, and per output row.
const SOURCE_JOIN_ROW: f64 = 50e-9;
const SOURCE_OUTPUT_ROW: f64 = 30e-9;
/// Seconds per input row of an aggregate in a source.
const SOURCE_AGGREGATE_ROW: f64 = 50e-9;
/// Seconds per row and doubling of a sort in a source.
const SOURCE_SORT_ROW: f64 = 5e-9;
/// Seconds per row of a filter or projection in a source.
const SOURCE_ROW: f64 = 5e-9;

/// Seconds to send one row to Spar, and one byte of it.
const SENT_ROW: f64 = 200e-9;
const SENT_BYTE: f64 = 4e-9;
/// Seconds to open a fragment at all (a round trip, a statement to plan).
pub const FRAGMENT: f64 = 1e-3;

/// The same, locally.
const LOCAL_JOIN_ROW: f64 = 30e-9;
const LOCAL_OUTPUT_ROW: f64 = 10e-9;
const LOCAL_AGGREGATE_ROW: f64 = 30e-9;
const LOCAL_SORT_ROW: f64 = 2e-9;
const LOCAL_ROW: f64 = 2e-9;

/// A filter whose column leads an index is read through it when it keeps
/// at most this share of the rows.
const INDEX_SELECTIVITY: f64 = 0.1;

/// How fast a source runs what Spar sends it, against the model's
/// defaults: seconds measured per second predicted (2.0 is twice as slow).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SourceSpeed {
    /// For reading tables and sending rows.
    pub scan: f64,
    /// For joins, aggregates, sorts and windows.
    pub work: f64,
}

impl Default for SourceSpeed {
    fn default() -> Self {
        Self {
            scan: 1.0,
            work: 1.0,
        }
    }
}

/// The predicted seconds of a sub-plan run in a source, at the default
/// speeds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SourceCost {
    /// Reading its tables' rows.
    pub read: f64,
    /// Its joins, aggregates, sorts, windows, filters and projections.
    pub work: f64,
}

impl SourceCost {
    /// The seconds at `speed`.
    pub fn at(&self, speed: SourceSpeed) -> f64 {
        self.read * speed.scan + self.work * speed.work
    }

    fn plus(self, other: Self) -> Self {
        Self {
            read: self.read + other.read,
            work: self.work + other.work,
        }
    }
}

/// The predicted seconds of sending `rows` rows of `bytes` bytes in all
/// (at the default speed, without the fragment's own opening).
pub fn sending(rows: f64, bytes: f64) -> f64 {
    rows * SENT_ROW + bytes * SENT_BYTE
}

/// The estimated rows of `plan`'s output.
pub(crate) fn rows(plan: &LogicalPlan) -> Option<f64> {
    match cardinality::estimate(plan).num_rows {
        Precision::Exact(n) | Precision::Inexact(n) => Some(n as f64),
        Precision::Absent => None,
    }
}

/// The estimated bytes of one row of `schema` in Arrow.
pub fn row_width(schema: &Schema) -> f64 {
    schema.fields().iter().map(|f| width(f.data_type())).sum()
}

fn width(t: &DataType) -> f64 {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => 24.0,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => 32.0,
        DataType::Dictionary(_, value) => width(value),
        t => t.primitive_width().map_or(16.0, |w| w.max(1) as f64),
    }
}

/// The predicted seconds of sending `plan`'s output, at the default speed.
pub(crate) fn sending_plan(plan: &LogicalPlan) -> Option<f64> {
    let rows = rows(plan)?;
    Some(sending(rows, rows * row_width(plan.schema().as_arrow())))
}

/// The predicted cost of `plan` run whole in a source (its scans, every
/// node over them and the scalar subqueries in their expressions), or
/// `None` where the estimates say nothing.
pub fn source_cost(plan: &LogicalPlan) -> Option<SourceCost> {
    let own = node_cost(plan, Place::Source)?;
    let mut total = SourceCost {
        read: own.read,
        work: own.work,
    };
    for input in plan.inputs() {
        total = total.plus(source_cost(input)?);
    }
    for sub in scalar_subqueries(plan) {
        total = total.plus(source_cost(&sub)?);
    }
    Some(total)
}

/// The predicted seconds of `plan`'s own node run by DataFusion over its
/// inputs (not counting them).
pub(crate) fn local_cost(plan: &LogicalPlan) -> Option<f64> {
    node_cost(plan, Place::Local).map(|c| c.read + c.work)
}

#[derive(Clone, Copy, PartialEq)]
enum Place {
    Source,
    Local,
}

/// What `plan`'s own node costs at `place`, over inputs of the estimated
/// sizes.
fn node_cost(plan: &LogicalPlan, place: Place) -> Option<SourceCost> {
    let source = place == Place::Source;
    let pick = |in_source: f64, locally: f64| if source { in_source } else { locally };
    let input_rows = || -> Option<f64> { plan.inputs().iter().map(|i| rows(i)).sum() };
    let work = match plan {
        LogicalPlan::TableScan(scan) => {
            return Some(SourceCost {
                read: scan_read(scan, rows(plan)?)?,
                work: 0.0,
            });
        }
        LogicalPlan::Join(_) => {
            input_rows()? * pick(SOURCE_JOIN_ROW, LOCAL_JOIN_ROW)
                + rows(plan)? * pick(SOURCE_OUTPUT_ROW, LOCAL_OUTPUT_ROW)
        }
        LogicalPlan::Aggregate(_) | LogicalPlan::Distinct(_) => {
            input_rows()? * pick(SOURCE_AGGREGATE_ROW, LOCAL_AGGREGATE_ROW)
        }
        LogicalPlan::Sort(sort) if sort.fetch.is_some() => {
            // Top-N: one pass keeping the best rows.
            input_rows()? * pick(SOURCE_AGGREGATE_ROW, LOCAL_AGGREGATE_ROW)
        }
        LogicalPlan::Sort(_) | LogicalPlan::Window(_) => {
            let n = input_rows()?;
            n * n.max(2.0).log2() * pick(SOURCE_SORT_ROW, LOCAL_SORT_ROW)
        }
        LogicalPlan::Filter(_) | LogicalPlan::Projection(_) => {
            input_rows()? * pick(SOURCE_ROW, LOCAL_ROW)
        }
        LogicalPlan::SubqueryAlias(_) | LogicalPlan::Limit(_) | LogicalPlan::Union(_) => 0.0,
        _ => return None,
    };
    Some(SourceCost { read: 0.0, work })
}

/// The rows a scan reads: all of its table's, or, where a filter on a
/// column that leads an index keeps few enough of them, those it keeps
/// (each dearer: found through the index).
fn scan_read(scan: &datafusion::logical_expr::TableScan, kept: f64) -> Option<f64> {
    let table = source_table(&scan.source)?;
    let meta = table.meta();
    let all = *meta.stats.row_count.get_value()? as f64;
    let indexed = scan.filters.iter().any(|f| {
        crate::index_advice::indexable_column(f).is_some_and(|c| {
            crate::index_advice::leads_an_index(&meta, &c.name)
                && cardinality::table_selectivity(&meta, f).is_some_and(|s| s <= INDEX_SELECTIVITY)
        })
    });
    Some(if indexed {
        (kept * INDEX_ROW).min(all * READ_ROW)
    } else {
        all * READ_ROW
    })
}

/// The plans of the scalar subqueries in `plan`'s own expressions.
pub(crate) fn scalar_subqueries(plan: &LogicalPlan) -> Vec<Arc<LogicalPlan>> {
    let mut out = Vec::new();
    let _ = plan.apply_expressions(|e| {
        e.apply(|e| {
            if let Expr::ScalarSubquery(sq) = e {
                out.push(Arc::clone(&sq.subquery));
            }
            Ok(TreeNodeRecursion::Continue)
        })
    });
    out
}
