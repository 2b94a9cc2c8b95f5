//! The `spar` command's error type.

use std::path::PathBuf;

/// What went wrong in a `spar` command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// An engine error (config, source, SQL).
    #[error(transparent)]
    Engine(#[from] spar_engine::EngineError),

    /// A query failed while running.
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),

    /// Writing results failed.
    #[error("cannot write results: {0}")]
    Output(#[from] arrow::error::ArrowError),

    /// Reading input or writing output failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being read or written.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },

    /// Writing the demo dataset failed.
    #[error("cannot write the demo data in `{}`: {message}", dir.display())]
    Demo {
        /// The demo directory.
        dir: PathBuf,
        /// What failed.
        message: String,
    },

    /// A Flight SQL server refused a call; the message is the server's.
    #[error("{message}")]
    Remote {
        /// The gRPC status code.
        code: tonic::Code,
        /// The server's message.
        message: String,
    },

    /// The Flight SQL server could not start or failed.
    #[error("{0}")]
    Serve(String),

    /// The command line was used wrongly.
    #[error("{0}")]
    Usage(String),

    /// The user pressed Ctrl-C.
    #[error("query cancelled")]
    Cancelled,
}

impl CliError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}
