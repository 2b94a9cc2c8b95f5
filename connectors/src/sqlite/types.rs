//! SQLite's declared types and stored values mapped to Arrow.
//!
//! # The rule
//!
//! SQLite stores each value with its own storage class (NULL, INTEGER, REAL,
//! TEXT, BLOB); a column only has a *declared type*, which gives it an
//! affinity. Spar maps the declared type to one Arrow type, in this order
//! (the first that matches, on the upper-cased declared type):
//!
//! | declared type                        | Arrow type              | values accepted                                   |
//! |--------------------------------------|-------------------------|---------------------------------------------------|
//! | `BOOL`, `BOOLEAN`                    | `Boolean`               | INTEGER 0 or 1                                    |
//! | contains `INT`                       | `Int64`                 | INTEGER; REAL with no fraction; TEXT of an integer |
//! | contains `CHAR`, `CLOB` or `TEXT`    | `Utf8`                  | TEXT; INTEGER and REAL as their decimal text       |
//! | contains `BLOB`                      | `Binary`                | BLOB; TEXT as its UTF-8 bytes                     |
//! | contains `REAL`, `FLOA` or `DOUB`    | `Float64`               | REAL; INTEGER; TEXT of a number                   |
//! | `DECIMAL(p,s)`, `NUMERIC(p,s)`       | `Decimal128(p,s)`, p≤38 | INTEGER; TEXT of a decimal; REAL rounded to `s` places |
//! | `DATE`                               | `Date32`                | every time value SQLite's `date()` reads (below)  |
//! | `DATETIME`, `TIMESTAMP`              | `Timestamp(µs)`         | every time value SQLite's `datetime()` reads      |
//! | no declared type                     | `Utf8`                  | as for `TEXT`                                     |
//! | anything else (NUMERIC affinity)     | `Float64`               | as for `REAL`                                     |
//!
//! Time values are read as SQLite's own date and time functions read them
//! (with the `auto` modifier for numbers): dates, times with or without
//! seconds and fractions, a `T` or spaces between, `Z` or a `±HH:MM`
//! offset (converted to UTC), Julian day numbers and unix times. See
//! `time.rs` for the whole rule; a `DATE` column gets the day of that
//! instant.
//!
//! NULL is accepted by every column. A value that does not fit its column
//! (a BLOB in an INTEGER column, `'abc'` in a DATE column, a REAL with a
//! fraction in an INTEGER column, a decimal too wide for its precision) is
//! not changed or dropped: reading it fails with
//! [`ConnectorError::Conversion`], naming the column, the row and the value.
//! A REAL read into `DECIMAL(p,s)` is rounded half away from zero to `s`
//! places; SQLite itself stores such columns as REAL, so this recovers the
//! decimal that was written whenever it had at most 15 significant digits.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder,
    Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder, UInt64Builder,
};
use arrow::compute::kernels::cast_utils::parse_decimal;
use arrow::datatypes::{DataType, Decimal128Type, TimeUnit};
use rusqlite::types::ValueRef;

use crate::error::{ConnectorError, Result};

/// The Arrow type for a column with SQLite declared type `declared`, by the
/// rule in the module documentation.
pub fn arrow_type(declared: &str) -> DataType {
    let t = declared.trim().to_ascii_uppercase();
    let base = t.split('(').next().unwrap_or("").trim();
    if base == "BOOL" || base == "BOOLEAN" {
        DataType::Boolean
    } else if t.contains("INT") {
        DataType::Int64
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") || t.is_empty() {
        DataType::Utf8
    } else if t.contains("BLOB") {
        DataType::Binary
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        DataType::Float64
    } else if base == "DECIMAL" || base == "NUMERIC" {
        decimal_args(&t).map_or(DataType::Float64, |(p, s)| DataType::Decimal128(p, s))
    } else if base == "DATE" {
        DataType::Date32
    } else if base == "DATETIME" || base == "TIMESTAMP" {
        DataType::Timestamp(TimeUnit::Microsecond, None)
    } else {
        DataType::Float64
    }
}

/// `(p,s)` of `DECIMAL(p,s)` / `DECIMAL(p)`, when it fits Decimal128.
fn decimal_args(t: &str) -> Option<(u8, i8)> {
    let inner = t.split_once('(')?.1.split_once(')')?.0;
    let mut parts = inner.split(',').map(str::trim);
    let p: u8 = parts.next()?.parse().ok()?;
    let s: i8 = parts.next().map_or(Some(0), |s| s.parse().ok())?;
    (1..=38).contains(&p).then_some(())?;
    (0..=p as i8).contains(&s).then_some((p, s))
}

/// One column being filled from SQLite values.
pub(crate) struct ColumnReader {
    name: String,
    builder: Builder,
}

enum Builder {
    Boolean(BooleanBuilder),
    Int64(Int64Builder),
    /// A 32-bit integer (a computed column DataFusion types so, such as
    /// `CAST(length(s) AS INTEGER)`), range-checked.
    Int32(Int32Builder),
    /// A non-negative integer (a window function's `row_number()`).
    UInt64(UInt64Builder),
    Float64(Float64Builder),
    Utf8(StringBuilder),
    Binary(BinaryBuilder),
    Decimal {
        builder: Decimal128Builder,
        precision: u8,
        scale: i8,
    },
    Date32(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
}

impl ColumnReader {
    /// A reader for a column of Arrow type `data_type`, or an error if the
    /// type is not one the SQLite mapping produces.
    pub(crate) fn try_new(name: &str, data_type: &DataType, capacity: usize) -> Result<Self> {
        let builder = match data_type {
            DataType::Boolean => Builder::Boolean(BooleanBuilder::with_capacity(capacity)),
            DataType::Int64 => Builder::Int64(Int64Builder::with_capacity(capacity)),
            DataType::Int32 => Builder::Int32(Int32Builder::with_capacity(capacity)),
            DataType::UInt64 => Builder::UInt64(UInt64Builder::with_capacity(capacity)),
            DataType::Float64 => Builder::Float64(Float64Builder::with_capacity(capacity)),
            DataType::Utf8 => Builder::Utf8(StringBuilder::with_capacity(capacity, capacity * 16)),
            DataType::Binary => Builder::Binary(BinaryBuilder::with_capacity(capacity, capacity * 16)),
            DataType::Decimal128(p, s) => Builder::Decimal {
                builder: Decimal128Builder::with_capacity(capacity)
                    .with_precision_and_scale(*p, *s)?,
                precision: *p,
                scale: *s,
            },
            DataType::Date32 => Builder::Date32(Date32Builder::with_capacity(capacity)),
            DataType::Timestamp(TimeUnit::Microsecond, None) => {
                Builder::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity))
            }
            other => {
                return Err(ConnectorError::Unsupported {
                    target: "sqlite".into(),
                    message: format!(
                        "column `{name}` was planned as {other}, which SQLite values cannot be read into"
                    ),
                })
            }
        };
        Ok(Self {
            name: name.to_string(),
            builder,
        })
    }

    /// Appends one value; `row` (from 1) is only for error messages.
    pub(crate) fn append(&mut self, value: ValueRef<'_>, row: u64) -> Result<()> {
        if let ValueRef::Null = value {
            self.append_null();
            return Ok(());
        }
        let fits = match &mut self.builder {
            Builder::Boolean(b) => match value {
                ValueRef::Integer(i @ (0 | 1)) => append_bool(b, i == 1),
                _ => false,
            },
            Builder::Int64(b) => as_i64(value).is_some_and(|v| append(b, v)),
            Builder::Int32(b) => as_i64(value)
                .and_then(|v| i32::try_from(v).ok())
                .is_some_and(|v| append(b, v)),
            Builder::UInt64(b) => as_i64(value)
                .and_then(|v| u64::try_from(v).ok())
                .is_some_and(|v| append(b, v)),
            Builder::Float64(b) => as_f64(value).is_some_and(|v| append(b, v)),
            Builder::Utf8(b) => match value {
                ValueRef::Text(t) => std::str::from_utf8(t).is_ok_and(|s| append_str(b, s)),
                ValueRef::Integer(i) => append_str(b, &i.to_string()),
                ValueRef::Real(f) => append_str(b, &f.to_string()),
                _ => false,
            },
            Builder::Binary(b) => match value {
                ValueRef::Blob(v) | ValueRef::Text(v) => {
                    b.append_value(v);
                    true
                }
                _ => false,
            },
            Builder::Decimal {
                builder,
                precision,
                scale,
            } => as_decimal(value, *precision, *scale).is_some_and(|v| append(builder, v)),
            Builder::Date32(b) => super::time::date_value(value).is_some_and(|d| append(b, d)),
            Builder::Timestamp(b) => super::time::time_value(value).is_some_and(|t| append(b, t)),
        };
        if fits {
            Ok(())
        } else {
            Err(self.conversion_error(value, row))
        }
    }

    fn append_null(&mut self) {
        match &mut self.builder {
            Builder::Boolean(b) => b.append_null(),
            Builder::Int64(b) => b.append_null(),
            Builder::Int32(b) => b.append_null(),
            Builder::UInt64(b) => b.append_null(),
            Builder::Float64(b) => b.append_null(),
            Builder::Utf8(b) => b.append_null(),
            Builder::Binary(b) => b.append_null(),
            Builder::Decimal { builder, .. } => builder.append_null(),
            Builder::Date32(b) => b.append_null(),
            Builder::Timestamp(b) => b.append_null(),
        }
    }

    /// The values appended since the last call, as one Arrow array.
    pub(crate) fn finish(&mut self) -> ArrayRef {
        match &mut self.builder {
            Builder::Boolean(b) => Arc::new(b.finish()),
            Builder::Int64(b) => Arc::new(b.finish()),
            Builder::Int32(b) => Arc::new(b.finish()),
            Builder::UInt64(b) => Arc::new(b.finish()),
            Builder::Float64(b) => Arc::new(b.finish()),
            Builder::Utf8(b) => Arc::new(b.finish()),
            Builder::Binary(b) => Arc::new(b.finish()),
            Builder::Decimal { builder, .. } => Arc::new(builder.finish()),
            Builder::Date32(b) => Arc::new(b.finish()),
            Builder::Timestamp(b) => Arc::new(b.finish()),
        }
    }

    fn conversion_error(&self, value: ValueRef<'_>, row: u64) -> ConnectorError {
        let expected = match &self.builder {
            Builder::Boolean(_) => "Boolean (INTEGER 0 or 1)".to_string(),
            Builder::Int64(_) => "Int64".to_string(),
            Builder::Int32(_) => "Int32".to_string(),
            Builder::UInt64(_) => "UInt64".to_string(),
            Builder::Float64(_) => "Float64".to_string(),
            Builder::Utf8(_) => "Utf8 (valid UTF-8 text)".to_string(),
            Builder::Binary(_) => "Binary".to_string(),
            Builder::Decimal {
                precision, scale, ..
            } => format!("Decimal128({precision}, {scale})"),
            Builder::Date32(_) => "Date32 (a time value SQLite's date() reads)".to_string(),
            Builder::Timestamp(_) => {
                "Timestamp (a time value SQLite's datetime() reads)".to_string()
            }
        };
        ConnectorError::Conversion {
            column: self.name.clone(),
            row,
            value: describe(value),
            expected,
        }
    }
}

/// Appends a value to a primitive builder; `true`, for use in `is_some_and`.
fn append<T: arrow::datatypes::ArrowPrimitiveType>(
    b: &mut arrow::array::PrimitiveBuilder<T>,
    v: T::Native,
) -> bool {
    b.append_value(v);
    true
}

fn append_bool(b: &mut BooleanBuilder, v: bool) -> bool {
    b.append_value(v);
    true
}

fn append_str(b: &mut StringBuilder, v: &str) -> bool {
    b.append_value(v);
    true
}

fn as_i64(value: ValueRef<'_>) -> Option<i64> {
    match value {
        ValueRef::Integer(i) => Some(i),
        // The range check keeps values that `as` would saturate out.
        ValueRef::Real(f)
            if f.fract() == 0.0
                && (-9.223_372_036_854_775e18..9.223_372_036_854_775e18).contains(&f) =>
        {
            Some(f as i64)
        }
        ValueRef::Text(t) => std::str::from_utf8(t).ok()?.trim().parse().ok(),
        _ => None,
    }
}

fn as_f64(value: ValueRef<'_>) -> Option<f64> {
    match value {
        ValueRef::Integer(i) => Some(i as f64),
        ValueRef::Real(f) => Some(f),
        ValueRef::Text(t) => std::str::from_utf8(t).ok()?.trim().parse().ok(),
        _ => None,
    }
}

fn as_decimal(value: ValueRef<'_>, precision: u8, scale: i8) -> Option<i128> {
    let limit = 10_i128.pow(u32::from(precision));
    let v = match value {
        ValueRef::Integer(i) => i128::from(i).checked_mul(10_i128.pow(scale as u32))?,
        ValueRef::Real(f) => {
            let scaled = (f * 10_f64.powi(i32::from(scale))).round();
            if !scaled.is_finite() || scaled.abs() >= limit as f64 {
                return None;
            }
            scaled as i128
        }
        ValueRef::Text(t) => {
            parse_decimal::<Decimal128Type>(std::str::from_utf8(t).ok()?.trim(), precision, scale)
                .ok()?
        }
        _ => return None,
    };
    (v.abs() < limit).then_some(v)
}

/// A short, printable form of a stored value for error messages.
fn describe(value: ValueRef<'_>) -> String {
    fn shorten(s: &str) -> String {
        match s.char_indices().nth(40) {
            Some((i, _)) => format!("{}…", &s[..i]),
            None => s.to_string(),
        }
    }
    match value {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => format!("INTEGER {i}"),
        ValueRef::Real(f) => format!("REAL {f}"),
        ValueRef::Text(t) => format!("TEXT '{}'", shorten(&String::from_utf8_lossy(t))),
        ValueRef::Blob(b) => format!("BLOB of {} bytes", b.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Date32Type, Decimal128Type, Int64Type};

    #[test]
    fn declared_types_follow_the_rule() {
        assert_eq!(arrow_type("INTEGER"), DataType::Int64);
        assert_eq!(arrow_type("bigint"), DataType::Int64);
        assert_eq!(arrow_type("VARCHAR(25)"), DataType::Utf8);
        assert_eq!(arrow_type(""), DataType::Utf8);
        assert_eq!(arrow_type("BLOB"), DataType::Binary);
        assert_eq!(arrow_type("DOUBLE PRECISION"), DataType::Float64);
        assert_eq!(arrow_type("DECIMAL(15,2)"), DataType::Decimal128(15, 2));
        assert_eq!(arrow_type("numeric(10)"), DataType::Decimal128(10, 0));
        assert_eq!(arrow_type("DECIMAL(50,2)"), DataType::Float64);
        assert_eq!(arrow_type("NUMERIC"), DataType::Float64);
        assert_eq!(arrow_type("DATE"), DataType::Date32);
        assert_eq!(
            arrow_type("DATETIME"),
            DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        assert_eq!(arrow_type("BOOLEAN"), DataType::Boolean);
        // "POINT" contains "INT": SQLite gives it INTEGER affinity too.
        assert_eq!(arrow_type("POINT"), DataType::Int64);
    }

    #[test]
    fn values_convert_exactly() -> Result<()> {
        let mut c = ColumnReader::try_new("d", &DataType::Decimal128(15, 2), 4)?;
        c.append(ValueRef::Real(901.01), 1)?;
        c.append(ValueRef::Integer(-7), 2)?;
        c.append(ValueRef::Text(b"123.45"), 3)?;
        c.append(ValueRef::Null, 4)?;
        let a = c.finish();
        let a = a.as_primitive::<Decimal128Type>();
        assert_eq!(a.values().to_vec()[..3], [90101, -700, 12345]);
        assert!(a.is_null(3));

        let mut c = ColumnReader::try_new("day", &DataType::Date32, 1)?;
        c.append(ValueRef::Text(b"1969-12-31"), 1)?;
        assert_eq!(c.finish().as_primitive::<Date32Type>().value(0), -1);

        let mut c = ColumnReader::try_new("n", &DataType::Int64, 1)?;
        c.append(ValueRef::Real(42.0), 1)?;
        assert_eq!(c.finish().as_primitive::<Int64Type>().value(0), 42);
        Ok(())
    }

    #[test]
    fn misfits_name_column_row_and_value() -> Result<()> {
        let mut c = ColumnReader::try_new("o_orderdate", &DataType::Date32, 1)?;
        let e = c
            .append(ValueRef::Text(b"yesterday"), 7)
            .err()
            .map(|e| e.to_string());
        let msg = e.unwrap_or_default();
        assert!(
            msg.contains("o_orderdate") && msg.contains("row 7") && msg.contains("'yesterday'"),
            "{msg}"
        );

        let mut c = ColumnReader::try_new("qty", &DataType::Int64, 1)?;
        assert!(c.append(ValueRef::Real(1.5), 1).is_err());
        assert!(c.append(ValueRef::Blob(&[1, 2]), 1).is_err());
        let mut c = ColumnReader::try_new("price", &DataType::Decimal128(4, 2), 1)?;
        assert!(
            c.append(ValueRef::Real(123.45), 1).is_err(),
            "exceeds precision 4"
        );
        Ok(())
    }
}
