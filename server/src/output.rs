//! Result formats for `spar query` and the shell.

use std::io::Write;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
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
                    arrow::util::pretty::pretty_format_batches(&[RecordBatch::new_empty(schema)])?
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
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

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
}
