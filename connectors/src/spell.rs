//! Literals and identifiers in the SQL Spar sends, spelled by Spar's own
//! code.
//!
//! DataFusion's unparser builds a sqlparser AST, and sqlparser's `Display`
//! escapes string literals and quoted identifiers by *guessing* whether they
//! are already escaped: a quote after a backslash, or two quotes in a row,
//! are printed as they stand. So the value `x\'` ended a MySQL literal early
//! and `a''b` matched `a'b` on PostgreSQL. [`spell_statement`] takes that
//! job away from the printer: every string literal is replaced by the text
//! the source's [`SqlDialect::string_literal`] spells for it, every quoted
//! identifier by [`quote_identifier`]'s spelling, and both are printed
//! verbatim. Anything this module does not know how to spell is refused, so
//! a new kind of literal in a later DataFusion cannot slip through unescaped.
//!
//! ```text
//! LogicalPlan ─unparser─▶ ast::Statement ─spell_statement─▶ SQL text
//!                          'x\''  "n\""x"     '…' by the dialect, "n\""""x"
//! ```

use std::ops::ControlFlow;

use datafusion::common::plan_datafusion_err;
use datafusion::error::{DataFusionError, Result};
use datafusion::sql::sqlparser::ast::{
    self, Statement, Value, ValueWithSpan, VisitMut, VisitorMut,
};
use serde_json::Value as Json;

use crate::SqlDialect;

/// `value` as a standard SQL string literal: in single quotes, each quote
/// doubled, every other character as it is. Exact wherever a backslash is
/// an ordinary character (SQLite; PostgreSQL with
/// `standard_conforming_strings`; MySQL with `NO_BACKSLASH_ESCAPES`), and
/// everywhere for values without a backslash. `None` for a value with a NUL
/// character, which no SQL text can carry.
pub fn standard_string_literal(value: &str) -> Option<String> {
    (!value.contains('\0')).then(|| enclose("'", value, '\'', |c| c == '\''))
}

/// `open`, then `value` with each character `double` picks written twice,
/// then `close`: how every literal and identifier Spar sends is quoted.
pub(crate) fn enclose(
    open: &str,
    value: &str,
    close: char,
    double: impl Fn(char) -> bool,
) -> String {
    let mut out = String::with_capacity(open.len() + value.len() + 2);
    out.push_str(open);
    for c in value.chars() {
        if double(c) {
            out.push(c);
        }
        out.push(c);
    }
    out.push(close);
    out
}

/// `name` as an identifier quoted with `quote` (`"` or `` ` ``): the quote
/// character doubled inside, every other character as it is. `None` for a
/// name with a NUL character or an unknown quote character.
pub fn quote_identifier(name: &str, quote: char) -> Option<String> {
    if name.contains('\0') || !matches!(quote, '"' | '`') {
        return None;
    }
    Some(enclose(quote.encode_utf8(&mut [0; 4]), name, quote, |c| {
        c == quote
    }))
}

/// Whether `name` may be printed without quotes: a plain word such as a
/// function or type name that the unparser writes unquoted.
fn is_plain_word(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `text` is a number as the unparser prints one (digits, a point,
/// an exponent, a sign): printed verbatim, so nothing else may get in.
fn is_number(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
}

/// `statement` as SQL text for `dialect`'s source, with every literal and
/// identifier spelled by Spar (see the module docs). Fails, naming what it
/// could not spell, rather than print anything it cannot vouch for.
pub fn spell_statement(mut statement: Statement, dialect: &dyn SqlDialect) -> Result<String> {
    let max = dialect.max_expr_depth();
    if crate::depth::nests_deeper(&statement, max) {
        return Err(plan_datafusion_err!(
            "the SQL for {} would nest expressions more than {max} levels deep",
            dialect.name()
        ));
    }
    if let ControlFlow::Break(e) = VisitMut::visit(&mut statement, &mut Literals { dialect }) {
        return Err(e);
    }
    let mut tree = serde_json::to_value(&statement)
        .map_err(|e| plan_datafusion_err!("cannot walk the SQL for {}: {e}", dialect.name()))?;
    spell_identifiers(&mut tree, dialect)?;
    let statement: Statement = serde_json::from_value(tree)
        .map_err(|e| plan_datafusion_err!("cannot walk the SQL for {}: {e}", dialect.name()))?;
    Ok(statement.to_string())
}

/// How one identifier of the serialized tree is printed: `Some(None)` as
/// it is (an unquoted plain word), `Some(Some(text))` as `text`, `None` not
/// at all.
fn spell_identifier(value: &str, quote_style: &Json) -> Option<Option<String>> {
    match quote_style {
        Json::Null => is_plain_word(value).then_some(None),
        Json::String(q) => {
            let mut chars = q.chars();
            match (chars.next(), chars.next()) {
                (Some(q), None) => quote_identifier(value, q).map(Some),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Replaces each literal by its spelling (a placeholder value, which
/// sqlparser prints verbatim).
struct Literals<'a> {
    dialect: &'a dyn SqlDialect,
}

impl VisitorMut for Literals<'_> {
    type Break = DataFusionError;

    /// Parenthesizes the operands of an operator that are themselves
    /// unparenthesized predicates (`x IS NULL`, `x IN (…)`, `x LIKE …`,
    /// `x BETWEEN …`): the unparser writes `a <= b IS NULL` for
    /// `a <= (b IS NULL)`, which PostgreSQL and MySQL read as
    /// `(a <= b) IS NULL`.
    fn post_visit_expr(&mut self, expr: &mut ast::Expr) -> ControlFlow<Self::Break> {
        use ast::Expr as E;
        match expr {
            E::BinaryOp { left, right, .. } => {
                enclose_predicate(left);
                enclose_predicate(right);
            }
            E::Between {
                expr, low, high, ..
            } => {
                enclose_predicate(expr);
                enclose_predicate(low);
                enclose_predicate(high);
            }
            E::Like { expr, pattern, .. } | E::ILike { expr, pattern, .. } => {
                enclose_predicate(expr);
                enclose_predicate(pattern);
            }
            E::UnaryOp { expr, .. }
            | E::InList { expr, .. }
            | E::InSubquery { expr, .. }
            | E::IsNull(expr)
            | E::IsNotNull(expr)
            | E::IsTrue(expr)
            | E::IsNotTrue(expr)
            | E::IsFalse(expr)
            | E::IsNotFalse(expr)
            | E::IsUnknown(expr)
            | E::IsNotUnknown(expr) => enclose_predicate(expr),
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<Self::Break> {
        let name = self.dialect.name();
        let spelled = match &value.value {
            Value::SingleQuotedString(s) => match self.dialect.string_literal(s) {
                Some(spelled) => spelled,
                None => {
                    return ControlFlow::Break(plan_datafusion_err!(
                        "cannot spell the string literal {s:?} for {name}"
                    ))
                }
            },
            Value::Number(text, _) if is_number(text) => return ControlFlow::Continue(()),
            // How the unparser prints a float that is not a finite number.
            Value::Number(text, _) if matches!(text.as_str(), "NaN" | "inf" | "-inf") => {
                let value = match text.as_str() {
                    "NaN" => f64::NAN,
                    "inf" => f64::INFINITY,
                    _ => f64::NEG_INFINITY,
                };
                match self.dialect.nonfinite_float_literal(value) {
                    Some(spelled) => spelled,
                    None => {
                        return ControlFlow::Break(plan_datafusion_err!(
                            "{name} has no float value {text}"
                        ))
                    }
                }
            }
            Value::Boolean(_) | Value::Null => return ControlFlow::Continue(()),
            other => {
                return ControlFlow::Break(plan_datafusion_err!(
                    "cannot spell the literal {other:?} for {name}"
                ))
            }
        };
        value.value = Value::Placeholder(spelled);
        ControlFlow::Continue(())
    }
}

/// `e` in parentheses if it is a predicate written without them.
fn enclose_predicate(e: &mut Box<ast::Expr>) {
    use ast::Expr as E;
    if matches!(
        e.as_ref(),
        E::IsNull(_)
            | E::IsNotNull(_)
            | E::IsTrue(_)
            | E::IsNotTrue(_)
            | E::IsFalse(_)
            | E::IsNotFalse(_)
            | E::IsUnknown(_)
            | E::IsNotUnknown(_)
            | E::IsDistinctFrom(..)
            | E::IsNotDistinctFrom(..)
            | E::InList { .. }
            | E::InSubquery { .. }
            | E::Between { .. }
            | E::Like { .. }
            | E::ILike { .. }
            | E::SimilarTo { .. }
    ) {
        let inner = std::mem::replace(e.as_mut(), E::Value(Value::Null.into()));
        **e = E::Nested(Box::new(inner));
    }
}

/// Finds every identifier in the serialized tree (the one object with the
/// fields `value`, `quote_style` and `span`) and replaces its value by its
/// spelling, without a quote style, so that it is printed verbatim. An
/// unquoted identifier must be a plain word.
fn spell_identifiers(tree: &mut Json, dialect: &dyn SqlDialect) -> Result<()> {
    // An explicit stack: a deep expression must not overflow this walk.
    let mut stack = vec![tree];
    while let Some(node) = stack.pop() {
        match node {
            Json::Object(fields) => {
                let is_ident = fields.len() == 3
                    && fields.contains_key("span")
                    && fields.get("value").is_some_and(Json::is_string)
                    && fields.contains_key("quote_style");
                if is_ident {
                    let value = fields.get("value").and_then(Json::as_str).unwrap_or("");
                    let quote = fields.get("quote_style").unwrap_or(&Json::Null);
                    let spelled = spell_identifier(value, quote).ok_or_else(|| {
                        plan_datafusion_err!(
                            "cannot spell the identifier {value:?} for {}",
                            dialect.name()
                        )
                    })?;
                    if let Some(spelled) = spelled {
                        fields.insert("value".into(), Json::String(spelled));
                        fields.insert("quote_style".into(), Json::Null);
                    }
                } else {
                    stack.extend(fields.values_mut());
                }
            }
            Json::Array(items) => stack.extend(items.iter_mut()),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_literals_double_every_quote_and_keep_backslashes() {
        assert_eq!(standard_string_literal("a'b").as_deref(), Some("'a''b'"));
        assert_eq!(standard_string_literal("a''b").as_deref(), Some("'a''''b'"));
        assert_eq!(standard_string_literal("x\\'").as_deref(), Some("'x\\'''"));
        assert_eq!(standard_string_literal("").as_deref(), Some("''"));
        assert_eq!(standard_string_literal("a\0b"), None);
    }

    #[test]
    fn identifiers_double_their_own_quote_only() {
        assert_eq!(
            quote_identifier("n\\\"x", '"').as_deref(),
            Some("\"n\\\"\"x\"")
        );
        assert_eq!(quote_identifier("a``b'", '`').as_deref(), Some("`a````b'`"));
        assert_eq!(quote_identifier("a\0", '"'), None);
        assert_eq!(quote_identifier("a", '['), None);
    }

    #[test]
    fn plain_words_and_numbers() {
        assert!(is_plain_word("sum"));
        assert!(is_plain_word("_x1"));
        assert!(!is_plain_word("a b"));
        assert!(!is_plain_word("1a"));
        assert!(!is_plain_word(""));
        assert!(is_number("-1.5e10"));
        assert!(!is_number("1; DROP"));
        assert!(!is_number(""));
    }
}
