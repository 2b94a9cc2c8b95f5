//! PostgreSQL types mapped to Arrow.
//!
//! # The rule
//!
//! | PostgreSQL                           | Arrow                          | read as |
//! |--------------------------------------|--------------------------------|---------|
//! | `bool`                               | `Boolean`                      | binary  |
//! | `int2`, `int4`, `int8`               | `Int16`, `Int32`, `Int64`      | binary  |
//! | `float4`, `float8`                   | `Float32`, `Float64`           | binary  |
//! | `numeric(p,s)`, p ≤ 38               | `Decimal128(p,s)`              | binary  |
//! | `numeric` without (p,s)              | `Decimal128(38,10)`            | binary  |
//! | `numeric(p,s)`, p > 38               | `Utf8` (its exact text)        | text    |
//! | `text`, `varchar`, `name`            | `Utf8`                         | binary  |
//! | `char(n)`                            | `Utf8`, without the padding    | binary  |
//! | `json`, `jsonb`                      | `Utf8` (the JSON text)         | binary  |
//! | `bytea`                              | `Binary`                       | binary  |
//! | `date`                               | `Date32`                       | binary  |
//! | `time`                               | `Time64(µs)`                   | binary  |
//! | `timestamp`                          | `Timestamp(µs)`                | binary  |
//! | `timestamptz`                        | `Timestamp(µs, "UTC")`         | binary  |
//! | `interval`                           | `Interval(MonthDayNano)`       | binary  |
//! | `uuid`                               | `Utf8` (`8-4-4-4-12` hex)      | binary  |
//! | enum types                           | `Utf8` (the label)             | binary  |
//! | domains                              | as their base type             |         |
//! | one-dimensional arrays of the above  | `List` of the element type     | binary  |
//! | anything else (`citext`, `inet`, geometry, ranges, …) | `Utf8`        | `::text` |
//!
//! Nothing is rounded or truncated: a `numeric` value with more digits than
//! its Arrow decimal holds (only possible for unconstrained `numeric`), an
//! infinite date or timestamp, a `NaN` numeric, or a multi-dimensional
//! array is an error naming the column, the row and the value.

use arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};
use tokio_postgres::types::{Kind, Type};

/// Precision and scale used for `numeric` without a declared (p,s).
pub const UNCONSTRAINED_NUMERIC: (u8, i8) = (38, 10);

/// How a column is read from `COPY ... (FORMAT binary)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// Decoded from PostgreSQL's binary form.
    Binary,
    /// Cast to `text` in the query and read as UTF-8.
    Text,
}

/// The Arrow type of a PostgreSQL type (with its `atttypmod`, -1 when
/// unknown) and how it is read, by the rule in the module documentation.
pub fn arrow_type(ty: &Type, typmod: i32) -> (DataType, Wire) {
    match ty.kind() {
        Kind::Domain(base) => return arrow_type(base, typmod),
        Kind::Enum(_) => return (DataType::Utf8, Wire::Binary),
        Kind::Array(element) => {
            return match arrow_type(element, -1) {
                (inner, Wire::Binary) if !matches!(inner, DataType::List(_)) => (
                    DataType::List(std::sync::Arc::new(Field::new("item", inner, true))),
                    Wire::Binary,
                ),
                _ => (DataType::Utf8, Wire::Text),
            };
        }
        _ => {}
    }
    let binary = |t: DataType| (t, Wire::Binary);
    match *ty {
        Type::BOOL => binary(DataType::Boolean),
        Type::INT2 => binary(DataType::Int16),
        Type::INT4 => binary(DataType::Int32),
        Type::INT8 => binary(DataType::Int64),
        Type::FLOAT4 => binary(DataType::Float32),
        Type::FLOAT8 => binary(DataType::Float64),
        Type::NUMERIC => match numeric_typmod(typmod) {
            Some((p, s)) if p <= 38 => binary(DataType::Decimal128(p, s)),
            Some(_) => (DataType::Utf8, Wire::Text),
            None => binary(DataType::Decimal128(
                UNCONSTRAINED_NUMERIC.0,
                UNCONSTRAINED_NUMERIC.1,
            )),
        },
        Type::TEXT
        | Type::VARCHAR
        | Type::BPCHAR
        | Type::NAME
        | Type::JSON
        | Type::JSONB
        | Type::UUID => binary(DataType::Utf8),
        Type::BYTEA => binary(DataType::Binary),
        Type::DATE => binary(DataType::Date32),
        Type::TIME => binary(DataType::Time64(TimeUnit::Microsecond)),
        Type::TIMESTAMP => binary(DataType::Timestamp(TimeUnit::Microsecond, None)),
        Type::TIMESTAMPTZ => binary(DataType::Timestamp(
            TimeUnit::Microsecond,
            Some("UTC".into()),
        )),
        Type::INTERVAL => binary(DataType::Interval(IntervalUnit::MonthDayNano)),
        _ => (DataType::Utf8, Wire::Text),
    }
}

/// `(precision, scale)` from a `numeric` column's `atttypmod`.
pub fn numeric_typmod(typmod: i32) -> Option<(u8, i8)> {
    if typmod < 4 {
        return None;
    }
    let t = typmod - 4;
    let precision = u8::try_from((t >> 16) & 0xffff).ok()?;
    let scale = i8::try_from(t & 0xffff).ok()?;
    (precision > 0).then_some((precision, scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_typmods_decode() {
        // numeric(15,2) is stored as ((15 << 16) | 2) + 4.
        assert_eq!(numeric_typmod((15 << 16 | 2) + 4), Some((15, 2)));
        assert_eq!(numeric_typmod(-1), None);
        assert_eq!(
            arrow_type(&Type::NUMERIC, (15 << 16 | 2) + 4).0,
            DataType::Decimal128(15, 2)
        );
        assert_eq!(
            arrow_type(&Type::NUMERIC, (50 << 16 | 2) + 4),
            (DataType::Utf8, Wire::Text)
        );
        assert_eq!(
            arrow_type(&Type::NUMERIC, -1).0,
            DataType::Decimal128(38, 10)
        );
    }

    #[test]
    fn arrays_and_fallbacks() {
        let (t, w) = arrow_type(&Type::INT4_ARRAY, -1);
        assert_eq!(w, Wire::Binary);
        assert!(matches!(t, DataType::List(f) if f.data_type() == &DataType::Int32));
        assert_eq!(arrow_type(&Type::INET, -1), (DataType::Utf8, Wire::Text));
        assert_eq!(
            arrow_type(&Type::INET_ARRAY, -1),
            (DataType::Utf8, Wire::Text)
        );
        assert_eq!(
            arrow_type(&Type::TIMESTAMPTZ, -1).0,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
    }
}
