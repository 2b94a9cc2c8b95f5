//! Spar's engine: configuration, catalog, replica sets, execution operators
//! and the embedding API.
//!
//! # Layout
//!
//! - [`config`]: `spar.toml` and [`Config`], validated with errors that name
//!   the file and the key.
//! - [`engine`]: [`Engine`] and [`EngineBuilder`]: the registered sources
//!   and the runtime sessions share.
//! - [`session`]: [`Session`]: SQL in, DataFusion [`DataFrame`] out;
//!   table names checked against the catalog and the search path.
//! - [`access`]: [`Access`] and [`Grant`]: which tables a session may read.
//! - [`catalog`]: each source as a DataFusion catalog; the search path.
//! - [`replica`]: [`ReplicaSet`]: policies, health checks and circuit
//!   breakers, deadlines, failover.
//! - [`exec`]: [`FragmentExec`], the operator that runs a fragment.
//! - [`error`]: the one error type, [`EngineError`].
//! - [`system`]: the `system` catalog (`system.replicas`).
//! - [`stack`]: deep expressions: the depth limit and deep stacks.
//!
//! # Example
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use spar_engine::{Engine, SqliteSourceConfig, SourceConfig};
//!
//! let engine = Engine::builder()
//!     .with_source("sales", SourceConfig::Sqlite(SqliteSourceConfig::new(["sales.db"])))
//!     .with_search_path(["sales.main"])
//!     .build()
//!     .await?;
//! let df = engine.session().sql("SELECT count(*) FROM orders").await?;
//! let batches = df.collect().await?;
//! # Ok(()) }
//! ```
//!
//! [`DataFrame`]: datafusion::prelude::DataFrame

pub mod access;
pub mod catalog;
pub mod config;
pub mod engine;
pub mod error;
pub mod exec;
pub mod replica;
pub mod session;
pub mod stack;
pub mod system;

pub use access::{Access, Grant};
pub use catalog::SourceInfo;
pub use config::{
    Config, FileSourceConfig, Limits, MetricsToken, SchemaPath, ServerConfig, ServerSourceConfig,
    SourceConfig, SqliteSourceConfig, TlsConfig, UserConfig,
};
pub use engine::{Engine, EngineBuilder, SessionOptions};
pub use error::{EngineError, Result};
pub use exec::FragmentExec;
pub use replica::{Policy, ReplicaReport, ReplicaSet, ReplicaSetStats, ReplicaSettings, Resume};
pub use session::Session;
/// The connectors crate, for callers that talk to a source directly.
pub use spar_connectors as connectors;
pub use spar_connectors::file::{FileFormatKind, S3Options};
/// A `spar.statement_timeout` value (`30s`; `0` for none).
pub use spar_planner::Timeout;
pub use stack::{MAX_EXPR_DEPTH, STACK_SIZE};
