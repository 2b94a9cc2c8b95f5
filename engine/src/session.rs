//! `Session`: where SQL comes in (shell, Flight SQL and the Rust API alike).

use datafusion::catalog::CatalogProviderList as _;
use datafusion::common::TableReference;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::{DataFrame, SessionContext};
use datafusion::sql::parser::{DFParserBuilder, Statement};
use datafusion::sql::sqlparser::ast::{
    visit_expressions, visit_expressions_mut, CastKind, DataType as SqlDataType, ExactNumberInfo,
    Expr as SqlExpr, Ident, ObjectName, Set, SetExpr, Statement as SqlStatement, Value,
};

use crate::access::Access;
use crate::catalog::{DEFAULT_CATALOG, SEARCH_PATH_SCHEMA};
use crate::config::list_or_none;
use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::system::SYSTEM_CATALOG;

/// One user's session: its own settings (`SET ...`), the engine's sources.
///
/// Sessions are read-only: DDL and DML are refused before planning.
#[derive(Clone)]
pub struct Session {
    engine: Engine,
    ctx: SessionContext,
    access: Access,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.ctx.session_id())
            .finish()
    }
}

impl Session {
    pub(crate) fn new(engine: Engine, ctx: SessionContext, access: Access) -> Self {
        Self {
            engine,
            ctx,
            access,
        }
    }

    /// What this session may read.
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// Plans one SQL statement. The result is DataFusion's lazy
    /// [`DataFrame`]: stream it with `execute_stream`, or `collect` it.
    ///
    /// Errors come before anything is sent to a source: a syntax error
    /// with its position, an unknown table with the sources that exist, an
    /// ambiguous name with the schemas that have it.
    pub async fn sql(&self, sql: &str) -> Result<DataFrame> {
        let mut statements = self.parse(sql)?;
        if statements.len() != 1 {
            return Err(EngineError::DataFusion(DataFusionError::Plan(format!(
                "expected one SQL statement, found {}; run them one at a time",
                statements.len()
            ))));
        }
        let statement = statements.remove(0);
        self.statement(statement).await
    }

    /// Splits and parses SQL text into statements (separated by `;`).
    pub fn parse(&self, sql: &str) -> Result<Vec<Statement>> {
        let state = self.ctx.state();
        let options = &state.config().options().sql_parser;
        let dialect = datafusion::sql::sqlparser::dialect::dialect_from_str(options.dialect)
            .unwrap_or_else(|| Box::new(datafusion::sql::sqlparser::dialect::GenericDialect {}));
        let parsed = DFParserBuilder::new(sql)
            .with_dialect(dialect.as_ref())
            .with_recursion_limit(options.recursion_limit.get())
            .build()
            .and_then(|mut p| p.parse_statements());
        match parsed {
            Ok(statements) => Ok(statements.into_iter().collect()),
            Err(e) => Err(EngineError::syntax(&e.to_string(), sql)),
        }
    }

    /// Plans one parsed statement (see [`Session::sql`]).
    pub async fn statement(&self, statement: Statement) -> Result<DataFrame> {
        crate::stack::OnDeepStack::new(self.plan_statement(statement)).await
    }

    async fn plan_statement(&self, statement: Statement) -> Result<DataFrame> {
        if let Statement::Statement(s) = &statement {
            if let SqlStatement::Analyze(analyze) = s.as_ref() {
                return self.analyze(analyze, &statement).await;
            }
        }
        refuse_writes(&statement)?;
        crate::stack::check_depth(&statement, crate::MAX_EXPR_DEPTH)?;
        let mut statement = statement;
        read_literals(&mut statement);
        postgres_setting_names(&mut statement);
        refuse_columnless_subqueries(&statement)?;
        let state = self.ctx.state();
        for reference in state.resolve_table_references(&statement)? {
            // `generate_series(…)` and other table functions are not tables.
            if let TableReference::Bare { table } = &reference {
                if state.table_functions().contains_key(table.as_ref()) {
                    continue;
                }
            }
            self.discover_sources_of(&reference).await?;
            self.check_table(&reference)?;
            if let Some(table) = self.source_table(&reference).await {
                self.engine.refresh_statistics_if_stale(&table);
            }
        }
        let plan = state.statement_to_plan(statement).await?;
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .verify_plan(&plan)?;
        Ok(self.ctx.execute_logical_plan(plan).await?)
    }

    /// `ANALYZE source.schema.table` (or a shorter name, resolved as in
    /// queries): reads the table's statistics again from its source, for
    /// every plan made from now on, and answers with what was read. The
    /// source's own statistics are not recomputed (Spar writes nothing):
    /// run the source's `ANALYZE` first for fresh ones there.
    async fn analyze(
        &self,
        analyze: &datafusion::sql::sqlparser::ast::Analyze,
        statement: &Statement,
    ) -> Result<DataFrame> {
        let plan_error = |m: String| EngineError::DataFusion(DataFusionError::Plan(m));
        if analyze.table_name.is_none() {
            return Err(plan_error(
                "ANALYZE needs a table: `ANALYZE source.schema.table` reads that table's statistics again".into(),
            ));
        }
        if analyze.partitions.is_some()
            || analyze.for_columns
            || !analyze.columns.is_empty()
            || analyze.cache_metadata
            || analyze.noscan
            || analyze.compute_statistics
        {
            return Err(plan_error(
                "Spar's ANALYZE takes a table name and nothing else: `ANALYZE source.schema.table`"
                    .into(),
            ));
        }
        let references = self.ctx.state().resolve_table_references(statement)?;
        let [reference] = references.as_slice() else {
            return Err(plan_error("ANALYZE takes one table".into()));
        };
        self.discover_sources_of(reference).await?;
        self.check_table(reference)?;
        let Some(table) = self.source_table(reference).await else {
            return Err(plan_error(format!(
                "`{reference}` is not a table of a database source: ANALYZE reads a database's \
                 statistics of its tables again (a file table's statistics come from its files)"
            )));
        };
        let (stats, replica) = self.engine.refresh_statistics(&table).await?;
        let meta = table.meta();
        let rows = stats.row_count.get_value().map(|&n| n as i64);
        let with_distinct = stats
            .columns
            .iter()
            .filter(|c| c.distinct_count.get_value().is_some())
            .count() as i64;
        use arrow::array::{BooleanArray, Int64Array, StringArray};
        use arrow::datatypes::{DataType, Field, Schema};
        let schema = std::sync::Arc::new(Schema::new(vec![
            Field::new("source", DataType::Utf8, false),
            Field::new("table", DataType::Utf8, false),
            Field::new("rows", DataType::Int64, true),
            Field::new("rows_exact", DataType::Boolean, false),
            Field::new("columns_with_distinct_counts", DataType::Int64, false),
            Field::new("replica", DataType::Utf8, false),
        ]));
        let batch = arrow::record_batch::RecordBatch::try_new(
            schema,
            vec![
                std::sync::Arc::new(StringArray::from(vec![table.source()])),
                std::sync::Arc::new(StringArray::from(vec![meta.name.to_string()])),
                std::sync::Arc::new(Int64Array::from(vec![rows])),
                std::sync::Arc::new(BooleanArray::from(vec![matches!(
                    stats.row_count,
                    datafusion::common::stats::Precision::Exact(_)
                )])),
                std::sync::Arc::new(Int64Array::from(vec![with_distinct])),
                std::sync::Arc::new(StringArray::from(vec![replica])),
            ],
        )
        .map_err(|e| EngineError::DataFusion(e.into()))?;
        Ok(self.ctx.read_batch(batch)?)
    }

    /// The database table `reference` names in this session, if it names
    /// one (not a file table, a view of the `system` catalog or nothing).
    async fn source_table(&self, reference: &TableReference) -> Option<spar_planner::SourceTable> {
        let provider = self.ctx.table_provider(reference.clone()).await.ok()?;
        provider
            .as_ref()
            .downcast_ref::<spar_planner::SourceTable>()
            .cloned()
    }

    /// Reads the catalogs of the sources `reference` may name that no
    /// replica has answered for yet (see [`Engine::add_source`]): its
    /// source when qualified, and for a bare name not found elsewhere, the
    /// sources of the search path. Fails with the source's replicas and
    /// their errors when none answers now.
    async fn discover_sources_of(&self, reference: &TableReference) -> Result<()> {
        let sources: Vec<String> = match reference {
            TableReference::Full { catalog, .. } => vec![catalog.to_string()],
            TableReference::Bare { table } => {
                let found = self
                    .ctx
                    .state()
                    .catalog_list()
                    .catalog(DEFAULT_CATALOG)
                    .and_then(|c| c.schema(SEARCH_PATH_SCHEMA))
                    .is_some_and(|s| s.table_exist(table));
                if found {
                    return Ok(());
                }
                self.engine
                    .search_path()
                    .iter()
                    .filter(|p| self.access.allows_schema(&p.source, &p.schema))
                    .map(|p| p.source.clone())
                    .collect()
            }
            TableReference::Partial { .. } => Vec::new(),
        };
        for source in sources {
            if self.access.allows_source(&source) && self.engine.pending_errors(&source).is_some() {
                self.engine.discover(&source).await?;
            }
        }
        Ok(())
    }

    /// Stops this session's queries that run longer than `limit` (`None`
    /// for no limit) with [`EngineError::StatementTimeout`]; the same as
    /// `SET spar.statement_timeout = '30s'`. A query's time counts from
    /// when it starts running (`collect`, `execute_stream`), and the
    /// statements its fragments sent to sources are cancelled with it.
    pub fn set_statement_timeout(&self, limit: Option<std::time::Duration>) {
        let state = self.ctx.state_ref();
        let mut state = state.write();
        if let Some(options) = state
            .config_mut()
            .options_mut()
            .extensions
            .get_mut::<spar_planner::SparOptions>()
        {
            options.statement_timeout = spar_planner::Timeout(limit);
        }
    }

    /// The session's statement timeout (see
    /// [`Self::set_statement_timeout`]).
    pub fn statement_timeout(&self) -> Option<std::time::Duration> {
        self.ctx
            .state()
            .config()
            .options()
            .extensions
            .get::<spar_planner::SparOptions>()
            .and_then(|o| o.statement_timeout.0)
    }

    /// The DataFusion context behind this session, for settings and
    /// registering session-local functions.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The primary key of `source.schema.table`, if the session may read
    /// the table and its source reports one: the key's name on the source
    /// and its columns in key order.
    pub async fn primary_key(
        &self,
        source: &str,
        schema: &str,
        table: &str,
    ) -> Result<Option<(String, Vec<String>)>> {
        let Some(schema) = self.ctx.catalog(source).and_then(|c| c.schema(schema)) else {
            return Ok(None);
        };
        let Some(provider) = schema.table(table).await? else {
            return Ok(None);
        };
        let Some(source_table) = provider
            .as_ref()
            .downcast_ref::<spar_planner::SourceTable>()
        else {
            return Ok(None);
        };
        Ok(source_table
            .meta()
            .indexes
            .iter()
            .find(|i| i.primary && !i.expression)
            .map(|i| (i.name.clone(), i.columns.clone())))
    }

    /// The engine this session belongs to.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Checks that a table reference resolves, with a message that says
    /// where Spar looked and what exists when it does not.
    ///
    /// Names are looked up in this session's own view of the catalogs,
    /// where whatever the session may not read is absent: a table, schema
    /// or source outside the grants is answered exactly as one that does
    /// not exist (same error, same message), so grants cannot be used to
    /// map what exists beyond them.
    fn check_table(&self, reference: &TableReference) -> Result<()> {
        let state = self.ctx.state();
        let catalogs = state.catalog_list();
        let sources = self.engine.sources();
        let source_list = || {
            let names: Vec<String> = sources
                .iter()
                .filter(|s| self.access.allows_source(&s.name))
                .map(|s| format!("{} ({})", s.name, s.kind))
                .collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            format!("Sources: {}.", list_or_none(&names))
        };
        let unknown = |hint: String| EngineError::UnknownTable {
            name: reference.to_string(),
            hint,
        };
        match reference {
            TableReference::Bare { table } => {
                let Some(schema) = catalogs
                    .catalog(DEFAULT_CATALOG)
                    .and_then(|c| c.schema(SEARCH_PATH_SCHEMA))
                else {
                    return Ok(());
                };
                if schema.table_exist(table) {
                    return Ok(());
                }
                let path: Vec<String> = self
                    .engine
                    .search_path()
                    .iter()
                    .filter(|p| self.access.allows_schema(&p.source, &p.schema))
                    .map(ToString::to_string)
                    .collect();
                let hint = if path.is_empty() {
                    "The search path is empty: qualify the name as source.schema.table.".to_string()
                } else {
                    format!("Searched {}.", path.join(", "))
                };
                let found_in = self.qualified_candidates(table);
                let also = if found_in.is_empty() {
                    String::new()
                } else {
                    format!(" It exists as {}.", found_in.join(", "))
                };
                Err(unknown(format!("{hint}{also} {}", source_list())))
            }
            TableReference::Partial { schema, table } => {
                if schema.as_ref() == "information_schema" {
                    return Ok(());
                }
                if schema.as_ref() == SYSTEM_CATALOG {
                    let system = catalogs
                        .catalog(DEFAULT_CATALOG)
                        .and_then(|c| c.schema(SYSTEM_CATALOG));
                    if system.as_ref().is_some_and(|s| s.table_exist(table)) {
                        return Ok(());
                    }
                    if let Some(s) = system {
                        let names = s.table_names();
                        let names: Vec<&str> = names.iter().map(String::as_str).collect();
                        return Err(unknown(format!(
                            "`system` has tables {}.",
                            list_or_none(&names)
                        )));
                    }
                }
                let found_in = self.qualified_candidates(table);
                let also = if found_in.is_empty() {
                    String::new()
                } else {
                    format!(" It exists as {}.", found_in.join(", "))
                };
                Err(unknown(format!(
                    "Qualify it with its source: source.{schema}.{table}.{also} {}",
                    source_list()
                )))
            }
            TableReference::Full {
                catalog,
                schema,
                table,
            } => {
                if schema.as_ref() == "information_schema" {
                    return Ok(());
                }
                let Some(c) = catalogs.catalog(catalog) else {
                    return Err(unknown(format!(
                        "There is no source `{catalog}`. {}",
                        source_list()
                    )));
                };
                let Some(s) = c.schema(schema) else {
                    let names = c.schema_names();
                    let names: Vec<&str> = names
                        .iter()
                        .map(String::as_str)
                        .filter(|s| self.access.allows_schema(catalog, s))
                        .collect();
                    return Err(unknown(format!(
                        "Source `{catalog}` has no schema `{schema}`; its schemas: {}.",
                        list_or_none(&names)
                    )));
                };
                if s.table_exist(table) {
                    return Ok(());
                }
                let mut names = s.table_names();
                names.retain(|t| self.access.allows_table(catalog, schema, t));
                names.sort();
                let more = names.len().saturating_sub(20);
                names.truncate(20);
                let mut list = names.join(", ");
                if more > 0 {
                    list.push_str(&format!(" and {more} more"));
                }
                Err(unknown(format!(
                    "`{catalog}.{schema}` has {}.",
                    if list.is_empty() {
                        "no tables".to_string()
                    } else {
                        format!("tables {list}")
                    }
                )))
            }
        }
    }

    /// `source.schema.table` for every source schema that has `table`.
    fn qualified_candidates(&self, table: &str) -> Vec<String> {
        let catalogs = self.engine.catalogs();
        let mut found = Vec::new();
        for source in self.engine.sources() {
            let Some(catalog) = catalogs.catalog(&source.name) else {
                continue;
            };
            for schema in catalog.schema_names() {
                if self.access.allows_table(&source.name, &schema, table)
                    && catalog
                        .schema(&schema)
                        .is_some_and(|s| s.table_exist(table))
                {
                    found.push(format!("{}.{schema}.{table}", source.name));
                }
            }
        }
        found
    }
}

/// Spar reads; it never writes to a source or creates tables. Refuses any
/// statement that is not a query, EXPLAIN, DESCRIBE, SHOW, SET or RESET.
fn refuse_writes(statement: &Statement) -> Result<()> {
    let allowed = match statement {
        Statement::Statement(s) => is_read_only(s),
        Statement::Explain(e) => return refuse_writes(&e.statement),
        Statement::Reset(_) => true,
        Statement::CreateExternalTable(_) | Statement::CopyTo(_) => false,
    };
    if allowed {
        return Ok(());
    }
    let text = statement.to_string();
    let verb: Vec<&str> = text.split_whitespace().take(2).collect();
    Err(EngineError::DataFusion(DataFusionError::Plan(format!(
        "Spar is read-only: `{}` statements are not allowed; run queries (SELECT, EXPLAIN, DESCRIBE, SHOW, SET)",
        verb.join(" ")
    ))))
}

fn is_read_only(statement: &SqlStatement) -> bool {
    match statement {
        SqlStatement::Explain { statement, .. } => is_read_only(statement),
        SqlStatement::Query(_)
        | SqlStatement::Set(_)
        | SqlStatement::ExplainTable { .. }
        | SqlStatement::ShowVariable { .. }
        | SqlStatement::ShowVariables { .. }
        | SqlStatement::ShowTables { .. }
        | SqlStatement::ShowColumns { .. }
        | SqlStatement::ShowFunctions { .. }
        | SqlStatement::ShowSchemas { .. }
        | SqlStatement::ShowDatabases { .. } => true,
        _ => false,
    }
}

/// Spar's reading of literals, where DataFusion's differs (every
/// statement a [`Session`] plans goes through here first):
///
/// - Number literals written with an exponent (`1e300`, `2.5E-3`) are
///   approximate numeric literals, as the SQL standard names them:
///   `DOUBLE` values, as in MySQL and SQLite. Spar otherwise reads numbers
///   as decimals (so that `0.1` is exact), and no decimal holds `1e300`.
///   Each becomes `CAST('<literal>' AS DOUBLE)`, which DataFusion folds
///   into a `Float64` (beyond its range, an infinity; below it, zero).
/// - Date literals (`DATE '…'`, `CAST('…' AS DATE)`) are read as
///   PostgreSQL writes them, which is how Spar prints them: years past
///   9999 without a sign (`10000-01-01`) and years before 1 as `… BC`
///   (`0045-03-15 BC`).
pub fn read_literals(statement: &mut Statement) {
    match statement {
        Statement::Statement(statement) => {
            let _ = visit_expressions_mut(statement.as_mut(), |e| {
                rewrite_literal(e);
                std::ops::ControlFlow::<()>::Continue(())
            });
        }
        Statement::Explain(explain) => read_literals(&mut explain.statement),
        _ => {}
    }
}

fn rewrite_literal(e: &mut SqlExpr) {
    // Dates only: Arrow's timestamp parser reads no year beyond 9999 nor
    // before 1, whatever the spelling.
    let date_text = match e {
        SqlExpr::Value(v) => {
            if let Value::Number(text, _) = &v.value {
                if text.contains(['e', 'E']) {
                    *e = SqlExpr::Cast {
                        kind: CastKind::Cast,
                        expr: Box::new(SqlExpr::value(Value::SingleQuotedString(text.clone()))),
                        data_type: SqlDataType::Double(ExactNumberInfo::None),
                        array: false,
                        format: None,
                    };
                }
            }
            return;
        }
        SqlExpr::TypedString(typed) if typed.data_type == SqlDataType::Date => {
            &mut typed.value.value
        }
        SqlExpr::Cast {
            expr, data_type, ..
        } if *data_type == SqlDataType::Date => match expr.as_mut() {
            SqlExpr::Value(v) => &mut v.value,
            _ => return,
        },
        _ => return,
    };
    if let Value::SingleQuotedString(text) = date_text {
        if let Some(arrow) = arrow_year(text) {
            *text = arrow;
        }
    }
}

/// Refuses a subquery used as a value (`x > (SELECT …)`, `x IN (SELECT
/// …)`, `x = ANY (SELECT …)`) that returns no column, such as `(SELECT
/// FROM t)`: PostgreSQL refuses it too, and DataFusion's planner would
/// index its missing first column and panic.
fn refuse_columnless_subqueries(statement: &Statement) -> Result<()> {
    match statement {
        Statement::Statement(s) => {
            let found = visit_expressions(s.as_ref(), |e| match e {
                SqlExpr::Subquery(q) | SqlExpr::InSubquery { subquery: q, .. }
                    if returns_no_column(&q.body) =>
                {
                    std::ops::ControlFlow::Break(())
                }
                _ => std::ops::ControlFlow::Continue(()),
            });
            if found.is_break() {
                return Err(EngineError::DataFusion(DataFusionError::Plan(
                    "a subquery used as a value (or after IN, ANY, ALL) must return one column; this one returns none".into(),
                )));
            }
            Ok(())
        }
        Statement::Explain(explain) => refuse_columnless_subqueries(&explain.statement),
        _ => Ok(()),
    }
}

/// Whether a query body selects no column at all.
fn returns_no_column(body: &SetExpr) -> bool {
    match body {
        SetExpr::Select(select) => select.projection.is_empty(),
        SetExpr::Query(query) => returns_no_column(&query.body),
        SetExpr::SetOperation { left, .. } => returns_no_column(left),
        _ => false,
    }
}

/// `SET statement_timeout = …` as PostgreSQL spells it sets
/// `spar.statement_timeout`.
fn postgres_setting_names(statement: &mut Statement) {
    let Statement::Statement(s) = statement else {
        return;
    };
    if let SqlStatement::Set(Set::SingleAssignment { variable, .. }) = s.as_mut() {
        if variable.0.len() == 1
            && variable
                .to_string()
                .eq_ignore_ascii_case("statement_timeout")
        {
            *variable = ObjectName::from(vec![Ident::new("spar"), Ident::new("statement_timeout")]);
        }
    }
}

/// A date written as PostgreSQL writes it, in the form
/// Arrow's parser reads (`+10000-01-01`, `-0044-03-15`); `None` when the
/// text needs no change.
fn arrow_year(text: &str) -> Option<String> {
    let trimmed = text.trim();
    // `get` rather than slicing: the text is a user's literal, and its
    // last three bytes may fall inside a multi-byte character.
    let split = trimmed.len().checked_sub(3);
    let (body, bc) = match split.and_then(|i| Some((trimmed.get(..i)?, trimmed.get(i..)?))) {
        Some((body, suffix)) if suffix.eq_ignore_ascii_case(" BC") => (body.trim_end(), true),
        _ => (trimmed, false),
    };
    let digits = body.bytes().take_while(u8::is_ascii_digit).count();
    if body.as_bytes().get(digits) != Some(&b'-') || digits < 4 {
        return None;
    }
    let year: i64 = body[..digits].parse().ok()?;
    let rest = &body[digits..];
    match (bc, digits > 4) {
        // Year y BC is astronomical year 1 - y.
        (true, _) if year >= 1 => {
            let astronomical = 1 - year;
            Some(match astronomical {
                0 => format!("0000{rest}"),
                y => format!("-{:04}{rest}", -y),
            })
        }
        (false, true) => Some(format!("+{body}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_years_read_as_arrow_reads_them() {
        // A multi-byte character where the ` BC` suffix would be.
        assert_eq!(arrow_year("1995-03-1\u{1F600}5"), None);
        assert_eq!(arrow_year("\u{e9}\u{e9}"), None);
        assert_eq!(arrow_year("10000-01-01").as_deref(), Some("+10000-01-01"));
        assert_eq!(
            arrow_year("10000-01-01 12:00:00").as_deref(),
            Some("+10000-01-01 12:00:00")
        );
        assert_eq!(arrow_year("0045-03-15 BC").as_deref(), Some("-0044-03-15"));
        assert_eq!(arrow_year("0001-01-01 bc").as_deref(), Some("0000-01-01"));
        assert_eq!(
            arrow_year("0045-03-15 10:00:00 BC").as_deref(),
            Some("-0044-03-15 10:00:00")
        );
        assert_eq!(arrow_year("2024-02-29"), None);
        assert_eq!(arrow_year("0000-01-01 BC"), None);
        assert_eq!(arrow_year("yesterday"), None);
    }
}
