//! How a source spells SQL and what it can run.
//!
//! Spelling (quoting, literals, casts) comes from DataFusion's unparser
//! [`Dialect`]; what a source can run with *exactly* DataFusion's semantics
//! comes from [`SqlDialect::supports_expr`] and [`Capabilities`]. Rules in
//! the planner ask these; they never test for a backend by name.

use std::fmt::Debug;
use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::DFSchema;
use datafusion::logical_expr::expr::{AggregateFunction, Like, NullTreatment};
use datafusion::logical_expr::{
    Between, BinaryExpr, Cast, Expr, ExprSchemable, Operator, WindowFrameBound, WindowFrameUnits,
    WindowFunctionDefinition,
};
use datafusion::scalar::ScalarValue;
use datafusion::sql::unparser::dialect::Dialect;

use crate::metadata::TableName;
use crate::spell::quote_identifier;

/// Which relational operators a source can run inside a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// `WHERE` with the expressions [`SqlDialect::supports_expr`] accepts.
    pub filter: bool,
    /// `LIMIT n`.
    pub limit: bool,
    /// `ORDER BY`, with explicit NULLS FIRST/LAST or an equivalent.
    pub order_by: bool,
    /// Joins between tables of the same source.
    pub joins: bool,
    /// `FULL OUTER JOIN` (MySQL and MariaDB have none).
    pub full_joins: bool,
    /// `GROUP BY` and aggregate functions.
    pub aggregates: bool,
    /// Window functions.
    pub window_functions: bool,
}

impl Capabilities {
    /// A source that can run every operator.
    pub const ALL: Self = Self {
        filter: true,
        limit: true,
        order_by: true,
        joins: true,
        full_joins: true,
        aggregates: true,
        window_functions: true,
    };
}

/// A source's SQL dialect: its spelling and what it can run.
pub trait SqlDialect: Debug + Send + Sync {
    /// A short name for messages and EXPLAIN (`sqlite`, `postgres`).
    fn name(&self) -> &str;

    /// DataFusion's unparser dialect that spells SQL for this source.
    fn unparser(&self) -> &dyn Dialect;

    /// The operators this source can run.
    fn capabilities(&self) -> Capabilities;

    /// Whether the source computes `expr` exactly as DataFusion would (same
    /// result for every row, NULLs and types included). Only such
    /// expressions are pushed into a fragment; the rest run locally.
    /// `schema` is the schema `expr` is evaluated against, so that a
    /// dialect can decide by the operands' types.
    ///
    /// The default accepts a conservative core that every SQL database
    /// evaluates alike: column references, literals of
    /// [`SqlDialect::supports_literal`] types, comparisons, `AND`, `OR`,
    /// `NOT`, `IS [NOT] NULL`, `BETWEEN`, `IN` lists and `CASE`.
    fn supports_expr(&self, expr: &Expr, schema: &DFSchema) -> bool {
        default_supports_expr(self, expr, schema)
    }

    /// Whether the source computes the aggregate `expr` (an
    /// `Expr::AggregateFunction` over rows of `schema`) exactly as
    /// DataFusion would, result type included. The default accepts
    /// `count` (also `DISTINCT`, when equality of the argument is exact),
    /// `min` and `max` (when ordering of the argument is exact): their
    /// results have the argument's type, or BIGINT, everywhere.
    fn supports_aggregate(&self, expr: &Expr, schema: &DFSchema) -> bool {
        default_supports_aggregate(self, expr, schema)
    }

    /// Whether the source computes the window function `expr` (an
    /// `Expr::WindowFunction` over rows of `schema`) exactly as DataFusion
    /// would. Only asked when [`Capabilities::window_functions`] is set.
    /// The default is [`default_supports_window`].
    fn supports_window(&self, expr: &Expr, schema: &DFSchema) -> bool {
        default_supports_window(self, expr, schema)
    }

    /// Whether the source computes `+`, `-`, `*`, unary minus and `SUM`
    /// over values of Arrow type `t` as DataFusion does: exactly for
    /// integers and decimals (DataFusion's decimal results are exact too,
    /// and the connector converts the source's wider result type back to
    /// the planned one without rounding). The default accepts signed
    /// integers and `Decimal128`. Not `Float64`: where IEEE arithmetic
    /// overflows to an infinity (DataFusion's answer), PostgreSQL and MySQL
    /// raise an error instead. Division and remainder are never pushed by
    /// the core: their rounding and integer semantics differ between
    /// databases.
    fn arithmetic_alike(&self, t: &DataType) -> bool {
        default_arithmetic_alike(t)
    }

    /// Whether the source computes `AVG` over values of type `t` as
    /// DataFusion does (a `Float64` result). The default accepts none.
    fn averages_alike(&self, t: &DataType) -> bool {
        let _ = t;
        false
    }

    /// Whether the source casts values of type `from` to `to` as DataFusion
    /// does and the unparser spells the cast so the source accepts it. The
    /// default accepts the casts that cannot change a value:
    /// [`widening_cast`].
    fn supports_cast(&self, from: &DataType, to: &DataType) -> bool {
        widening_cast(from, to)
    }

    /// Spar's corrections to `expr` before it is spelled for this source,
    /// where DataFusion's unparser would spell it wrongly or the source
    /// would compute it differently as written. Called on every expression
    /// of a fragment, with the schema it is evaluated against (a column
    /// may be missing from it only where typing does not matter). The
    /// default changes nothing.
    fn prepare_expr(&self, expr: Expr, schema: &DFSchema) -> datafusion::error::Result<Expr> {
        let _ = schema;
        Ok(expr)
    }

    /// Whether the source groups, deduplicates, joins and sorts by the
    /// values of `e` as DataFusion does when `e` is written as it is:
    /// `GROUP BY e`, `DISTINCT`, `ON e = …`, `ORDER BY e`, `min(e)`,
    /// `count(DISTINCT e)`. Comparisons inside expressions can be
    /// corrected by [`SqlDialect::prepare_expr`]; such keys cannot. The
    /// default is true (then [`equals_alike`] and [`orders_alike`] decide
    /// by the comparisons alone).
    fn keys_alike(&self, e: &Expr, schema: &DFSchema) -> bool {
        let _ = (e, schema);
        true
    }

    /// The deepest expression nesting this source accepts in one statement
    /// (SQLite refuses more than 1000 levels; the others run out of
    /// stack). Deeper filters stay local, and a fragment that would nest
    /// deeper does not grow. The default is 900 levels.
    fn max_expr_depth(&self) -> usize {
        900
    }

    /// The SQL text of a string literal whose value is `value`, in a form
    /// the source cannot read as anything else whatever its session
    /// settings; `None` where the source's SQL cannot hold the value (a
    /// filter on it then stays local). Every string literal Spar sends goes
    /// through here ([`crate::spell::spell_statement`]). The default is
    /// [`crate::spell::standard_string_literal`], exact where a backslash is
    /// an ordinary character (SQLite).
    fn string_literal(&self, value: &str) -> Option<String> {
        crate::spell::standard_string_literal(value)
    }

    /// The SQL text of a float literal that is not a finite number (`NaN`,
    /// an infinity), or `None` where the source has no such value (a
    /// filter with it then stays local). The default is `None`.
    fn nonfinite_float_literal(&self, value: f64) -> Option<String> {
        let _ = value;
        None
    }

    /// `CREATE INDEX` on `columns` of `table`, named `name`, as this source
    /// spells it (the index advisor's advice). The default is the form
    /// MySQL and MariaDB take: `CREATE INDEX name ON schema.table (a, b)`,
    /// every name quoted. `None` for a name no SQL text can carry.
    fn create_index(&self, table: &TableName, name: &str, columns: &[String]) -> Option<String> {
        let q = |n: &str| self.quoted(n);
        Some(format!(
            "CREATE INDEX {} ON {}.{} ({})",
            q(name)?,
            q(&table.schema)?,
            q(&table.table)?,
            quoted_list(self, columns)?
        ))
    }

    /// Whether an index on a column of this type serves the comparisons
    /// this dialect spells on the column (the index advisor asks). The
    /// default: yes.
    fn index_serves(&self, data_type: &DataType) -> bool {
        let _ = data_type;
        true
    }

    /// `name` quoted as an identifier of this source, always.
    fn quoted(&self, name: &str) -> Option<String> {
        let quote = self.unparser().identifier_quote_style(name).unwrap_or('"');
        quote_identifier(name, quote)
    }

    /// Whether a literal of this value's type is spelled so that the source
    /// compares it as DataFusion would. The default accepts booleans,
    /// integers (unsigned 64-bit ones within the signed range, as
    /// `row_number() = 1` has), floats (`NaN` and infinities where
    /// [`SqlDialect::nonfinite_float_literal`] spells them), decimals,
    /// strings and dates.
    fn supports_literal(&self, value: &ScalarValue) -> bool {
        if let ScalarValue::UInt64(v) = value {
            return v.is_none_or(|v| i64::try_from(v).is_ok());
        }
        if let Some(Some(s)) = value.try_as_str() {
            if self.string_literal(s).is_none() {
                return false;
            }
        }
        // A date outside years 1 to 9999 is printed with a sign
        // (`+10000-01-01`) that no source reads as a date.
        if let ScalarValue::Date32(Some(days)) = value {
            // Days from 1970-01-01 to 0001-01-01 and to 10000-01-01.
            if !(-719_162..2_932_897).contains(days) {
                return false;
            }
        }
        if let Some(f) = crate::unparser::float_value(value).filter(|f| !f.is_finite()) {
            if self.nonfinite_float_literal(f).is_none() {
                return false;
            }
        }
        matches!(
            value.data_type(),
            DataType::Boolean
                | DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::UInt8
                | DataType::UInt16
                | DataType::UInt32
                | DataType::Float32
                | DataType::Float64
                | DataType::Decimal128(_, _)
                | DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Date32
        )
    }
}

/// Field metadata key on a column whose source compares its values
/// differently from how DataFusion compares the column's Arrow values (its
/// value is the source's type name). PostgreSQL's `uuid` is read
/// as text but compares as a number (and `'A0EE…'` equals `'a0ee…'`);
/// `json` has no `=`. Such a column is never compared, grouped, ordered or
/// matched at the source; reading it is fine.
pub const COMPARES_DIFFERENTLY: &str = "spar.compares_differently";

/// Field metadata key on a `CHAR(n)` column (its value is the source's
/// type name). Its values are read without their padding (PostgreSQL's
/// own cast to text; MySQL and MariaDB send them so), and they compare as
/// the SQL standard's PAD SPACE rule and these databases say: a string
/// literal compared with such a column is compared without its trailing
/// spaces (Spar's planner trims it, so `c = 'AB  '` means `c = 'AB'`
/// locally as at the source). Everything else (`LIKE`, functions,
/// grouping) sees the unpadded text.
pub const PADDED_CHAR: &str = "spar.char";

/// Whether `e` is a `CHAR(n)` column or another value with
/// [`PADDED_CHAR`] metadata in `schema`.
pub fn is_padded_char(e: &Expr, schema: &DFSchema) -> bool {
    e.to_field(schema)
        .is_ok_and(|(_, f)| f.metadata().contains_key(PADDED_CHAR))
}

/// Whether `e` is a value whose source compares it differently from
/// DataFusion ([`COMPARES_DIFFERENTLY`]). An expression whose field cannot
/// be determined counts as one: the answer only ever keeps work local.
pub fn compares_differently(e: &Expr, schema: &DFSchema) -> bool {
    e.to_field(schema).map_or(true, |(_, f)| {
        f.metadata().contains_key(COMPARES_DIFFERENTLY)
    })
}

/// Comparisons and boolean connectives: the operators every SQL database
/// evaluates like DataFusion (with three-valued logic).
fn is_comparison_or_connective(op: &Operator) -> bool {
    is_comparison(*op) || matches!(op, Operator::And | Operator::Or)
}

/// `=`, `<>`, `<`, `<=`, `>`, `>=`.
pub fn is_comparison(op: Operator) -> bool {
    matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
    )
}

/// Whether `like` is a `[NOT] [I]LIKE` of a text value (not one its source
/// compares unlike its text) with backslash as its escape character: what
/// a dialect's own check of the pattern (and of case) starts from.
pub fn like_over_text(like: &Like, schema: &DFSchema) -> bool {
    matches!(like.escape_char, None | Some('\\'))
        && is_string(&like.expr, schema)
        && !compares_differently(&like.expr, schema)
}

/// Whether `e` is string-typed in `schema` (for dialects that keep string
/// comparisons local). An expression whose type cannot be determined counts
/// as a string: the answer only ever keeps work local.
pub fn is_string(e: &Expr, schema: &DFSchema) -> bool {
    e.get_type(schema).map_or(true, |t| {
        matches!(
            t,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _)
        )
    })
}

/// The conservative core of [`SqlDialect::supports_expr`], for dialects
/// that override it to exclude more and then defer to the core.
pub fn default_supports_expr<D: SqlDialect + ?Sized>(
    dialect: &D,
    expr: &Expr,
    schema: &DFSchema,
) -> bool {
    let ok = |e: &Expr| dialect.supports_expr(e, schema);
    match expr {
        Expr::Column(c) => schema.has_column(c),
        Expr::Literal(value, _) => dialect.supports_literal(value),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            // A comparison of rescaled decimals is spelled without the
            // rescale (see `prepare`).
            let (left, right) = if is_comparison(*op) {
                (unrescaled(left, schema), unrescaled(right, schema))
            } else {
                (left.as_ref(), right.as_ref())
            };
            let compares = !matches!(op, Operator::And | Operator::Or);
            if compares
                && (compares_differently(left, schema) || compares_differently(right, schema))
            {
                return false;
            }
            let operator = is_comparison_or_connective(op)
                || (matches!(op, Operator::Plus | Operator::Minus | Operator::Multiply)
                    && computes_alike(dialect, left, schema)
                    && computes_alike(dialect, right, schema));
            operator && ok(left) && ok(right)
        }
        Expr::Negative(e) => computes_alike(dialect, e, schema) && ok(e),
        Expr::Cast(Cast { expr, field }) => {
            expr.get_type(schema)
                .is_ok_and(|from| dialect.supports_cast(&from, field.data_type()))
                && ok(expr)
        }
        Expr::Not(e) | Expr::IsNull(e) | Expr::IsNotNull(e) => ok(e),
        // A name given inside an expression (common subexpressions are
        // named so): the unparser spells the expression alone.
        Expr::Alias(alias) => ok(&alias.expr),
        // Every database evaluates CASE alike (first true WHEN wins, else
        // the ELSE or NULL); DataFusion has cast the results to one type.
        // `CASE x WHEN v` compares `x = v` as written, so `x` must compare
        // as a key does.
        Expr::Case(case) => {
            case.expr
                .as_ref()
                .is_none_or(|x| equals_alike(dialect, x, schema))
                && case.when_then_expr.iter().all(|(when, then)| {
                    let when_ok = match &case.expr {
                        Some(x) => ok(&x.as_ref().clone().eq(when.as_ref().clone())),
                        None => ok(when),
                    };
                    when_ok && ok(then)
                })
                && case.else_expr.as_ref().is_none_or(|e| ok(e))
        }
        Expr::Between(Between {
            expr, low, high, ..
        }) => {
            ![expr, low, high]
                .iter()
                .any(|e| compares_differently(e, schema))
                && ok(expr)
                && ok(low)
                && ok(high)
        }
        Expr::InList(list) => {
            !compares_differently(&list.expr, schema) && ok(&list.expr) && list.list.iter().all(ok)
        }
        _ => false,
    }
}

/// `e` without a cast that only rescales a decimal to more fractional
/// digits (perhaps leaving fewer integer digits, as DataFusion's
/// `CAST(sum(x) AS Decimal128(38, 6))` before comparing with a value of
/// scale 6 does): every value such a cast does not reject keeps its value,
/// so a comparison of the cast is the comparison of its operand, which
/// every source compares exactly across scales. (Where DataFusion's cast
/// would fail for a value out of range, the source answers instead.)
fn unrescaled<'a>(e: &'a Expr, schema: &DFSchema) -> &'a Expr {
    match e {
        Expr::Cast(Cast { expr, field }) if rescales(expr, field.data_type(), schema) => expr,
        _ => e,
    }
}

/// Whether casting `expr` to `to` only rescales a decimal to at least as
/// many fractional digits (see `unrescaled`).
fn rescales(expr: &Expr, to: &DataType, schema: &DFSchema) -> bool {
    match (to, expr.get_type(schema)) {
        (DataType::Decimal128(_, to), Ok(DataType::Decimal128(_, from))) => *to >= from,
        _ => false,
    }
}

/// `expr` as the source is to receive it: finite float literals marked to
/// be spelled in scientific notation ([`crate::unparser::float_literal`]),
/// comparisons of rescaled decimals without the rescale (see
/// `unrescaled`), then the dialect's
/// own corrections ([`SqlDialect::prepare_expr`]). Every expression of a
/// fragment is spelled through this.
pub fn prepare<D: SqlDialect + ?Sized>(
    dialect: &D,
    expr: Expr,
    schema: &DFSchema,
) -> datafusion::error::Result<Expr> {
    let unrescale = |e: Box<Expr>| match *e {
        Expr::Cast(Cast { expr, field }) if rescales(&expr, field.data_type(), schema) => expr,
        other => Box::new(other),
    };
    let expr = expr
        .transform_up(|e| {
            Ok(match e {
                Expr::Literal(..) => Transformed::yes(crate::unparser::float_literal(e)),
                Expr::BinaryExpr(BinaryExpr { left, op, right }) if is_comparison(op) => {
                    Transformed::yes(Expr::BinaryExpr(BinaryExpr {
                        left: unrescale(left),
                        op,
                        right: unrescale(right),
                    }))
                }
                other => Transformed::no(other),
            })
        })?
        .data;
    dialect.prepare_expr(expr, schema)
}

/// The core of [`SqlDialect::supports_aggregate`].
pub fn default_supports_aggregate<D: SqlDialect + ?Sized>(
    dialect: &D,
    expr: &Expr,
    schema: &DFSchema,
) -> bool {
    let Expr::AggregateFunction(agg) = expr else {
        return false;
    };
    let params = &agg.params;
    if params.filter.is_some() || !params.order_by.is_empty() || params.null_treatment.is_some() {
        return false;
    }
    let args = &params.args;
    match agg.func.name() {
        "count" if params.distinct => args.iter().all(|a| equals_alike(dialect, a, schema)),
        "count" => args.iter().all(|a| dialect.supports_expr(a, schema)),
        "min" | "max" => args.iter().all(|a| orders_alike(dialect, a, schema)),
        "sum" if params.distinct => args
            .iter()
            .all(|a| computes_alike(dialect, a, schema) && equals_alike(dialect, a, schema)),
        "sum" => args.iter().all(|a| computes_alike(dialect, a, schema)),
        "avg" if !params.distinct => args.iter().all(|a| {
            a.get_type(schema).is_ok_and(|t| dialect.averages_alike(&t))
                && dialect.supports_expr(a, schema)
        }),
        _ => false,
    }
}

/// The core of [`SqlDialect::supports_window`]: the ranking functions
/// (`row_number`, `rank`, `dense_rank`, `percent_rank`, `cume_dist`,
/// `ntile(n)`), `lag`/`lead` with no default, `first_value`, `last_value`,
/// `nth_value`, and `count`, `sum`, `min`, `max` where
/// [`SqlDialect::supports_aggregate`] accepts them; partitioned by keys
/// that are [`equals_alike`] and ordered by keys that are
/// [`orders_alike`], with NULLs where DataFusion puts them (a source that
/// cannot spell `NULLS FIRST`/`LAST` puts them first ascending, so only
/// such orders, or keys that are never NULL, are accepted); over a frame
/// of `ROWS` with literal offsets or of `RANGE` between unbounded ends and
/// the current row (offsets in `RANGE` compare values, by type rules that
/// differ). No `FILTER`, `DISTINCT` or `IGNORE NULLS`. Every one of these
/// is standard SQL that PostgreSQL, MySQL 8, MariaDB 10.2 and SQLite 3.28
/// compute alike.
pub fn default_supports_window<D: SqlDialect + ?Sized>(
    dialect: &D,
    expr: &Expr,
    schema: &DFSchema,
) -> bool {
    let Expr::WindowFunction(window) = expr else {
        return false;
    };
    let params = &window.params;
    if params.filter.is_some()
        || params.distinct
        || matches!(params.null_treatment, Some(NullTreatment::IgnoreNulls))
    {
        return false;
    }
    let spells_null_order = dialect.unparser().supports_nulls_first_in_sort();
    let keys = params
        .partition_by
        .iter()
        .all(|e| equals_alike(dialect, e, schema))
        && params.order_by.iter().all(|s| {
            orders_alike(dialect, &s.expr, schema)
                && (spells_null_order
                    || s.nulls_first == s.asc
                    || s.expr.nullable(schema).is_ok_and(|n| !n))
        });
    let frame = &params.window_frame;
    let bound = |b: &WindowFrameBound| match b {
        WindowFrameBound::CurrentRow => true,
        WindowFrameBound::Preceding(v) | WindowFrameBound::Following(v) => {
            v.is_null()
                || (frame.units == WindowFrameUnits::Rows
                    && matches!(v, ScalarValue::UInt64(Some(_))))
        }
    };
    let frame = frame.units != WindowFrameUnits::Groups
        && bound(&frame.start_bound)
        && bound(&frame.end_bound);
    let value = |e: &Expr| dialect.supports_expr(e, schema);
    let positive = |e: &Expr, least: i64| match e {
        Expr::Literal(v, _) => {
            v.data_type().is_integer()
                && matches!(v.cast_to(&DataType::Int64), Ok(ScalarValue::Int64(Some(n))) if n >= least)
        }
        _ => false,
    };
    let function = match &window.fun {
        WindowFunctionDefinition::WindowUDF(f) => match (f.name(), params.args.as_slice()) {
            ("row_number" | "rank" | "dense_rank" | "percent_rank" | "cume_dist", []) => true,
            ("ntile", [n]) => positive(n, 1),
            ("lag" | "lead" | "first_value" | "last_value", [x]) => value(x),
            ("lag" | "lead", [x, offset]) => value(x) && positive(offset, 0),
            ("nth_value", [x, n]) => value(x) && positive(n, 1),
            _ => false,
        },
        WindowFunctionDefinition::AggregateUDF(f) => {
            matches!(f.name(), "count" | "sum" | "min" | "max")
                && dialect.supports_aggregate(
                    &Expr::AggregateFunction(AggregateFunction::new_udf(
                        Arc::clone(f),
                        params.args.clone(),
                        false,
                        None,
                        vec![],
                        None,
                    )),
                    schema,
                )
        }
    };
    keys && frame && function
}

/// The default of [`SqlDialect::arithmetic_alike`], for dialects that
/// narrow it: signed integers and `Decimal128`.
pub fn default_arithmetic_alike(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Decimal128(_, _)
    )
}

/// Whether `e` has a type whose arithmetic the source computes as
/// DataFusion does ([`SqlDialect::arithmetic_alike`]) and the source
/// computes `e` itself.
fn computes_alike<D: SqlDialect + ?Sized>(dialect: &D, e: &Expr, schema: &DFSchema) -> bool {
    e.get_type(schema)
        .is_ok_and(|t| dialect.arithmetic_alike(&t))
        && dialect.supports_expr(e, schema)
}

/// The number of decimal digits every value of integer type `t` fits in.
fn integer_digits(t: &DataType) -> Option<u8> {
    Some(match t {
        DataType::Int8 => 3,
        DataType::Int16 => 5,
        DataType::Int32 => 10,
        DataType::Int64 => 19,
        _ => return None,
    })
}

/// Whether casting `from` to `to` keeps every value unchanged: a signed
/// integer to a wider one or to a decimal with room for all its digits,
/// a decimal to one with at least as many integer and fractional digits,
/// a type to itself.
pub fn widening_cast(from: &DataType, to: &DataType) -> bool {
    if from == to {
        return true;
    }
    match (from, to) {
        (DataType::Decimal128(p1, s1), DataType::Decimal128(p2, s2)) => {
            s2 >= s1 && i16::from(*p2) - i16::from(*s2) >= i16::from(*p1) - i16::from(*s1)
        }
        (_, DataType::Decimal128(p, s)) => integer_digits(from)
            .is_some_and(|d| *s >= 0 && i16::from(*p) - i16::from(*s) >= i16::from(d)),
        _ => match (integer_digits(from), integer_digits(to)) {
            (Some(a), Some(b)) => a <= b,
            _ => false,
        },
    }
}

/// Whether the source computes `e` and decides equality of its values as
/// DataFusion does (for grouping, joins, `DISTINCT`).
pub fn equals_alike<D: SqlDialect + ?Sized>(dialect: &D, e: &Expr, schema: &DFSchema) -> bool {
    dialect.keys_alike(e, schema)
        && dialect.supports_expr(e, schema)
        && dialect.supports_expr(&e.clone().eq(e.clone()), schema)
}

/// Whether the source computes `e` and orders its values as DataFusion
/// does (for sorting, `min`, `max`).
pub fn orders_alike<D: SqlDialect + ?Sized>(dialect: &D, e: &Expr, schema: &DFSchema) -> bool {
    dialect.keys_alike(e, schema)
        && dialect.supports_expr(e, schema)
        && dialect.supports_expr(&e.clone().lt(e.clone()), schema)
}

/// Whether `expr` compares strings anywhere: `=`, `<`, ... with a string
/// operand, `BETWEEN` or `IN` over strings. For dialects whose string
/// comparisons differ from DataFusion's bytewise ones; `ordering_only`
/// limits it to `<`, `<=`, `>`, `>=` and `BETWEEN` (for sources whose
/// equality is exact but whose order follows a collation).
pub fn compares_strings(expr: &Expr, schema: &DFSchema, ordering_only: bool) -> bool {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let ordering = matches!(
                op,
                Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq
            );
            let equality = matches!(op, Operator::Eq | Operator::NotEq);
            ((ordering || (equality && !ordering_only)) && is_string(left, schema))
                || compares_strings(left, schema, ordering_only)
                || compares_strings(right, schema, ordering_only)
        }
        Expr::Between(b) => is_string(&b.expr, schema),
        Expr::InList(list) => !ordering_only && is_string(&list.expr, schema),
        Expr::Not(e) | Expr::IsNull(e) | Expr::IsNotNull(e) => {
            compares_strings(e, schema, ordering_only)
        }
        _ => false,
    }
}

/// `a, b, c`, each quoted for `dialect`.
pub fn quoted_list<D: SqlDialect + ?Sized>(dialect: &D, names: &[String]) -> Option<String> {
    let quoted: Option<Vec<String>> = names.iter().map(|n| dialect.quoted(n)).collect();
    quoted.map(|q| q.join(", "))
}

/// A name for an index on `columns` of `table`: `table_a_b_idx`, cut to
/// the 63 bytes PostgreSQL keeps (MySQL keeps 64).
pub fn index_name(table: &str, columns: &[String]) -> String {
    let mut name = format!("{table}_{}_idx", columns.join("_"));
    if name.len() > 63 {
        let mut end = 63;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_are_cut_to_63_bytes_on_a_character_boundary() {
        assert_eq!(index_name("t", &["a".into(), "b".into()]), "t_a_b_idx");
        // 'é' is two bytes: the cut at byte 63 would split the 32nd, so
        // the name keeps 31 of them (62 bytes).
        let long = "é".repeat(40);
        let name = index_name(&long, &["k".into()]);
        assert!(name.len() <= 63, "{name}");
        assert!(long.starts_with(&name), "{name}");
        assert_eq!(name.chars().count(), 31);
    }
}
