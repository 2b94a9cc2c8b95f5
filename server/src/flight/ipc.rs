//! Arrow IPC from clients, checked before arrow decodes it, and the
//! parameter row of a prepared statement.
//!
//! A prepared statement's parameters arrive by `DoPut` as Flight data: one
//! row, one column per placeholder. Arrow's decoder trusts some sizes the
//! sender writes: a compressed buffer's "uncompressed length" is allocated
//! up front, so eight bytes could ask for a terabyte and abort the process.
//! Spar never needs compression for one row: [`check_client_data`] refuses
//! any compressed message before the decoder sees it, and a panic inside
//! the decoder (it panics on some malformed schemas) is the request's
//! `INVALID_ARGUMENT`.

use arrow::array::RecordBatch;
use arrow::ipc::writer::StreamWriter;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::FlightData;
use datafusion::common::ScalarValue;
use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use tonic::Status;

/// Refuses Flight data whose IPC message is compressed (or not an IPC
/// message at all).
pub(crate) fn check_client_data(data: &FlightData) -> Result<(), FlightError> {
    if data.data_header.is_empty() {
        return Ok(());
    }
    let message = arrow::ipc::root_as_message(&data.data_header).map_err(|e| {
        FlightError::DecodeError(format!("the Flight data header is not an IPC message: {e}"))
    })?;
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
