//! Read grants: which sources, schemas and tables a user may read.
//!
//! A grant is `source[.schema[.table]]`, each part a name or `*`:
//! `sales` and `sales.*` grant the whole source, `sales.public.*` one
//! schema, `sales.public.orders` one table, `*` everything. A session made
//! with grants ([`crate::Engine::session_with`]) sees only what they allow:
//! other tables are missing from `information_schema`, `SHOW TABLES` and
//! Flight SQL metadata, and a query that names one is refused before
//! anything reaches a source exactly as if the table did not exist (same
//! error, same message), so grants cannot be probed for what lies beyond.
//!
//! ```text
//!   engine catalogs ──► GrantedCatalogs (per session) ──► planner, information_schema
//!                         │ catalog/schema/table lookups filtered by Grants
//!                         └ `spar.search_path` resolves bare names among granted tables
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, CatalogProviderList, SchemaProvider, TableProvider};
use datafusion::error::Result as DfResult;

use crate::catalog::{SearchPathCatalog, DEFAULT_CATALOG};
use crate::config::SchemaPath;
use crate::system::SYSTEM_CATALOG;

/// One part of a grant: a name, or `*` for any.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Any,
    Name(String),
}

impl Part {
    fn parse(text: &str) -> Self {
        if text == "*" {
            Self::Any
        } else {
            Self::Name(text.to_string())
        }
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Name(n) => n == name,
        }
    }
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Name(n) => f.write_str(n),
        }
    }
}

/// One grant: read access to the tables it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    source: Part,
    schema: Part,
    table: Part,
}

impl Grant {
    /// `*`: every table of every source.
    pub fn everything() -> Self {
        Self {
            source: Part::Any,
            schema: Part::Any,
            table: Part::Any,
        }
    }

    /// Parses `source[.schema[.table]]`; parts are names or `*`. Missing
    /// trailing parts mean any (`sales` is `sales.*.*`).
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let parts: Vec<&str> = text.split('.').collect();
        if parts.len() > 3 || parts.iter().any(|p| p.trim().is_empty() || p.trim() != *p) {
            return Err(format!(
                "expected \"source\", \"source.schema\" or \"source.schema.table\" (each a name or *), found \"{text}\""
            ));
        }
        let part = |i: usize| parts.get(i).map_or(Part::Any, |p| Part::parse(p));
        Ok(Self {
            source: part(0),
            schema: part(1),
            table: part(2),
        })
    }

    /// The source this grant names (`None` for `*`).
    pub fn source(&self) -> Option<&str> {
        match &self.source {
            Part::Any => None,
            Part::Name(n) => Some(n),
        }
    }

    /// `*` matches every source but `system`, which only a grant that
    /// names it opens: Spar's own state (replica addresses, their errors)
    /// is not data.
    fn allows_source(&self, source: &str) -> bool {
        match &self.source {
            Part::Any => source != SYSTEM_CATALOG,
            Part::Name(n) => n == source,
        }
    }

    fn allows_schema(&self, source: &str, schema: &str) -> bool {
        self.allows_source(source) && self.schema.matches(schema)
    }

    fn allows_table(&self, source: &str, schema: &str, table: &str) -> bool {
        self.allows_schema(source, schema) && self.table.matches(table)
    }
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.source, self.schema, self.table)
    }
}

/// What a session may read: everything (the embedded API, the local
/// shell), or what a user's grants allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Every table of every source.
    All,
    /// The tables some grant matches; `user` names the holder in errors.
    Grants {
        /// The user the grants belong to.
        user: String,
        /// The grants.
        grants: Vec<Grant>,
    },
}

impl Access {
    /// A user's grants.
    pub fn grants(user: impl Into<String>, grants: Vec<Grant>) -> Self {
        Self::Grants {
            user: user.into(),
            grants,
        }
    }

    /// Whether some table of `source` may be read.
    pub fn allows_source(&self, source: &str) -> bool {
        match self {
            Self::All => true,
            Self::Grants { grants, .. } => grants.iter().any(|g| g.allows_source(source)),
        }
    }

    /// Whether some table of `source.schema` may be read.
    pub fn allows_schema(&self, source: &str, schema: &str) -> bool {
        match self {
            Self::All => true,
            Self::Grants { grants, .. } => grants.iter().any(|g| g.allows_schema(source, schema)),
        }
    }

    /// Whether `source.schema.table` may be read.
    pub fn allows_table(&self, source: &str, schema: &str, table: &str) -> bool {
        match self {
            Self::All => true,
            Self::Grants { grants, .. } => {
                grants.iter().any(|g| g.allows_table(source, schema, table))
            }
        }
    }
}

/// The engine's catalogs as one session may see them.
#[derive(Debug)]
pub(crate) struct GrantedCatalogs {
    inner: Arc<dyn CatalogProviderList>,
    access: Arc<Access>,
    /// The search-path catalog over this filtered view, so that bare names
    /// resolve only among granted tables.
    search_path: Arc<SearchPathCatalog>,
}

impl GrantedCatalogs {
    pub(crate) fn new(
        inner: Arc<dyn CatalogProviderList>,
        access: Access,
        path: Vec<SchemaPath>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me: &std::sync::Weak<Self>| {
            let view: std::sync::Weak<dyn CatalogProviderList> = std::sync::Weak::<Self>::clone(me);
            Self {
                inner,
                access: Arc::new(access),
                search_path: Arc::new(SearchPathCatalog::new(path, view)),
            }
        })
    }
}

impl CatalogProviderList for GrantedCatalogs {
    fn register_catalog(
        &self,
        name: String,
        catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        // Sessions never add catalogs (DDL is refused); keep the engine's
        // list the one place catalogs live.
        self.inner.register_catalog(name, catalog)
    }

    fn catalog_names(&self) -> Vec<String> {
        self.inner
            .catalog_names()
            .into_iter()
            .filter(|c| c == DEFAULT_CATALOG || self.access.allows_source(c))
            .collect()
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        if name == DEFAULT_CATALOG {
            return Some(Arc::clone(&self.search_path) as Arc<dyn CatalogProvider>);
        }
        if !self.access.allows_source(name) {
            return None;
        }
        let inner = self.inner.catalog(name)?;
        Some(Arc::new(GrantedCatalog {
            source: name.to_string(),
            inner,
            access: Arc::clone(&self.access),
        }))
    }
}

#[derive(Debug)]
struct GrantedCatalog {
    source: String,
    inner: Arc<dyn CatalogProvider>,
    access: Arc<Access>,
}

impl CatalogProvider for GrantedCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.inner
            .schema_names()
            .into_iter()
            .filter(|s| self.access.allows_schema(&self.source, s))
            .collect()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if !self.access.allows_schema(&self.source, name) {
            return None;
        }
        let inner = self.inner.schema(name)?;
        Some(Arc::new(GrantedSchema {
            source: self.source.clone(),
            schema: name.to_string(),
            inner,
            access: Arc::clone(&self.access),
        }))
    }
}

#[derive(Debug)]
struct GrantedSchema {
    source: String,
    schema: String,
    inner: Arc<dyn SchemaProvider>,
    access: Arc<Access>,
}

impl GrantedSchema {
    fn allows(&self, table: &str) -> bool {
        self.access.allows_table(&self.source, &self.schema, table)
    }
}

#[async_trait]
impl SchemaProvider for GrantedSchema {
    fn table_names(&self) -> Vec<String> {
        self.inner
            .table_names()
            .into_iter()
            .filter(|t| self.allows(t))
            .collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if !self.allows(name) {
            return Ok(None);
        }
        self.inner.table(name).await
    }

    fn table_exist(&self, name: &str) -> bool {
        self.allows(name) && self.inner.table_exist(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(grants: &[&str]) -> Access {
        let grants = grants
            .iter()
            .map(|g| Grant::parse(g))
            .collect::<std::result::Result<_, _>>()
            .unwrap_or_else(|e| panic!("{e}"));
        Access::grants("ann", grants)
    }

    #[test]
    fn grants_match_sources_schemas_and_tables() {
        let a = access(&["sales.public.*", "crm.main.customers", "files"]);
        assert!(a.allows_table("sales", "public", "orders"));
        assert!(!a.allows_table("sales", "private", "orders"));
        assert!(a.allows_schema("sales", "public"));
        assert!(!a.allows_schema("sales", "private"));
        assert!(a.allows_table("crm", "main", "customers"));
        assert!(!a.allows_table("crm", "main", "contracts"));
        assert!(a.allows_schema("crm", "main"));
        assert!(a.allows_table("files", "main", "anything"));
        assert!(!a.allows_source("other"));
        assert!(access(&["*"]).allows_table("x", "y", "z"));
        assert!(access(&["*.*.orders"]).allows_table("x", "y", "orders"));
        assert!(!access(&[]).allows_source("sales"));
        // Spar's own state needs a grant that names it.
        assert!(!access(&["*"]).allows_table("system", "main", "replicas"));
        assert!(!access(&["*.*.replicas"]).allows_table("system", "main", "replicas"));
        assert!(access(&["system.*"]).allows_table("system", "main", "replicas"));
        assert!(access(&["system.main.replicas"]).allows_table("system", "main", "replicas"));
        assert!(!access(&["system.main.other"]).allows_table("system", "main", "replicas"));
    }

    #[test]
    fn malformed_grants_are_refused() {
        for bad in ["", "a..b", "a.b.c.d", " a", "a.b "] {
            assert!(Grant::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(
            Grant::parse("sales").map(|g| g.to_string()),
            Ok("sales.*.*".to_string())
        );
    }
}
