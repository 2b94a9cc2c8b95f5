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

    /// How far along replication this replica's data is, where the source
    /// can tell (PostgreSQL's WAL position, MariaDB's GTID position);
    /// `None` where it cannot.
    async fn replica_position(&self) -> Result<Option<ReplicaPosition>> {
        Ok(None)
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

/// How far along replication a replica's data is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaPosition {
    /// A PostgreSQL WAL position: replayed on a standby, written on a
    /// primary.
    Lsn(u64),
    /// A MariaDB GTID position: the last sequence number per replication
    /// domain.
    Gtid(std::collections::BTreeMap<u32, u64>),
}

impl ReplicaPosition {
    /// Parses PostgreSQL's `X/Y` LSN text.
    pub fn parse_lsn(text: &str) -> Option<Self> {
        let (high, low) = text.trim().split_once('/')?;
        let high = u64::from_str_radix(high, 16).ok()?;
        let low = u64::from_str_radix(low, 16).ok()?;
        (high <= u64::from(u32::MAX) && low <= u64::from(u32::MAX))
            .then_some(Self::Lsn((high << 32) | low))
    }

    /// Parses MariaDB's `domain-server-sequence[,…]` GTID position (empty:
    /// nothing replicated yet).
    pub fn parse_gtid(text: &str) -> Option<Self> {
        let mut domains = std::collections::BTreeMap::new();
        for gtid in text.split(',').map(str::trim).filter(|g| !g.is_empty()) {
            let mut parts = gtid.split('-');
            let (Some(domain), Some(_server), Some(seq), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return None;
            };
            domains.insert(domain.parse().ok()?, seq.parse().ok()?);
        }
        Some(Self::Gtid(domains))
    }

    /// Whether this position has everything `other` has: `None` when the
    /// two cannot be compared (different kinds).
    pub fn covers(&self, other: &Self) -> Option<bool> {
        match (self, other) {
            (Self::Lsn(a), Self::Lsn(b)) => Some(a >= b),
            (Self::Gtid(a), Self::Gtid(b)) => Some(
                b.iter()
                    .all(|(domain, seq)| a.get(domain).is_some_and(|s| s >= seq)),
            ),
            _ => None,
        }
    }
}

impl std::fmt::Display for ReplicaPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Lsn(lsn) => write!(f, "LSN {:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF),
            Self::Gtid(domains) => {
                let parts: Vec<String> = domains
                    .iter()
                    .map(|(d, s)| format!("domain {d} at {s}"))
                    .collect();
                write!(f, "GTID {}", parts.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod position_tests {
    use super::ReplicaPosition;

    #[test]
    fn positions_parse_and_compare() {
        let lsn = |t| ReplicaPosition::parse_lsn(t);
        assert_eq!(
            lsn("16/B374D848"),
            Some(ReplicaPosition::Lsn(0x16_B374_D848))
        );
        assert_eq!(lsn("0/0"), Some(ReplicaPosition::Lsn(0)));
        for bad in ["", "16", "x/1", "1/2/3", "100000000/0"] {
            assert_eq!(lsn(bad), None, "{bad}");
        }
        let (a, b) = (lsn("1/10"), lsn("1/F"));
        assert_eq!(
            a.as_ref().zip(b.as_ref()).and_then(|(a, b)| a.covers(b)),
            Some(true)
        );
        assert_eq!(
            b.as_ref().zip(a.as_ref()).and_then(|(b, a)| b.covers(a)),
            Some(false)
        );

        let gtid = |t| ReplicaPosition::parse_gtid(t);
        let ahead = gtid("0-1-100,1-2-5");
        let behind = gtid("0-1-99");
        let other_domain = gtid("2-1-1");
        assert!(ahead.is_some() && behind.is_some());
        let covers = |a: &Option<ReplicaPosition>, b: &Option<ReplicaPosition>| {
            a.as_ref().zip(b.as_ref()).and_then(|(a, b)| a.covers(b))
        };
        assert_eq!(covers(&ahead, &behind), Some(true));
        assert_eq!(covers(&behind, &ahead), Some(false));
        assert_eq!(covers(&ahead, &other_domain), Some(false));
        assert_eq!(covers(&gtid(""), &gtid("")), Some(true));
        assert_eq!(covers(&ahead, &lsn("0/1")), None);
        for bad in ["0-1", "a-b-c", "0-1-2-3"] {
            assert_eq!(gtid(bad), None, "{bad}");
        }
        assert_eq!(
            lsn("16/B374D848").map(|p| p.to_string()).as_deref(),
            Some("LSN 16/B374D848")
        );
    }
}
