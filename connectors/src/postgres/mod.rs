//! PostgreSQL sources, through tokio-postgres with a connection pool.
//!
//! Discovery reads the system catalogs; results come back as
//! `COPY (fragment) TO STDOUT (FORMAT binary)` decoded straight into Arrow
//! builders: no text parsing, and memory bounded by one batch, because the
//! COPY stream is only read as fast as batches are consumed (TCP carries
//! the back-pressure to the server). Before the COPY, the fragment is
//! prepared once so that every column's decoder matches the type PostgreSQL
//! actually returns; types without a binary decoder are cast to `text` in
//! the COPY's query. Dropping a stream early cancels the query on the
//! server and discards its connection. Types map by the rule in [`types`];
//! TLS follows the URL's libpq parameters ([`tls`]).

mod copy;
mod decode;
pub mod dialect;
pub mod tls;
pub mod types;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::common::stats::Precision;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::scalar::ScalarValue;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use futures::StreamExt;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::connector::{Connector, ReplicaPosition, ReplicaRole, ReplicaStatus};
use crate::dialect::{SqlDialect, COMPARES_DIFFERENTLY, PADDED_CHAR};
use crate::error::{ConnectorError, Result};
use crate::metadata::{IndexMeta, TableKind, TableName, TableStats};
use crate::tls::TlsMode;
use copy::CopyDecoder;
use decode::ColumnDecoder;
pub use dialect::PostgresSqlDialect;
use types::{arrow_type, Wire};

/// Rows per record batch unless configured otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 8192;
/// Connections per replica pool unless configured otherwise.
pub const DEFAULT_POOL_SIZE: usize = 8;

/// One PostgreSQL server: one replica of a `postgres` source.
#[derive(Clone)]
pub struct PostgresConnector {
    pool: Pool,
    target: String,
    batch_size: usize,
    dialect: Arc<PostgresSqlDialect>,
}

impl std::fmt::Debug for PostgresConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConnector")
            .field("target", &self.target)
            .finish()
    }
}

impl PostgresConnector {
    /// A connector for `url` (`postgres://user:password@host:port/db` or
    /// key=value form), with TLS as its libpq parameters say ([`tls`]).
    /// Nothing is connected until the first call; TLS files are read now.
    pub fn new(url: &str) -> Result<Self> {
        Self::with_connect_timeout(url, crate::DEFAULT_CONNECT_TIMEOUT)
    }

    /// [`Self::new`] with `timeout` as the connect timeout when the URL
    /// sets none (`connect_timeout=<seconds>`, as libpq reads it). As in
    /// libpq, it bounds the whole connection set-up: TCP, TLS and the
    /// server's start-up, not only the TCP connect.
    pub fn with_connect_timeout(url: &str, timeout: Duration) -> Result<Self> {
        let (url_rest, tls) = tls::split_tls_options(url)?;
        let mut config = Config::from_str(&url_rest).map_err(|e| ConnectorError::Config {
            target: crate::error::redact_url(url),
            message: format!("not a PostgreSQL connection URL: {}", with_causes(&e)),
        })?;
        // libpq: zero or a negative value means wait indefinitely; so
        // does a value tokio-postgres reads as zero.
        let connect_timeout = match config.get_connect_timeout() {
            None => timeout,
            Some(t) if t.is_zero() => crate::MAX_CONNECT_TIMEOUT,
            // Longer ones would overflow the clock's arithmetic.
            Some(t) => (*t).min(crate::MAX_CONNECT_TIMEOUT),
        };
        config.connect_timeout(connect_timeout);
        let target = describe(&config);
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match tls.mode {
            TlsMode::Disable => {
                config.ssl_mode(SslMode::Disable);
                Manager::from_config(config, NoTls, manager_config)
            }
            mode => {
                config.ssl_mode(if mode == TlsMode::Prefer {
                    SslMode::Prefer
                } else {
                    SslMode::Require
                });
                let connector = MakeRustlsConnect::new(tls.rustls_config(&target)?);
                Manager::from_config(config, connector, manager_config)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(DEFAULT_POOL_SIZE)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(connect_timeout))
            .recycle_timeout(Some(connect_timeout))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            // A scan of a large table starts at its first page even while
            // another scan of it is under way (PostgreSQL would otherwise
            // join that scan midway), so that a fragment run again, on
            // this server or a physical standby, returns its rows in the
            // same order: a replay after a failure depends on it.
            .post_create(deadpool_postgres::Hook::async_fn(|client, _| {
                Box::pin(async move {
                    client
                        .batch_execute("SET synchronize_seqscans = off")
                        .await
                        .map_err(deadpool_postgres::HookError::Backend)
                })
            }))
            .build()
            .map_err(|e| ConnectorError::Config {
                target: target.clone(),
                message: e.to_string(),
            })?;
        Ok(Self {
            pool,
            target,
            batch_size: DEFAULT_BATCH_SIZE,
            dialect: Arc::default(),
        })
    }

    /// Rows per record batch (from 1 to [`crate::MAX_BATCH_SIZE`]).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.clamp(1, crate::MAX_BATCH_SIZE);
        self
    }

    async fn client(&self) -> Result<Object> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => pg_error(&e, &self.target),
            other => ConnectorError::Unavailable {
                target: self.target.clone(),
                message: other.to_string(),
            },
        })
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>> {
        let client = self.client().await?;
        client
            .query(sql, params)
            .await
            .map_err(|e| pg_error(&e, &self.target))
    }
}

/// `host:port/db` of a config, never its password.
fn describe(config: &Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("postgres://{host}:{port}/{db}")
}

/// An error's message followed by its causes' (tokio-postgres keeps the
/// interesting part, such as "Connection refused" or why a certificate was
/// rejected, in the cause).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        message.push_str(": ");
        message.push_str(&c.to_string());
        cause = c.source();
    }
    message
}

/// Classifies a PostgreSQL error: connection trouble, shutdowns, too many
/// connections and recovery conflicts are retryable; the rest is the
/// query's and carries the server's message and SQLSTATE.
pub(crate) fn pg_error(e: &tokio_postgres::Error, target: &str) -> ConnectorError {
    let target = target.to_string();
    let Some(db) = e.as_db_error() else {
        return ConnectorError::Unavailable {
            target,
            message: with_causes(e),
        };
    };
    let code = db.code();
    let message = db.message().to_string();
    let class = &code.code()[..2];
    if class == "08"
        || [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
        ]
        .contains(code)
    {
        ConnectorError::Unavailable { target, message }
    } else if [
        SqlState::TOO_MANY_CONNECTIONS,
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
    ]
    .contains(code)
    {
        ConnectorError::Transient { target, message }
    } else if code == &SqlState::QUERY_CANCELED {
        ConnectorError::Cancelled { target }
    } else {
        ConnectorError::Query {
            target,
            message,
            code: Some(code.code().to_string()),
        }
    }
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Cancels the COPY on the server and keeps its connection out of the pool
/// when a stream is dropped before the end.
struct CopyGuard {
    client: Option<Object>,
    finished: bool,
}

impl Drop for CopyGuard {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if let Some(client) = self.client.take() {
            let token = client.cancel_token();
            // Detach from the pool: the connection is mid-COPY.
            let client = Object::take(client);
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = token.cancel_query(NoTls).await;
                    drop(client);
                });
            }
        }
    }
}

#[async_trait]
impl Connector for PostgresConnector {
    fn target(&self) -> &str {
        &self.target
    }

    fn dialect(&self) -> Arc<dyn SqlDialect> {
        Arc::clone(&self.dialect) as Arc<dyn SqlDialect>
    }

    async fn list_schemas(&self) -> Result<Vec<String>> {
        let rows = self
            .query(
                "SELECT nspname::text FROM pg_namespace \
                 WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
                   AND nspname NOT LIKE 'pg\\_temp\\_%' AND nspname NOT LIKE 'pg\\_toast\\_temp\\_%' \
                 ORDER BY 1",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn list_tables(&self, schema: &str) -> Result<Vec<(String, TableKind)>> {
        let rows = self
            .query(
                "SELECT c.relname::text, c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY 1",
                &[&schema],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let kind: String = r.get(1);
                (
                    r.get(0),
                    if kind == "v" || kind == "m" {
                        TableKind::View
                    } else {
                        TableKind::Table
                    },
                )
            })
            .collect())
    }

    async fn table_schema(&self, table: &TableName) -> Result<SchemaRef> {
        let client = self.client().await?;
        let columns = client
            .query(
                "SELECT a.attname::text, a.atttypmod, a.attnotnull FROM pg_attribute a \
                 JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                &[&table.schema, &table.table],
            )
            .await
            .map_err(|e| pg_error(&e, &self.target))?;
        if columns.is_empty() {
            return Err(ConnectorError::NotFound {
                target: self.target.clone(),
                what: format!("table `{table}`"),
            });
        }
        // Preparing a scan gives each column's full type (enums, arrays,
        // domains) without parsing type names.
        let statement = client
            .prepare(&format!(
                "SELECT * FROM {}.{}",
                quote(&table.schema),
                quote(&table.table)
            ))
            .await
            .map_err(|e| pg_error(&e, &self.target))?;
        let fields: Vec<Field> = columns
            .iter()
            .zip(statement.columns())
            .map(|(row, column)| {
                let (data_type, _) = arrow_type(column.type_(), row.get(1));
                let field = Field::new(row.get::<_, String>(0), data_type, !row.get::<_, bool>(2));
                let key = if is_bpchar(column.type_()) {
                    PADDED_CHAR
                } else if compared_unlike_arrow(column.type_(), row.get(1)) {
                    COMPARES_DIFFERENTLY
                } else {
                    return field;
                };
                field.with_metadata([(key.to_string(), column.type_().name().to_string())].into())
            })
            .collect();
        Ok(Arc::new(Schema::new(fields)))
    }

    async fn table_statistics(&self, table: &TableName, schema: &SchemaRef) -> Result<TableStats> {
        let mut stats = TableStats::unknown(schema.fields().len());
        let rows = self
            .query(
                "SELECT c.reltuples::float8 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2",
                &[&table.schema, &table.table],
            )
            .await?;
        // reltuples is -1 until the table is first analyzed.
        let row_count = rows
            .first()
            .map(|r| r.get::<_, f64>(0))
            .filter(|n| *n >= 0.0)
            .map(|n| n.round() as usize);
        if let Some(n) = row_count {
            stats.row_count = Precision::Inexact(n);
        }
        let column_stats = self
            .query(
                "SELECT attname::text, null_frac::float8, n_distinct::float8, histogram_bounds::text FROM pg_stats \
                 WHERE schemaname = $1 AND tablename = $2",
                &[&table.schema, &table.table],
            )
            .await?;
        for row in column_stats {
            let name: String = row.get(0);
            let Some((i, field)) = schema.column_with_name(&name) else {
                continue;
            };
            let column = &mut stats.columns[i];
            let null_frac: f64 = row.get(1);
            let n_distinct: f64 = row.get(2);
            if let Some(n) = row_count {
                column.null_count = Precision::Inexact((null_frac * n as f64).round() as usize);
                // Negative n_distinct is a fraction of the row count.
                let distinct = if n_distinct < 0.0 {
                    -n_distinct * n as f64
                } else {
                    n_distinct
                };
                column.distinct_count = Precision::Inexact(distinct.round() as usize);
            } else if n_distinct > 0.0 {
                column.distinct_count = Precision::Inexact(n_distinct.round() as usize);
            }
            if let Some(bounds) = row.get::<_, Option<String>>(3) {
                let (min, max) = histogram_ends(&bounds, field.data_type());
                column.min = min;
                column.max = max;
            }
        }
        Ok(stats)
    }

    async fn indexes(&self, table: &TableName) -> Result<Vec<IndexMeta>> {
        let rows = self
            .query(
                "SELECT i.relname::text, ix.indisunique, ix.indisprimary, ix.indpred IS NOT NULL, ix.indexprs IS NOT NULL, \
                        ARRAY(SELECT a.attname::text FROM unnest(ix.indkey::int2[]) WITH ORDINALITY k(attnum, ord) \
                              JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.attnum \
                              WHERE k.ord <= ix.indnkeyatts ORDER BY k.ord) \
                 FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid \
                 JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = $1 AND t.relname = $2 ORDER BY 1",
                &[&table.schema, &table.table],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| IndexMeta {
                name: r.get(0),
                unique: r.get(1),
                primary: r.get(2),
                partial: r.get(3),
                expression: r.get(4),
                columns: r.get(5),
            })
            .collect())
    }

    async fn execute(&self, sql: &str, schema: SchemaRef) -> Result<SendableRecordBatchStream> {
        let client = self.client().await?;
        let statement = client
            .prepare(sql)
            .await
            .map_err(|e| pg_error(&e, &self.target))?;
        let result_columns = statement.columns();
        let counting = schema.fields().is_empty();
        if !counting && result_columns.len() != schema.fields().len() {
            return Err(ConnectorError::DataFusion(
                datafusion::error::DataFusionError::Internal(format!(
                    "fragment for {} returns {} columns but was planned with {}",
                    self.target,
                    result_columns.len(),
                    schema.fields().len()
                )),
            ));
        }
        let mut decoders = Vec::with_capacity(schema.fields().len());
        let mut select = Vec::with_capacity(schema.fields().len());
        let mut aliases = Vec::with_capacity(schema.fields().len());
        for (i, (field, column)) in schema.fields().iter().zip(result_columns).enumerate() {
            let (_, natural_wire) = arrow_type(column.type_(), -1);
            // Read as text what has no binary decoder, or what was planned
            // as text (numeric(p > 38), fallbacks).
            let wire = if natural_wire == Wire::Text
                || (field.data_type() == &DataType::Utf8 && !text_like(column.type_()))
            {
                Wire::Text
            } else {
                Wire::Binary
            };
            decoders.push(ColumnDecoder::try_new(
                field.name(),
                column.type_(),
                wire,
                field.data_type(),
                self.batch_size,
            )?);
            aliases.push(format!("c{i}"));
            select.push(match wire {
                Wire::Text => format!("c{i}::text"),
                Wire::Binary => format!("c{i}"),
            });
        }
        let copy_sql = if counting {
            format!("COPY (SELECT FROM ({sql}) AS spar_fragment) TO STDOUT (FORMAT binary)")
        } else {
            format!(
                "COPY (SELECT {} FROM ({sql}) AS spar_fragment({})) TO STDOUT (FORMAT binary)",
                select.join(", "),
                aliases.join(", ")
            )
        };
        // Armed before the COPY starts: PostgreSQL buffers its
        // CopyOutResponse until the first rows (or the end), so a slow
        // query keeps `copy_out` waiting, and a caller that gives up then
        // must cancel it as much as one that gives up later.
        let mut guard = CopyGuard {
            client: Some(client),
            finished: false,
        };
        let copy = match guard.client.as_ref() {
            Some(client) => client.copy_out(&copy_sql).await,
            None => {
                return Err(ConnectorError::Unavailable {
                    target: self.target.clone(),
                    message: "the connection was lost before the query started".into(),
                })
            }
        };
        let copy = match copy {
            Ok(copy) => copy,
            Err(e) => {
                // The server ended the statement itself: the connection is
                // idle again and goes back to the pool.
                guard.finished = true;
                return Err(pg_error(&e, &self.target));
            }
        };
        let decoder = CopyDecoder::new(
            decoders,
            Arc::clone(&schema),
            self.batch_size,
            self.target.clone(),
        );
        let target = self.target.clone();
        let stream = futures::stream::unfold(
            (Box::pin(copy), decoder, guard, false),
            move |(mut copy, mut decoder, mut guard, done)| {
                let target = target.clone();
                async move {
                    if done {
                        return None;
                    }
                    loop {
                        match decoder.next_batch() {
                            Ok(Some(batch)) => {
                                return Some((Ok(batch), (copy, decoder, guard, false)))
                            }
                            Ok(None) => {}
                            Err(e) => return Some((Err(e.into()), (copy, decoder, guard, true))),
                        }
                        match copy.next().await {
                            Some(Ok(chunk)) => decoder.push(&chunk),
                            Some(Err(e)) => {
                                return Some((
                                    Err(pg_error(&e, &target).into()),
                                    (copy, decoder, guard, true),
                                ))
                            }
                            None => {
                                guard.finished = true;
                                return match decoder.finish() {
                                    Ok(Some(batch)) => {
                                        Some((Ok(batch), (copy, decoder, guard, true)))
                                    }
                                    Ok(None) => None,
                                    Err(e) => Some((Err(e.into()), (copy, decoder, guard, true))),
                                };
                            }
                        }
                    }
                }
            },
        );
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    async fn health_check(&self) -> Result<()> {
        self.query("SELECT 1", &[]).await.map(|_| ())
    }

    async fn replica_position(&self) -> Result<Option<ReplicaPosition>> {
        let rows = self
            .query(
                "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text",
                &[],
            )
            .await?;
        Ok(rows
            .first()
            .and_then(|r| r.get::<_, Option<String>>(0))
            .and_then(|text| ReplicaPosition::parse_lsn(&text)))
    }

    async fn replica_status(&self) -> Result<ReplicaStatus> {
        let rows = self.query("SELECT pg_is_in_recovery()", &[]).await?;
        let in_recovery: bool = rows.first().map(|r| r.get(0)).unwrap_or(false);
        if !in_recovery {
            return Ok(ReplicaStatus {
                role: ReplicaRole::Primary,
                lag: Some(Duration::ZERO),
            });
        }
        // Lag: how long ago the last replayed transaction committed on the
        // primary; zero when everything received has been replayed.
        let rows = self
            .query(
                "SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 \
                        ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8 END",
                &[],
            )
            .await?;
        let lag = rows
            .first()
            .and_then(|r| r.get::<_, Option<f64>>(0))
            .map(|s| Duration::from_secs_f64(s.max(0.0)));
        Ok(ReplicaStatus {
            role: ReplicaRole::Replica,
            lag,
        })
    }
}

/// Whether `ty` is `char(n)` (or a domain over it), read without its
/// padding ([`PADDED_CHAR`]).
fn is_bpchar(ty: &tokio_postgres::types::Type) -> bool {
    use tokio_postgres::types::{Kind, Type};
    match ty.kind() {
        Kind::Domain(base) => is_bpchar(base),
        _ => *ty == Type::BPCHAR,
    }
}

/// Whether PostgreSQL compares values of `ty` otherwise than DataFusion
/// compares the Arrow values Spar reads for it: every type read as text
/// except `text`, `varchar`, `name` and `char(n)` (`uuid` and enums have
/// their own order, `json` has no `=`, wide `numeric` compares as a
/// number), and arrays of such types (`char(n)[]` too: its elements are
/// compared inside the array with their padding ignored).
fn compared_unlike_arrow(ty: &tokio_postgres::types::Type, typmod: i32) -> bool {
    use tokio_postgres::types::{Kind, Type};
    match ty.kind() {
        Kind::Domain(base) => compared_unlike_arrow(base, typmod),
        Kind::Array(element) => is_bpchar(element) || compared_unlike_arrow(element, -1),
        _ => {
            matches!(arrow_type(ty, typmod).0, DataType::Utf8)
                && !matches!(*ty, Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR)
        }
    }
}

/// Whether PostgreSQL sends this type's binary form as UTF-8 text.
fn text_like(ty: &tokio_postgres::types::Type) -> bool {
    use tokio_postgres::types::{Kind, Type};
    match ty.kind() {
        Kind::Domain(base) => text_like(base),
        Kind::Enum(_) => true,
        _ => matches!(
            *ty,
            Type::TEXT
                | Type::VARCHAR
                | Type::BPCHAR
                | Type::NAME
                | Type::JSON
                | Type::JSONB
                | Type::UUID
        ),
    }
}

/// The first and last histogram bound (PostgreSQL's array text) as
/// inexact min and max of the column's Arrow type.
fn histogram_ends(
    bounds: &str,
    data_type: &DataType,
) -> (Precision<ScalarValue>, Precision<ScalarValue>) {
    let inner = bounds.trim().trim_start_matches('{').trim_end_matches('}');
    if inner.contains('"') || inner.is_empty() || !is_ordered_scalar(data_type) {
        return (Precision::Absent, Precision::Absent);
    }
    let mut parts = inner.split(',');
    let convert = |s: Option<&str>| {
        s.and_then(|s| ScalarValue::try_from_string(s.trim().to_string(), data_type).ok())
            .filter(|v| !v.is_null())
            .map_or(Precision::Absent, Precision::Inexact)
    };
    let first = convert(parts.next());
    let last = convert(inner.rsplit(',').next());
    (first, last)
}

fn is_ordered_scalar(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal128(..)
            | DataType::Date32
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_never_show_passwords() {
        let c = PostgresConnector::new("postgres://spar:hunter2@127.0.0.1:5433/sales");
        let target = c.map(|c| c.target().to_string()).unwrap_or_default();
        assert_eq!(target, "postgres://127.0.0.1:5433/sales");
        let Some(e) = PostgresConnector::new("postgres://spar:hunter2@[bad")
            .err()
            .map(|e| e.to_string())
        else {
            panic!("a malformed URL was accepted");
        };
        assert!(
            e.contains("postgres"),
            "the error names the source kind: {e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn histogram_bounds_give_min_and_max() {
        let (min, max) = histogram_ends("{1,17,42}", &DataType::Int64);
        assert_eq!(min, Precision::Inexact(ScalarValue::Int64(Some(1))));
        assert_eq!(max, Precision::Inexact(ScalarValue::Int64(Some(42))));
        let (min, _) = histogram_ends("{\"a b\",c}", &DataType::Utf8);
        assert_eq!(min, Precision::Absent);
    }
}
