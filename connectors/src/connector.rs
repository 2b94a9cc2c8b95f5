//! The `Connector` trait: one value talks to one replica of one source.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::execution::SendableRecordBatchStream;

use crate::dialect::SqlDialect;
use crate::error::Result;
use crate::metadata::{IndexMeta, TableKind, TableMeta, TableName, TableStats};

/// One reachable copy of a source (a replica), seen through its driver.
///
/// Object-safe and shared between queries (`Arc<dyn Connector>`).
/// Implementations never block the async runtime: blocking drivers (SQLite)
/// run every call on a blocking thread.
///
/// ```text
///  planner ──(TableMeta, dialect)──┐
///                                  │   execute(sql, schema)
///  FragmentExec ───────────────────┴──────────────────────────▶ replica
///        ▲          stream of RecordBatch (bounded, back-pressured)  │
///        └───────────────────────────────────────────────────────────┘
/// ```
#[async_trait]
pub trait Connector: Debug + Send + Sync {
    /// The replica as it may be shown to users and logs: no password.
    fn target(&self) -> &str;

    /// How this source spells SQL and what it can run.
    fn dialect(&self) -> Arc<dyn SqlDialect>;

    /// The schemas (namespaces) this replica has, sorted.
    async fn list_schemas(&self) -> Result<Vec<String>>;

    /// The tables and views of one schema, sorted by name.
    async fn list_tables(&self, schema: &str) -> Result<Vec<(String, TableKind)>>;

    /// A table's columns as an Arrow schema: the types every fragment over
    /// this table produces, by the connector's documented type mapping.
    async fn table_schema(&self, table: &TableName) -> Result<SchemaRef>;

    /// Row count and per-column statistics, as precisely as the source
    /// knows them. `schema` is the table's schema from [`Self::table_schema`].
    async fn table_statistics(&self, table: &TableName, schema: &SchemaRef) -> Result<TableStats>;

    /// The table's indexes, primary key included.
    async fn indexes(&self, table: &TableName) -> Result<Vec<IndexMeta>>;

    /// Runs `sql` (in this source's dialect) and streams its rows as record
    /// batches of exactly `schema` (column `i` of the result is field `i`).
    /// An empty `schema` asks only for the number of rows (the statement
    /// may return any columns).
    ///
    /// The stream is bounded: the source is read only as fast as the
    /// consumer pulls. Dropping the stream cancels the query on the source.
    async fn execute(&self, sql: &str, schema: SchemaRef) -> Result<SendableRecordBatchStream>;

    /// Checks that the replica answers a trivial query.
    async fn health_check(&self) -> Result<()>;

    /// Whether this replica is a primary or a replica, and how far behind
    /// its primary it is. Sources without replication are primaries.
    async fn replica_status(&self) -> Result<ReplicaStatus> {
        Ok(ReplicaStatus {
            role: ReplicaRole::Primary,
            lag: Some(Duration::ZERO),
        })
    }

    /// Everything about one table: schema, kind, statistics and indexes.
    async fn describe_table(&self, table: &TableName, kind: TableKind) -> Result<TableMeta> {
        let schema = self.table_schema(table).await?;
        let stats = self.table_statistics(table, &schema).await?;
        let indexes = match kind {
            TableKind::Table => self.indexes(table).await?,
            TableKind::View => Vec::new(),
        };
        Ok(TableMeta {
            name: table.clone(),
            kind,
            schema,
            stats,
            indexes,
        })
    }
}

/// A replica's role in its source's replication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaRole {
    /// Accepts writes; is not replaying anyone's changes.
    Primary,
    /// Replays a primary's changes (a hot standby, a binlog replica).
    Replica,
}

/// A replica's role and replication lag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// Primary or replica.
    pub role: ReplicaRole,
    /// How far behind its primary the replica is; zero for a primary;
    /// `None` when it cannot tell (replication stopped or never started).
    pub lag: Option<Duration>,
}
