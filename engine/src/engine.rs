//! `Engine`: the registered sources and everything sessions share.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use datafusion::catalog::{CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::access::{Access, GrantedCatalogs};
use crate::catalog::{
    discover, prepare_source, refresh_statistics, Prepared, SearchPathCatalog, SourceInfo,
    DEFAULT_CATALOG, SEARCH_PATH_SCHEMA,
};
use crate::config::{Config, SchemaPath, SourceConfig, RESERVED_SOURCE_NAMES};
use crate::error::{EngineError, Result};
use crate::session::Session;

/// A Spar engine: its sources (as DataFusion catalogs) and the runtime that
/// sessions share. Cheap to clone; clones share everything.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use spar_engine::Engine;
/// let engine = Engine::from_file("spar.toml").await?;
/// let batches = engine.session().sql("SELECT count(*) FROM orders").await?.collect().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    catalogs: Arc<MemoryCatalogProviderList>,
    runtime: Arc<RuntimeEnv>,
    search_path: Vec<SchemaPath>,
    /// Registered sources by name.
    sources: RwLock<BTreeMap<String, SourceInfo>>,
    /// Sources whose catalog is still to be read (no replica answered).
    pending: Mutex<BTreeMap<String, Arc<Prepared>>>,
    /// One catalog discovery at a time.
    discovery: tokio::sync::Mutex<()>,
}

/// An engine held weakly, by what the engine itself owns (the `system`
/// catalog's tables), so that no cycle keeps it alive.
#[derive(Debug, Clone)]
pub(crate) struct WeakEngine(std::sync::Weak<Inner>);

impl WeakEngine {
    /// The engine, while it lives.
    pub(crate) fn upgrade(&self) -> Option<Engine> {
        self.0.upgrade().map(|inner| Engine { inner })
    }
}

/// What a session may read and how much memory its queries may hold.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// The tables the session may read.
    pub access: Access,
    /// Bytes the session's queries may hold at once in operators that
    /// buffer (sorts, joins, aggregates); `None` for no limit. A query that
    /// needs more fails with a "resources exhausted" error.
    pub memory_limit: Option<usize>,
    /// Queries running longer are stopped (see
    /// [`Session::set_statement_timeout`]); `None` for no limit.
    pub statement_timeout: Option<Duration>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            access: Access::All,
            memory_limit: None,
            statement_timeout: None,
        }
    }
}

/// Builds an [`Engine`] in code, as an alternative to `spar.toml`.
#[derive(Debug, Default)]
pub struct EngineBuilder {
    config: Config,
}

impl EngineBuilder {
    /// Adds a source.
    pub fn with_source(mut self, name: impl Into<String>, source: SourceConfig) -> Self {
        self.config.sources.insert(name.into(), source);
        self
    }

    /// Sets the search path from `"source.schema"` entries.
    pub fn with_search_path<S: AsRef<str>>(mut self, entries: impl IntoIterator<Item = S>) -> Self {
        self.config.search_path = entries
            .into_iter()
            .map(|e| {
                let (source, schema) = e.as_ref().split_once('.').unwrap_or((e.as_ref(), ""));
                SchemaPath {
                    source: source.to_string(),
                    schema: schema.to_string(),
                }
            })
            .collect();
        self
    }

    /// Validates the settings, connects to every source and reads its
    /// metadata.
    pub async fn build(self) -> Result<Engine> {
        for (i, p) in self.config.search_path.iter().enumerate() {
            if p.schema.is_empty() {
                return Err(EngineError::Config {
                    origin: "configuration".into(),
                    key: format!("search_path[{i}]"),
                    message: format!("expected \"source.schema\", found \"{}\"", p.source),
                });
            }
        }
        self.config.validate("configuration")?;
        Engine::from_config(self.config).await
    }
}

impl Engine {
    /// A builder for an engine configured in code.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// Reads `spar.toml` at `path` and starts an engine from it.
    pub async fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_config(Config::from_file(path)?).await
    }

    /// Starts an engine from a validated configuration: connects to every
    /// source and reads its metadata.
    pub async fn from_config(config: Config) -> Result<Self> {
        grow_stacks_early();
        let catalogs = Arc::new(MemoryCatalogProviderList::new());
        let list: Arc<dyn CatalogProviderList> =
            Arc::clone(&catalogs) as Arc<dyn CatalogProviderList>;
        catalogs.register_catalog(
            DEFAULT_CATALOG.to_string(),
            Arc::new(SearchPathCatalog::new(
                config.search_path.clone(),
                Arc::downgrade(&list),
            )),
        );
        let engine = Self {
            inner: Arc::new(Inner {
                catalogs,
                runtime: Arc::new(RuntimeEnv::default()),
                search_path: config.search_path,
                sources: RwLock::new(BTreeMap::new()),
                pending: Mutex::new(BTreeMap::new()),
                discovery: tokio::sync::Mutex::new(()),
            }),
        };
        let system = crate::system::catalog(WeakEngine(Arc::downgrade(&engine.inner)))?;
        engine
            .inner
            .catalogs
            .register_catalog(crate::system::SYSTEM_CATALOG.to_string(), system);
        for (name, source) in &config.sources {
            engine.add_source(name, source).await?;
        }
        Ok(engine)
    }

    /// Connects to a source, reads its metadata and makes it queryable as
    /// catalog `name`. Replaces a source of the same name. Fails when no
    /// replica answers (see [`Self::add_source`] for a source that may be
    /// down).
    pub async fn register_source(&self, name: &str, source: &SourceConfig) -> Result<()> {
        self.add_source(name, source).await?;
        let errors = self.pending_errors(name);
        match errors {
            None => Ok(()),
            Some(errors) => Err(EngineError::SourceUnavailable {
                source_name: name.to_string(),
                errors,
            }),
        }
    }

    /// Registers a source as catalog `name` (replacing one of the same
    /// name) and reads its catalog. When no replica answers, the source is
    /// registered without tables and its catalog is read in the background
    /// (and on first use) until a replica answers; queries that do not
    /// touch it run meanwhile. Fails only on settings no retry can fix (a
    /// malformed URL, unreadable TLS files).
    pub async fn add_source(&self, name: &str, source: &SourceConfig) -> Result<()> {
        if name.is_empty() || RESERVED_SOURCE_NAMES.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(EngineError::Config {
                origin: "configuration".into(),
                key: format!("sources.{name}"),
                message: format!("`{name}` cannot name a source; choose another name"),
            });
        }
        let prepared = Arc::new(prepare_source(name, source)?);
        if let Some(set) = &prepared.info.replica_set {
            set.start_health_checks();
        }
        self.inner
            .catalogs
            .register_catalog(name.to_string(), Arc::new(MemoryCatalogProvider::new()));
        if let Ok(mut sources) = self.inner.sources.write() {
            sources.insert(name.to_string(), prepared.info.clone());
        }
        if let Ok(mut pending) = self.inner.pending.lock() {
            pending.insert(name.to_string(), Arc::clone(&prepared));
        }
        if self.discover(name).await.is_ok() {
            tracing::info!(source = name, kind = source.kind(), "source registered");
        } else {
            tracing::warn!(
                source = name,
                kind = source.kind(),
                "source registered, but no replica answered: its tables appear when one does"
            );
            self.keep_discovering(name.to_string(), prepared.retry_interval());
        }
        Ok(())
    }

    /// Reads the catalog of `name` if it is still to be read. Fails with
    /// the source's replicas and their errors when none answers.
    pub async fn discover(&self, name: &str) -> Result<()> {
        if self.pending_errors(name).is_none() {
            return Ok(());
        }
        let _one = self.inner.discovery.lock().await;
        let Some(prepared) = self
            .inner
            .pending
            .lock()
            .ok()
            .and_then(|p| p.get(name).cloned())
        else {
            return Ok(());
        };
        let state = self.session_state();
        match discover(&prepared, &state).await {
            Ok(catalog) => {
                self.inner
                    .catalogs
                    .register_catalog(name.to_string(), catalog);
                if let Ok(mut sources) = self.inner.sources.write() {
                    if let Some(info) = sources.get_mut(name) {
                        info.discovered = true;
                        info.errors.clear();
                    }
                }
                if let Ok(mut pending) = self.inner.pending.lock() {
                    pending.remove(name);
                }
                Ok(())
            }
            Err(errors) => {
                if let Ok(mut sources) = self.inner.sources.write() {
                    if let Some(info) = sources.get_mut(name) {
                        info.errors.clone_from(&errors);
                    }
                }
                Err(EngineError::SourceUnavailable {
                    source_name: name.to_string(),
                    errors,
                })
            }
        }
    }

    /// The errors of a source whose catalog is still to be read; `None`
    /// once read (or for an unknown name).
    pub fn pending_errors(&self, name: &str) -> Option<Vec<String>> {
        let pending = self
            .inner
            .pending
            .lock()
            .map(|p| p.contains_key(name))
            .unwrap_or(false);
        if !pending {
            return None;
        }
        self.inner
            .sources
            .read()
            .ok()
            .and_then(|s| s.get(name).map(|i| i.errors.clone()))
    }

    /// Retries discovery of `name` in the background, with a back-off that
    /// doubles from `first` up to a minute, until it succeeds or the
    /// engine is dropped.
    fn keep_discovering(&self, name: String, first: Duration) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut pause = first;
            loop {
                tokio::time::sleep(pause).await;
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                let engine = Engine { inner };
                if engine.pending_errors(&name).is_none() || engine.discover(&name).await.is_ok() {
                    tracing::info!(source = %name, "source's catalog read");
                    return;
                }
                pause = (pause * 2).min(Duration::from_secs(60));
            }
        });
    }

    /// The replica set of SQL source `source` (`None` for file sources and
    /// unknown names).
    fn replica_set(&self, source: &str) -> Option<crate::replica::ReplicaSet> {
        self.inner
            .sources
            .read()
            .ok()
            .and_then(|s| s.get(source).and_then(|i| i.replica_set.clone()))
    }

    /// Reads the statistics of `table` again from its source (the first
    /// replica that answers, primary first), for every plan made from now
    /// on (`ANALYZE source.schema.table`). Returns them and the replica
    /// that gave them.
    pub async fn refresh_statistics(
        &self,
        table: &spar_planner::SourceTable,
    ) -> Result<(spar_connectors::TableStats, String)> {
        let source = table.source();
        let unavailable = |errors| EngineError::SourceUnavailable {
            source_name: source.to_string(),
            errors,
        };
        let replicas = self
            .replica_set(source)
            .ok_or_else(|| unavailable(vec!["the source is not registered".to_string()]))?;
        refresh_statistics(&replicas, table)
            .await
            .map_err(unavailable)
    }

    /// Reads `table`'s statistics again in the background when they are
    /// older than its source's `statistics_ttl`, no other read of them is
    /// under way and none started within the TTL. The query that noticed plans with the statistics it
    /// has; the ones after get the new ones.
    pub(crate) fn refresh_statistics_if_stale(&self, table: &spar_planner::SourceTable) {
        let Some(replicas) = self.replica_set(table.source()) else {
            return;
        };
        let Some(claim) = table.claim_refresh_after(replicas.settings().statistics_ttl) else {
            return;
        };
        let table = table.clone();
        tokio::spawn(async move {
            let _claim = claim;
            match refresh_statistics(&replicas, &table).await {
                Ok(_) => {
                    tracing::debug!(source = table.source(), table = %table.meta().name, "statistics read again")
                }
                Err(errors) => tracing::warn!(
                    source = table.source(),
                    table = %table.meta().name,
                    errors = %errors.join("; "),
                    "cannot read the table's statistics again; planning goes on with the ones read before"
                ),
            }
        });
    }

    /// The registered sources, by name.
    pub fn sources(&self) -> Vec<SourceInfo> {
        self.inner
            .sources
            .read()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The search path.
    pub fn search_path(&self) -> &[SchemaPath] {
        &self.inner.search_path
    }

    /// A new session: its own settings, every table of the engine's sources.
    pub fn session(&self) -> Session {
        Session::new(
            self.clone(),
            SessionContext::new_with_state(self.session_state()),
            Access::All,
        )
    }

    /// A new session that sees only what `options.access` allows and whose
    /// queries share a memory pool of `options.memory_limit` bytes.
    pub fn session_with(&self, options: SessionOptions) -> Result<Session> {
        let catalogs: Arc<dyn CatalogProviderList> = match &options.access {
            Access::All => Arc::clone(&self.inner.catalogs) as Arc<dyn CatalogProviderList>,
            access => GrantedCatalogs::new(
                Arc::clone(&self.inner.catalogs) as Arc<dyn CatalogProviderList>,
                access.clone(),
                self.inner.search_path.clone(),
            ),
        };
        let runtime = match options.memory_limit {
            None => Arc::clone(&self.inner.runtime),
            Some(bytes) => RuntimeEnvBuilder::from_runtime_env(&self.inner.runtime)
                .with_memory_limit(bytes, 1.0)
                .build_arc()?,
        };
        let state = self.state_with(catalogs, runtime);
        let session = Session::new(
            self.clone(),
            SessionContext::new_with_state(state),
            options.access,
        );
        session.set_statement_timeout(options.statement_timeout);
        Ok(session)
    }

    /// A DataFusion session state with Spar's catalogs, rules and planner.
    ///
    /// Numeric literals with a decimal point (`0.06`) are exact decimals,
    /// as the SQL standard and every database Spar reads treat them;
    /// DataFusion's default reads them as floats, which changes answers
    /// (`l_discount BETWEEN 0.06 - 0.01 AND 0.06 + 0.01` would miss 0.07).
    pub(crate) fn session_state(&self) -> SessionState {
        self.state_with(
            Arc::clone(&self.inner.catalogs) as Arc<dyn CatalogProviderList>,
            Arc::clone(&self.inner.runtime),
        )
    }

    fn state_with(
        &self,
        catalogs: Arc<dyn CatalogProviderList>,
        runtime: Arc<RuntimeEnv>,
    ) -> SessionState {
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .with_create_default_catalog_and_schema(false)
            .with_default_catalog_and_schema(DEFAULT_CATALOG, SEARCH_PATH_SCHEMA)
            .with_option_extension(spar_planner::SparOptions::default());
        config.options_mut().sql_parser.parse_float_as_decimal = true;
        // A hash join's keys reach the fragment on its probe side as an IN
        // list in its SQL (`spar.runtime_filters`) up to this many per
        // partition, as their range beyond; DataFusion's defaults (150
        // keys, 128 KiB) suit files, where a range prunes row groups and
        // a long list costs every row.
        let optimizer = &mut config.options_mut().optimizer;
        optimizer.hash_join_inlist_pushdown_max_distinct_values = RUNTIME_FILTER_KEYS;
        optimizer.hash_join_inlist_pushdown_max_size = RUNTIME_FILTER_BYTES;
        let mut builder = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            .with_catalog_list(catalogs)
            .with_query_planner(Arc::new(crate::exec::deadline::TimedQueryPlanner))
            // After DataFusion's filter pushdown (see its module).
            .with_physical_optimizer_rule(Arc::new(
                crate::exec::fragment_exec::DropAmbiguousRuntimeFilters,
            ));
        for rule in spar_planner::spar_analyzer_rules() {
            builder = builder.with_analyzer_rule(rule);
        }
        for rule in spar_planner::spar_rules() {
            builder = builder.with_optimizer_rule(rule);
        }
        builder.build()
    }

    pub(crate) fn catalogs(&self) -> &Arc<MemoryCatalogProviderList> {
        &self.inner.catalogs
    }
}

/// The most keys per partition a hash join hands the fragment on its probe
/// side as a list. Measured on TPC-H at scale 1 (benchmarks/README.md):
/// lists of up to 131,072 keys sent fewer rows but took longer (Q7, Q14,
/// Q21: a source matching tens of thousands of keys per row or index
/// descent is slower than sending the rows); 4,096 was faster overall.
const RUNTIME_FILTER_KEYS: usize = 4096;

/// The most bytes of keys per partition handed on as a list.
const RUNTIME_FILTER_BYTES: usize = 1024 * 1024;

/// DataFusion's recursive planning functions move to a fresh stack when
/// less than a set amount is left (128 KiB by default). Between two such
/// checks, Spar's fragments nest more calls (a subquery in an `EXISTS`
/// inside a fragment's SQL), which overflowed smaller stacks (2 MiB test
/// and worker threads, unoptimized builds): the checks now leave 1 MiB.
/// Process-wide and idempotent.
fn grow_stacks_early() {
    const LEFT: usize = 1024 * 1024;
    if recursive::get_minimum_stack_size() < LEFT {
        recursive::set_minimum_stack_size(LEFT);
    }
}
