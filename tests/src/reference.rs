//! A reference engine without sources: plain DataFusion over tables read
//! into memory, with Spar's SQL semantics (its analyzer rules and its
//! reading of literals) but none of its planning, pushdown or connectors.
//! In the spirit of SQLancer's non-optimizing reference engine: Spar with
//! pushdown on and off must give the answers this gives over the same
//! rows.

use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider};
use datafusion::datasource::MemTable;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::DFParserBuilder;
use spar_engine::Session;

/// A table to copy: `catalog.schema.table` as Spar names it.
#[derive(Debug, Clone)]
pub struct TableName {
    /// The source (Spar's catalog).
    pub catalog: String,
    /// The source's schema.
    pub schema: String,
    /// The table.
    pub table: String,
}

/// The reference: DataFusion over in-memory copies of tables.
pub struct MemoryReference {
    ctx: SessionContext,
}

impl MemoryReference {
    /// Copies `tables` into memory, reading them through `session` (whose
    /// pushdown should be off: each is read whole, as `SELECT *`). Field
    /// metadata (such as `CHAR(n)`'s) is kept.
    pub async fn copy(session: &Session, tables: &[TableName]) -> Result<Self, String> {
        let mut config = SessionConfig::new();
        config.options_mut().sql_parser.parse_float_as_decimal = true;
        // Spar's analyzer rules, and those of its optimizer rules that
        // define what a query means (PadSpace), not where it runs.
        let state = spar_planner::spar_analyzer_rules().into_iter().fold(
            SessionStateBuilder::new()
                .with_config(config)
                .with_default_features()
                .with_optimizer_rule(std::sync::Arc::new(spar_planner::PadSpace)),
            |state, rule| state.with_analyzer_rule(rule),
        );
        let ctx = SessionContext::new_with_state(state.build());
        for t in tables {
            let quoted = format!(
                "\"{}\".\"{}\".\"{}\"",
                t.catalog.replace('"', "\"\""),
                t.schema.replace('"', "\"\""),
                t.table.replace('"', "\"\"")
            );
            let df = session
                .sql(&format!("SELECT * FROM {quoted}"))
                .await
                .map_err(|e| format!("reading {quoted}: {e}"))?;
            let schema = Arc::new(df.schema().as_arrow().clone());
            let batches: Vec<RecordBatch> = df
                .collect()
                .await
                .map_err(|e| format!("reading {quoted}: {e}"))?;
            let table = MemTable::try_new(schema, vec![batches])
                .map_err(|e| format!("copying {quoted}: {e}"))?;
            let catalog = match ctx.catalog(&t.catalog) {
                Some(c) => c,
                None => {
                    let c: Arc<dyn CatalogProvider> = Arc::new(MemoryCatalogProvider::new());
                    ctx.register_catalog(&t.catalog, Arc::clone(&c));
                    c
                }
            };
            let schema = match catalog.schema(&t.schema) {
                Some(s) => s,
                None => {
                    let s = Arc::new(MemorySchemaProvider::new());
                    catalog
                        .register_schema(&t.schema, Arc::clone(&s) as _)
                        .map_err(|e| e.to_string())?;
                    s
                }
            };
            schema
                .register_table(t.table.clone(), Arc::new(table))
                .map_err(|e| e.to_string())?;
        }
        Ok(Self { ctx })
    }

    /// Runs one SQL statement, read as Spar reads it.
    pub async fn sql(&self, sql: &str) -> Result<Vec<RecordBatch>, String> {
        let state = self.ctx.state();
        let dialect = datafusion::sql::sqlparser::dialect::GenericDialect {};
        let mut statements = DFParserBuilder::new(sql)
            .with_dialect(&dialect)
            .build()
            .and_then(|mut p| p.parse_statements())
            .map_err(|e| e.to_string())?;
        let Some(mut statement) = statements.pop_front() else {
            return Err("no statement".into());
        };
        spar_engine::session::read_literals(&mut statement);
        let plan = state
            .statement_to_plan(statement)
            .await
            .map_err(|e| e.to_string())?;
        self.ctx
            .execute_logical_plan(plan)
            .await
            .map_err(|e| e.to_string())?
            .collect()
            .await
            .map_err(|e| e.to_string())
    }
}
