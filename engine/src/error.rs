//! The engine's error type.

use std::path::PathBuf;

use datafusion::error::DataFusionError;
use spar_connectors::ConnectorError;

/// A specialized `Result` for engine calls.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// What went wrong in the engine: each message says what failed, where, and
/// what to do next, and never contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The configuration file could not be read.
    #[error("cannot read config file `{}`: {source}", path.display())]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },

    /// The configuration is malformed or has a bad value.
    #[error("{origin}: `{key}`: {message}")]
    Config {
        /// The file (or "configuration" when built in code).
        origin: String,
        /// The key, as a dotted path (`sources.sales.kind`).
        key: String,
        /// What was expected and what was found.
        message: String,
    },

    /// No replica of a source could serve (at start-up, or for a
    /// fragment within its retry deadline).
    #[error("source `{source_name}` is unavailable: {}", errors.join("; "))]
    SourceUnavailable {
        /// The source.
        source_name: String,
        /// One message per replica, each naming it.
        errors: Vec<String>,
    },

    /// A fragment's replica failed after rows were delivered, and the
    /// fragment cannot continue elsewhere without losing or repeating
    /// rows: the query fails rather than answer partly.
    #[error("source `{source_name}`: replica {replica} failed after the fragment had delivered rows, and it cannot be resumed: {why}. The replica's error: {error}. Fragment: {sql}")]
    NotResumable {
        /// The source.
        source_name: String,
        /// The replica that failed (redacted).
        replica: String,
        /// The fragment's SQL.
        sql: String,
        /// Why it cannot be resumed.
        why: String,
        /// The replica's error.
        error: String,
    },

    /// The query ran longer than the session's `spar.statement_timeout`
    /// and was stopped (its fragments' statements with it).
    #[error("the query ran longer than spar.statement_timeout ({}) and was stopped; raise it with SET spar.statement_timeout = '…' (0 for no limit)", humantime::format_duration(*limit))]
    StatementTimeout {
        /// The timeout.
        limit: std::time::Duration,
    },

    /// A connector call failed.
    #[error("source `{source_name}`: {error}")]
    Connector {
        /// The source.
        source_name: String,
        /// The connector's error.
        error: ConnectorError,
    },

    /// The SQL does not parse.
    #[error("syntax error{}: {message}{}",
        location.map(|(l, c)| format!(" at line {l}, column {c}")).unwrap_or_default(),
        caret.as_ref().map(|c| format!("\n{c}")).unwrap_or_default())]
    Syntax {
        /// The parser's message.
        message: String,
        /// Line and column (from 1), when the parser gave them.
        location: Option<(u64, u64)>,
        /// The offending line with a caret under the position.
        caret: Option<String>,
    },

    /// A table name does not resolve.
    #[error("table `{name}` not found. {hint}")]
    UnknownTable {
        /// The name as written.
        name: String,
        /// Where Spar looked and what exists.
        hint: String,
    },

    /// An unqualified table name is found in more than one schema of the
    /// search path.
    #[error("table `{name}` is ambiguous: it is in {}; qualify it, e.g. `{}.{name}`", candidates.join(" and "), candidates.first().map(String::as_str).unwrap_or(""))]
    AmbiguousTable {
        /// The name as written.
        name: String,
        /// The `source.schema` entries that have it.
        candidates: Vec<String>,
    },

    /// A statement's expressions nest deeper than Spar plans
    /// ([`crate::MAX_EXPR_DEPTH`]).
    #[error("the statement's expressions nest more than {max} levels deep (each term of a chain of AND, OR, + or || adds a level); split the statement, or write long lists of values as IN (...)")]
    TooDeep {
        /// The limit.
        max: usize,
    },

    /// A query-time error from DataFusion (planning or execution).
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
}

impl From<EngineError> for DataFusionError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::DataFusion(e) => e,
            other => DataFusionError::External(Box::new(other)),
        }
    }
}

impl EngineError {
    /// A syntax error from a parser message such as
    /// `Expected: ..., found: FROM at Line: 1, Column: 8`, with a caret line.
    pub(crate) fn syntax(message: &str, sql: &str) -> Self {
        // DataFusion wraps sqlparser's errors as `SQL error: ParserError("…")`.
        let unwrapped = message
            .split_once("Error(\"")
            .and_then(|(_, inner)| inner.rsplit_once("\")"))
            .map(|(inner, _)| inner.replace("\\\"", "\"").replace("\\'", "'"));
        let message = unwrapped.as_deref().unwrap_or(message);
        let location = message.rsplit_once(" at Line: ").and_then(|(_, rest)| {
            let (line, column) = rest.split_once(", Column: ")?;
            Some((
                line.trim().parse().ok()?,
                column
                    .trim()
                    .trim_end_matches(|c: char| !c.is_ascii_digit())
                    .parse()
                    .ok()?,
            ))
        });
        let text = message
            .rsplit_once(" at Line: ")
            .map_or(message, |(m, _)| m);
        let text = text
            .strip_prefix("sql parser error: ")
            .unwrap_or(text)
            .to_string();
        let caret = location.and_then(|(line, column): (u64, u64)| {
            let src = sql
                .lines()
                .nth(usize::try_from(line).ok()?.checked_sub(1)?)?;
            let pad = src
                .chars()
                .take(usize::try_from(column).ok()?.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' });
            Some(format!("  {src}\n  {}^", pad.collect::<String>()))
        });
        Self::Syntax {
            message: text,
            location,
            caret,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_point_at_the_position() {
        let e = EngineError::syntax(
            "sql parser error: Expected: end of statement, found: FORM at Line: 2, Column: 3",
            "SELECT *\n  FORM orders",
        );
        assert_eq!(
            e.to_string(),
            "syntax error at line 2, column 3: Expected: end of statement, found: FORM\n    FORM orders\n    ^"
        );
    }

    #[test]
    fn tokenizer_errors_are_unwrapped() {
        let e = EngineError::syntax(
            r#"SQL error: TokenizerError("Unterminated string literal at Line: 1, Column: 8")"#,
            "SELECT 'abc",
        );
        assert_eq!(e.to_string(), "syntax error at line 1, column 8: Unterminated string literal\n  SELECT 'abc\n         ^");
    }
}
