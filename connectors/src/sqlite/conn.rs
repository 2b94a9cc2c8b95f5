//! Opening SQLite files and reading them on blocking threads.

use std::path::Path;
use std::time::Duration;

use arrow::array::RecordBatchOptions;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use tokio::sync::mpsc;

use super::types::ColumnReader;
use crate::error::{ConnectorError, Result};

/// How long a statement waits for a lock held by a writer before it gives up
/// with a retryable error.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens the database read-only. A missing file is reported with its path
/// (SQLite would otherwise say only "unable to open database file").
pub(crate) fn open(path: &Path, target: &str) -> Result<Connection> {
    if !path.exists() {
        return Err(ConnectorError::Unavailable {
            target: target.to_string(),
            message: format!(
                "no such file `{}`; check the replica path in the config",
                path.display()
            ),
        });
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| map_error(e, target))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| map_error(e, target))?;
    Ok(conn)
}

/// Classifies a rusqlite error: locks and busy files are retryable, an
/// unopenable file is an unavailable replica, the rest is the query's fault.
pub(crate) fn map_error(e: rusqlite::Error, target: &str) -> ConnectorError {
    let target = target.to_string();
    match &e {
        rusqlite::Error::SqliteFailure(f, msg) => {
            let message = msg.clone().unwrap_or_else(|| f.to_string());
            match f.code {
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                    ConnectorError::Transient { target, message }
                }
                ErrorCode::CannotOpen | ErrorCode::NotADatabase | ErrorCode::SystemIoFailure => {
                    ConnectorError::Unavailable { target, message }
                }
                ErrorCode::OperationInterrupted => ConnectorError::Cancelled { target },
                _ => ConnectorError::Query {
                    target,
                    message,
                    code: Some(f.extended_code.to_string()),
                },
            }
        }
        _ => ConnectorError::Query {
            target,
            message: e.to_string(),
            code: None,
        },
    }
}

/// Runs `f` on a blocking thread, so SQLite never blocks the async runtime.
pub(crate) async fn blocking<T, F>(target: &str, f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ConnectorError::DataFusion(DataFusionError::Internal(format!(
            "SQLite task for {target} did not finish: {e}"
        )))
    })?
}

/// Steps through `stmt`, sending a record batch of `schema` every
/// `batch_size` rows. Stops early when the receiver is gone (the query was
/// dropped or cancelled). Errors go down the channel.
pub(crate) fn stream_rows(
    stmt: &mut rusqlite::Statement<'_>,
    schema: &SchemaRef,
    batch_size: usize,
    target: &str,
    tx: &mpsc::Sender<datafusion::error::Result<RecordBatch>>,
) {
    if let Err(e) = try_stream_rows(stmt, schema, batch_size, target, tx) {
        // The receiver may be gone already; then nobody needs the error.
        let _ = tx.blocking_send(Err(e.into()));
    }
}

fn try_stream_rows(
    stmt: &mut rusqlite::Statement<'_>,
    schema: &SchemaRef,
    batch_size: usize,
    target: &str,
    tx: &mpsc::Sender<datafusion::error::Result<RecordBatch>>,
) -> Result<()> {
    let mut readers = schema
        .fields()
        .iter()
        .map(|f| ColumnReader::try_new(f.name(), f.data_type(), batch_size))
        .collect::<Result<Vec<_>>>()?;
    let mut rows = stmt.query([]).map_err(|e| map_error(e, target))?;
    let mut in_batch = 0usize;
    let mut row_number = 0u64;
    while let Some(row) = rows.next().map_err(|e| map_error(e, target))? {
        row_number += 1;
        for (i, reader) in readers.iter_mut().enumerate() {
            let value = row.get_ref(i).map_err(|e| map_error(e, target))?;
            reader.append(value, row_number)?;
        }
        in_batch += 1;
        if in_batch == batch_size {
            if !send_batch(&mut readers, in_batch, schema, tx)? {
                return Ok(());
            }
            in_batch = 0;
        }
    }
    if in_batch > 0 {
        send_batch(&mut readers, in_batch, schema, tx)?;
    }
    Ok(())
}

/// Sends the rows gathered so far; `false` when the receiver is gone.
fn send_batch(
    readers: &mut [ColumnReader],
    rows: usize,
    schema: &SchemaRef,
    tx: &mpsc::Sender<datafusion::error::Result<RecordBatch>>,
) -> Result<bool> {
    let columns = readers.iter_mut().map(ColumnReader::finish).collect();
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    let batch =
        RecordBatch::try_new_with_options(std::sync::Arc::clone(schema), columns, &options)?;
    Ok(tx.blocking_send(Ok(batch)).is_ok())
}
