//! MySQL and MariaDB types mapped to Arrow, and values decoded into them.
//!
//! # The rule
//!
//! | MySQL / MariaDB                            | Arrow                         |
//! |--------------------------------------------|-------------------------------|
//! | `tinyint(1)`, `boolean`                    | `Boolean` (0 or 1; any other value is an error) |
//! | `tinyint`, `smallint`, `mediumint`, `int`, `bigint` | `Int8`, `Int16`, `Int32`, `Int32`, `Int64` |
//! | the same, `unsigned`                       | `UInt8`, `UInt16`, `UInt32`, `UInt32`, `UInt64` |
//! | `decimal(p,s)`, p ≤ 38                     | `Decimal128(p,s)`             |
//! | `decimal(p,s)`, p > 38                     | `Utf8` (its exact text)       |
//! | `float`, `double`                          | `Float32`, `Float64`          |
//! | `char`, `varchar`, `*text`, `enum`, `set`, `json` | `Utf8` (a `set` as `a,b`; `char` without its padding) |
//! | `binary`, `varbinary`, `*blob`             | `Binary`                      |
//! | `date`                                     | `Date32`                      |
//! | `datetime(fsp)`                            | `Timestamp(µs)`               |
//! | `timestamp(fsp)`                           | `Timestamp(µs, "UTC")` (sessions run with `time_zone = '+00:00'`) |
//! | `time(fsp)`                                | `Duration(µs)` (MySQL times span ±838 hours) |
//! | `year`                                     | `Int16`                       |
//! | `bit(n)`                                   | `UInt64`                      |
//! | anything else (spatial types, …)           | `Utf8` of the raw bytes, or an error if they are not UTF-8 |
//!
//! Zero dates: `0000-00-00`, and dates or datetimes with a zero month or
//! day (which MySQL accepts in some SQL modes) are read as NULL, the
//! convention of MySQL's own connectors (`zeroDateTimeBehavior=convertToNull`).
//! Any other value that does not fit its column is an error naming the
//! column, the row and the value.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    DurationMicrosecondBuilder, Float32Builder, Float64Builder, Int16Builder, Int32Builder,
    Int64Builder, Int8Builder, StringBuilder, TimestampMicrosecondBuilder, UInt16Builder,
    UInt32Builder, UInt64Builder, UInt8Builder,
};
use arrow::compute::kernels::cast_utils::parse_decimal;
use arrow::datatypes::{DataType, Decimal128Type, TimeUnit};
use chrono::{Datelike, NaiveDate};
use mysql_async::Value;

use crate::error::{ConnectorError, Result};

/// The Arrow type of a column from `information_schema.COLUMNS`:
/// `DATA_TYPE`, `COLUMN_TYPE`, `NUMERIC_PRECISION`, `NUMERIC_SCALE`.
pub fn arrow_type(
    data_type: &str,
    column_type: &str,
    precision: Option<u64>,
    scale: Option<u64>,
) -> DataType {
    let unsigned = column_type.to_ascii_lowercase().contains("unsigned");
    match data_type.to_ascii_lowercase().as_str() {
        "tinyint" if column_type.to_ascii_lowercase().starts_with("tinyint(1)") && !unsigned => {
            DataType::Boolean
        }
        "bool" | "boolean" => DataType::Boolean,
        "tinyint" if unsigned => DataType::UInt8,
        "tinyint" => DataType::Int8,
        "smallint" if unsigned => DataType::UInt16,
        "smallint" => DataType::Int16,
        "mediumint" | "int" | "integer" if unsigned => DataType::UInt32,
        "mediumint" | "int" | "integer" => DataType::Int32,
        "bigint" if unsigned => DataType::UInt64,
        "bigint" => DataType::Int64,
        "decimal" | "numeric" => match (
            precision.and_then(|p| u8::try_from(p).ok()),
            scale.and_then(|s| i8::try_from(s).ok()),
        ) {
            (Some(p), Some(s)) if p <= 38 => DataType::Decimal128(p, s),
            _ => DataType::Utf8,
        },
        "float" => DataType::Float32,
        "double" | "real" => DataType::Float64,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
            DataType::Binary
        }
        "date" => DataType::Date32,
        "datetime" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        "time" => DataType::Duration(TimeUnit::Microsecond),
        "year" => DataType::Int16,
        "bit" => DataType::UInt64,
        _ => DataType::Utf8,
    }
}

/// One column of a result being filled from MySQL values.
pub(crate) struct ColumnReader {
    name: String,
    builder: Builder,
}

enum Builder {
    Boolean(BooleanBuilder),
    Int8(Int8Builder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    UInt8(UInt8Builder),
    UInt16(UInt16Builder),
    UInt32(UInt32Builder),
    UInt64(UInt64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal(Decimal128Builder, u8, i8),
    Utf8(StringBuilder),
    Binary(BinaryBuilder),
    Date32(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Duration(DurationMicrosecondBuilder),
}

const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

impl ColumnReader {
    pub(crate) fn try_new(name: &str, data_type: &DataType, capacity: usize) -> Result<Self> {
        let builder = match data_type {
            DataType::Boolean => Builder::Boolean(BooleanBuilder::with_capacity(capacity)),
            DataType::Int8 => Builder::Int8(Int8Builder::with_capacity(capacity)),
            DataType::Int16 => Builder::Int16(Int16Builder::with_capacity(capacity)),
            DataType::Int32 => Builder::Int32(Int32Builder::with_capacity(capacity)),
            DataType::Int64 => Builder::Int64(Int64Builder::with_capacity(capacity)),
            DataType::UInt8 => Builder::UInt8(UInt8Builder::with_capacity(capacity)),
            DataType::UInt16 => Builder::UInt16(UInt16Builder::with_capacity(capacity)),
            DataType::UInt32 => Builder::UInt32(UInt32Builder::with_capacity(capacity)),
            DataType::UInt64 => Builder::UInt64(UInt64Builder::with_capacity(capacity)),
            DataType::Float32 => Builder::Float32(Float32Builder::with_capacity(capacity)),
            DataType::Float64 => Builder::Float64(Float64Builder::with_capacity(capacity)),
            DataType::Decimal128(p, s) => {
                Builder::Decimal(Decimal128Builder::with_capacity(capacity).with_precision_and_scale(*p, *s)?, *p, *s)
            }
            DataType::Utf8 => Builder::Utf8(StringBuilder::with_capacity(capacity, capacity * 16)),
            DataType::Binary => Builder::Binary(BinaryBuilder::with_capacity(capacity, capacity * 16)),
            DataType::Date32 => Builder::Date32(Date32Builder::with_capacity(capacity)),
            DataType::Timestamp(TimeUnit::Microsecond, tz) => {
                Builder::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone_opt(tz.clone()))
            }
            DataType::Duration(TimeUnit::Microsecond) => Builder::Duration(DurationMicrosecondBuilder::with_capacity(capacity)),
            other => {
                return Err(ConnectorError::Unsupported {
                    target: "mysql".into(),
                    message: format!("column `{name}` was planned as {other}, which MySQL values cannot be read into"),
                })
            }
        };
        Ok(Self {
            name: name.to_string(),
            builder,
        })
    }

    /// Appends one value; `row` (from 1) is for error messages.
    pub(crate) fn append(&mut self, value: &Value, row: u64) -> Result<()> {
        if let Value::NULL = value {
            self.append_null();
            return Ok(());
        }
        macro_rules! int {
            ($b:expr) => {
                match value {
                    Value::Int(i) => (*i).try_into().ok().map(|v| $b.append_value(v)),
                    Value::UInt(u) => (*u).try_into().ok().map(|v| $b.append_value(v)),
                    Value::Bytes(t) => std::str::from_utf8(t)
                        .ok()
                        .and_then(|s| s.trim().parse().ok())
                        .map(|v| $b.append_value(v)),
                    _ => None,
                }
            };
        }
        let fits = match &mut self.builder {
            Builder::Boolean(b) => match value {
                Value::Int(0) | Value::UInt(0) => {
                    b.append_value(false);
                    Some(())
                }
                Value::Int(1) | Value::UInt(1) => {
                    b.append_value(true);
                    Some(())
                }
                _ => None,
            },
            Builder::Int8(b) => int!(b),
            Builder::Int16(b) => int!(b),
            Builder::Int32(b) => int!(b),
            Builder::Int64(b) => int!(b),
            Builder::UInt8(b) => int!(b),
            Builder::UInt16(b) => int!(b),
            Builder::UInt32(b) => int!(b),
            Builder::UInt64(b) => match value {
                // BIT(n) arrives as big-endian bytes.
                Value::Bytes(bits)
                    if bits.len() <= 8
                        && std::str::from_utf8(bits)
                            .map_or(true, |s| s.parse::<u64>().is_err()) =>
                {
                    b.append_value(bits.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)));
                    Some(())
                }
                _ => int!(b),
            },
            Builder::Float32(b) => match value {
                Value::Float(f) => {
                    b.append_value(*f);
                    Some(())
                }
                _ => None,
            },
            Builder::Float64(b) => match value {
                Value::Double(d) => {
                    b.append_value(*d);
                    Some(())
                }
                Value::Float(f) => {
                    b.append_value(f64::from(*f));
                    Some(())
                }
                Value::Bytes(t) => std::str::from_utf8(t)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .map(|v| b.append_value(v)),
                _ => None,
            },
            Builder::Decimal(b, p, s) => match value {
                Value::Bytes(t) => std::str::from_utf8(t)
                    .ok()
                    .and_then(|text| {
                        parse_decimal::<Decimal128Type>(text, *p, *s)
                            .ok()
                            .filter(|_| fraction_fits(text, *s))
                    })
                    .map(|v| b.append_value(v)),
                _ => None,
            },
            Builder::Utf8(b) => match value {
                Value::Bytes(t) => std::str::from_utf8(t).ok().map(|s| b.append_value(s)),
                Value::Int(i) => {
                    b.append_value(i.to_string());
                    Some(())
                }
                Value::UInt(u) => {
                    b.append_value(u.to_string());
                    Some(())
                }
                _ => None,
            },
            Builder::Binary(b) => match value {
                Value::Bytes(t) => {
                    b.append_value(t);
                    Some(())
                }
                _ => None,
            },
            Builder::Date32(b) => match value {
                Value::Date(y, m, d, ..) => match date(*y, *m, *d) {
                    Ok(Some(day)) => {
                        b.append_value(day.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE);
                        Some(())
                    }
                    Ok(None) => {
                        b.append_null();
                        Some(())
                    }
                    Err(()) => None,
                },
                _ => None,
            },
            Builder::Timestamp(b) => match value {
                Value::Date(y, m, d, h, i, s, us) => match date(*y, *m, *d) {
                    Ok(Some(day)) => day
                        .and_hms_micro_opt(u32::from(*h), u32::from(*i), u32::from(*s), *us)
                        .map(|t| b.append_value(t.and_utc().timestamp_micros())),
                    Ok(None) => {
                        b.append_null();
                        Some(())
                    }
                    Err(()) => None,
                },
                _ => None,
            },
            Builder::Duration(b) => match value {
                Value::Time(negative, days, h, m, s, us) => {
                    let micros = ((i64::from(*days) * 24 + i64::from(*h)) * 3600
                        + i64::from(*m) * 60
                        + i64::from(*s))
                        * 1_000_000
                        + i64::from(*us);
                    {
                        b.append_value(if *negative { -micros } else { micros });
                        Some(())
                    }
                }
                _ => None,
            },
        };
        match fits {
            Some(()) => Ok(()),
            None => Err(ConnectorError::Conversion {
                column: self.name.clone(),
                row,
                value: describe(value),
                expected: self.expected(),
            }),
        }
    }

    fn append_null(&mut self) {
        match &mut self.builder {
            Builder::Boolean(b) => b.append_null(),
            Builder::Int8(b) => b.append_null(),
            Builder::Int16(b) => b.append_null(),
            Builder::Int32(b) => b.append_null(),
            Builder::Int64(b) => b.append_null(),
            Builder::UInt8(b) => b.append_null(),
            Builder::UInt16(b) => b.append_null(),
            Builder::UInt32(b) => b.append_null(),
            Builder::UInt64(b) => b.append_null(),
            Builder::Float32(b) => b.append_null(),
            Builder::Float64(b) => b.append_null(),
            Builder::Decimal(b, ..) => b.append_null(),
            Builder::Utf8(b) => b.append_null(),
            Builder::Binary(b) => b.append_null(),
            Builder::Date32(b) => b.append_null(),
            Builder::Timestamp(b) => b.append_null(),
            Builder::Duration(b) => b.append_null(),
        }
    }

    pub(crate) fn finish(&mut self) -> ArrayRef {
        match &mut self.builder {
            Builder::Boolean(b) => Arc::new(b.finish()),
            Builder::Int8(b) => Arc::new(b.finish()),
            Builder::Int16(b) => Arc::new(b.finish()),
            Builder::Int32(b) => Arc::new(b.finish()),
            Builder::Int64(b) => Arc::new(b.finish()),
            Builder::UInt8(b) => Arc::new(b.finish()),
            Builder::UInt16(b) => Arc::new(b.finish()),
            Builder::UInt32(b) => Arc::new(b.finish()),
            Builder::UInt64(b) => Arc::new(b.finish()),
            Builder::Float32(b) => Arc::new(b.finish()),
            Builder::Float64(b) => Arc::new(b.finish()),
            Builder::Decimal(b, ..) => Arc::new(b.finish()),
            Builder::Utf8(b) => Arc::new(b.finish()),
            Builder::Binary(b) => Arc::new(b.finish()),
            Builder::Date32(b) => Arc::new(b.finish()),
            Builder::Timestamp(b) => Arc::new(b.finish()),
            Builder::Duration(b) => Arc::new(b.finish()),
        }
    }

    fn expected(&self) -> String {
        match &self.builder {
            Builder::Boolean(_) => "Boolean (tinyint(1) holding 0 or 1; declare the column tinyint(4) for other values)".into(),
            Builder::Decimal(_, p, s) => format!("Decimal128({p}, {s})"),
            Builder::Utf8(_) => "Utf8 (valid UTF-8)".into(),
            Builder::Date32(_) | Builder::Timestamp(_) => "a valid date".into(),
            Builder::Int8(_) => "Int8".into(),
            Builder::Int16(_) => "Int16".into(),
            Builder::Int32(_) => "Int32".into(),
            Builder::Int64(_) => "Int64".into(),
            Builder::UInt8(_) => "UInt8".into(),
            Builder::UInt16(_) => "UInt16".into(),
            Builder::UInt32(_) => "UInt32".into(),
            Builder::UInt64(_) => "UInt64".into(),
            Builder::Float32(_) => "Float32".into(),
            Builder::Float64(_) => "Float64".into(),
            Builder::Binary(_) => "Binary".into(),
            Builder::Duration(_) => "Duration".into(),
        }
    }
}

/// A calendar date; `Ok(None)` for MySQL's zero dates (read as NULL),
/// `Err` for an impossible date.
fn date(y: u16, m: u8, d: u8) -> Result<Option<NaiveDate>, ()> {
    // 0000-00-00 and dates with a zero month or day.
    if m == 0 || d == 0 {
        return Ok(None);
    }
    NaiveDate::from_ymd_opt(i32::from(y), u32::from(m), u32::from(d))
        .map(Some)
        .ok_or(())
}

/// Whether a decimal text has at most `scale` fractional digits (so that
/// parsing it does not round).
fn fraction_fits(text: &str, scale: i8) -> bool {
    let digits = text
        .split_once('.')
        .map_or(0, |(_, f)| f.trim_end_matches('0').len());
    i8::try_from(digits).is_ok_and(|d| d <= scale)
}

fn describe(value: &Value) -> String {
    match value {
        Value::Bytes(b) => {
            let s = String::from_utf8_lossy(b);
            let short: String = s.chars().take(40).collect();
            format!("'{short}'")
        }
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_types_follow_the_rule() {
        assert_eq!(
            arrow_type("tinyint", "tinyint(1)", Some(3), Some(0)),
            DataType::Boolean
        );
        assert_eq!(
            arrow_type("tinyint", "tinyint(4)", Some(3), Some(0)),
            DataType::Int8
        );
        assert_eq!(
            arrow_type("bigint", "bigint(20) unsigned", Some(20), Some(0)),
            DataType::UInt64
        );
        assert_eq!(
            arrow_type("decimal", "decimal(15,2)", Some(15), Some(2)),
            DataType::Decimal128(15, 2)
        );
        assert_eq!(
            arrow_type("decimal", "decimal(65,30)", Some(65), Some(30)),
            DataType::Utf8
        );
        assert_eq!(
            arrow_type("timestamp", "timestamp(6)", None, None),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(
            arrow_type("set", "set('a','b')", None, None),
            DataType::Utf8
        );
    }

    #[test]
    fn zero_dates_are_null_and_bad_values_are_errors() -> Result<()> {
        let mut c = ColumnReader::try_new("d", &DataType::Date32, 2)?;
        c.append(&Value::Date(0, 0, 0, 0, 0, 0, 0), 1)?;
        c.append(&Value::Date(2024, 2, 29, 0, 0, 0, 0), 2)?;
        let a = c.finish();
        assert!(a.is_null(0) && !a.is_null(1));
        let mut c = ColumnReader::try_new("flag", &DataType::Boolean, 1)?;
        let e = c
            .append(&Value::Int(2), 3)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("column `flag`") && e.contains("row 3"), "{e}");
        let mut c = ColumnReader::try_new("p", &DataType::Decimal128(5, 2), 1)?;
        assert!(
            c.append(&Value::Bytes(b"1.234".to_vec()), 1).is_err(),
            "would round"
        );
        Ok(())
    }
}
