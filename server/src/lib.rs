//! The `spar` command: the Flight SQL server, one-shot queries, the SQL
//! shell and the embedded demo.
//!
//! # Layout
//!
//! - [`cli`]: the command line (clap) and what each subcommand runs.
//! - [`flight`]: `spar serve`, the Arrow Flight SQL endpoint: auth, TLS,
//!   grants, limits, cancellation.
//! - [`fuzzing`]: entry points that feed arbitrary bytes to the code that
//!   reads client input (tickets, commands, Flight data, config, SQL).
//! - [`metrics`]: Prometheus metrics and the `/metrics`, `/health` endpoint.
//! - [`output`]: result formats: table, CSV (PostgreSQL's conventions), JSON.
//! - [`shell`]: the interactive shell (rustyline), also reading piped input,
//!   on an embedded engine or a Flight SQL server.
//! - [`remote`]: the Flight SQL client behind `spar shell --connect`.
//! - [`demo`]: writes the demo dataset (TPC-H in SQLite replicas and
//!   Parquet) and its `spar.toml`.
//! - [`error`]: the one error type, [`error::CliError`].
//! - [`tpch`]: TPC-H data from the `tpchgen` crate as Arrow record batches.

pub mod cli;
pub mod demo;
pub mod error;
pub mod flight;
pub mod fuzzing;
pub mod metrics;
pub mod output;
pub mod remote;
pub mod shell;
pub mod tpch;
