//! SQLite files as sources, through rusqlite (SQLite bundled).
//!
//! Every call runs on a blocking thread with its own read-only connection,
//! never on the async runtime. Results stream in batches of
//! [`SqliteConnector::with_batch_size`] rows through a channel of two
//! batches, so a slow consumer slows the reader and memory stays bounded;
//! dropping the stream interrupts the statement.
//!
//! Types map by the rule in [`types`].

mod conn;
pub mod dialect;
mod time;
pub mod types;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::Array;
use arrow::datatypes::{Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::common::stats::Precision;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::scalar::ScalarValue;
use rusqlite::types::ValueRef;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::connector::Connector;
use crate::dialect::{SqlDialect, COMPARES_DIFFERENTLY};
use crate::error::{ConnectorError, Result};
use crate::metadata::{IndexMeta, TableKind, TableMeta, TableName, TableStats};
use conn::{blocking, map_error, open};
pub use dialect::SqliteSqlDialect;
use types::ColumnReader;

/// Rows per record batch unless configured otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 8192;

/// One SQLite database file: one replica of a `sqlite` source.
#[derive(Debug, Clone)]
pub struct SqliteConnector {
    path: Arc<PathBuf>,
    target: String,
    batch_size: usize,
    dialect: Arc<SqliteSqlDialect>,
}

impl SqliteConnector {
    /// A connector for the database file at `path`. The file is not opened
    /// until the first call, so a missing file shows up as an unavailable
    /// replica (with its path), not as a construction error.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let target = format!("sqlite:{}", path.display());
        Self {
            path: Arc::new(path),
            target,
            batch_size: DEFAULT_BATCH_SIZE,
            dialect: Arc::default(),
        }
    }

    /// Rows per record batch streamed by [`Connector::execute`] (from 1 to
    /// [`crate::MAX_BATCH_SIZE`]).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.clamp(1, crate::MAX_BATCH_SIZE);
        self
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with a fresh read-only connection on a blocking thread.
    async fn with_conn<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Connection, &str) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let path = Arc::clone(&self.path);
        let target = self.target.clone();
        blocking(&self.target, move || {
            let conn = open(&path, &target)?;
            f(&conn, &target)
        })
        .await
    }
}

/// Declared column types and NOT NULL flags of a table, in column order.
fn table_columns(
    conn: &Connection,
    target: &str,
    table: &TableName,
) -> Result<Vec<(String, String, bool, i64)>> {
    let mut stmt = conn
        .prepare(r#"SELECT name, type, "notnull", pk FROM pragma_table_info(?1, ?2) ORDER BY cid"#)
        .map_err(|e| map_error(e, target))?;
    let rows = stmt
        .query_map([&table.table, &table.schema], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, bool>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(|e| map_error(e, target))?;
    if rows.is_empty() {
        return Err(ConnectorError::NotFound {
            target: target.to_string(),
            what: format!("table `{table}`"),
        });
    }
    Ok(rows)
}

/// Why SQLite compares a column's stored values otherwise than the Arrow
/// values Spar reads, if it does (field metadata
/// [`COMPARES_DIFFERENTLY`]): a column without a declared type keeps each
/// value's storage class (`10` and `'10'` are read alike but are not equal,
/// and every number sorts before every text); `DATETIME` text may have a
/// `T` or a space between date and time; a BLOB column may hold text; a
/// collation other than `BINARY` (`NOCASE`, `RTRIM`) ignores case or
/// trailing spaces. `collation` is `None` when SQLite cannot tell (a view's
/// column): then text columns count as compared otherwise too.
fn compared_unlike_arrow(
    declared: &str,
    data_type: &arrow::datatypes::DataType,
    collation: Option<&str>,
) -> Option<&'static str> {
    use arrow::datatypes::DataType;
    if declared.trim().is_empty() {
        return Some("untyped");
    }
    match data_type {
        DataType::Timestamp(_, _) => Some("datetime text"),
        DataType::Binary => Some("blob"),
        DataType::Utf8 => match collation {
            Some(c) if c.eq_ignore_ascii_case("BINARY") => None,
            Some(_) => Some("collation"),
            None => Some("unknown collation"),
        },
        _ => None,
    }
}

/// Quotes an identifier for SQLite (double quotes, doubled inside).
fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn quoted_table(table: &TableName) -> String {
    format!("{}.{}", quote(&table.schema), quote(&table.table))
}

/// A single stored value as a scalar of the column's Arrow type.
fn to_scalar(field: &Field, value: ValueRef<'_>) -> Result<Precision<ScalarValue>> {
    if let ValueRef::Null = value {
        return Ok(Precision::Absent);
    }
    let mut reader = ColumnReader::try_new(field.name(), field.data_type(), 1)?;
    if reader.append(value, 1).is_err() {
        // A misfit value fails the query that reads it; statistics just
        // stay unknown.
        return Ok(Precision::Absent);
    }
    let array = reader.finish();
    if array.is_null(0) {
        return Ok(Precision::Absent);
    }
    Ok(Precision::Exact(ScalarValue::try_from_array(&array, 0)?))
}

/// The row count from `sqlite_stat1` (written by `ANALYZE`), if present:
/// the largest count over the table's entries (a partial index counts
/// only the rows it covers).
fn analyzed_row_count(conn: &Connection, table: &TableName) -> Option<usize> {
    let sql = format!(
        "SELECT stat FROM {}.sqlite_stat1 WHERE tbl = ?1",
        quote(&table.schema)
    );
    let mut stmt = conn.prepare(&sql).ok()?;
    let stats = stmt
        .query_map([&table.table], |r| r.get::<_, String>(0))
        .ok()?;
    stats
        .filter_map(|s| s.ok()?.split_whitespace().next()?.parse::<usize>().ok())
        .max()
}

/// The average rows per distinct value of an index's first column, from
/// `sqlite_stat1`, if present.
fn analyzed_rows_per_key(conn: &Connection, table: &TableName, index: &str) -> Option<usize> {
    let sql = format!(
        "SELECT stat FROM {}.sqlite_stat1 WHERE tbl = ?1 AND idx = ?2",
        quote(&table.schema)
    );
    let stat: String = conn
        .query_row(&sql, [&table.table, index], |r| r.get(0))
        .ok()?;
    stat.split_whitespace().nth(1)?.parse().ok()
}

fn read_indexes(conn: &Connection, target: &str, table: &TableName) -> Result<Vec<IndexMeta>> {
    let err = |e| map_error(e, target);
    let mut list = conn
        .prepare(r#"SELECT name, "unique", origin, partial FROM pragma_index_list(?1, ?2) ORDER BY name"#)
        .map_err(err)?;
    let entries = list
        .query_map([&table.table, &table.schema], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, bool>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, bool>(3)?,
            ))
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(err)?;
    let mut info = conn
        .prepare("SELECT name FROM pragma_index_info(?1, ?2) ORDER BY seqno")
        .map_err(err)?;
    let mut indexes = Vec::with_capacity(entries.len() + 1);
    for (name, unique, origin, partial) in entries {
        let parts = info
            .query_map([&name, &table.schema], |r| r.get::<_, Option<String>>(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(err)?;
        let expression = parts.iter().any(Option::is_none);
        indexes.push(IndexMeta {
            name,
            columns: parts.into_iter().flatten().collect(),
            unique,
            primary: origin == "pk",
            partial,
            expression,
        });
    }
    // An INTEGER PRIMARY KEY is the rowid itself and has no index entry.
    if !indexes.iter().any(|i| i.primary) {
        let mut pk: Vec<(i64, String)> = table_columns(conn, target, table)?
            .into_iter()
            .filter(|c| c.3 > 0)
            .map(|c| (c.3, c.0))
            .collect();
        if !pk.is_empty() {
            pk.sort();
            indexes.insert(
                0,
                IndexMeta {
                    name: "PRIMARY KEY".into(),
                    columns: pk.into_iter().map(|(_, c)| c).collect(),
                    unique: true,
                    primary: true,
                    partial: false,
                    expression: false,
                },
            );
        }
    }
    Ok(indexes)
}

/// Row count and, for columns that lead an index, distinct counts and
/// MIN/MAX (index lookups), given the table's indexes.
fn read_statistics(
    conn: &Connection,
    target: &str,
    table: &TableName,
    schema: &SchemaRef,
    indexes: &[IndexMeta],
) -> Result<TableStats> {
    let mut stats = TableStats::unknown(schema.fields().len());
    let qualified = quoted_table(table);
    stats.row_count = match analyzed_row_count(conn, table) {
        Some(n) => Precision::Inexact(n),
        None => {
            let n: i64 = conn
                .query_row(&format!("SELECT COUNT(*) FROM {qualified}"), [], |r| {
                    r.get(0)
                })
                .map_err(|e| map_error(e, target))?;
            Precision::Exact(usize::try_from(n).unwrap_or(0))
        }
    };
    // Columns that lead an index: MIN/MAX are index lookups, and
    // distinct counts come from uniqueness or ANALYZE.
    for index in indexes {
        let Some(first) = index.columns.first() else {
            continue;
        };
        let Some((i, field)) = schema.column_with_name(first) else {
            continue;
        };
        let column = &mut stats.columns[i];
        if index.unique && index.columns.len() == 1 && !index.partial {
            column.distinct_count = stats.row_count;
        } else if let Some(per_key) = analyzed_rows_per_key(conn, table, &index.name) {
            if let Some(rows) = stats.row_count.get_value() {
                column.distinct_count = Precision::Inexact(rows / per_key.max(1));
            }
        }
        if matches!(column.min, Precision::Absent) {
            let sql = format!(
                "SELECT MIN({c}), MAX({c}) FROM {qualified}",
                c = quote(first)
            );
            let (min, max) = conn
                .query_row(&sql, [], |r| {
                    Ok((
                        to_scalar(field, r.get_ref(0)?),
                        to_scalar(field, r.get_ref(1)?),
                    ))
                })
                .map_err(|e| map_error(e, target))?;
            column.min = min?;
            column.max = max?;
        }
    }
    Ok(stats)
}

#[async_trait]
impl Connector for SqliteConnector {
    fn target(&self) -> &str {
        &self.target
    }

    fn dialect(&self) -> Arc<dyn SqlDialect> {
        Arc::clone(&self.dialect) as Arc<dyn SqlDialect>
    }

    async fn list_schemas(&self) -> Result<Vec<String>> {
        self.with_conn(|conn, target| {
            let mut stmt = conn
                .prepare("SELECT name FROM pragma_database_list WHERE name <> 'temp' ORDER BY name")
                .map_err(|e| map_error(e, target))?;
            stmt.query_map([], |r| r.get(0))
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>())
                .map_err(|e| map_error(e, target))
        })
        .await
    }

    async fn list_tables(&self, schema: &str) -> Result<Vec<(String, TableKind)>> {
        let sql = format!(
            "SELECT name, type FROM {}.sqlite_schema \
             WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
            quote(schema)
        );
        self.with_conn(move |conn, target| {
            let mut stmt = conn.prepare(&sql).map_err(|e| map_error(e, target))?;
            stmt.query_map([], |r| {
                let kind = if r.get::<_, String>(1)? == "view" {
                    TableKind::View
                } else {
                    TableKind::Table
                };
                Ok((r.get::<_, String>(0)?, kind))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| map_error(e, target))
        })
        .await
    }

    async fn table_schema(&self, table: &TableName) -> Result<SchemaRef> {
        let table = table.clone();
        self.with_conn(move |conn, target| {
            let fields: Vec<Field> = table_columns(conn, target, &table)?
                .into_iter()
                .map(|(name, declared, not_null, _)| {
                    let data_type = types::arrow_type(&declared);
                    let collation = conn
                        .column_metadata(
                            Some(table.schema.as_str()),
                            table.table.as_str(),
                            name.as_str(),
                        )
                        .ok()
                        .and_then(|m| m.1.map(|c| c.to_string_lossy().into_owned()));
                    let field = Field::new(name, data_type.clone(), !not_null);
                    match compared_unlike_arrow(&declared, &data_type, collation.as_deref()) {
                        Some(why) => field.with_metadata(
                            [(COMPARES_DIFFERENTLY.to_string(), why.to_string())].into(),
                        ),
                        None => field,
                    }
                })
                .collect();
            Ok(Arc::new(Schema::new(fields)))
        })
        .await
    }

    async fn table_statistics(&self, table: &TableName, schema: &SchemaRef) -> Result<TableStats> {
        let table = table.clone();
        let schema = Arc::clone(schema);
        self.with_conn(move |conn, target| {
            let is_view = conn
                .query_row(
                    &format!(
                        "SELECT type FROM {}.sqlite_schema WHERE name = ?1",
                        quote(&table.schema)
                    ),
                    [&table.table],
                    |r| r.get::<_, String>(0),
                )
                .map_err(|e| map_error(e, target))?
                == "view";
            if is_view {
                return Ok(TableStats::unknown(schema.fields().len()));
            }
            let indexes = read_indexes(conn, target, &table)?;
            read_statistics(conn, target, &table, &schema, &indexes)
        })
        .await
    }

    /// Reads the indexes once for both the index list and the statistics.
    async fn describe_table(&self, table: &TableName, kind: TableKind) -> Result<TableMeta> {
        let schema = self.table_schema(table).await?;
        let name = table.clone();
        let stats_schema = Arc::clone(&schema);
        let (stats, indexes) = self
            .with_conn(move |conn, target| match kind {
                TableKind::View => {
                    Ok((TableStats::unknown(stats_schema.fields().len()), Vec::new()))
                }
                TableKind::Table => {
                    let indexes = read_indexes(conn, target, &name)?;
                    let stats = read_statistics(conn, target, &name, &stats_schema, &indexes)?;
                    Ok((stats, indexes))
                }
            })
            .await?;
        Ok(TableMeta {
            name: table.clone(),
            kind,
            schema,
            stats,
            indexes,
        })
    }

    async fn indexes(&self, table: &TableName) -> Result<Vec<IndexMeta>> {
        let table = table.clone();
        self.with_conn(move |conn, target| read_indexes(conn, target, &table))
            .await
    }

    async fn execute(&self, sql: &str, schema: SchemaRef) -> Result<SendableRecordBatchStream> {
        let (tx, rx) = mpsc::channel(2);
        let (ready_tx, ready_rx) = oneshot::channel();
        let path = Arc::clone(&self.path);
        let target = self.target.clone();
        let sql = sql.to_string();
        let batch_size = self.batch_size;
        let stream_schema = Arc::clone(&schema);
        tokio::task::spawn_blocking(move || {
            let prepared = open(&path, &target).map(|conn| {
                let interrupt = conn.get_interrupt_handle();
                (conn, interrupt)
            });
            let (conn, interrupt) = match prepared {
                Ok(x) => x,
                Err(e) => return drop(ready_tx.send(Err(e))),
            };
            let mut stmt = match conn.prepare(&sql) {
                Ok(s) => s,
                Err(e) => return drop(ready_tx.send(Err(map_error(e, &target)))),
            };
            if !stream_schema.fields().is_empty()
                && stmt.column_count() != stream_schema.fields().len()
            {
                let e = ConnectorError::DataFusion(datafusion::error::DataFusionError::Internal(
                    format!(
                        "fragment for {target} returns {} columns but was planned with {}",
                        stmt.column_count(),
                        stream_schema.fields().len()
                    ),
                ));
                return drop(ready_tx.send(Err(e)));
            }
            if ready_tx.send(Ok(interrupt)).is_err() {
                return;
            }
            conn::stream_rows(&mut stmt, &stream_schema, batch_size, &target, &tx);
        });
        let interrupt = ready_rx.await.map_err(|_| ConnectorError::Cancelled {
            target: self.target.clone(),
        })??;
        let guard = InterruptOnDrop(interrupt);
        let stream = futures::stream::unfold((rx, guard), |(mut rx, guard)| async move {
            rx.recv().await.map(|item| (item, (rx, guard)))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    async fn health_check(&self) -> Result<()> {
        self.with_conn(|conn, target| {
            conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|_| ())
            .map_err(|e| map_error(e, target))
        })
        .await
    }
}

/// Interrupts the SQLite statement when the result stream is dropped, so
/// an abandoned query stops at once instead of running to its end.
struct InterruptOnDrop(rusqlite::InterruptHandle);

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        self.0.interrupt();
    }
}

#[cfg(test)]
mod tests;
