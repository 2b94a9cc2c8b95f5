//! Deep expressions and the stack.
//!
//! `a = 1 AND a = 2 AND …` is a tree as deep as it has terms, and the SQL
//! parser's and DataFusion's own code (clone, compare, print, plan,
//! evaluate) walk such trees recursively. So that no query can overflow a
//! thread's stack, which aborts the whole process:
//!
//! - [`Session::sql`](crate::Session::sql) refuses a statement whose
//!   expressions nest more than [`MAX_EXPR_DEPTH`] levels (parentheses do
//!   not count), with an error that says so ([`check_depth`]), and plans
//!   on a stack of at least [`STACK_SIZE`] ([`OnDeepStack`]);
//! - Spar's optimizer rules run on such a stack too ([`deep`], from
//!   `spar_connectors::depth`, where the nesting is measured);
//! - the `spar` binary gives every thread [`STACK_SIZE`] (reserved address
//!   space: pages are used only as deep as a query goes). A program that
//!   embeds Spar and runs such queries should build its Tokio runtime with
//!   `thread_stack_size(spar_engine::STACK_SIZE)`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use datafusion::sql::parser::Statement;

use crate::error::{EngineError, Result};

/// The deepest expression nesting a statement may have (a chain of
/// `AND`s, `OR`s, `+` or `||` nests one level per term).
pub const MAX_EXPR_DEPTH: usize = 5_000;

pub use spar_connectors::depth::{deep, STACK_SIZE};

/// A future whose every poll runs on a deep stack (see [`deep`]).
pub struct OnDeepStack<F: Future> {
    inner: Pin<Box<F>>,
}

impl<F: Future> OnDeepStack<F> {
    /// Wraps `inner`.
    pub fn new(inner: F) -> Self {
        Self {
            inner: Box::pin(inner),
        }
    }
}

impl<F: Future> Future for OnDeepStack<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.inner.as_mut();
        deep(move || inner.poll(cx))
    }
}

/// Refuses a statement whose expressions nest deeper than `max` levels.
pub(crate) fn check_depth(statement: &Statement, max: usize) -> Result<()> {
    let inner = match statement {
        Statement::Statement(s) => s.as_ref(),
        Statement::Explain(e) => return check_depth(&e.statement, max),
        _ => return Ok(()),
    };
    if spar_connectors::depth::nests_deeper(inner, max) {
        return Err(EngineError::TooDeep { max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::parser::DFParser;

    fn parse(sql: &str) -> Statement {
        match DFParser::parse_sql(sql) {
            Ok(mut s) => s.pop_front().unwrap_or_else(|| panic!("no statement")),
            Err(e) => panic!("{e}"),
        }
    }

    fn chain(op: &str, terms: usize) -> String {
        let terms: Vec<String> = (0..terms).map(|i| format!("a <> {i}")).collect();
        format!("SELECT 1 FROM t WHERE {}", terms.join(op))
    }

    #[test]
    fn depth_is_counted_per_level_and_limited() {
        assert!(check_depth(&parse(&chain(" AND ", 100)), 200).is_ok());
        let e = check_depth(&parse(&chain(" AND ", 300)), 200).map_err(|e| e.to_string());
        assert_eq!(
            e,
            Err("the statement's expressions nest more than 200 levels deep (each term of a chain of AND, OR, + or || adds a level); split the statement, or write long lists of values as IN (...)".into())
        );
        // EXPLAIN looks at its statement.
        let explain = format!("EXPLAIN {}", chain(" OR ", 300));
        assert!(check_depth(&parse(&explain), 200).is_err());
    }
}
