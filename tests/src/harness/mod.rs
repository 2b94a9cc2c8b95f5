//! Real database servers for integration tests.
//!
//! Starts PostgreSQL and MariaDB from the installed binaries, each in a
//! temporary directory on a free 127.0.0.1 port, with streaming
//! (PostgreSQL) or binlog (MariaDB) replicas, and controls them the way the
//! failure tests need: stop, kill (SIGKILL), pause and resume
//! (SIGSTOP/SIGCONT), restart, and pausing WAL replay on a PostgreSQL
//! replica. Every server runs in its own process group and is killed, and
//! its directory removed, when its handle is dropped, also when a test
//! panics. Tests may start servers in parallel: each has its own directory
//! and port.
//!
//! ```text
//!  PgServer::start() ──▶ initdb ─▶ postgres -D dir -p port   (as `postgres` when root)
//!  primary.replica() ──▶ pg_basebackup -R ─▶ postgres (hot standby)
//!  MariaDbServer::start() ──▶ mariadb-install-db ─▶ mariadbd --log-bin
//!  primary.replica() ──▶ new server ─▶ CHANGE MASTER TO … MASTER_USE_GTID
//! ```
//!
//! For TLS tests, [`TestCa`] issues certificates and
//! `PgServer::start_with_tls` / `MariaDbServer::start_with_tls` start
//! servers that present one and check client certificates against the CA.
//!
//! Binaries are found on PATH, under `/usr/lib/postgresql/*/bin` and
//! `/usr/sbin`, or where `SPAR_PG_BIN` / `SPAR_MARIADB_BIN` (directories)
//! point. A missing binary is an error naming the package to install.

mod binaries;
mod mariadb;
mod postgres;
mod process;
mod tls;

pub use mariadb::MariaDbServer;
pub use postgres::{PgServer, CERT_GROUP, USER as PG_USER};
pub use tls::{CertFiles, TestCa};

/// What went wrong starting or controlling a test server.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A server binary is not installed.
    #[error("`{binary}` not found (looked in {looked_in}); install the `{package}` package (e.g. `apt-get install {package}`) or set {env_var}")]
    MissingBinary {
        /// The program.
        binary: String,
        /// Where it was looked for.
        looked_in: String,
        /// The Debian package that provides it.
        package: &'static str,
        /// The variable that points to another directory.
        env_var: &'static str,
    },

    /// A command failed.
    #[error("{what} failed: {detail}")]
    Command {
        /// The command.
        what: String,
        /// Its exit status and output, or the error.
        detail: String,
    },

    /// A server did not become ready.
    #[error("{what} did not start: {detail}\n--- last lines of its log ---\n{log}")]
    Startup {
        /// The server.
        what: String,
        /// Why Spar gave up.
        detail: String,
        /// The end of the server's log.
        log: String,
    },

    /// A SQL statement run by the harness failed.
    #[error("{what}: {detail}")]
    Sql {
        /// What the harness was doing.
        what: String,
        /// The server's error.
        detail: String,
    },

    /// A file-system operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

/// The harness's result type.
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;

pub(crate) fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
    io(what)
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
    let what = what.into();
    move |source| HarnessError::Io { what, source }
}
