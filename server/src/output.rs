//! Result formats for `spar query` and the shell.

use std::io::Write;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use clap::ValueEnum;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// An aligned table with a header (the whole result is gathered first).
    #[default]
    Table,
    /// CSV as PostgreSQL writes it: a header line; NULL is an empty unquoted
    /// field, an empty string is `""`.
    Csv,
    /// A JSON array with one object per row.
    Json,
}

/// Writes batches in one format as they arrive.
pub enum Writer<W: Write> {
    /// Gathers batches; writes the table at `finish`.
    Table {
        /// The output.
        out: W,
        /// The batches gathered so far.
        batches: Vec<RecordBatch>,
        /// The result's schema (for a header when there are no rows).
        schema: SchemaRef,
    },
    /// Writes CSV rows at once.
    Csv {
        /// The output.
        out: W,
        /// Whether the header has been written.
        header_written: bool,
        /// The result's schema.
        schema: SchemaRef,
    },
    /// Writes JSON objects at once.
    Json(arrow::json::ArrayWriter<W>),
}

impl<W: Write> Writer<W> {
    /// A writer of `format` for results of `schema`.
    pub fn new(format: Format, out: W, schema: SchemaRef) -> Self {
        match format {
            Format::Table => Self::Table {
                out,
                batches: Vec::new(),
                schema,
            },
            Format::Csv => Self::Csv {
                out,
                header_written: false,
                schema,
            },
            Format::Json => Self::Json(arrow::json::ArrayWriter::new(out)),
        }
    }

    /// Writes (or gathers) one batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ArrowError> {
        let batch = &postgres_years(batch)?;
        match self {
            Self::Table { batches, .. } => batches.push(batch.clone()),
            Self::Csv {
                out,
                header_written,
                schema,
            } => {
                if !*header_written {
                    write_csv_header(out, schema)?;
                    *header_written = true;
                }
                write_csv_rows(out, batch)?;
            }
            Self::Json(w) => w.write(batch)?,
        }
        Ok(())
    }

    /// Writes whatever is pending and flushes.
    pub fn finish(self) -> Result<(), ArrowError> {
        match self {
            Self::Table {
                mut out,
                batches,
                schema,
            } => {
                let table = if batches.is_empty() {
                    let empty = postgres_years(&RecordBatch::new_empty(schema))?;
                    arrow::util::pretty::pretty_format_batches(&[empty])?
                } else {
                    arrow::util::pretty::pretty_format_batches(&batches)?
                };
                writeln!(out, "{table}")?;
                out.flush()?;
            }
            Self::Csv {
                mut out,
                header_written,
                schema,
            } => {
                if !header_written {
                    write_csv_header(&mut out, &schema)?;
                }
                out.flush()?;
            }
            Self::Json(mut w) => {
                w.finish()?;
                let mut out = w.into_inner();
                writeln!(out)?;
                out.flush()?;
            }
        }
        Ok(())
    }
}

/// `batch` with its date and timestamp columns as text, their years
/// written as PostgreSQL writes them: four digits or more without a sign
/// (`10000-01-01`, where Arrow writes `+10000-01-01`), and years before 1
/// as `… BC` (`0045-03-15 BC` for Arrow's `-0044-03-15`). Other values are
/// written as Arrow writes them. A batch without such columns is returned
/// as it is.
pub fn postgres_years(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let is_time = |t: &DataType| {
        matches!(
            t,
            DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _)
        )
    };
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| is_time(f.data_type()))
    {
        return Ok(batch.clone());
    }
    let options = FormatOptions::default();
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if !is_time(field.data_type()) {
            fields.push(Arc::clone(field));
            columns.push(Arc::clone(column));
            continue;
        }
        let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
        let text: StringArray = (0..column.len())
            .map(|row| {
                (!column.is_null(row)).then(|| postgres_year(formatter.value(row).to_string()))
            })
            .collect();
        fields.push(Arc::new(
            Field::new(field.name(), DataType::Utf8, field.is_nullable())
                .with_metadata(field.metadata().clone()),
        ));
        columns.push(Arc::new(text) as ArrayRef);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// One date or timestamp as Arrow writes it, with its year as PostgreSQL
/// writes it (see [`postgres_years`]).
fn postgres_year(text: String) -> String {
    if let Some(rest) = text.strip_prefix('+') {
        return rest.to_string();
    }
    // Astronomical year 0 is 1 BC.
    if let Some(rest) = text.strip_prefix("0000-") {
        return format!("0001-{rest} BC");
    }
    let Some(rest) = text.strip_prefix('-') else {
        return text;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    match rest[..digits].parse::<i64>() {
        // Astronomical year -y is year y + 1 BC.
        Ok(year) => format!("{:04}{} BC", year + 1, &rest[digits..]),
        Err(_) => text,
    }
}

fn write_csv_header<W: Write>(out: &mut W, schema: &SchemaRef) -> Result<(), ArrowError> {
    let names: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| csv_field(f.name(), true))
        .collect();
    writeln!(out, "{}", names.join(","))?;
    Ok(())
}

fn write_csv_rows<W: Write>(out: &mut W, batch: &RecordBatch) -> Result<(), ArrowError> {
    let options = FormatOptions::default().with_null("");
    let formatters = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<Result<Vec<_>, _>>()?;
    let textual: Vec<bool> = batch
        .columns()
        .iter()
        .map(|c| is_textual(c.data_type()))
        .collect();
    let mut line = String::new();
    for row in 0..batch.num_rows() {
        line.clear();
        for (i, (column, formatter)) in batch.columns().iter().zip(&formatters).enumerate() {
            if i > 0 {
                line.push(',');
            }
            if column.is_null(row) {
                continue;
            }
            let value = formatter.value(row).to_string();
            line.push_str(&csv_field(&value, textual[i]));
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

/// Quotes a CSV field when it must be: it holds a comma, a quote, a line
/// break, or it is an empty string (which must not read back as NULL).
fn csv_field(value: &str, textual: bool) -> String {
    let needs_quotes = (textual && value.is_empty())
        || value.contains([',', '"', '\n', '\r'])
        || value.starts_with(' ')
        || value.ends_with(' ');
    if needs_quotes {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

fn is_textual(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Date32Array, Int64Array, TimestampMicrosecondArray};

    fn render(format: Format) -> String {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("note", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None, Some(3), Some(4)])),
                Arc::new(StringArray::from(vec![
                    Some("plain"),
                    Some(""),
                    None,
                    Some("a,\"b\"\nc"),
                ])),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut buf = Vec::new();
        let mut w = Writer::new(format, &mut buf, schema);
        w.write(&batch).unwrap_or_else(|e| panic!("{e}"));
        w.finish().unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8(buf).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn csv_follows_postgres() {
        assert_eq!(
            render(Format::Csv),
            "id,note\n1,plain\n,\"\"\n3,\n4,\"a,\"\"b\"\"\nc\"\n"
        );
    }

    #[test]
    fn json_keeps_nulls_out_and_strings_in() {
        let json = render(Format::Json);
        assert!(
            json.starts_with("[{\"id\":1,\"note\":\"plain\"},{\"note\":\"\"}"),
            "{json}"
        );
    }

    #[test]
    fn table_has_header_and_rows() {
        let table = render(Format::Table);
        assert!(table.contains("| id | note"), "{table}");
        assert!(table.contains("| 1  | plain"), "{table}");
    }

    #[test]
    fn far_years_are_written_as_postgres_writes_them() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("d", DataType::Date32, true),
            Field::new(
                "t",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
                true,
            ),
        ]));
        let micros = |d: i32| i64::from(d) * 86_400_000_000 + 3_600_000_000;
        // Days since 1970 of 10000-01-01, 2024-02-29 and -0044-03-15
        // (astronomical; 45 BC).
        let dates = [2_932_897, 19_782, -735_525];
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Date32Array::from(vec![
                    Some(dates[0]),
                    Some(dates[1]),
                    Some(dates[2]),
                    None,
                ])),
                Arc::new(TimestampMicrosecondArray::from(vec![
                    Some(micros(dates[0])),
                    Some(micros(dates[1])),
                    Some(micros(dates[2])),
                    None,
                ])),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut buf = Vec::new();
        let mut w = Writer::new(Format::Csv, &mut buf, schema);
        w.write(&batch).unwrap_or_else(|e| panic!("{e}"));
        w.finish().unwrap_or_else(|e| panic!("{e}"));
        let csv = String::from_utf8(buf).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            csv,
            "d,t\n10000-01-01,10000-01-01T01:00:00\n2024-02-29,2024-02-29T01:00:00\n\
             0045-03-15 BC,0045-03-15T01:00:00 BC\n,\n"
        );
    }
}
