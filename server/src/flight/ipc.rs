//! Arrow IPC from clients, checked before arrow decodes it, and the
//! parameter row of a prepared statement.
//!
//! A prepared statement's parameters arrive by `DoPut` as Flight data: one
//! row, one column per placeholder. Arrow's decoder trusts some sizes the
//! sender writes: a compressed buffer's "uncompressed length" is allocated
//! up front, so eight bytes could ask for a terabyte and abort the process.
//! And its schema conversion and buffer slicing panic on some malformed
//! messages. Parameters are one row of scalars, so [`check_client_data`]
//! accepts only that: flat columns of scalar types it has checked, no
//! dictionaries, no compression, every buffer inside the body. A panic that
//! still happens inside the decoder is the request's `INVALID_ARGUMENT`.

use arrow::array::RecordBatch;
use arrow::ipc::writer::StreamWriter;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::FlightData;
use datafusion::common::ScalarValue;
use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use tonic::Status;

/// Refuses Flight data that arrow's decoder should not see: not an IPC
/// message; a schema with other than flat scalar columns (arrow's schema
/// conversion panics on some malformed types, and parameters are scalars);
/// dictionaries; compression; buffers outside the message body.
pub(crate) fn check_client_data(data: &FlightData) -> Result<(), FlightError> {
    if data.data_header.is_empty() {
        return Ok(());
    }
    let refuse = |what: &str| {
        Err(FlightError::DecodeError(format!(
            "{what}; send one uncompressed row of scalar parameters"
        )))
    };
    let message = arrow::ipc::root_as_message(&data.data_header).map_err(|e| {
        FlightError::DecodeError(format!("the Flight data header is not an IPC message: {e}"))
    })?;
    if let Some(schema) = message.header_as_schema() {
        if schema.endianness() != arrow::ipc::Endianness::Little {
            return refuse("big-endian Arrow IPC is not accepted");
        }
        let Some(fields) = schema.fields() else {
            return refuse("the schema has no field list");
        };
        for field in fields {
            if !is_scalar(&field) {
                return refuse("a parameter column has a type Spar does not take");
            }
        }
        return Ok(());
    }
    if message.header_as_dictionary_batch().is_some() {
        return refuse("dictionary-encoded parameters are not accepted");
    }
    if let Some(batch) = message.header_as_record_batch() {
        let body = data.data_body.len() as u64;
        let outside = batch.buffers().iter().flatten().any(|b| {
            u64::try_from(b.offset())
                .ok()
                .zip(u64::try_from(b.length()).ok())
                .and_then(|(offset, length)| offset.checked_add(length))
                .is_none_or(|end| end > body)
        });
        if outside {
            return refuse("a buffer lies outside the message body");
        }
    }
    let compressed = message
        .header_as_record_batch()
        .and_then(|b| b.compression())
        .is_some()
        || message
            .header_as_dictionary_batch()
            .and_then(|d| d.data())
            .and_then(|b| b.compression())
            .is_some();
    if compressed {
        return Err(FlightError::DecodeError(
            "compressed Arrow IPC is not accepted here; send the parameters uncompressed".into(),
        ));
    }
    Ok(())
}

/// Whether an IPC schema field is a flat scalar column of a type arrow
/// converts without panicking.
fn is_scalar(field: &arrow::ipc::Field) -> bool {
    use arrow::ipc::{DateUnit, IntervalUnit, Precision, TimeUnit, Type};
    if field.dictionary().is_some() || field.children().is_some_and(|c| !c.is_empty()) {
        return false;
    }
    let known_unit = |u: TimeUnit| {
        matches!(
            u,
            TimeUnit::SECOND | TimeUnit::MILLISECOND | TimeUnit::MICROSECOND | TimeUnit::NANOSECOND
        )
    };
    match field.type_type() {
        Type::Null
        | Type::Bool
        | Type::Utf8
        | Type::LargeUtf8
        | Type::Binary
        | Type::LargeBinary => true,
        Type::Int => field
            .type_as_int()
            .is_some_and(|i| matches!(i.bitWidth(), 8 | 16 | 32 | 64)),
        Type::FloatingPoint => field.type_as_floating_point().is_some_and(|f| {
            matches!(
                f.precision(),
                Precision::HALF | Precision::SINGLE | Precision::DOUBLE
            )
        }),
        Type::Decimal => field.type_as_decimal().is_some_and(|d| {
            matches!(d.bitWidth(), 128 | 256)
                && (1..=76).contains(&d.precision())
                && (-128..=127).contains(&d.scale())
        }),
        Type::Date => field
            .type_as_date()
            .is_some_and(|d| matches!(d.unit(), DateUnit::DAY | DateUnit::MILLISECOND)),
        Type::Time => field.type_as_time().is_some_and(|t| {
            matches!(
                (t.bitWidth(), t.unit()),
                (32, TimeUnit::SECOND | TimeUnit::MILLISECOND)
                    | (64, TimeUnit::MICROSECOND | TimeUnit::NANOSECOND)
            )
        }),
        Type::Timestamp => field
            .type_as_timestamp()
            .is_some_and(|t| known_unit(t.unit())),
        Type::Duration => field
            .type_as_duration()
            .is_some_and(|d| known_unit(d.unit())),
        Type::Interval => field.type_as_interval().is_some_and(|i| {
            matches!(
                i.unit(),
                IntervalUnit::YEAR_MONTH | IntervalUnit::DAY_TIME | IntervalUnit::MONTH_DAY_NANO
            )
        }),
        _ => false,
    }
}

/// The one parameter row in a client's Flight data stream (checked with
/// [`check_client_data`] before decoding); an error for none or several.
pub(crate) async fn parameter_row(
    stream: impl Stream<Item = Result<FlightData, FlightError>> + Send + 'static,
) -> Result<RecordBatch, Status> {
    let checked = stream.and_then(|d| async move { check_client_data(&d).map(|()| d) });
    let mut batches = FlightRecordBatchStream::new_from_flight_data(checked);
    let mut row = None;
    let mut rows = 0usize;
    loop {
        // Arrow's decoder panics on some malformed messages (an integer
        // width it does not know): that is the client's error.
        let next = std::panic::AssertUnwindSafe(batches.next())
            .catch_unwind()
            .await
            .map_err(|_| {
                Status::invalid_argument(
                    "cannot read the parameter batch: malformed Arrow IPC (the decoder refused it)",
                )
            })?;
        let Some(batch) = next else {
            break;
        };
        let batch = batch.map_err(|e| {
            Status::invalid_argument(format!("cannot read the parameter batch: {e}"))
        })?;
        rows += batch.num_rows();
        if rows > 1 {
            return Err(Status::invalid_argument(format!(
                "expected one row of parameters (one column per placeholder), got at least {rows} rows; run the statement once per row"
            )));
        }
        if batch.num_rows() == 1 {
            row = Some(batch);
        }
    }
    row.ok_or_else(|| {
        Status::invalid_argument(
            "no parameter row was sent; send one row with one column per placeholder",
        )
    })
}

/// One row as Arrow IPC, for a ticket.
pub(crate) fn encode_parameters(batch: &RecordBatch) -> Result<Vec<u8>, Status> {
    let encode = || -> Result<Vec<u8>, arrow::error::ArrowError> {
        let mut out = Vec::new();
        let mut writer = StreamWriter::try_new(&mut out, &batch.schema())?;
        writer.write(batch)?;
        writer.finish()?;
        drop(writer);
        Ok(out)
    };
    encode().map_err(|e| Status::invalid_argument(format!("cannot encode the parameters: {e}")))
}

/// The values of the row [`encode_parameters`] wrote (the bytes come from
/// a sealed ticket: this server wrote them).
pub(crate) fn decode_parameters(bytes: &[u8]) -> Result<Vec<ScalarValue>, Status> {
    let bad =
        |e: String| Status::invalid_argument(format!("malformed parameters in the ticket: {e}"));
    let reader =
        arrow::ipc::reader::StreamReader::try_new(bytes, None).map_err(|e| bad(e.to_string()))?;
    let mut values = None;
    for batch in reader {
        let batch = batch.map_err(|e| bad(e.to_string()))?;
        if batch.num_rows() != 1 || values.is_some() {
            return Err(bad("expected one row".into()));
        }
        values = Some(
            batch
                .columns()
                .iter()
                .map(|c| ScalarValue::try_from_array(c, 0))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(e.to_string()))?,
        );
    }
    values.ok_or_else(|| bad("no row".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow_flight::encode::FlightDataEncoderBuilder;
    use std::sync::Arc;

    fn row() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("$1", DataType::Int64, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![Some(7)]))])
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn frames(
        options: arrow::ipc::writer::IpcWriteOptions,
    ) -> Vec<Result<FlightData, FlightError>> {
        let stream = FlightDataEncoderBuilder::new()
            .with_options(options)
            .build(futures::stream::iter([Ok(row())]));
        futures::executor::block_on(stream.collect::<Vec<_>>())
    }

    #[test]
    fn one_plain_row_is_read_and_round_trips() {
        let read = futures::executor::block_on(parameter_row(futures::stream::iter(frames(
            Default::default(),
        ))));
        let read = read.unwrap_or_else(|e| panic!("{e}"));
        let bytes = encode_parameters(&read).unwrap_or_else(|e| panic!("{e}"));
        let values = decode_parameters(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(values, vec![ScalarValue::Int64(Some(7))]);
    }

    #[test]
    fn only_flat_scalar_columns_are_accepted() {
        use arrow::array::{Array, ListArray};
        use arrow::datatypes::Int32Type;
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1)])]);
        let schema = Arc::new(Schema::new(vec![Field::new(
            "$1",
            list.data_type().clone(),
            true,
        )]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(list)]).unwrap_or_else(|e| panic!("{e}"));
        let stream = FlightDataEncoderBuilder::new().build(futures::stream::iter([Ok(batch)]));
        let frames = futures::executor::block_on(stream.collect::<Vec<_>>());
        let read = futures::executor::block_on(parameter_row(futures::stream::iter(frames)));
        let e = read
            .err()
            .map(|e| e.message().to_string())
            .unwrap_or_default();
        assert!(e.contains("a type Spar does not take"), "{e}");
    }

    #[test]
    fn compressed_rows_are_refused_before_decoding() {
        // A compressed buffer's "uncompressed length" is allocated up
        // front: eight bytes could ask for a terabyte.
        let lz4 = arrow::ipc::writer::IpcWriteOptions::default()
            .try_with_compression(Some(arrow::ipc::CompressionType::LZ4_FRAME))
            .unwrap_or_else(|e| panic!("{e}"));
        let read = futures::executor::block_on(parameter_row(futures::stream::iter(frames(lz4))));
        let e = read
            .err()
            .map(|e| e.message().to_string())
            .unwrap_or_default();
        assert!(e.contains("compressed Arrow IPC is not accepted"), "{e}");
    }
}
