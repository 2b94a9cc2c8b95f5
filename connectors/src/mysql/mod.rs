//! MySQL and MariaDB sources, through mysql_async with a connection pool.
//!
//! Discovery reads `information_schema`; results use the binary protocol
//! (prepared statements: exact floats, typed dates) and stream: a task owns
//! the connection, reads rows into Arrow builders and sends each batch
//! through a channel of two, so the server is read only as fast as batches
//! are consumed. Dropping the stream early kills the query on the server
//! (`KILL QUERY`). Every session runs with `time_zone = '+00:00'`, so
//! `TIMESTAMP` values are UTC. Types map by the rule in [`types`].

pub mod dialect;
pub mod tls;
pub mod types;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{RecordBatch, RecordBatchOptions};
use arrow::datatypes::{Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::common::stats::Precision;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, Row, Value};
use tokio::sync::{mpsc, oneshot};

use crate::connector::{Connector, ReplicaPosition, ReplicaRole, ReplicaStatus};
use crate::dialect::SqlDialect;
use crate::error::{ConnectorError, Result};
use crate::metadata::{IndexMeta, TableKind, TableName, TableStats};
pub use dialect::MySqlSqlDialect;
use types::{arrow_type, ColumnReader};

/// Rows per record batch unless configured otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 8192;

/// One MySQL or MariaDB server: one replica of a `mysql` source.
#[derive(Clone)]
pub struct MySqlConnector {
    pool: Pool,
    connect_timeout: Duration,
    target: String,
    batch_size: usize,
    dialect: Arc<MySqlSqlDialect>,
}

impl std::fmt::Debug for MySqlConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlConnector")
            .field("target", &self.target)
            .finish()
    }
}

/// The session's `sql_mode`: the server's, without
/// `PAD_CHAR_TO_FULL_LENGTH` and with `NO_BACKSLASH_ESCAPES`.
const SQL_MODE: &str = "SET SESSION sql_mode = CONCAT_WS(',', NULLIF(TRIM(BOTH ',' FROM \
    REPLACE(CONCAT(',', @@SESSION.sql_mode, ','), ',PAD_CHAR_TO_FULL_LENGTH,', ',')), ''), \
    'NO_BACKSLASH_ESCAPES')";

impl MySqlConnector {
    /// A connector for `url` (`mysql://user:password@host:port/database`),
    /// with TLS as its `ssl-*` parameters say ([`tls`]). Nothing is
    /// connected until the first call; TLS files are read now.
    pub fn new(url: &str) -> Result<Self> {
        Self::with_connect_timeout(url, crate::DEFAULT_CONNECT_TIMEOUT)
    }

    /// [`Self::new`] with `timeout` as the connect timeout when the URL
    /// sets none (`connect-timeout=<seconds>`, as the `mysql` client's
    /// option is named; `connect_timeout` also works). It bounds the whole
    /// connection set-up: TCP, TLS, authentication and the session's
    /// settings.
    pub fn with_connect_timeout(url: &str, timeout: Duration) -> Result<Self> {
        let (url, connect_timeout) = take_connect_timeout(url, timeout)?;
        let url = url.as_str();
        let (url_rest, tls_options) = tls::split_tls_options(url)?;
        let opts = Opts::from_url(&url_rest).map_err(|e| ConnectorError::Config {
            target: crate::error::redact_url(url),
            message: format!("not a MySQL connection URL: {e}"),
        })?;
        let target = format!(
            "mysql://{}:{}/{}",
            opts.ip_or_hostname(),
            opts.tcp_port(),
            opts.db_name().unwrap_or_default()
        );
        let constraints = PoolConstraints::new(0, 8).unwrap_or_default();
        let mut opts = OptsBuilder::from_opts(opts);
        if let Some(options) = tls_options {
            opts = opts.ssl_opts(tls::ssl_opts(&options, &target)?);
        }
        // Every session: UTC; a backslash in a string literal is just a
        // backslash (as in standard SQL and in the SQL Spar writes), so no
        // value can end a literal early or change it; CHAR(n) values come
        // without their padding, whatever the server's default sql_mode.
        let opts = opts
            .init(vec!["SET time_zone = '+00:00'", SQL_MODE])
            .prefer_socket(false)
            .pool_opts(PoolOpts::default().with_constraints(constraints));
        Ok(Self {
            pool: Pool::new(opts),
            connect_timeout,
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

    async fn conn(&self) -> Result<mysql_async::Conn> {
        tokio::time::timeout(self.connect_timeout, self.pool.get_conn())
            .await
            .map_err(|_| ConnectorError::Unavailable {
                target: self.target.clone(),
                message: format!(
                    "no connection within {:?} (connect timeout)",
                    self.connect_timeout
                ),
            })?
            .map_err(|e| my_error(&e, &self.target))
    }

    async fn rows(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>> {
        let mut conn = self.conn().await?;
        conn.exec(sql, params)
            .await
            .map_err(|e| my_error(&e, &self.target))
    }
}

/// Takes `connect-timeout` (or `connect_timeout`), in whole seconds, out
/// of `url`; `default` when absent. Zero means no limit, as for the
/// `mysql` client.
fn take_connect_timeout(url: &str, default: Duration) -> Result<(String, Duration)> {
    let (rest, params) = crate::tls::take_url_params(url, &["connect-timeout", "connect_timeout"]);
    let Some((name, value)) = params.last() else {
        return Ok((rest, default));
    };
    let seconds: u64 = value.trim().parse().map_err(|_| ConnectorError::Config {
        target: crate::error::redact_url(url),
        message: format!("{name} must be a whole number of seconds, found `{value}`"),
    })?;
    let timeout = if seconds == 0 {
        crate::MAX_CONNECT_TIMEOUT
    } else {
        Duration::from_secs(seconds).min(crate::MAX_CONNECT_TIMEOUT)
    };
    Ok((rest, timeout))
}

/// Classifies a mysql_async error: I/O and lost connections, shutdowns and
/// refused connections are retryable, as are too many connections, lock
/// timeouts and deadlocks; server errors keep their message and number.
pub(crate) fn my_error(e: &mysql_async::Error, target: &str) -> ConnectorError {
    let target = target.to_string();
    match e {
        mysql_async::Error::Server(s) => match s.code {
            1053 | 1077 | 1079 | 1080 => ConnectorError::Unavailable {
                target,
                message: s.message.clone(),
            },
            1040 | 1203 | 1205 | 1213 => ConnectorError::Transient {
                target,
                message: s.message.clone(),
            },
            1317 => ConnectorError::Cancelled { target },
            code => ConnectorError::Query {
                target,
                message: s.message.clone(),
                code: Some(format!("{code}/{}", s.state)),
            },
        },
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => ConnectorError::Unavailable {
            target,
            message: e.to_string(),
        },
        other => ConnectorError::Query {
            target,
            message: other.to_string(),
            code: None,
        },
    }
}

fn text(row: &Row, i: usize) -> String {
    match row.as_ref(i) {
        Some(Value::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
        Some(Value::Int(n)) => n.to_string(),
        Some(Value::UInt(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn number(row: &Row, i: usize) -> Option<u64> {
    match row.as_ref(i) {
        Some(Value::Int(n)) => u64::try_from(*n).ok(),
        Some(Value::UInt(n)) => Some(*n),
        Some(Value::Bytes(b)) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

#[async_trait]
impl Connector for MySqlConnector {
    fn target(&self) -> &str {
        &self.target
    }

    fn dialect(&self) -> Arc<dyn SqlDialect> {
        Arc::clone(&self.dialect) as Arc<dyn SqlDialect>
    }

    async fn list_schemas(&self) -> Result<Vec<String>> {
        let rows = self
            .rows(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA \
                 WHERE SCHEMA_NAME NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') ORDER BY 1",
                vec![],
            )
            .await?;
        Ok(rows.iter().map(|r| text(r, 0)).collect())
    }

    async fn list_tables(&self, schema: &str) -> Result<Vec<(String, TableKind)>> {
        let rows = self
            .rows(
                "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY 1",
                vec![schema.into()],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    text(r, 0),
                    if text(r, 1) == "VIEW" {
                        TableKind::View
                    } else {
                        TableKind::Table
                    },
                )
            })
            .collect())
    }

    async fn table_schema(&self, table: &TableName) -> Result<SchemaRef> {
        let rows = self
            .rows(
                "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, IS_NULLABLE \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                vec![table.schema.as_str().into(), table.table.as_str().into()],
            )
            .await?;
        if rows.is_empty() {
            return Err(ConnectorError::NotFound {
                target: self.target.clone(),
                what: format!("table `{table}`"),
            });
        }
        let fields: Vec<Field> = rows
            .iter()
            .map(|r| {
                let data_type = arrow_type(&text(r, 1), &text(r, 2), number(r, 3), number(r, 4));
                let field = Field::new(text(r, 0), data_type, text(r, 5) == "YES");
                // CHAR(n) values arrive without their padding (the session's
                // sql_mode has no PAD_CHAR_TO_FULL_LENGTH) and compare
                // without trailing spaces.
                match text(r, 1).eq_ignore_ascii_case("char") {
                    true => field.with_metadata(
                        [(crate::dialect::PADDED_CHAR.to_string(), "char".to_string())].into(),
                    ),
                    false => field,
                }
            })
            .collect();
        Ok(Arc::new(Schema::new(fields)))
    }

    async fn table_statistics(&self, table: &TableName, schema: &SchemaRef) -> Result<TableStats> {
        let mut stats = TableStats::unknown(schema.fields().len());
        let rows = self
            .rows(
                "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND TABLE_TYPE = 'BASE TABLE'",
                vec![table.schema.as_str().into(), table.table.as_str().into()],
            )
            .await?;
        if let Some(n) = rows.first().and_then(|r| number(r, 0)) {
            stats.row_count = Precision::Inexact(usize::try_from(n).unwrap_or(usize::MAX));
        }
        // Cardinality of the first column of each index: its distinct count.
        let rows = self
            .rows(
                "SELECT COLUMN_NAME, MAX(CARDINALITY) FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND SEQ_IN_INDEX = 1 GROUP BY COLUMN_NAME",
                vec![table.schema.as_str().into(), table.table.as_str().into()],
            )
            .await?;
        for r in rows {
            if let (Some((i, _)), Some(n)) = (schema.column_with_name(&text(&r, 0)), number(&r, 1))
            {
                stats.columns[i].distinct_count =
                    Precision::Inexact(usize::try_from(n).unwrap_or(usize::MAX));
            }
        }
        Ok(stats)
    }

    async fn indexes(&self, table: &TableName) -> Result<Vec<IndexMeta>> {
        let rows = self
            .rows(
                "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY INDEX_NAME, SEQ_IN_INDEX",
                vec![table.schema.as_str().into(), table.table.as_str().into()],
            )
            .await?;
        let mut indexes: Vec<IndexMeta> = Vec::new();
        for r in rows {
            let name = text(&r, 0);
            let column = text(&r, 2);
            let prefix = !matches!(r.as_ref(3), None | Some(Value::NULL));
            match indexes.last_mut() {
                Some(last) if last.name == name => {
                    last.columns.push(column);
                    last.expression |= prefix;
                }
                _ => indexes.push(IndexMeta {
                    primary: name == "PRIMARY",
                    unique: number(&r, 1) == Some(0),
                    name,
                    columns: vec![column],
                    partial: false,
                    // A prefix index keys on part of the column's value.
                    expression: prefix,
                }),
            }
        }
        Ok(indexes)
    }

    async fn execute(&self, sql: &str, schema: SchemaRef) -> Result<SendableRecordBatchStream> {
        let conn = self.conn().await?;
        let readers = schema
            .fields()
            .iter()
            .map(|f| ColumnReader::try_new(f.name(), f.data_type(), self.batch_size))
            .collect::<Result<Vec<_>>>()?;
        let (tx, rx) = mpsc::channel(2);
        let (ready_tx, ready_rx) = oneshot::channel();
        let reader = Reader {
            target: self.target.clone(),
            batch_size: self.batch_size,
            schema: Arc::clone(&schema),
            readers,
        };
        let pool = self.pool.clone();
        let sql = sql.to_string();
        tokio::spawn(reader.run(conn, pool, sql, tx, ready_tx));
        ready_rx.await.map_err(|_| ConnectorError::Cancelled {
            target: self.target.clone(),
        })??;
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    async fn health_check(&self) -> Result<()> {
        self.rows("SELECT 1", vec![]).await.map(|_| ())
    }

    /// MariaDB's `@@gtid_current_pos` (the last GTID applied or written
    /// per domain); `None` on MySQL, which spells GTIDs otherwise.
    async fn replica_position(&self) -> Result<Option<ReplicaPosition>> {
        let mut conn = self.conn().await?;
        let text: Option<Option<String>> = match conn.query_first("SELECT @@gtid_current_pos").await
        {
            Ok(text) => text,
            Err(mysql_async::Error::Server(_)) => return Ok(None),
            Err(e) => return Err(my_error(&e, &self.target)),
        };
        Ok(text.flatten().and_then(|t| ReplicaPosition::parse_gtid(&t)))
    }

    async fn replica_status(&self) -> Result<ReplicaStatus> {
        let mut conn = self.conn().await?;
        let rows: Vec<Row> = match conn.query("SHOW REPLICA STATUS").await {
            Ok(rows) => rows,
            Err(_) => conn
                .query("SHOW SLAVE STATUS")
                .await
                .map_err(|e| my_error(&e, &self.target))?,
        };
        let Some(row) = rows.first() else {
            return Ok(ReplicaStatus {
                role: ReplicaRole::Primary,
                lag: Some(Duration::ZERO),
            });
        };
        let columns = row.columns();
        let lag = columns
            .iter()
            .position(|c| {
                c.name_str() == "Seconds_Behind_Master" || c.name_str() == "Seconds_Behind_Source"
            })
            .and_then(|i| number(row, i))
            .map(Duration::from_secs);
        Ok(ReplicaStatus {
            role: ReplicaRole::Replica,
            lag,
        })
    }
}

/// Reads a result set on its own task and sends it in batches.
struct Reader {
    target: String,
    batch_size: usize,
    schema: SchemaRef,
    readers: Vec<ColumnReader>,
}

type Batches = mpsc::Sender<datafusion::error::Result<RecordBatch>>;

impl Reader {
    async fn run(
        mut self,
        mut conn: mysql_async::Conn,
        pool: Pool,
        sql: String,
        tx: Batches,
        ready: oneshot::Sender<Result<()>>,
    ) {
        let connection_id = conn.id();
        let mut ready = ready;
        let abandoned = 'run: {
            // MySQL sends nothing until a slow query has its first row (an
            // aggregate: until the end): a consumer that gives up during
            // that wait is noticed at once, not when the query is done.
            let started = tokio::select! {
                started = conn.exec_iter(sql.as_str(), ()) => started,
                () = ready.closed() => break 'run true,
            };
            let mut result = match started {
                Ok(result) => result,
                Err(e) => {
                    let _ = ready.send(Err(my_error(&e, &self.target)));
                    return;
                }
            };
            let columns = result.columns().map_or(0, |c| c.len());
            if !self.schema.fields().is_empty() && columns != self.schema.fields().len() {
                let _ = ready.send(Err(ConnectorError::DataFusion(
                    datafusion::error::DataFusionError::Internal(format!(
                        "fragment for {} returns {columns} columns but was planned with {}",
                        self.target,
                        self.schema.fields().len()
                    )),
                )));
                return;
            }
            if ready.send(Ok(())).is_err() {
                true
            } else {
                self.stream(&mut result, &tx).await
            }
        };
        if abandoned {
            // The consumer is gone: stop the server's work, and let the
            // connection go rather than drain the rest of the result.
            if let Ok(mut killer) = pool.get_conn().await {
                let _ = killer
                    .query_drop(format!("KILL QUERY {connection_id}"))
                    .await;
            }
            drop(conn);
        }
    }

    /// Streams rows as batches; `true` when the receiver went away first.
    async fn stream<P: mysql_async::prelude::Protocol>(
        &mut self,
        result: &mut mysql_async::QueryResult<'_, '_, P>,
        tx: &Batches,
    ) -> bool {
        let mut rows_in_batch = 0;
        let mut row_number = 0u64;
        loop {
            let row = match result.next().await {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Err(my_error(&e, &self.target).into())).await;
                    return false;
                }
            };
            row_number += 1;
            for (i, reader) in self.readers.iter_mut().enumerate() {
                let value = row.as_ref(i).unwrap_or(&Value::NULL);
                if let Err(e) = reader.append(value, row_number) {
                    let _ = tx.send(Err(e.into())).await;
                    return false;
                }
            }
            rows_in_batch += 1;
            if rows_in_batch == self.batch_size {
                if tx.send(self.flush(rows_in_batch)).await.is_err() {
                    return true;
                }
                rows_in_batch = 0;
            }
        }
        if rows_in_batch > 0 && tx.send(self.flush(rows_in_batch)).await.is_err() {
            return true;
        }
        false
    }

    fn flush(&mut self, rows: usize) -> datafusion::error::Result<RecordBatch> {
        let columns = self.readers.iter_mut().map(ColumnReader::finish).collect();
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &options,
        )?)
    }
}
