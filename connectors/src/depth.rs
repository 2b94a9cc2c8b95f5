//! Deep expressions: how deep they nest, and a stack deep enough to walk
//! them.
//!
//! `a = 1 AND a = 2 AND …` is a tree as deep as it has terms, and the SQL
//! parser's and DataFusion's own code (clone, compare, print, plan) walk
//! such trees recursively. The engine limits how deep a statement may nest
//! and plans on a deep stack; Spar's optimizer rules and the SQL spelling
//! run on one too, whatever thread the caller plans on ([`deep`]).

use std::ops::ControlFlow;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::Expr;
use datafusion::sql::sqlparser::ast::{self, Visit, Visitor};

/// The stack deep expressions are planned and run on: 256 MiB (reserved
/// address space; pages are used only as deep as a query goes).
pub const STACK_SIZE: usize = 256 << 20;

/// Below this much free stack, [`deep`] moves to a new stack.
const RED_ZONE: usize = 64 << 20;

/// Runs `f` on a stack with at least 64 MiB free: the current one, or a
/// new one of [`STACK_SIZE`].
pub fn deep<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(RED_ZONE, STACK_SIZE, f)
}

/// How deep `e` nests: 1 for a column or a literal, one more for each
/// level of operators and functions above. Counted without recursion, so
/// any depth can be measured.
pub fn expr_depth(e: &Expr) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(e, 1usize)];
    while let Some((e, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        let _ = e.apply_children(|child| {
            stack.push((child, depth + 1));
            Ok(TreeNodeRecursion::Continue)
        });
    }
    deepest
}

/// Whether the expressions of `statement` nest more than `max` levels
/// (parentheses do not count). The walk stops one level past `max`, on a
/// deep stack.
pub fn nests_deeper(statement: &ast::Statement, max: usize) -> bool {
    deep(|| statement.visit(&mut Nesting { now: 0, max }).is_break())
}

/// Counts how deep expressions nest, and stops past `max`.
struct Nesting {
    now: usize,
    max: usize,
}

impl Visitor for Nesting {
    type Break = ();

    fn pre_visit_expr(&mut self, e: &ast::Expr) -> ControlFlow<()> {
        if !matches!(e, ast::Expr::Nested(_)) {
            self.now += 1;
        }
        if self.now > self.max {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, e: &ast::Expr) -> ControlFlow<()> {
        if !matches!(e, ast::Expr::Nested(_)) {
            self.now -= 1;
        }
        ControlFlow::Continue(())
    }
}
