//! DataFusion's unparser dialects with Spar's own functions spelled in.
//!
//! A dialect's [`crate::SqlDialect::prepare_expr`] may put a call to one of
//! Spar's marker functions into a fragment's expression (such as MySQL's
//! "compare these strings as bytes"); [`WithFunctions`] is the unparser
//! dialect that spells each such call in the source's SQL and leaves
//! everything else to DataFusion's dialect.

use std::sync::Arc;

use arrow::array::timezone::Tz;
use arrow::datatypes::DataType;
use arrow::datatypes::TimeUnit;
use chrono::DateTime;
use datafusion::error::Result;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::{self, BinaryOperator, WindowFrameBound};
use datafusion::sql::unparser::dialect::{
    CharacterLengthStyle, DateFieldExtractStyle, Dialect, DistinctFromStyle, IntervalStyle,
};
use datafusion::sql::unparser::Unparser;

/// Spells a call to one function: its arguments, unparsed with the
/// unparser at hand, go into the source's own syntax.
pub type SpellFn = fn(&Unparser, &[Expr]) -> Result<ast::Expr>;

/// A function DataFusion evaluates as its one argument unchanged (same
/// type, same value): it only marks, in a fragment's expression, how the
/// source must spell that value. Its unparser dialect spells it
/// ([`WithFunctions`]).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Marker {
    name: &'static str,
    signature: Signature,
}

impl Marker {
    /// The marker function `name` as a DataFusion function.
    pub fn udf(name: &'static str) -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(Self {
            name,
            signature: Signature::any(1, Volatility::Immutable),
        }))
    }
}

impl ScalarUDFImpl for Marker {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [t] => Ok(t.clone()),
            _ => datafusion::common::plan_err!("{} takes one argument", self.name),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match <[ColumnarValue; 1]>::try_from(args.args) {
            Ok([value]) => Ok(value),
            Err(_) => datafusion::common::exec_err!("{} takes one argument", self.name),
        }
    }
}

/// A function that only the source computes: it appears in a fragment's
/// SQL (spelled by its name, or by [`WithFunctions`]) and never runs in
/// DataFusion, which would report an error.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SourceOnly {
    name: &'static str,
    signature: Signature,
    return_type: DataType,
}

impl SourceOnly {
    /// The function `name` of `arity` arguments returning `return_type`.
    pub fn udf(name: &'static str, arity: usize, return_type: DataType) -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(Self {
            name,
            signature: Signature::any(arity, Volatility::Immutable),
            return_type,
        }))
    }
}

impl ScalarUDFImpl for SourceOnly {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(self.return_type.clone())
    }

    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> Result<ColumnarValue> {
        datafusion::common::exec_err!(
            "{} is computed only by a source, inside a fragment's SQL",
            self.name
        )
    }
}

/// `udf(e)`, unless `e` is already a call to `udf`.
pub fn mark(udf: &Arc<ScalarUDF>, e: Expr) -> Expr {
    match e {
        Expr::ScalarFunction(f) if f.func.name() == udf.name() => Expr::ScalarFunction(f),
        other => Expr::ScalarFunction(ScalarFunction::new_udf(Arc::clone(udf), vec![other])),
    }
}

/// Name of the marker function around a finite float literal (see
/// [`float_literal`]).
pub const FLOAT: &str = "spar_float";

static FLOAT_UDF: std::sync::LazyLock<Arc<ScalarUDF>> =
    std::sync::LazyLock::new(|| Marker::udf(FLOAT));

/// The value of a `Float64` or `Float32` scalar, as a double.
pub(crate) fn float_value(v: &datafusion::scalar::ScalarValue) -> Option<f64> {
    use datafusion::scalar::ScalarValue;
    match v {
        ScalarValue::Float64(Some(f)) => Some(*f),
        ScalarValue::Float32(Some(f)) => Some(f64::from(*f)),
        _ => None,
    }
}

/// A finite float literal marked so that [`spell_float`] spells it; any
/// other expression as it is. DataFusion's unparser writes a float as its
/// plain decimal digits (`1e300` as 301 digits and `.0`), which a source
/// reads as an exact decimal (MySQL cannot hold that many digits) rather
/// than as a double.
pub fn float_literal(e: Expr) -> Expr {
    match &e {
        Expr::Literal(v, _) if float_value(v).is_some_and(f64::is_finite) => mark(&FLOAT_UDF, e),
        _ => e,
    }
}

/// A marked float literal in scientific notation (`1e300`, `3.14159e0`,
/// a `Float32` as the double it widens to): a double in every SQL
/// dialect, read back as the same value.
pub fn spell_float(_: &Unparser, args: &[Expr]) -> Result<ast::Expr> {
    let value = match args {
        [Expr::Literal(v, _)] => float_value(v),
        _ => None,
    };
    let Some(value) = value else {
        return datafusion::common::internal_err!("{FLOAT} takes one float literal");
    };
    Ok(ast::Expr::value(ast::Value::Number(
        format!("{value:e}"),
        false,
    )))
}

/// DataFusion's unparser dialect `D`, with the functions named in
/// `functions` spelled by their [`SpellFn`], and no window frame for the
/// functions that ignore it. Every other choice is `D`'s.
pub struct WithFunctions<D> {
    /// The dialect that spells everything else.
    pub inner: D,
    /// Function name and how to spell a call to it.
    pub functions: &'static [(&'static str, SpellFn)],
}

/// The window functions whose answer does not depend on the frame.
const IGNORE_FRAMES: &[&str] = &[
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "ntile",
    "lag",
    "lead",
];

impl<D: Dialect> Dialect for WithFunctions<D> {
    fn scalar_function_to_sql_overrides(
        &self,
        unparser: &Unparser,
        func_name: &str,
        args: &[Expr],
    ) -> Result<Option<ast::Expr>> {
        match self.functions.iter().find(|(name, _)| *name == func_name) {
            Some((_, spell)) => spell(unparser, args).map(Some),
            None => self
                .inner
                .scalar_function_to_sql_overrides(unparser, func_name, args),
        }
    }

    fn identifier_quote_style(&self, identifier: &str) -> Option<char> {
        self.inner.identifier_quote_style(identifier)
    }
    fn use_array_keyword_for_array_literals(&self) -> bool {
        self.inner.use_array_keyword_for_array_literals()
    }
    fn supports_nulls_first_in_sort(&self) -> bool {
        self.inner.supports_nulls_first_in_sort()
    }
    fn use_timestamp_for_date64(&self) -> bool {
        self.inner.use_timestamp_for_date64()
    }
    fn interval_style(&self) -> IntervalStyle {
        self.inner.interval_style()
    }
    fn float64_ast_dtype(&self) -> ast::DataType {
        self.inner.float64_ast_dtype()
    }
    fn utf8_cast_dtype(&self) -> ast::DataType {
        self.inner.utf8_cast_dtype()
    }
    fn large_utf8_cast_dtype(&self) -> ast::DataType {
        self.inner.large_utf8_cast_dtype()
    }
    fn date_field_extract_style(&self) -> DateFieldExtractStyle {
        self.inner.date_field_extract_style()
    }
    fn distinct_from_style(&self) -> DistinctFromStyle {
        self.inner.distinct_from_style()
    }
    fn character_length_style(&self) -> CharacterLengthStyle {
        self.inner.character_length_style()
    }
    fn int64_cast_dtype(&self) -> ast::DataType {
        self.inner.int64_cast_dtype()
    }
    fn int8_cast_dtype(&self) -> ast::DataType {
        self.inner.int8_cast_dtype()
    }
    fn int32_cast_dtype(&self) -> ast::DataType {
        self.inner.int32_cast_dtype()
    }
    fn timestamp_cast_dtype(&self, time_unit: &TimeUnit, tz: &Option<Arc<str>>) -> ast::DataType {
        self.inner.timestamp_cast_dtype(time_unit, tz)
    }
    fn date32_cast_dtype(&self) -> ast::DataType {
        self.inner.date32_cast_dtype()
    }
    fn supports_column_alias_in_table_alias(&self) -> bool {
        self.inner.supports_column_alias_in_table_alias()
    }
    fn requires_derived_table_alias(&self) -> bool {
        self.inner.requires_derived_table_alias()
    }
    fn division_operator(&self) -> BinaryOperator {
        self.inner.division_operator()
    }
    fn higher_order_function_to_sql_overrides(
        &self,
        unparser: &Unparser,
        func_name: &str,
        args: &[Expr],
    ) -> Result<Option<ast::Expr>> {
        self.inner
            .higher_order_function_to_sql_overrides(unparser, func_name, args)
    }
    /// No frame for the functions that ignore it (MariaDB refuses one
    /// there).
    fn window_func_support_window_frame(
        &self,
        func_name: &str,
        start_bound: &WindowFrameBound,
        end_bound: &WindowFrameBound,
    ) -> bool {
        !IGNORE_FRAMES.contains(&func_name)
            && self
                .inner
                .window_func_support_window_frame(func_name, start_bound, end_bound)
    }
    fn full_qualified_col(&self) -> bool {
        self.inner.full_qualified_col()
    }
    fn unnest_as_table_factor(&self) -> bool {
        self.inner.unnest_as_table_factor()
    }
    fn unnest_as_lateral_flatten(&self) -> bool {
        self.inner.unnest_as_lateral_flatten()
    }
    fn col_alias_overrides(&self, alias: &str) -> Result<Option<String>> {
        self.inner.col_alias_overrides(alias)
    }
    fn supports_qualify(&self) -> bool {
        self.inner.supports_qualify()
    }
    fn timestamp_with_tz_to_string(&self, dt: DateTime<Tz>, unit: TimeUnit) -> String {
        self.inner.timestamp_with_tz_to_string(dt, unit)
    }
    fn supports_empty_select_list(&self) -> bool {
        self.inner.supports_empty_select_list()
    }
    fn string_literal_to_sql(&self, s: &str) -> Option<ast::Expr> {
        self.inner.string_literal_to_sql(s)
    }
}
