//! sqllogictest files in `tests/slt/` run against the engine with three
//! real sources: `pg` (a harness PostgreSQL), `my` (a harness MariaDB) and
//! `lite` (a SQLite file), each loaded from `tests/slt/setup/`.
//!
//! Every query runs three times, with pushdown on, with pushdown off, and
//! on DataFusion over the same tables read into memory
//! (`spar_tests::reference`), and must give the same rows (sorted; floats
//! to 9 decimal places, or in scientific notation when very large or
//! small) before its rows are compared with the file's; so each file is
//! also a differential test. One
//! statement is Spar's own, for these tests:
//! `EXPLAIN FRAGMENTS <query>` returns one row per fragment,
//! `<source>: <SQL the source receives>`, in plan order, and `EXPLAIN
//! ANALYZE FRAGMENTS <query>` runs the query and returns one row per
//! fragment, `<source>: <runtime filter>: <rows> rows: <SQL sent>` (the
//! SQL as it was sent, with the keys of the hash joins above it; `-` for
//! a fragment no hash join filters, `none` where its filter added
//! nothing).
//!
//! Cells are compared exactly: a string's leading and trailing spaces are
//! written `␠` (so `CHAR(n)` padding and trailing spaces show), inner
//! spaces as they are, and nothing is trimmed or collapsed. Column type
//! letters are checked: `I` integers, `R` floats and decimals, `T` the
//! rest.
//!
//! Set `SPAR_SLT_COMPLETE=1` to rewrite the files' expected results from
//! the engine (then review the diff).

use std::path::{Path, PathBuf};

use arrow::array::{Array, Float32Array, Float64Array, RecordBatch};
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use spar_engine::{Engine, ServerSourceConfig, Session, SourceConfig, SqliteSourceConfig};
use spar_tests::harness::{MariaDbServer, PgServer};
use spar_tests::reference::{MemoryReference, TableName};
use sqllogictest::{DBOutput, DefaultColumnType};

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

#[derive(Debug, thiserror::Error)]
enum SltError {
    #[error("{0}")]
    Spar(String),
    #[error("the answers differ for {sql}\n  pushdown on: {on:?}\n  reference (pushdown off, or in memory): {off:?}")]
    Differs {
        sql: String,
        on: Vec<Vec<String>>,
        off: Vec<Vec<String>>,
    },
}

struct SparDb {
    /// Pushdown on.
    session: Session,
    /// Pushdown off: the reference.
    reference: Session,
    /// DataFusion over the same tables read into memory.
    memory: std::sync::Arc<MemoryReference>,
}

fn float_text(v: f64) -> String {
    if v.is_finite() && v != 0.0 && (v.abs() >= 1e15 || v.abs() < 1e-6) {
        format!("{v:e}")
    } else if v.is_finite() {
        let s = format!("{v:.9}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" {
            "0".into()
        } else {
            s.to_string()
        }
    } else {
        v.to_string()
    }
}

fn column_type(t: &DataType) -> DefaultColumnType {
    match t {
        t if t.is_integer() => DefaultColumnType::Integer,
        t if t.is_floating() || matches!(t, DataType::Decimal128(..)) => {
            DefaultColumnType::FloatingPoint
        }
        _ => DefaultColumnType::Text,
    }
}

/// Rows as text: NULL as `NULL`, the empty string as `(empty)`, floats
/// to 9 decimal places.
fn text_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, SltError> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SltError::Spar(e.to_string()))?;
        for row in 0..batch.num_rows() {
            let mut cells = Vec::new();
            for (c, f) in batch.columns().iter().zip(&formatters) {
                let any = c.as_any();
                let text = if c.is_null(row) {
                    "NULL".to_string()
                } else if let Some(a) = any.downcast_ref::<Float64Array>() {
                    float_text(a.value(row))
                } else if let Some(a) = any.downcast_ref::<Float32Array>() {
                    float_text(f64::from(a.value(row)))
                } else {
                    let t = f.value(row).to_string();
                    if t.is_empty() {
                        "(empty)".into()
                    } else {
                        visible_edges(&t)
                    }
                };
                cells.push(text);
            }
            out.push(cells);
        }
    }
    Ok(out)
}

/// `text` with each leading and trailing space written `␠`.
fn visible_edges(text: &str) -> String {
    let body = text.trim_matches(' ');
    if body.len() == text.len() {
        return text.to_string();
    }
    let lead = text.len() - text.trim_start_matches(' ').len();
    let trail = if body.is_empty() {
        0
    } else {
        text.len() - text.trim_end_matches(' ').len()
    };
    format!("{}{body}{}", "␠".repeat(lead), "␠".repeat(trail))
}

/// Expected lines and actual cells as they are, but for the line break
/// an editor may leave at the end.
#[allow(clippy::ptr_arg)]
fn exact(s: &String) -> String {
    s.trim_end_matches(['\r', '\n']).to_string()
}

/// Rows compared cell for cell, exactly (see the module documentation).
fn exact_validator(
    normalizer: sqllogictest::Normalizer,
    actual: &[Vec<String>],
    expected: &[String],
) -> bool {
    let actual: Vec<String> = actual
        .iter()
        .map(|row| row.iter().map(normalizer).collect::<Vec<_>>().join(" "))
        .collect();
    let expected: Vec<String> = expected.iter().map(normalizer).collect();
    actual == expected
}

async fn run(session: &Session, sql: &str) -> Result<Vec<RecordBatch>, SltError> {
    let df = session
        .sql(sql)
        .await
        .map_err(|e| SltError::Spar(e.to_string()))?;
    df.collect()
        .await
        .map_err(|e| SltError::Spar(e.to_string()))
}

impl SparDb {
    async fn fragments(&self, query: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let batches = run(&self.session, &format!("EXPLAIN {query}")).await?;
        let rows = text_rows(&batches)?;
        let logical = rows
            .iter()
            .find(|r| r.first().is_some_and(|k| k == "logical_plan"))
            .and_then(|r| r.get(1))
            .cloned()
            .unwrap_or_default();
        let rows = logical
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Fragment: source="))
            .map(|l| vec![l.replacen(" sql=", ": ", 1)])
            .collect::<Vec<_>>();
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Text],
            rows,
        })
    }
}

fn is_query(sql: &str) -> bool {
    let first = sql
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    matches!(first.as_str(), "SELECT" | "WITH" | "VALUES" | "(")
}

impl SparDb {
    async fn sent(&self, query: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let batches = run(&self.session, &format!("EXPLAIN ANALYZE VERBOSE {query}")).await?;
        // VERBOSE prints the plan twice: with metrics, then with each
        // partition's.
        let plan = text_rows(&batches)?
            .into_iter()
            .find(|r| r.first().is_some_and(|k| k == "Plan with Metrics"))
            .and_then(|r| r.into_iter().nth(1))
            .unwrap_or_default();
        let field = |line: &str, key: &str, end: &str| {
            line.split_once(key)
                .map(|(_, rest)| rest.split(end).next().unwrap_or(rest).to_string())
        };
        let rows = plan
            .lines()
            .filter_map(|l| l.trim().strip_prefix("FragmentExec: source="))
            .map(|l| {
                let source = l.split(',').next().unwrap_or_default();
                let runtime = field(l, ", runtime_filter=", ", sql=").unwrap_or("-".into());
                let rows = field(l, "output_rows=", ",").unwrap_or_default();
                let sql = field(l, ", sent=", ", metrics=[")
                    .or_else(|| field(l, ", sql=", ", metrics=["))
                    .unwrap_or_default();
                vec![format!("{source}: {runtime}: {rows} rows: {sql}")]
            })
            .collect::<Vec<_>>();
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Text],
            rows,
        })
    }
}

#[async_trait]
impl sqllogictest::AsyncDB for SparDb {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let trimmed = sql.trim();
        if let Some(query) = trimmed
            .get(..18)
            .filter(|p| p.eq_ignore_ascii_case("EXPLAIN FRAGMENTS "))
            .and_then(|_| trimmed.get(18..))
        {
            return self.fragments(query).await;
        }
        if let Some(query) = trimmed
            .get(..26)
            .filter(|p| p.eq_ignore_ascii_case("EXPLAIN ANALYZE FRAGMENTS "))
            .and_then(|_| trimmed.get(26..))
        {
            return self.sent(query).await;
        }
        if !is_query(trimmed) {
            run(&self.session, trimmed).await?;
            if !trimmed.to_ascii_lowercase().contains("spar.pushdown") {
                run(&self.reference, trimmed).await?;
            }
            return Ok(DBOutput::StatementComplete(0));
        }
        let df = self
            .session
            .sql(trimmed)
            .await
            .map_err(|e| SltError::Spar(e.to_string()))?;
        let types = df
            .schema()
            .fields()
            .iter()
            .map(|f| column_type(f.data_type()))
            .collect();
        let batches = df
            .collect()
            .await
            .map_err(|e| SltError::Spar(e.to_string()))?;
        let rows = text_rows(&batches)?;
        let mut on = rows.clone();
        let mut off = text_rows(&run(&self.reference, trimmed).await?)?;
        on.sort();
        off.sort();
        if on != off {
            return Err(SltError::Differs {
                sql: trimmed.to_string(),
                on,
                off,
            });
        }
        // Metadata queries have nothing to compare in memory.
        if !trimmed.to_ascii_lowercase().contains("information_schema") {
            let mut memory = text_rows(&self.memory.sql(trimmed).await.map_err(|e| {
                SltError::Spar(format!("the in-memory reference failed on {trimmed}: {e}"))
            })?)?;
            memory.sort();
            if on != memory {
                return Err(SltError::Differs {
                    sql: trimmed.to_string(),
                    on,
                    off: memory,
                });
            }
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "spar"
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await;
    }
}

fn slt_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("slt")
}

fn setup(name: &str) -> String {
    let path = slt_dir().join("setup").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The statements of a setup file, split at `;` line ends.
fn statements(sql: &str) -> Vec<String> {
    sql.split(";\n")
        .map(|s| {
            s.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|s| !s.trim().is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictest_files() {
    let pg = ok(PgServer::start().await);
    ok(pg.create_database("slt").await);
    ok(pg.execute("slt", &setup("postgres.sql")).await);
    let maria = ok(MariaDbServer::start().await);
    ok(maria.create_database("slt").await);
    for statement in statements(&setup("mariadb.sql")) {
        ok(maria.execute("slt", &statement).await);
    }
    let dir = ok(tempfile::tempdir());
    let lite = spar_tests::sqlite_db(dir.path(), "lite.db", &setup("sqlite.sql"));

    let engine = ok(Engine::builder()
        .with_source(
            "pg",
            SourceConfig::Postgres(ServerSourceConfig::new([pg.url("slt")])),
        )
        .with_source(
            "my",
            SourceConfig::MySql(ServerSourceConfig::new([maria.url("slt")])),
        )
        .with_source(
            "lite",
            SourceConfig::Sqlite(SqliteSourceConfig::new([lite])),
        )
        .build()
        .await);

    // The in-memory reference: every table of the three sources, read
    // whole through Spar.
    let reader = engine.session();
    ok(run(&reader, "SET spar.pushdown = false").await);
    let listed = ok(run(
        &reader,
        "SELECT table_catalog, table_schema, table_name FROM information_schema.tables \
         WHERE table_type = 'BASE TABLE' AND table_schema <> 'information_schema'",
    )
    .await);
    let tables: Vec<TableName> = ok(text_rows(&listed))
        .into_iter()
        .filter_map(|row| match row.as_slice() {
            [catalog, schema, table] => Some(TableName {
                catalog: catalog.clone(),
                schema: schema.clone(),
                table: table.clone(),
            }),
            _ => None,
        })
        .collect();
    assert!(tables.len() > 10, "only {} tables listed", tables.len());
    let memory = std::sync::Arc::new(ok(MemoryReference::copy(&reader, &tables).await));

    let mut files: Vec<PathBuf> = ok(std::fs::read_dir(slt_dir()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no .slt files in {}",
        slt_dir().display()
    );
    let complete = std::env::var_os("SPAR_SLT_COMPLETE").is_some();
    let mut failures = Vec::new();
    for file in &files {
        let engine = engine.clone();
        let memory = std::sync::Arc::clone(&memory);
        let mut runner = sqllogictest::Runner::new(move || {
            let engine = engine.clone();
            let memory = std::sync::Arc::clone(&memory);
            async move {
                let session = engine.session();
                let reference = engine.session();
                run(&reference, "SET spar.pushdown = false").await?;
                Ok::<_, SltError>(SparDb {
                    session,
                    reference,
                    memory,
                })
            }
        });
        runner.with_normalizer(exact);
        runner.with_validator(exact_validator);
        runner.with_column_validator(sqllogictest::strict_column_validator);
        if complete {
            if let Err(e) = runner
                .update_test_file(
                    file,
                    " ",
                    exact_validator,
                    exact,
                    sqllogictest::strict_column_validator,
                )
                .await
            {
                failures.push(format!("{}: {e}", file.display()));
            }
        } else if let Err(e) = runner.run_file_async(file).await {
            failures.push(format!("{}", e.display(false)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
