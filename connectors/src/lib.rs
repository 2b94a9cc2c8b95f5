//! Spar's connectors: how Spar talks to the systems that hold data.
//!
//! # Layout
//!
//! - [`connector`]: the [`Connector`] trait. One value serves one replica of
//!   one source: discovery (schemas, tables, Arrow schemas, statistics,
//!   indexes), a health check and `execute(sql) -> stream of RecordBatch`.
//! - [`dialect`]: [`SqlDialect`], how a source spells SQL (built on
//!   DataFusion's unparser dialects) and what it can run ([`Capabilities`]).
//! - [`depth`]: how deep expressions nest, and a deep stack to walk them
//!   on.
//! - [`metadata`]: plain data the planner reads ([`TableMeta`],
//!   [`TableStats`], [`IndexMeta`]).
//! - [`spell`]: every string literal and identifier of the SQL Spar sends,
//!   spelled by Spar's own code for the source's dialect
//!   ([`spell::spell_statement`]), never by a printer that guesses.
//! - [`unparser`]: DataFusion's unparser dialects with Spar's marker
//!   functions spelled in ([`unparser::WithFunctions`]).
//! - [`error`]: [`ConnectorError`], split by [`ConnectorError::is_retryable`].
//! - `sqlite` (feature `sqlite`): SQLite files through rusqlite, on blocking
//!   threads.
//! - `postgres` (feature `postgres`): PostgreSQL through tokio-postgres,
//!   pooled, optional TLS, results as binary `COPY` decoded into Arrow.
//! - `mysql` (feature `mysql`): MySQL and MariaDB through mysql_async,
//!   pooled, optional TLS, binary protocol, streamed from a reader task.
//! - `tls`: TLS settings shared by the PostgreSQL and MySQL connectors
//!   (rustls; libpq's modes from `disable` to `verify-full`).
//! - `file` (feature `files`): Parquet, CSV and JSON files through
//!   DataFusion listing tables over object_store (local paths and `s3://`).
//!
//! The planner depends on this crate with default features off, so it
//! never compiles a driver.

pub mod connector;
pub mod depth;
pub mod dialect;
pub mod error;
pub mod metadata;
pub mod spell;
pub mod unparser;

#[cfg(feature = "files")]
pub mod file;
#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "tls")]
pub mod tls;

/// The most rows a connector puts in one record batch: larger settings are
/// refused by the config and clamped by the connectors' builders.
pub const MAX_BATCH_SIZE: usize = 1 << 20;

/// How long a connector waits to open a connection (TCP, TLS and the
/// server's start-up) unless told otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The longest connect timeout: what "wait indefinitely" (a URL's
/// `connect_timeout=0`) means here.
pub const MAX_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

pub use connector::{Connector, ReplicaPosition, ReplicaRole, ReplicaStatus};
pub use dialect::{index_name, prepare, Capabilities, SqlDialect};
pub use error::{ConnectorError, Result};
pub use metadata::{ColumnStats, IndexMeta, TableKind, TableMeta, TableName, TableStats};
