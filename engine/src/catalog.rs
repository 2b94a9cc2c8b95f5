//! Sources as DataFusion catalogs, and the search path.
//!
//! Each source is a catalog (`sales`), its schemas are the source's own
//! (`main` for SQLite and files), and its tables carry the connector's
//! metadata, read once when the source is registered. Unqualified names go
//! to the hidden default catalog `spar`, whose one schema looks them up in
//! each `source.schema` of the search path.

use std::sync::{Arc, Weak};

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
use spar_connectors::{Connector, TableName};
use spar_planner::SourceTable;

use crate::config::{SchemaPath, SourceConfig};
use crate::error::{EngineError, Result};
use crate::replica::ReplicaSet;

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
}

/// Builds the catalog of one source: connects, discovers every schema and
/// table, and reads their statistics and indexes.
pub(crate) async fn build_source(
    name: &str,
    config: &SourceConfig,
    session: &dyn Session,
) -> Result<(Arc<dyn CatalogProvider>, SourceInfo)> {
    let wrap = |error| EngineError::Connector {
        source_name: name.to_string(),
        error,
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
            sql_source(name, config.kind(), connectors, c.policy).await
        }
        SourceConfig::Postgres(c) => {
            let connectors = c
                .replicas
                .iter()
                .map(|url| {
                    PostgresConnector::new(url)
                        .map(|p| Arc::new(p.with_batch_size(c.batch_size)) as Arc<dyn Connector>)
                })
                .collect::<spar_connectors::Result<Vec<_>>>()
                .map_err(wrap)?;
            sql_source(name, config.kind(), connectors, c.policy).await
        }
        SourceConfig::MySql(c) => {
            let connectors = c
                .replicas
                .iter()
                .map(|url| {
                    MySqlConnector::new(url)
                        .map(|m| Arc::new(m.with_batch_size(c.batch_size)) as Arc<dyn Connector>)
                })
                .collect::<spar_connectors::Result<Vec<_>>>()
                .map_err(wrap)?;
            sql_source(name, config.kind(), connectors, c.policy).await
        }
        SourceConfig::Files(c) => {
            let source = FileSource::new(&c.location, c.format, c.s3.clone()).map_err(|error| {
                EngineError::Connector {
                    source_name: name.to_string(),
                    error,
                }
            })?;
            let tables =
                source
                    .discover(session)
                    .await
                    .map_err(|error| EngineError::Connector {
                        source_name: name.to_string(),
                        error,
                    })?;
            let schema = MemorySchemaProvider::new();
            for table in tables {
                schema.register_table(table.name, table.provider)?;
            }
            let catalog = MemoryCatalogProvider::new();
            catalog.register_schema("main", Arc::new(schema))?;
            let info = SourceInfo {
                name: name.to_string(),
                kind: config.kind(),
                replicas: vec![source.target()],
                replica_set: None,
            };
            Ok((Arc::new(catalog), info))
        }
    }
}

/// A SQL source (SQLite, PostgreSQL) over its replicas' connectors.
async fn sql_source(
    name: &str,
    kind: &'static str,
    connectors: Vec<Arc<dyn Connector>>,
    policy: crate::replica::Policy,
) -> Result<(Arc<dyn CatalogProvider>, SourceInfo)> {
    let replicas = ReplicaSet::new(name, connectors, policy);
    let info = SourceInfo {
        name: name.to_string(),
        kind,
        replicas: replicas
            .connectors()
            .map(|c| c.target().to_string())
            .collect(),
        replica_set: Some(replicas.clone()),
    };
    let catalog = sql_source_catalog(name, &replicas).await?;
    Ok((catalog, info))
}

/// The catalog of a SQL source, discovered through the first replica that
/// answers its health check.
async fn sql_source_catalog(name: &str, replicas: &ReplicaSet) -> Result<Arc<dyn CatalogProvider>> {
    let mut errors = Vec::new();
    let mut reachable = None;
    for connector in replicas.connectors() {
        match connector.health_check().await {
            Ok(()) => {
                reachable = Some(Arc::clone(connector));
                break;
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    let Some(connector) = reachable else {
        return Err(EngineError::SourceUnavailable {
            source_name: name.to_string(),
            errors,
        });
    };
    let wrap = |error| EngineError::Connector {
        source_name: name.to_string(),
        error,
    };
    let dialect = connector.dialect();
    let catalog = MemoryCatalogProvider::new();
    for schema_name in connector.list_schemas().await.map_err(wrap)? {
        let schema = MemorySchemaProvider::new();
        for (table, kind) in connector.list_tables(&schema_name).await.map_err(wrap)? {
            let meta = connector
                .describe_table(&TableName::new(&schema_name, &table), kind)
                .await
                .map_err(wrap)?;
            let runner = Arc::new(replicas.clone());
            let provider = SourceTable::new(name, meta, Arc::clone(&dialect), runner);
            schema.register_table(table, Arc::new(provider))?;
        }
        catalog.register_schema(&schema_name, Arc::new(schema))?;
    }
    Ok(Arc::new(catalog))
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

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
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
