//! `SourceTable`: a table of a SQL source, as DataFusion sees it.

use std::sync::Arc;

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
use spar_connectors::{prepare, SqlDialect, TableKind, TableMeta};

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
    meta: Arc<TableMeta>,
    dialect: Arc<dyn SqlDialect>,
    runner: Arc<dyn FragmentRunner>,
}

impl SourceTable {
    /// A table of `source` described by `meta`.
    pub fn new(
        source: impl Into<String>,
        meta: TableMeta,
        dialect: Arc<dyn SqlDialect>,
        runner: Arc<dyn FragmentRunner>,
    ) -> Self {
        Self {
            source: source.into(),
            meta: Arc::new(meta),
            dialect,
            runner,
        }
    }

    /// The source's name.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The table's metadata: remote name, schema, statistics, indexes.
    pub fn meta(&self) -> &TableMeta {
        &self.meta
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
        DFSchema::try_from(self.meta.schema.as_ref().clone()).ok()
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
        let remote = TableReference::partial(
            self.meta.name.schema.as_str(),
            self.meta.name.table.as_str(),
        );
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
            None => (0..self.meta.schema.fields().len()).collect(),
        };
        let resume = ResumableScan::new(
            this_table,
            &self.meta,
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
        let stats = match projection {
            Some(p) => self.meta.stats.project(p),
            None => self.meta.stats.clone(),
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

#[async_trait]
impl TableProvider for SourceTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.meta.schema)
    }

    fn table_type(&self) -> TableType {
        match self.meta.kind {
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
        Some(self.meta.stats.to_statistics())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let this: Arc<dyn TableProvider> = Arc::new(self.clone());
        let plan = LogicalPlanBuilder::scan_with_filters_fetch(
            TableReference::partial(
                self.meta.name.schema.as_str(),
                self.meta.name.table.as_str(),
            ),
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
