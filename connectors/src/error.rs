//! One error type for every connector, split into retryable and not.

use datafusion::error::DataFusionError;

/// A specialized `Result` for connector calls.
pub type Result<T, E = ConnectorError> = std::result::Result<T, E>;

/// What went wrong talking to a source.
///
/// Every message names the replica (as a redacted target such as
/// `sqlite:data/sales.db` or `host:port/db`, never with a password) and says
/// what to do next. [`ConnectorError::is_retryable`] tells the replica set
/// whether running the same fragment on another replica may succeed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The replica could not be reached or opened (refused, missing file,
    /// reset, closed). Another replica may well work.
    #[error("cannot reach {target}: {message}")]
    Unavailable {
        /// The redacted replica target.
        target: String,
        /// What the driver or the operating system said.
        message: String,
    },

    /// The replica is busy or shutting down, or an operation timed out.
    #[error("{target} is busy or timed out: {message}")]
    Transient {
        /// The redacted replica target.
        target: String,
        /// What the driver said.
        message: String,
    },

    /// The source rejected the statement (syntax, permission, missing
    /// table). Every replica would say the same.
    #[error("{target} rejected the query: {message}{}", code.as_ref().map(|c| format!(" (code {c})")).unwrap_or_default())]
    Query {
        /// The redacted replica target.
        target: String,
        /// The source's own message.
        message: String,
        /// The source's error code (SQLSTATE, error number), when it gave one.
        code: Option<String>,
    },

    /// A value read from the source does not fit the Arrow type of its column.
    #[error(
        "column `{column}`, row {row}: cannot read {value} as {expected}; \
         fix the value in the source or declare the column with a type that fits it"
    )]
    Conversion {
        /// The column name.
        column: String,
        /// The row number within the fragment's result, from 1.
        row: u64,
        /// The value as the source holds it (shortened when long).
        value: String,
        /// The Arrow type the column maps to.
        expected: String,
    },

    /// A table, schema or object does not exist on the source.
    #[error("{what} not found on {target}")]
    NotFound {
        /// The redacted replica target.
        target: String,
        /// What was looked for, e.g. ``table `main.orders` ``.
        what: String,
    },

    /// The source has something Spar cannot represent (a type, a feature).
    #[error("{target}: {message}")]
    Unsupported {
        /// The redacted replica target.
        target: String,
        /// What is unsupported and what to do instead.
        message: String,
    },

    /// The connector's configuration is wrong (bad URL, bad option).
    #[error("invalid connection settings for {target}: {message}")]
    Config {
        /// The redacted replica target.
        target: String,
        /// What is wrong and what was expected.
        message: String,
    },

    /// The query was cancelled by the caller.
    #[error("query on {target} was cancelled")]
    Cancelled {
        /// The redacted replica target.
        target: String,
    },

    /// A DataFusion or Arrow error raised inside the connector.
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
}

impl ConnectorError {
    /// Whether running the same fragment on another replica (or again later)
    /// may succeed: connection failures, timeouts, busy servers. Errors in
    /// the query or its data are not retryable: every replica would fail.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Transient { .. })
    }
}

impl From<arrow::error::ArrowError> for ConnectorError {
    fn from(e: arrow::error::ArrowError) -> Self {
        Self::DataFusion(DataFusionError::ArrowError(Box::new(e), None))
    }
}

impl From<ConnectorError> for DataFusionError {
    fn from(e: ConnectorError) -> Self {
        match e {
            ConnectorError::DataFusion(e) => e,
            other => DataFusionError::External(Box::new(other)),
        }
    }
}

/// A connection URL with its credentials (between `://` and `@`) replaced
/// by `***`, for messages about URLs that do not parse.
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
pub(crate) fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(a)) if a > s => format!("{}://***@{}", &url[..s], &url[a + 1..]),
        _ if url.contains("password") => "(a connection string)".into(),
        _ => url.to_string(),
    }
}

/// Finds a [`ConnectorError`] inside a DataFusion error (it crosses
/// DataFusion as `External`, possibly wrapped in context or shared).
pub fn find_connector_error(e: &DataFusionError) -> Option<&ConnectorError> {
    match e {
        DataFusionError::External(inner) => inner.downcast_ref::<ConnectorError>(),
        DataFusionError::Context(_, inner) => find_connector_error(inner),
        DataFusionError::Shared(inner) => find_connector_error(inner),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_kinds() {
        let t = || "sqlite:x.db".to_string();
        assert!(ConnectorError::Unavailable {
            target: t(),
            message: "refused".into()
        }
        .is_retryable());
        assert!(ConnectorError::Transient {
            target: t(),
            message: "busy".into()
        }
        .is_retryable());
        assert!(!ConnectorError::Query {
            target: t(),
            message: "syntax".into(),
            code: None
        }
        .is_retryable());
        assert!(!ConnectorError::NotFound {
            target: t(),
            what: "table t".into()
        }
        .is_retryable());
    }

    #[test]
    fn survives_the_datafusion_boundary() {
        let e: DataFusionError = ConnectorError::Unavailable {
            target: "sqlite:a.db".into(),
            message: "gone".into(),
        }
        .into();
        let e = e.context("while running fragment");
        let found = find_connector_error(&e).map(ConnectorError::is_retryable);
        assert_eq!(found, Some(true));
    }
}
