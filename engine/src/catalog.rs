//! Sources as DataFusion catalogs, and the search path.
//!
//! Each source is a catalog (`sales`), its schemas are the source's own
//! (`main` for SQLite and files), and its tables carry the connector's
//! metadata, read once when the source is registered. Unqualified names go
//! to the hidden default catalog `spar`, whose one schema looks them up in
//! each `source.schema` of the search path.

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemorySchemaProvider,
    SchemaProvider, Session, TableProvider,
};
use datafusion::error::{DataFusionError, Result as DfResult};
use spar_connectors::file::FileSource;
use spar_connectors::mysql::MySqlConnector;
use spar_connectors::postgres::PostgresConnector;
use spar_connectors::sqlite::SqliteConnector;
use spar_connectors::{Connector, ConnectorError, TableName, TableStats};
use spar_planner::SourceTable;

use crate::config::{SchemaPath, SourceConfig};
use crate::error::{EngineError, Result};
use crate::replica::{ReplicaSet, ReplicaSettings};
use crate::system::{SYSTEM_CATALOG, SYSTEM_SCHEMA};

/// The hidden catalog that holds the search-path schema.
pub const DEFAULT_CATALOG: &str = "spar";
/// The schema of [`DEFAULT_CATALOG`] that resolves unqualified names.
pub const SEARCH_PATH_SCHEMA: &str = "search_path";

/// What the engine knows of a registered source, for messages and `\d`.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    /// The source's name.
    pub name: String,
    /// Its kind as in the config (`sqlite`, `files`).
    pub kind: &'static str,
    /// Its replicas' redacted targets (one location for files).
    pub replicas: Vec<String>,
    /// The replica set fragments run on (`None` for file sources, which
    /// DataFusion reads directly).
    pub replica_set: Option<ReplicaSet>,
    /// Whether its catalog has been read. A source none of whose replicas
    /// answered at start-up has an empty catalog until one does.
    pub discovered: bool,
    /// Why its catalog could not be read, one message per replica (empty
    /// once discovered).
    pub errors: Vec<String>,
}

/// A source as configured: its replica set (for SQL sources) built, no
/// connection made yet.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) info: SourceInfo,
    files: Option<FileSource>,
}

impl Prepared {
    /// How soon to try reading the catalog again after a failure.
    pub(crate) fn retry_interval(&self) -> Duration {
        self.info
            .replica_set
            .as_ref()
            .map_or(Duration::from_secs(5), |r| {
                r.settings().health_check_interval
            })
    }
}

/// Builds a source's connectors and replica set; fails only on settings
/// that no retry can fix (a malformed URL, unreadable TLS files).
pub(crate) fn prepare_source(name: &str, config: &SourceConfig) -> Result<Prepared> {
    let wrap = |error| EngineError::Connector {
        source_name: name.to_string(),
        error,
    };
    let set = |connectors: Vec<Arc<dyn Connector>>, policy, settings: &ReplicaSettings| {
        let replicas = ReplicaSet::with_settings(name, connectors, policy, settings.clone());
        Prepared {
            info: SourceInfo {
                name: name.to_string(),
                kind: config.kind(),
                replicas: replicas
                    .connectors()
                    .map(|c| c.target().to_string())
                    .collect(),
                replica_set: Some(replicas),
                discovered: false,
                errors: Vec::new(),
            },
            files: None,
        }
    };
    match config {
        SourceConfig::Sqlite(c) => {
            let connectors = c
                .replicas
                .iter()
                .map(|p| {
                    Arc::new(SqliteConnector::new(p).with_batch_size(c.batch_size))
                        as Arc<dyn Connector>
                })
                .collect();
            Ok(set(connectors, c.policy, &c.settings))
        }
        SourceConfig::Postgres(c) => {
            let connectors = c
                .replicas
                .iter()
                .map(|url| {
                    PostgresConnector::with_connect_timeout(url, c.settings.connect_timeout)
                        .map(|p| Arc::new(p.with_batch_size(c.batch_size)) as Arc<dyn Connector>)
                })
                .collect::<spar_connectors::Result<Vec<_>>>()
                .map_err(wrap)?;
            Ok(set(connectors, c.policy, &c.settings))
        }
        SourceConfig::MySql(c) => {
            let connectors = c
                .replicas
                .iter()
                .map(|url| {
                    MySqlConnector::with_connect_timeout(url, c.settings.connect_timeout)
                        .map(|m| Arc::new(m.with_batch_size(c.batch_size)) as Arc<dyn Connector>)
                })
                .collect::<spar_connectors::Result<Vec<_>>>()
                .map_err(wrap)?;
            Ok(set(connectors, c.policy, &c.settings))
        }
        SourceConfig::Files(c) => {
            let source =
                FileSource::with_locations(&c.locations(), c.format, c.s3.clone()).map_err(wrap)?;
            Ok(Prepared {
                info: SourceInfo {
                    name: name.to_string(),
                    kind: config.kind(),
                    replicas: source.targets(),
                    replica_set: None,
                    discovered: false,
                    errors: Vec::new(),
                },
                files: Some(source),
            })
        }
    }
}

/// Reads a prepared source's catalog: every schema and table, with
/// statistics and indexes. On failure, one message per replica.
pub(crate) async fn discover(
    prepared: &Prepared,
    session: &dyn Session,
) -> std::result::Result<Arc<dyn CatalogProvider>, Vec<String>> {
    let name = &prepared.info.name;
    if let Some(files) = &prepared.files {
        let tables = files
            .discover(session)
            .await
            .map_err(|e| vec![e.to_string()])?;
        let schema = MemorySchemaProvider::new();
        for table in tables {
            schema
                .register_table(table.name, table.provider)
                .map_err(|e| vec![e.to_string()])?;
        }
        let catalog = MemoryCatalogProvider::new();
        catalog
            .register_schema("main", Arc::new(schema))
            .map_err(|e| vec![e.to_string()])?;
        return Ok(Arc::new(catalog));
    }
    let Some(replicas) = &prepared.info.replica_set else {
        return Err(vec![format!("source `{name}` has no replicas")]);
    };
    let mut errors = Vec::new();
    for connector in replicas.connectors() {
        match sql_source_catalog(name, connector, replicas).await {
            Ok(catalog) => {
                replicas.record_success(connector.target());
                return Ok(catalog);
            }
            Err(e) => {
                tracing::warn!(source = %name, replica = %connector.target(), error = %e, "cannot read the source's catalog here");
                errors.push(e.to_string());
            }
        }
    }
    Err(errors)
}

/// The catalog of a SQL source, read through one replica. Every call is
/// bounded: the health check by the connect timeout, each metadata query
/// by the stall timeout, so that a replica that hangs is left for the
/// next.
async fn sql_source_catalog(
    name: &str,
    connector: &Arc<dyn Connector>,
    replicas: &ReplicaSet,
) -> std::result::Result<Arc<dyn CatalogProvider>, ConnectorError> {
    let settings = replicas.settings();
    let target = connector.target();
    within(
        settings.connect_timeout,
        target,
        "the health check",
        connector.health_check(),
    )
    .await?;
    let step = settings.stall_timeout;
    let dialect = connector.dialect();
    let catalog = MemoryCatalogProvider::new();
    for schema_name in within(step, target, "listing schemas", connector.list_schemas()).await? {
        let schema = MemorySchemaProvider::new();
        let tables = within(
            step,
            target,
            "listing tables",
            connector.list_tables(&schema_name),
        )
        .await?;
        for (table, kind) in tables {
            let name_ref = TableName::new(&schema_name, &table);
            let meta = within(
                step,
                target,
                "describing a table",
                connector.describe_table(&name_ref, kind),
            )
            .await?;
            let runner = Arc::new(replicas.clone());
            let provider = SourceTable::new(name, meta, Arc::clone(&dialect), runner);
            schema
                .register_table(table, Arc::new(provider))
                .map_err(ConnectorError::DataFusion)?;
        }
        catalog
            .register_schema(&schema_name, Arc::new(schema))
            .map_err(ConnectorError::DataFusion)?;
    }
    Ok(Arc::new(catalog))
}

/// Reads `table`'s statistics again from the first of its source's
/// replicas (primary first) that answers within the stall timeout, and
/// gives them to every plan made from now on. Returns the statistics and
/// the replica that gave them; on failure, one message per replica.
pub(crate) async fn refresh_statistics(
    replicas: &ReplicaSet,
    table: &SourceTable,
) -> std::result::Result<(TableStats, String), Vec<String>> {
    let meta = table.meta();
    let step = replicas.settings().stall_timeout;
    let mut errors = Vec::new();
    for connector in replicas.connectors() {
        let target = connector.target();
        let read = within(
            step,
            target,
            "reading statistics",
            connector.table_statistics(&meta.name, &meta.schema),
        )
        .await;
        // Its indexes too: one made on the index advisor's word is used
        // (and no longer advised) from now on.
        let read = match read {
            Ok(stats) => within(
                step,
                target,
                "reading indexes",
                connector.indexes(&meta.name),
            )
            .await
            .map(|indexes| (stats, indexes)),
            Err(e) => Err(e),
        };
        match read {
            Ok((stats, indexes)) => {
                if let Err(e) = table.set_statistics(stats.clone()) {
                    return Err(vec![e.to_string()]);
                }
                table.set_indexes(indexes);
                replicas.forget_index_advice(&meta.name.to_string());
                replicas.forget_fragment_times();
                replicas.record_success(target);
                return Ok((stats, target.to_string()));
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    Err(errors)
}

/// `call` within `limit`, or a retryable timeout naming the replica.
async fn within<T>(
    limit: Duration,
    target: &str,
    what: &str,
    call: impl std::future::Future<Output = spar_connectors::Result<T>>,
) -> spar_connectors::Result<T> {
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
        Err(ConnectorError::Transient {
            target: target.to_string(),
            message: format!(
                "{what} got no answer within {}",
                humantime::format_duration(limit)
            ),
        })
    })
}

/// The catalog behind unqualified names.
#[derive(Debug)]
pub(crate) struct SearchPathCatalog {
    schema: Arc<SearchPathSchema>,
}

impl SearchPathCatalog {
    /// Resolves bare names in `catalogs`, which owns this catalog (hence
    /// the weak reference: no cycle keeps either alive).
    pub(crate) fn new(path: Vec<SchemaPath>, catalogs: Weak<dyn CatalogProviderList>) -> Self {
        Self {
            schema: Arc::new(SearchPathSchema { path, catalogs }),
        }
    }
}

impl CatalogProvider for SearchPathCatalog {
    fn schema_names(&self) -> Vec<String> {
        vec![SEARCH_PATH_SCHEMA.to_string()]
    }

    /// The search-path schema, and `system` for the two-part names of
    /// the `system` catalog (`system.replicas`), as the catalog list this
    /// catalog belongs to shows it (so a session's grants apply).
    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == SYSTEM_CATALOG {
            return self
                .schema
                .catalogs
                .upgrade()?
                .catalog(SYSTEM_CATALOG)?
                .schema(SYSTEM_SCHEMA);
        }
        (name == SEARCH_PATH_SCHEMA).then(|| Arc::clone(&self.schema) as Arc<dyn SchemaProvider>)
    }
}

/// Resolves an unqualified table name through the search path. Its table
/// list is empty, so that metadata listings show each table once, under
/// its source.
#[derive(Debug)]
pub(crate) struct SearchPathSchema {
    path: Vec<SchemaPath>,
    catalogs: Weak<dyn CatalogProviderList>,
}

impl SearchPathSchema {
    /// The `source.schema` entries that have a table `name`.
    pub(crate) fn matches(&self, name: &str) -> Vec<(String, Arc<dyn SchemaProvider>)> {
        let Some(catalogs) = self.catalogs.upgrade() else {
            return Vec::new();
        };
        self.path
            .iter()
            .filter_map(|p| {
                let schema = catalogs.catalog(&p.source)?.schema(&p.schema)?;
                schema.table_exist(name).then(|| (p.to_string(), schema))
            })
            .collect()
    }
}

#[async_trait]
impl SchemaProvider for SearchPathSchema {
    fn table_names(&self) -> Vec<String> {
        Vec::new()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let mut found = self.matches(name);
        match found.len() {
            0 => Ok(None),
            1 => match found.pop() {
                Some((_, schema)) => schema.table(name).await,
                None => Ok(None),
            },
            _ => Err(DataFusionError::from(EngineError::AmbiguousTable {
                name: name.to_string(),
                candidates: found.into_iter().map(|(p, _)| p).collect(),
            })),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        !self.matches(name).is_empty()
    }
}
