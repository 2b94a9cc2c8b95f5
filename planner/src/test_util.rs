//! Hand-made sources for rule tests: plain metadata, no database.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{MemoryCatalogProvider, MemorySchemaProvider};
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::Result;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::{
    displayable, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    ReplaceChildrenOptions,
};
use datafusion::prelude::SessionContext;
use datafusion::sql::unparser::dialect::{Dialect, MySqlDialect, PostgreSqlDialect};
use spar_connectors::{Capabilities, SqlDialect, TableKind, TableMeta, TableName, TableStats};

use crate::fragment::{Fragment, FragmentRunner};
use crate::source_table::SourceTable;

/// A dialect with every capability and the default expression core,
/// spelled as PostgreSQL (`sales`) or MySQL (`crm`: no `NULLS FIRST`).
pub struct TestDialect {
    unparser: &'static (dyn Dialect + Sync),
}

impl fmt::Debug for TestDialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TestDialect")
    }
}

static POSTGRES: PostgreSqlDialect = PostgreSqlDialect {};
static MYSQL: MySqlDialect = MySqlDialect {};

impl SqlDialect for TestDialect {
    fn name(&self) -> &str {
        "test"
    }
    fn unparser(&self) -> &dyn Dialect {
        self.unparser
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }
}

/// The test dialect spelled as PostgreSQL.
pub fn postgres_dialect() -> Arc<dyn SqlDialect> {
    Arc::new(TestDialect {
        unparser: &POSTGRES,
    })
}

/// Plans fragments as a leaf that only displays them.
#[derive(Debug, Default)]
pub struct TestRunner {
    /// The speed it reports.
    pub speed: crate::SourceSpeed,
    /// The seconds it reports for fragments whose SQL holds each text.
    pub measured: Vec<(&'static str, f64)>,
}

impl FragmentRunner for TestRunner {
    fn speed(&self) -> crate::SourceSpeed {
        self.speed
    }

    fn measured(&self, sql: &str) -> Option<f64> {
        self.measured
            .iter()
            .find(|(text, _)| sql.contains(text))
            .map(|(_, s)| *s)
    }

    fn plan_fragment(&self, fragment: &Fragment) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = Arc::new(fragment.df_schema().as_arrow().clone());
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Arc::new(ShownFragment {
            source: fragment.source.clone(),
            sql: fragment.sql.clone(),
            properties: Arc::new(properties),
        }))
    }
}

#[derive(Debug)]
struct ShownFragment {
    source: String,
    sql: String,
    properties: Arc<PlanProperties>,
}

impl DisplayAs for ShownFragment {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "Fragment: source={} sql={}",
            self.source,
            self.sql.replace('\n', " ")
        )
    }
}

impl ExecutionPlan for ShownFragment {
    fn name(&self) -> &str {
        "ShownFragment"
    }
    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }
    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }
    fn replace_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }
    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }
    fn execute(
        &self,
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        datafusion::common::internal_err!("test fragments only display")
    }
}

fn table(source: &str, name: &str, fields: Vec<Field>) -> Arc<SourceTable> {
    let mut stats = TableStats::unknown(fields.len());
    stats.row_count = Precision::Exact(1500);
    table_with_stats(source, name, fields, stats)
}

/// A table of `source` (`crm` is spelled as MySQL, others as PostgreSQL)
/// with these statistics.
pub fn table_with_stats(
    source: &str,
    name: &str,
    fields: Vec<Field>,
    stats: TableStats,
) -> Arc<SourceTable> {
    let schema = Arc::new(Schema::new(fields));
    let meta = TableMeta {
        name: TableName::new("main", name),
        kind: TableKind::Table,
        schema,
        stats,
        indexes: vec![],
    };
    table_with_meta(source, meta)
}

/// A table of `source` (spelled as [`table_with_stats`] says) described
/// by `meta`.
pub fn table_with_meta(source: &str, meta: TableMeta) -> Arc<SourceTable> {
    table_with_runner(source, meta, Arc::new(TestRunner::default()))
}

/// A table as [`table_with_meta`] makes, run by `runner`.
pub fn table_with_runner(
    source: &str,
    meta: TableMeta,
    runner: Arc<dyn FragmentRunner>,
) -> Arc<SourceTable> {
    let unparser: &'static (dyn Dialect + Sync) = if source == "crm" { &MYSQL } else { &POSTGRES };
    Arc::new(SourceTable::new(
        source,
        meta,
        Arc::new(TestDialect { unparser }),
        runner,
    ))
}

/// Registers `tables` as catalog `source`, schema `main`.
pub fn register_catalog(ctx: &SessionContext, source: &str, tables: Vec<Arc<SourceTable>>) {
    let schema = MemorySchemaProvider::new();
    for t in tables {
        let name = t.meta().name.table.clone();
        datafusion::catalog::SchemaProvider::register_table(&schema, name.clone(), t)
            .unwrap_or_else(|e| panic!("register {name}: {e}"));
    }
    let catalog = MemoryCatalogProvider::new();
    datafusion::catalog::CatalogProvider::register_schema(&catalog, "main", Arc::new(schema))
        .unwrap_or_else(|e| panic!("register schema: {e}"));
    ctx.register_catalog(source, Arc::new(catalog));
}

/// A session with Spar's rules and two sources: `sales` (PostgreSQL
/// spelling) holding `main.orders`, `main.customer` and ``main.`odd
/// table` ``, and `crm` (MySQL spelling) holding `main.nation`.
pub fn context() -> SessionContext {
    let ctx = session();
    register_tables(&ctx);
    ctx
}

/// A session with Spar's rules and no source.
pub fn session() -> SessionContext {
    let mut config = datafusion::prelude::SessionConfig::new();
    config.options_mut().sql_parser.parse_float_as_decimal = true;
    config
        .options_mut()
        .extensions
        .insert(crate::SparOptions::default());
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_optimizer_rules(
            datafusion::optimizer::Optimizer::new()
                .rules
                .into_iter()
                .chain(crate::spar_rules())
                .collect(),
        )
        .with_query_planner(Arc::new(crate::SparQueryPlanner));
    let state = crate::spar_analyzer_rules()
        .into_iter()
        .fold(state, |s, rule| s.with_analyzer_rule(rule))
        .build();
    SessionContext::new_with_state(state)
}

fn register_tables(ctx: &SessionContext) {
    let orders = table(
        "sales",
        "orders",
        vec![
            Field::new("o_orderkey", DataType::Int64, false),
            Field::new("o_custkey", DataType::Int64, false),
            Field::new("o_totalprice", DataType::Decimal128(15, 2), true),
            Field::new("o_orderdate", DataType::Date32, true),
            Field::new("o_comment", DataType::Utf8, true),
        ],
    );
    let customer = table(
        "sales",
        "customer",
        vec![
            Field::new("c_custkey", DataType::Int64, false),
            Field::new("c_name", DataType::Utf8, true),
            Field::new("c_nationkey", DataType::Int64, true),
        ],
    );
    let odd = table(
        "sales",
        "odd table",
        vec![Field::new("we`ird", DataType::Int64, true)],
    );
    register_catalog(ctx, "sales", vec![orders, customer, odd]);
    let nation = table(
        "crm",
        "nation",
        vec![
            Field::new("n_nationkey", DataType::Int64, false),
            Field::new("n_name", DataType::Utf8, true),
        ],
    );
    register_catalog(ctx, "crm", vec![nation]);
}

/// The optimized logical plan of `sql`, indented.
pub async fn optimized_plan(sql: &str) -> String {
    optimized_plan_in(&context(), sql).await
}

/// The optimized logical plan of `sql` in `ctx`, indented.
pub async fn optimized_plan_in(ctx: &SessionContext, sql: &str) -> String {
    let df = ctx.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let plan = df
        .into_optimized_plan()
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let text = plan.display_indent().to_string();
    text
}

/// The physical plan of `sql`, indented.
pub async fn physical_plan(sql: &str) -> String {
    let ctx = context();
    let df = ctx.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let plan = df
        .create_physical_plan()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let text = displayable(plan.as_ref()).indent(false).to_string();
    text
}
