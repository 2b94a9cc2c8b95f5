//! Errors to gRPC statuses, in one place.
//!
//! | error                                   | status             |
//! |-----------------------------------------|--------------------|
//! | syntax, planning, bad parameters        | `InvalidArgument`  |
//! | unknown table, or one outside the grants | `NotFound` (the same message for both) |
//! | source unreachable, busy, timed out     | `Unavailable`      |
//! | a limit (memory, rows, concurrency)     | `ResourceExhausted`|
//! | query or statement timeout              | `DeadlineExceeded` |
//! | cancelled                               | `Cancelled`        |
//! | anything else                           | `Internal`, with the query id only |
//! | a command arrow-flight cannot unpack    | `InvalidArgument` (rewritten by the auth layer, which sees every response) |
//!
//! Messages are the engine's own (they name what failed and what to do,
//! never a password); an internal error's details go to the log, not the
//! client.

use datafusion::error::DataFusionError;
use spar_engine::connectors::error::find_connector_error;
use spar_engine::connectors::ConnectorError;
use spar_engine::EngineError;
use tonic::codegen::http;
use tonic::Status;

/// The status for an engine error raised while serving query `query_id`.
pub(crate) fn engine_status(e: &EngineError, query_id: &str) -> Status {
    match e {
        EngineError::Syntax { .. }
        | EngineError::AmbiguousTable { .. }
        | EngineError::TooDeep { .. } => Status::invalid_argument(e.to_string()),
        EngineError::UnknownTable { .. } => Status::not_found(e.to_string()),
        EngineError::SourceUnavailable { .. } | EngineError::NotResumable { .. } => {
            Status::unavailable(e.to_string())
        }
        EngineError::StatementTimeout { .. } => Status::deadline_exceeded(e.to_string()),
        EngineError::Connector { error, .. } => connector_status(error, e.to_string()),
        EngineError::DataFusion(inner) => datafusion_status(inner, query_id),
        EngineError::ConfigRead { .. } | EngineError::Config { .. } => {
            internal(&e.to_string(), query_id)
        }
    }
}

/// The status for a DataFusion error (planning or execution).
pub(crate) fn datafusion_status(e: &DataFusionError, query_id: &str) -> Status {
    if let Some(engine) = find_engine_error(e) {
        return engine_status(engine, query_id);
    }
    if let Some(c) = find_connector_error(e) {
        return connector_status(c, c.to_string());
    }
    match e {
        DataFusionError::Context(_, inner) => datafusion_status(inner, query_id),
        DataFusionError::Shared(inner) => datafusion_status(inner, query_id),
        DataFusionError::Diagnostic(_, inner) => datafusion_status(inner, query_id),
        DataFusionError::SQL(..)
        | DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_)
        | DataFusionError::Configuration(_) => Status::invalid_argument(strip(e)),
        DataFusionError::ResourcesExhausted(_) => Status::resource_exhausted(format!(
            "{}; the query needs more memory than server.limits.query_memory allows: narrow it or raise the limit",
            strip(e)
        )),
        DataFusionError::External(inner) => match inner.downcast_ref::<Status>() {
            Some(status) => status.clone(),
            None => internal(&e.to_string(), query_id),
        },
        DataFusionError::Execution(_) => Status::invalid_argument(strip(e)),
        _ => internal(&e.to_string(), query_id),
    }
}

fn connector_status(e: &ConnectorError, message: String) -> Status {
    match e {
        ConnectorError::Unavailable { .. } | ConnectorError::Transient { .. } => {
            Status::unavailable(message)
        }
        ConnectorError::NotFound { .. } => Status::not_found(message),
        ConnectorError::Cancelled { .. } => Status::cancelled(message),
        ConnectorError::Query { .. }
        | ConnectorError::Conversion { .. }
        | ConnectorError::Unsupported { .. } => Status::invalid_argument(message),
        ConnectorError::Config { .. } => Status::failed_precondition(message),
        ConnectorError::DataFusion(inner) => datafusion_status(inner, "-"),
    }
}

fn find_engine_error(e: &DataFusionError) -> Option<&EngineError> {
    match e {
        DataFusionError::External(inner) => inner.downcast_ref::<EngineError>(),
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            find_engine_error(inner)
        }
        DataFusionError::Shared(inner) => find_engine_error(inner),
        _ => None,
    }
}

/// arrow-flight reports a command it cannot unpack (bad protobuf inside
/// the `Any`, SQL that is not UTF-8) as `Internal`; it is the client's
/// request that is malformed.
pub(crate) fn malformed_is_invalid_argument(headers: &mut http::HeaderMap) {
    let Some(status) = Status::from_header_map(headers) else {
        return;
    };
    let message = status.message();
    if status.code() != tonic::Code::Internal || !message.starts_with("ParseError(") {
        return;
    }
    let inner = message
        .trim_start_matches("ParseError(")
        .trim_end_matches(')')
        .trim_matches('"');
    let fixed = Status::invalid_argument(format!("malformed request: {inner}"));
    if fixed.add_header(headers).is_err() {
        tracing::warn!("cannot rewrite a decode error's status");
    }
}

/// DataFusion's message without its category prefix ("Error during planning: ").
fn strip(e: &DataFusionError) -> String {
    let text = e.to_string();
    for prefix in [
        "Error during planning: ",
        "Execution error: ",
        "Schema error: ",
        "This feature is not implemented: ",
        "Resources exhausted: ",
        "Invalid or Unsupported Configuration: ",
    ] {
        if let Some(rest) = text.strip_prefix(prefix) {
            return rest.to_string();
        }
    }
    text
}

/// An internal error: logged with its details, reported with the query id.
fn internal(details: &str, query_id: &str) -> Status {
    tracing::error!(query_id, error = details, "internal error");
    Status::internal(format!(
        "internal error in query {query_id}; the server log has the details"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn each_kind_of_error_has_its_code() {
        let cases = [
            (
                EngineError::UnknownTable {
                    name: "t".into(),
                    hint: String::new(),
                },
                Code::NotFound,
            ),
            (
                EngineError::Syntax {
                    message: "x".into(),
                    location: None,
                    caret: None,
                },
                Code::InvalidArgument,
            ),
            (
                EngineError::SourceUnavailable {
                    source_name: "pg".into(),
                    errors: vec![],
                },
                Code::Unavailable,
            ),
            (
                EngineError::DataFusion(DataFusionError::External(Box::new(
                    ConnectorError::Unavailable {
                        target: "h:1/db".into(),
                        message: "refused".into(),
                    },
                ))),
                Code::Unavailable,
            ),
            (
                EngineError::DataFusion(DataFusionError::Plan("no column x".into())),
                Code::InvalidArgument,
            ),
            (
                EngineError::DataFusion(DataFusionError::ResourcesExhausted("pool".into())),
                Code::ResourceExhausted,
            ),
        ];
        for (e, code) in cases {
            assert_eq!(engine_status(&e, "q1").code(), code, "{e}");
        }
    }

    #[test]
    fn commands_that_do_not_unpack_are_invalid_arguments() {
        let mut headers = http::HeaderMap::new();
        let sent = Status::internal("ParseError(\"Unable to decode Any value: not UTF-8\")");
        assert!(sent.add_header(&mut headers).is_ok());
        malformed_is_invalid_argument(&mut headers);
        let seen = Status::from_header_map(&headers);
        assert_eq!(seen.as_ref().map(Status::code), Some(Code::InvalidArgument));
        assert_eq!(
            seen.as_ref().map(Status::message),
            Some("malformed request: Unable to decode Any value: not UTF-8")
        );
        // Other internal errors stay what they are.
        let mut headers = http::HeaderMap::new();
        assert!(Status::internal("boom").add_header(&mut headers).is_ok());
        malformed_is_invalid_argument(&mut headers);
        assert_eq!(
            Status::from_header_map(&headers).map(|s| s.code()),
            Some(Code::Internal)
        );
    }

    #[test]
    fn internal_errors_show_only_the_query_id() {
        let e = DataFusionError::Internal("secret detail".into());
        let s = datafusion_status(&e, "q42");
        assert_eq!(s.code(), Code::Internal);
        assert!(s.message().contains("q42"));
        assert!(!s.message().contains("secret"));
    }
}
