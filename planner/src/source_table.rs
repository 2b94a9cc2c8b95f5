//! `SourceTable`: a table of a SQL source, as DataFusion sees it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DFSchema, Statistics, TableReference};
use datafusion::datasource::{provider_as_source, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::{
    lit, Expr, LogicalPlan, LogicalPlanBuilder, TableProviderFilterPushDown,
};
use datafusion::physical_plan::ExecutionPlan;
use spar_connectors::{prepare, IndexMeta, SqlDialect, TableKind, TableMeta, TableStats};

use crate::fragment::{unqualify, Fragment, FragmentRunner};
use crate::resume::ResumableScan;
use crate::unparse::plan_to_source_sql;

/// A table that lives in a SQL source (SQLite, PostgreSQL, MySQL).
///
/// It carries only plain data (the table's metadata and the source's
/// dialect) plus the source's [`FragmentRunner`]. Scans of it become
/// [`Fragment`]s: by the `push_down_fragments` rule, or by
/// [`TableProvider::scan`] when the rule did not run.
#[derive(Debug, Clone)]
pub struct SourceTable {
    source: String,
    described: Arc<Described>,
    dialect: Arc<dyn SqlDialect>,
    runner: Arc<dyn FragmentRunner>,
}

/// What the connector reported of the table and when, shared by every copy
/// of its [`SourceTable`], so that statistics read again (`ANALYZE`, or
/// once they are older than the source's `statistics_ttl`) reach every
/// plan made after.
#[derive(Debug)]
struct Described {
    now: RwLock<(Arc<TableMeta>, Instant)>,
    /// Set while statistics are being read again, so that one read runs
    /// at a time.
    refreshing: AtomicBool,
    /// When a read of them last started, by [`SourceTable::claim_refresh_after`].
    tried: Mutex<Option<Instant>>,
}

impl SourceTable {
    /// A table of `source` described by `meta`, read now.
    pub fn new(
        source: impl Into<String>,
        meta: TableMeta,
        dialect: Arc<dyn SqlDialect>,
        runner: Arc<dyn FragmentRunner>,
    ) -> Self {
        Self {
            source: source.into(),
            described: Arc::new(Described {
                now: RwLock::new((Arc::new(meta), Instant::now())),
                refreshing: AtomicBool::new(false),
                tried: Mutex::new(None),
            }),
            dialect,
            runner,
        }
    }

    /// The source's name.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The table's metadata: remote name, schema, statistics, indexes.
    pub fn meta(&self) -> Arc<TableMeta> {
        let now = self.described.now.read().unwrap_or_else(|e| e.into_inner());
        Arc::clone(&now.0)
    }

    /// How long ago the table's statistics were read from its source.
    pub fn statistics_age(&self) -> Duration {
        let now = self.described.now.read().unwrap_or_else(|e| e.into_inner());
        now.1.elapsed()
    }

    /// Replaces the table's statistics with `stats`, just read from its
    /// source, for every plan made from now on. Statistics of another
    /// number of columns than the table has (the table changed on the
    /// source) are refused: its schema is read when the source is.
    pub fn set_statistics(&self, stats: TableStats) -> Result<()> {
        let mut now = self
            .described
            .now
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let columns = now.0.schema.fields().len();
        if stats.columns.len() != columns {
            return datafusion::common::plan_err!(
                "the statistics read for {} have {} columns, but the table had {columns} when \
                 Spar read its source; restart Spar to read its schema again",
                now.0.name,
                stats.columns.len()
            );
        }
        let mut meta = now.0.as_ref().clone();
        meta.stats = stats;
        *now = (Arc::new(meta), Instant::now());
        Ok(())
    }

    /// Replaces the table's indexes with those read again now.
    pub fn set_indexes(&self, indexes: Vec<IndexMeta>) {
        let mut now = self
            .described
            .now
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let mut meta = now.0.as_ref().clone();
        meta.indexes = indexes;
        now.0 = Arc::new(meta);
    }

    /// Claims the right to read the table's statistics again once they
    /// are older than `ttl`: `None` while they are younger, while another
    /// read is under way, and within `ttl` of the last claim (so that a
    /// source that does not answer is asked once per `ttl`, not once per
    /// query). The claim ends when the guard drops.
    pub fn claim_refresh_after(&self, ttl: Duration) -> Option<RefreshClaim> {
        if self.statistics_age() <= ttl {
            return None;
        }
        self.described
            .refreshing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        let claim = RefreshClaim(Arc::clone(&self.described));
        let mut tried = self
            .described
            .tried
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if tried.is_some_and(|t| t.elapsed() <= ttl) {
            return None;
        }
        *tried = Some(Instant::now());
        Some(claim)
    }

    /// The source's dialect.
    pub fn dialect(&self) -> &Arc<dyn SqlDialect> {
        &self.dialect
    }

    /// Whether `filter` (over this table's columns) can run on the source
    /// with DataFusion's semantics.
    pub fn can_push_filter(&self, filter: &Expr) -> bool {
        self.df_schema()
            .is_some_and(|schema| self.pushable(filter, &schema))
    }

    /// The table's columns, unqualified, for typing its filters.
    fn df_schema(&self) -> Option<DFSchema> {
        DFSchema::try_from(self.meta().schema.as_ref().clone()).ok()
    }

    fn pushable(&self, filter: &Expr, schema: &DFSchema) -> bool {
        self.dialect.capabilities().filter
            && unqualify(filter.clone()).is_ok_and(|f| self.dialect.supports_expr(&f, schema))
    }

    /// The fragment that reads this table with a projection (indices into
    /// the table's schema), filters (all pushable) and a row limit.
    ///
    /// `plan` is the table scan being replaced; its schema is the fragment's.
    pub fn fragment(
        &self,
        plan: LogicalPlan,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        fetch: Option<usize>,
    ) -> Result<Fragment> {
        let fetch = fetch.filter(|_| self.dialect.capabilities().limit);
        let meta = self.meta();
        let remote = TableReference::partial(meta.name.schema.as_str(), meta.name.table.as_str());
        let columns = self.df_schema().unwrap_or_else(DFSchema::empty);
        let filters = filters
            .iter()
            .map(|f| unqualify(f.clone()).and_then(|f| prepare(self.dialect.as_ref(), f, &columns)))
            .collect::<Result<Vec<_>>>()?;
        let this: Arc<dyn TableProvider> = Arc::new(self.clone());
        let this_table = Arc::clone(&this);
        let scan = LogicalPlanBuilder::scan_with_filters_fetch(
            remote,
            provider_as_source(this),
            projection.cloned(),
            filters.clone(),
            fetch,
        )?
        .build()?;
        // `SELECT FROM t` (no columns: a cross join's side that only
        // counts) is not SQL in most dialects: select a constant; the
        // connectors count rows when the fragment's schema has no columns.
        let scan = if projection.is_some_and(|p| p.is_empty()) {
            LogicalPlanBuilder::from(scan)
                .project(vec![lit(1_i64).alias("spar_none")])?
                .build()?
        } else {
            scan
        };
        let sql = plan_to_source_sql(&scan, self.dialect.as_ref())?;
        let read: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..meta.schema.fields().len()).collect(),
        };
        let resume = ResumableScan::new(
            this_table,
            &meta,
            &read,
            &filters,
            fetch,
            Arc::clone(&self.dialect),
        )
        .filter(|_| !read.is_empty())
        .map(Arc::new);
        let statistics =
            Arc::new(self.fragment_statistics(&plan, projection, !filters.is_empty(), fetch));
        Ok(Fragment {
            source: self.source.clone(),
            sql,
            plan,
            statistics,
            dialect: Arc::clone(&self.dialect),
            runner: Arc::clone(&self.runner),
            resume,
            choice: None,
        })
    }

    /// What is known of a scan's output: the table's statistics, capped by
    /// the limit; once filtered, the filters' estimated selectivity
    /// applied (or, with no row count to start from, the table's
    /// statistics made inexact).
    fn fragment_statistics(
        &self,
        scan: &LogicalPlan,
        projection: Option<&Vec<usize>>,
        filtered: bool,
        fetch: Option<usize>,
    ) -> Statistics {
        if filtered {
            let estimated = crate::cardinality::estimate(scan);
            if estimated.num_rows.get_value().is_some() {
                return estimated;
            }
        }
        let meta = self.meta();
        let stats = match projection {
            Some(p) => meta.stats.project(p),
            None => meta.stats.clone(),
        };
        let mut stats = stats.to_statistics();
        if filtered {
            stats = stats.to_inexact();
        }
        if let Some(n) = fetch {
            stats.num_rows = stats
                .num_rows
                .min(&datafusion::common::stats::Precision::Exact(n));
        }
        stats
    }
}

/// The right to read a table's statistics again, from
/// [`SourceTable::claim_refresh`]; given up when dropped.
#[derive(Debug)]
pub struct RefreshClaim(Arc<Described>);

impl Drop for RefreshClaim {
    fn drop(&mut self) {
        self.0.refreshing.store(false, Ordering::Release);
    }
}

#[async_trait]
impl TableProvider for SourceTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.meta().schema)
    }

    fn table_type(&self) -> TableType {
        match self.meta().kind {
            TableKind::Table => TableType::Base,
            TableKind::View => TableType::View,
        }
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        let schema = self.df_schema();
        // The filters are joined by AND in one WHERE clause, whose depth
        // the source limits: each takes its depth and one AND.
        let mut budget = self.dialect.max_expr_depth();
        Ok(filters
            .iter()
            .map(|f| {
                let cost = spar_connectors::depth::expr_depth(f) + 1;
                if cost <= budget && schema.as_ref().is_some_and(|s| self.pushable(f, s)) {
                    budget -= cost;
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    fn statistics(&self) -> Option<Statistics> {
        Some(self.meta().stats.to_statistics())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let this: Arc<dyn TableProvider> = Arc::new(self.clone());
        let meta = self.meta();
        let plan = LogicalPlanBuilder::scan_with_filters_fetch(
            TableReference::partial(meta.name.schema.as_str(), meta.name.table.as_str()),
            provider_as_source(this),
            projection.cloned(),
            filters.to_vec(),
            limit,
        )?
        .build()?;
        let fragment = self.fragment(plan, projection, filters, limit)?;
        self.runner.plan_fragment(&fragment)
    }
}
