//! Decoding PostgreSQL's binary values into Arrow builders.

use std::sync::Arc;

use arrow::array::NullBufferBuilder;
use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, IntervalMonthDayNanoBuilder,
    ListArray, StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder, UInt64Builder,
};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, FieldRef, IntervalMonthDayNano, TimeUnit};
use tokio_postgres::types::{Kind, Type};

use super::types::Wire;
use crate::error::{ConnectorError, Result};

/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Reads one column of a binary COPY into an Arrow array.
pub(crate) struct ColumnDecoder {
    name: String,
    pg: Type,
    decoder: Decoder,
}

enum Text {
    Plain,
    /// `char(n)`: the value without its trailing spaces, as PostgreSQL's
    /// own cast to `text` gives it.
    Padded,
    Jsonb,
    Uuid,
}

enum Decoder {
    Boolean(BooleanBuilder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    /// A non-negative integer (a window function's `row_number()`,
    /// DataFusion's `UInt64`).
    UInt64(UInt64Builder),
    /// An integral `numeric` (PostgreSQL's `sum(int8)`) read exactly.
    Int64FromNumeric(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    /// A `numeric` (PostgreSQL's `avg` of integers) read as the nearest
    /// `Float64`.
    Float64FromNumeric(Float64Builder),
    Decimal {
        builder: Decimal128Builder,
        precision: u8,
        scale: i8,
    },
    Utf8(StringBuilder, Text),
    Binary(BinaryBuilder),
    Date32(Date32Builder),
    Time64(Time64MicrosecondBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    Interval(IntervalMonthDayNanoBuilder),
    List {
        field: FieldRef,
        offsets: Vec<i32>,
        nulls: NullBufferBuilder,
        element: Box<ColumnDecoder>,
    },
}

fn base(ty: &Type) -> &Type {
    match ty.kind() {
        Kind::Domain(b) => base(b),
        _ => ty,
    }
}

impl ColumnDecoder {
    /// A decoder for column `name` of PostgreSQL type `pg`, read as `wire`,
    /// into Arrow type `target`; an error when the two do not fit.
    pub(crate) fn try_new(
        name: &str,
        pg: &Type,
        wire: Wire,
        target: &DataType,
        capacity: usize,
    ) -> Result<Self> {
        let pg = base(pg).clone();
        let mismatch = || ConnectorError::Unsupported {
            target: "postgres".into(),
            message: format!(
                "column `{name}`: PostgreSQL type {} cannot be read as Arrow {target}",
                pg.name()
            ),
        };
        let is_int = |t: &Type| matches!(*t, Type::INT2 | Type::INT4 | Type::INT8);
        let decoder = match (target, wire) {
            (DataType::Utf8, Wire::Text) => Decoder::Utf8(
                StringBuilder::with_capacity(capacity, capacity * 16),
                Text::Plain,
            ),
            (_, Wire::Text) => return Err(mismatch()),
            (DataType::Boolean, _) if pg == Type::BOOL => {
                Decoder::Boolean(BooleanBuilder::with_capacity(capacity))
            }
            (DataType::Int16, _) if pg == Type::INT2 => {
                Decoder::Int16(Int16Builder::with_capacity(capacity))
            }
            (DataType::Int32, _) if matches!(pg, Type::INT2 | Type::INT4) => {
                Decoder::Int32(Int32Builder::with_capacity(capacity))
            }
            (DataType::Int64, _) if is_int(&pg) => {
                Decoder::Int64(Int64Builder::with_capacity(capacity))
            }
            (DataType::UInt64, _) if is_int(&pg) => {
                Decoder::UInt64(UInt64Builder::with_capacity(capacity))
            }
            (DataType::Int64, _) if pg == Type::NUMERIC => {
                Decoder::Int64FromNumeric(Int64Builder::with_capacity(capacity))
            }
            (DataType::Float32, _) if pg == Type::FLOAT4 => {
                Decoder::Float32(Float32Builder::with_capacity(capacity))
            }
            (DataType::Float64, _) if matches!(pg, Type::FLOAT4 | Type::FLOAT8) => {
                Decoder::Float64(Float64Builder::with_capacity(capacity))
            }
            (DataType::Float64, _) if pg == Type::NUMERIC => {
                Decoder::Float64FromNumeric(Float64Builder::with_capacity(capacity))
            }
            (DataType::Decimal128(p, s), _) if pg == Type::NUMERIC => Decoder::Decimal {
                builder: Decimal128Builder::with_capacity(capacity)
                    .with_precision_and_scale(*p, *s)?,
                precision: *p,
                scale: *s,
            },
            (DataType::Utf8, _) => {
                let flavor = match pg {
                    Type::JSONB => Text::Jsonb,
                    Type::UUID => Text::Uuid,
                    Type::BPCHAR => Text::Padded,
                    Type::TEXT | Type::VARCHAR | Type::NAME | Type::JSON => Text::Plain,
                    _ if matches!(pg.kind(), Kind::Enum(_)) => Text::Plain,
                    _ => return Err(mismatch()),
                };
                Decoder::Utf8(
                    StringBuilder::with_capacity(capacity, capacity * 16),
                    flavor,
                )
            }
            (DataType::Binary, _) if pg == Type::BYTEA => {
                Decoder::Binary(BinaryBuilder::with_capacity(capacity, capacity * 16))
            }
            (DataType::Date32, _) if pg == Type::DATE => {
                Decoder::Date32(Date32Builder::with_capacity(capacity))
            }
            (DataType::Time64(TimeUnit::Microsecond), _) if pg == Type::TIME => {
                Decoder::Time64(Time64MicrosecondBuilder::with_capacity(capacity))
            }
            (DataType::Timestamp(TimeUnit::Microsecond, tz), _)
                if matches!(pg, Type::TIMESTAMP | Type::TIMESTAMPTZ) =>
            {
                let builder = TimestampMicrosecondBuilder::with_capacity(capacity)
                    .with_timezone_opt(tz.clone());
                Decoder::Timestamp(builder)
            }
            (DataType::Interval(arrow::datatypes::IntervalUnit::MonthDayNano), _)
                if pg == Type::INTERVAL =>
            {
                Decoder::Interval(IntervalMonthDayNanoBuilder::with_capacity(capacity))
            }
            (DataType::List(field), _) => {
                let Kind::Array(element) = pg.kind() else {
                    return Err(mismatch());
                };
                let element = ColumnDecoder::try_new(
                    name,
                    element,
                    Wire::Binary,
                    field.data_type(),
                    capacity,
                )?;
                let mut offsets = Vec::with_capacity(capacity + 1);
                offsets.push(0);
                Decoder::List {
                    field: Arc::clone(field),
                    offsets,
                    nulls: NullBufferBuilder::new(capacity),
                    element: Box::new(element),
                }
            }
            _ => return Err(mismatch()),
        };
        Ok(Self {
            name: name.to_string(),
            pg,
            decoder,
        })
    }

    /// Appends one value (`None` is NULL); `row` (from 1) is for errors.
    pub(crate) fn append(&mut self, value: Option<&[u8]>, row: u64) -> Result<()> {
        let Some(v) = value else {
            self.append_null();
            return Ok(());
        };
        let fits = self.append_value(v, row)?;
        if fits {
            Ok(())
        } else {
            Err(self.conversion_error(v, row))
        }
    }

    fn append_value(&mut self, v: &[u8], row: u64) -> Result<bool> {
        Ok(match &mut self.decoder {
            Decoder::Boolean(b) => one(v).map(|x| b.append_value(x != 0)).is_some(),
            Decoder::Int16(b) => int(v)
                .and_then(|x| i16::try_from(x).ok())
                .map(|x| b.append_value(x))
                .is_some(),
            Decoder::Int32(b) => int(v)
                .and_then(|x| i32::try_from(x).ok())
                .map(|x| b.append_value(x))
                .is_some(),
            Decoder::Int64(b) => int(v).map(|x| b.append_value(x)).is_some(),
            Decoder::UInt64(b) => int(v)
                .and_then(|x| u64::try_from(x).ok())
                .map(|x| b.append_value(x))
                .is_some(),
            Decoder::Int64FromNumeric(b) => numeric_to_i128(v, 19, 0)
                .and_then(|x| i64::try_from(x).ok())
                .map(|x| b.append_value(x))
                .is_some(),
            Decoder::Float64FromNumeric(b) => {
                numeric_to_f64(v).map(|x| b.append_value(x)).is_some()
            }
            Decoder::Float32(b) => <[u8; 4]>::try_from(v)
                .map(|x| b.append_value(f32::from_be_bytes(x)))
                .is_ok(),
            Decoder::Float64(b) => match v.len() {
                4 => <[u8; 4]>::try_from(v)
                    .map(|x| b.append_value(f64::from(f32::from_be_bytes(x))))
                    .is_ok(),
                _ => <[u8; 8]>::try_from(v)
                    .map(|x| b.append_value(f64::from_be_bytes(x)))
                    .is_ok(),
            },
            Decoder::Decimal {
                builder,
                precision,
                scale,
            } => numeric_to_i128(v, *precision, *scale)
                .map(|x| builder.append_value(x))
                .is_some(),
            Decoder::Utf8(b, Text::Plain) => {
                std::str::from_utf8(v).map(|s| b.append_value(s)).is_ok()
            }
            Decoder::Utf8(b, Text::Padded) => std::str::from_utf8(v)
                .map(|s| b.append_value(s.trim_end_matches(' ')))
                .is_ok(),
            Decoder::Utf8(b, Text::Jsonb) => v
                .split_first()
                .filter(|(version, _)| **version == 1)
                .and_then(|(_, rest)| std::str::from_utf8(rest).ok())
                .map(|s| b.append_value(s))
                .is_some(),
            Decoder::Utf8(b, Text::Uuid) => <[u8; 16]>::try_from(v)
                .map(|x| b.append_value(format_uuid(&x)))
                .is_ok(),
            Decoder::Binary(b) => {
                b.append_value(v);
                true
            }
            Decoder::Date32(b) => <[u8; 4]>::try_from(v)
                .ok()
                .map(i32::from_be_bytes)
                .filter(|d| *d != i32::MAX && *d != i32::MIN)
                .and_then(|d| d.checked_add(PG_EPOCH_DAYS))
                .map(|d| b.append_value(d))
                .is_some(),
            Decoder::Time64(b) => <[u8; 8]>::try_from(v)
                .map(|x| b.append_value(i64::from_be_bytes(x)))
                .is_ok(),
            Decoder::Timestamp(b) => <[u8; 8]>::try_from(v)
                .ok()
                .map(i64::from_be_bytes)
                .filter(|t| *t != i64::MAX && *t != i64::MIN)
                .and_then(|t| t.checked_add(PG_EPOCH_MICROS))
                .map(|t| b.append_value(t))
                .is_some(),
            Decoder::Interval(b) => match v {
                [m0, m1, m2, m3, m4, m5, m6, m7, d0, d1, d2, d3, o0, o1, o2, o3] => {
                    let micros = i64::from_be_bytes([*m0, *m1, *m2, *m3, *m4, *m5, *m6, *m7]);
                    let days = i32::from_be_bytes([*d0, *d1, *d2, *d3]);
                    let months = i32::from_be_bytes([*o0, *o1, *o2, *o3]);
                    micros
                        .checked_mul(1000)
                        .map(|ns| b.append_value(IntervalMonthDayNano::new(months, days, ns)))
                        .is_some()
                }
                _ => false,
            },
            Decoder::List {
                offsets,
                nulls,
                element,
                ..
            } => {
                let Some(items) = array_elements(v)? else {
                    return Ok(false);
                };
                for item in &items {
                    element.append(*item, row)?;
                }
                let last = offsets.last().copied().unwrap_or(0);
                let len = i32::try_from(items.len()).unwrap_or(i32::MAX);
                offsets.push(last.saturating_add(len));
                nulls.append_non_null();
                true
            }
        })
    }

    fn append_null(&mut self) {
        match &mut self.decoder {
            Decoder::Boolean(b) => b.append_null(),
            Decoder::Int16(b) => b.append_null(),
            Decoder::Int32(b) => b.append_null(),
            Decoder::Int64(b) | Decoder::Int64FromNumeric(b) => b.append_null(),
            Decoder::UInt64(b) => b.append_null(),
            Decoder::Float32(b) => b.append_null(),
            Decoder::Float64(b) | Decoder::Float64FromNumeric(b) => b.append_null(),
            Decoder::Decimal { builder, .. } => builder.append_null(),
            Decoder::Utf8(b, _) => b.append_null(),
            Decoder::Binary(b) => b.append_null(),
            Decoder::Date32(b) => b.append_null(),
            Decoder::Time64(b) => b.append_null(),
            Decoder::Timestamp(b) => b.append_null(),
            Decoder::Interval(b) => b.append_null(),
            Decoder::List { offsets, nulls, .. } => {
                let last = offsets.last().copied().unwrap_or(0);
                offsets.push(last);
                nulls.append_null();
            }
        }
    }

    /// The values appended since the last call, as one array.
    pub(crate) fn finish(&mut self) -> Result<ArrayRef> {
        Ok(match &mut self.decoder {
            Decoder::Boolean(b) => Arc::new(b.finish()),
            Decoder::Int16(b) => Arc::new(b.finish()),
            Decoder::Int32(b) => Arc::new(b.finish()),
            Decoder::Int64(b) | Decoder::Int64FromNumeric(b) => Arc::new(b.finish()),
            Decoder::UInt64(b) => Arc::new(b.finish()),
            Decoder::Float32(b) => Arc::new(b.finish()),
            Decoder::Float64(b) | Decoder::Float64FromNumeric(b) => Arc::new(b.finish()),
            Decoder::Decimal { builder, .. } => Arc::new(builder.finish()),
            Decoder::Utf8(b, _) => Arc::new(b.finish()),
            Decoder::Binary(b) => Arc::new(b.finish()),
            Decoder::Date32(b) => Arc::new(b.finish()),
            Decoder::Time64(b) => Arc::new(b.finish()),
            Decoder::Timestamp(b) => Arc::new(b.finish()),
            Decoder::Interval(b) => Arc::new(b.finish()),
            Decoder::List {
                field,
                offsets,
                nulls,
                element,
            } => {
                let values = element.finish()?;
                let taken = std::mem::replace(offsets, vec![0]);
                let offsets = OffsetBuffer::new(ScalarBuffer::from(taken));
                Arc::new(ListArray::try_new(
                    Arc::clone(field),
                    offsets,
                    values,
                    nulls.finish(),
                )?)
            }
        })
    }

    fn conversion_error(&self, v: &[u8], row: u64) -> ConnectorError {
        let shown = match &self.decoder {
            Decoder::Decimal { .. }
            | Decoder::Int64FromNumeric(_)
            | Decoder::Float64FromNumeric(_) => describe_numeric(v),
            Decoder::Date32(_) | Decoder::Timestamp(_) => "an infinite value".to_string(),
            Decoder::List { .. } => "a multi-dimensional array".to_string(),
            _ => format!("{} bytes", v.len()),
        };
        let expected = match &self.decoder {
            Decoder::Decimal { precision, scale, .. } => format!(
                "Decimal128({precision}, {scale}); declare the column numeric(p,s) with p <= 38, or cast it in a view"
            ),
            other => format!("{:?}", other_type(other)),
        };
        ConnectorError::Conversion {
            column: self.name.clone(),
            row,
            value: format!("{} {shown}", self.pg.name()),
            expected,
        }
    }
}

fn other_type(d: &Decoder) -> &'static str {
    match d {
        Decoder::Boolean(_) => "Boolean",
        Decoder::Int16(_) => "Int16",
        Decoder::Int32(_) => "Int32",
        Decoder::Int64(_) => "Int64",
        Decoder::UInt64(_) => "UInt64",
        Decoder::Int64FromNumeric(_) => "Int64 (an integral numeric within its range)",
        Decoder::Float64FromNumeric(_) => "Float64",
        Decoder::Float32(_) => "Float32",
        Decoder::Float64(_) => "Float64",
        Decoder::Decimal { .. } => "Decimal128",
        Decoder::Utf8(..) => "Utf8",
        Decoder::Binary(_) => "Binary",
        Decoder::Date32(_) => "Date32 (finite dates only)",
        Decoder::Time64(_) => "Time64",
        Decoder::Timestamp(_) => "Timestamp (finite timestamps only)",
        Decoder::Interval(_) => "Interval",
        Decoder::List { .. } => "List (one-dimensional arrays only)",
    }
}

fn one(v: &[u8]) -> Option<u8> {
    match v {
        [x] => Some(*x),
        _ => None,
    }
}

/// A big-endian integer of 2, 4 or 8 bytes.
fn int(v: &[u8]) -> Option<i64> {
    Some(match v.len() {
        2 => i64::from(i16::from_be_bytes(v.try_into().ok()?)),
        4 => i64::from(i32::from_be_bytes(v.try_into().ok()?)),
        8 => i64::from_be_bytes(v.try_into().ok()?),
        _ => return None,
    })
}

fn format_uuid(b: &[u8; 16]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

struct Numeric {
    weight: i16,
    sign: u16,
    dscale: u16,
    digits: Vec<i16>,
}

fn parse_numeric(v: &[u8]) -> Option<Numeric> {
    let word = |i: usize| Some(i16::from_be_bytes([*v.get(i)?, *v.get(i + 1)?]));
    let ndigits = usize::try_from(word(0)?).ok()?;
    let weight = word(2)?;
    let sign = u16::from_be_bytes([*v.get(4)?, *v.get(5)?]);
    let dscale = u16::from_be_bytes([*v.get(6)?, *v.get(7)?]);
    let digits = (0..ndigits)
        .map(|i| word(8 + 2 * i))
        .collect::<Option<Vec<_>>>()?;
    Some(Numeric {
        weight,
        sign,
        dscale,
        digits,
    })
}

/// A binary `numeric` as an integer scaled by `10^scale`, if it fits
/// `precision` digits exactly (no rounding).
fn numeric_to_i128(v: &[u8], precision: u8, scale: i8) -> Option<i128> {
    let n = parse_numeric(v)?;
    if n.sign != 0x0000 && n.sign != 0x4000 {
        return None; // NaN or ±Infinity
    }
    let mut acc: i128 = 0;
    for d in &n.digits {
        acc = acc.checked_mul(10_000)?.checked_add(i128::from(*d))?;
    }
    // value = acc * 10000^(weight - ndigits + 1); scaled by 10^scale.
    let exponent =
        4 * (i32::from(n.weight) - i32::try_from(n.digits.len()).ok()? + 1) + i32::from(scale);
    let scaled = if exponent >= 0 {
        acc.checked_mul(10_i128.checked_pow(u32::try_from(exponent).ok()?)?)?
    } else {
        let divisor = 10_i128.checked_pow(u32::try_from(-exponent).ok()?)?;
        if acc % divisor != 0 {
            return None; // more fractional digits than the scale holds
        }
        acc / divisor
    };
    let value = if n.sign == 0x4000 { -scaled } else { scaled };
    (value.abs() < 10_i128.checked_pow(u32::from(precision))?).then_some(value)
}

/// A binary `numeric` as the nearest `f64` (NaN and the infinities as
/// themselves).
fn numeric_to_f64(v: &[u8]) -> Option<f64> {
    let n = parse_numeric(v)?;
    match n.sign {
        0xC000 => return Some(f64::NAN),
        0xD000 => return Some(f64::INFINITY),
        0xF000 => return Some(f64::NEG_INFINITY),
        0x0000 | 0x4000 => {}
        _ => return None,
    }
    if n.digits.is_empty() {
        return Some(0.0);
    }
    // value = digits (base 10000) × 10000^(weight - ndigits + 1): spelled
    // in scientific notation and parsed, which rounds correctly.
    let digits: String = n.digits.iter().map(|d| format!("{d:04}")).collect();
    let exponent = 4 * (i32::from(n.weight) - i32::try_from(n.digits.len()).ok()? + 1);
    let sign = if n.sign == 0x4000 { "-" } else { "" };
    format!("{sign}{digits}e{exponent}").parse().ok()
}

/// A binary `numeric` in decimal text, for error messages.
fn describe_numeric(v: &[u8]) -> String {
    let Some(n) = parse_numeric(v) else {
        return "(malformed numeric)".into();
    };
    match n.sign {
        0xC000 => return "NaN".into(),
        0xD000 => return "Infinity".into(),
        0xF000 => return "-Infinity".into(),
        _ => {}
    }
    let mut int_part = String::new();
    let mut frac_part = String::new();
    for (i, d) in n.digits.iter().enumerate() {
        let position = i32::from(n.weight) - i32::try_from(i).unwrap_or(0);
        if position >= 0 {
            int_part.push_str(&if int_part.is_empty() {
                d.to_string()
            } else {
                format!("{d:04}")
            });
        } else {
            frac_part.push_str(&format!("{d:04}"));
        }
    }
    let missing_int = i32::from(n.weight) + 1 - i32::try_from(n.digits.len()).unwrap_or(0);
    for _ in 0..missing_int.max(0) {
        int_part.push_str("0000");
    }
    if int_part.is_empty() {
        int_part.push('0');
    }
    let leading_zero_groups = (-i32::from(n.weight) - 1).max(0);
    let frac = format!(
        "{}{}",
        "0000".repeat(usize::try_from(leading_zero_groups).unwrap_or(0)),
        frac_part
    );
    let frac: String = frac.chars().take(usize::from(n.dscale)).collect();
    let sign = if n.sign == 0x4000 { "-" } else { "" };
    if frac.is_empty() {
        format!("{sign}{int_part}")
    } else {
        format!("{sign}{int_part}.{frac}")
    }
}

/// The elements of a one-dimensional binary array (`None` for NULL
/// elements); `Ok(None)` for a multi-dimensional array.
fn array_elements(v: &[u8]) -> Result<Option<Vec<Option<&[u8]>>>> {
    let malformed = || ConnectorError::Unsupported {
        target: "postgres".into(),
        message: "malformed binary array".into(),
    };
    let word = |i: usize| -> Result<i32> {
        Ok(i32::from_be_bytes([
            *v.get(i).ok_or_else(malformed)?,
            *v.get(i + 1).ok_or_else(malformed)?,
            *v.get(i + 2).ok_or_else(malformed)?,
            *v.get(i + 3).ok_or_else(malformed)?,
        ]))
    };
    let ndim = word(0)?;
    match ndim {
        0 => return Ok(Some(Vec::new())),
        1 => {}
        _ => return Ok(None),
    }
    let len = usize::try_from(word(12)?).map_err(|_| malformed())?;
    let mut pos = 20; // ndim, flags, element oid, dim length, lower bound
    let mut items = Vec::with_capacity(len);
    for _ in 0..len {
        let size = word(pos)?;
        pos += 4;
        if size < 0 {
            items.push(None);
        } else {
            let size = usize::try_from(size).map_err(|_| malformed())?;
            items.push(Some(v.get(pos..pos + size).ok_or_else(malformed)?));
            pos += size;
        }
    }
    Ok(Some(items))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(weight: i16, sign: u16, dscale: u16, digits: &[i16]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&i16::try_from(digits.len()).unwrap_or(0).to_be_bytes());
        v.extend_from_slice(&weight.to_be_bytes());
        v.extend_from_slice(&sign.to_be_bytes());
        v.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numerics_convert_exactly_or_not_at_all() {
        // 12345.67 = [1, 2345, 6700] with weight 1.
        let v = numeric(1, 0, 2, &[1, 2345, 6700]);
        assert_eq!(numeric_to_i128(&v, 15, 2), Some(1_234_567));
        assert_eq!(numeric_to_i128(&v, 15, 4), Some(123_456_700));
        assert_eq!(numeric_to_i128(&v, 15, 1), None, "would drop a digit");
        assert_eq!(numeric_to_i128(&v, 6, 2), None, "exceeds the precision");
        assert_eq!(describe_numeric(&v), "12345.67");
        // -0.0005 = [5] with weight -1, negative.
        let v = numeric(-1, 0x4000, 4, &[5]);
        assert_eq!(numeric_to_i128(&v, 10, 4), Some(-5));
        assert_eq!(describe_numeric(&v), "-0.0005");
        // 10^36: weight 9, one digit group.
        let v = numeric(9, 0, 0, &[1]);
        assert_eq!(numeric_to_i128(&v, 38, 0), Some(10_i128.pow(36)));
        assert_eq!(
            numeric_to_i128(&v, 38, 2),
            Some(10_i128.pow(38)).filter(|_| false),
            "38 digits do not fit 10^38"
        );
        assert_eq!(
            numeric_to_i128(&numeric(0, 0xC000, 0, &[]), 10, 0),
            None,
            "NaN"
        );
        assert_eq!(
            numeric_to_i128(&numeric(0, 0, 0, &[]), 10, 2),
            Some(0),
            "zero"
        );
    }

    #[test]
    fn numerics_become_the_nearest_float() {
        assert_eq!(
            numeric_to_f64(&numeric(1, 0, 2, &[1, 2345, 6700])),
            Some(12345.67)
        );
        assert_eq!(numeric_to_f64(&numeric(-1, 0x4000, 4, &[5])), Some(-0.0005));
        assert_eq!(numeric_to_f64(&numeric(0, 0, 0, &[])), Some(0.0));
        assert_eq!(numeric_to_f64(&numeric(9, 0, 0, &[1])), Some(1e36));
        assert_eq!(
            numeric_to_f64(&numeric(0, 0xD000, 0, &[])),
            Some(f64::INFINITY)
        );
        // 1/3 as PostgreSQL's avg spells it: 0.33333333333333333333.
        let third = numeric(-1, 0, 20, &[3333, 3333, 3333, 3333, 3333]);
        assert_eq!(numeric_to_f64(&third), Some(1.0 / 3.0));
    }

    #[test]
    fn integral_numerics_fill_int64_columns() -> Result<()> {
        let mut c = ColumnDecoder::try_new("s", &Type::NUMERIC, Wire::Binary, &DataType::Int64, 2)?;
        c.append(Some(&numeric(4, 0, 0, &[922, 3372, 368, 5477, 5807])), 1)?;
        assert!(
            c.append(Some(&numeric(4, 0, 0, &[922, 3372, 368, 5477, 5808])), 2)
                .is_err(),
            "beyond i64::MAX"
        );
        assert!(
            c.append(Some(&numeric(0, 0, 1, &[1, 5000])), 3).is_err(),
            "1.5"
        );
        Ok(())
    }

    #[test]
    fn uuids_are_hyphenated() {
        let b: [u8; 16] = [
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0, 1, 2, 3, 4, 5, 6, 7,
        ];
        assert_eq!(format_uuid(&b), "12345678-9abc-def0-0001-020304050607");
    }
}
