//! Limits: how many queries run at once (overall and per user), how long
//! one may run, how many rows it may return; and the registry of running
//! queries that cancellation uses.
//!
//! A query holds its [`Admission`] permits inside its [`QueryStream`]; when
//! the stream ends, fails, is cancelled or is dropped (the client went
//! away), the permits return and the engine's stream is dropped, which
//! stops its fragments on their sources.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatchOptions};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use arrow_flight::error::FlightError;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::{FutureExt, Stream, StreamExt};
use spar_engine::Limits;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tonic::Status;

use super::status::datafusion_status;
use crate::metrics::{Metrics, Outcome};

/// Concurrency limits, overall and per user.
#[derive(Debug)]
pub(crate) struct Admission {
    limits: Limits,
    global: Arc<Semaphore>,
    /// One semaphore per user, created on first use.
    per_user: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// The permits of one running query.
#[derive(Debug)]
pub(crate) struct Permits {
    _global: OwnedSemaphorePermit,
    _user: OwnedSemaphorePermit,
}

impl Admission {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            global: Arc::new(Semaphore::new(limits.max_concurrent_queries)),
            limits,
            per_user: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Admits a query of `user` now, or refuses it: queries are not queued.
    pub(crate) fn admit(&self, user: &str) -> Result<Permits, Status> {
        let user_semaphore = {
            let mut map = self
                .per_user
                .lock()
                .map_err(|_| Status::internal("admission table unavailable; try again"))?;
            Arc::clone(map.entry(user.to_string()).or_insert_with(|| {
                Arc::new(Semaphore::new(self.limits.max_concurrent_queries_per_user))
            }))
        };
        let user_permit = user_semaphore.try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "user `{user}` already runs {} queries (server.limits.max_concurrent_queries_per_user); retry when one finishes",
                self.limits.max_concurrent_queries_per_user
            ))
        })?;
        let global_permit = Arc::clone(&self.global).try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "the server already runs {} queries (server.limits.max_concurrent_queries); retry when one finishes",
                self.limits.max_concurrent_queries
            ))
        })?;
        Ok(Permits {
            _global: global_permit,
            _user: user_permit,
        })
    }
}

/// Running queries by id, for `CancelFlightInfo`.
#[derive(Debug, Default)]
pub(crate) struct Running {
    /// By query id: the owner, and the sender that cancels the query.
    queries: Mutex<HashMap<String, (String, oneshot::Sender<()>)>>,
}

impl Running {
    /// Registers a query; the receiver fires when it is cancelled.
    fn register(&self, id: &str, owner: &str) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut q) = self.queries.lock() {
            q.insert(id.to_string(), (owner.to_string(), tx));
        }
        rx
    }

    fn finish(&self, id: &str) {
        if let Ok(mut q) = self.queries.lock() {
            q.remove(id);
        }
    }

    /// Cancels a running query of `owner`'s; false when none of theirs
    /// runs under this id.
    pub(crate) fn cancel(&self, id: &str, owner: &str) -> bool {
        let sender = self.queries.lock().ok().and_then(|mut q| match q.get(id) {
            Some((o, _)) if o == owner => q.remove(id),
            _ => None,
        });
        sender.is_some_and(|(_, tx)| tx.send(()).is_ok())
    }

    /// How many queries run now.
    pub(crate) fn len(&self) -> usize {
        self.queries.lock().map(|q| q.len()).unwrap_or(0)
    }

    /// Cancels every running query (shutdown after the grace period).
    pub(crate) fn cancel_all(&self) {
        let senders: Vec<_> = self
            .queries
            .lock()
            .map(|mut q| q.drain().map(|(_, (_, tx))| tx).collect())
            .unwrap_or_default();
        for tx in senders {
            let _ = tx.send(());
        }
    }
}

/// What a [`QueryStream`] enforces and reports.
pub(crate) struct QueryContext {
    pub(crate) id: String,
    pub(crate) user: String,
    pub(crate) started: Instant,
    pub(crate) deadline: Option<tokio::time::Instant>,
    pub(crate) max_rows: Option<u64>,
    /// Held until the query ends: its slots in the concurrency limits.
    pub(crate) permits: Option<Permits>,
    pub(crate) running: Arc<Running>,
    pub(crate) metrics: Arc<Metrics>,
}

/// An engine result stream with the limits applied: a timeout, a row cap,
/// cancellation; records the query's outcome when it ends.
pub(crate) struct QueryStream {
    inner: Option<SendableRecordBatchStream>,
    ctx: QueryContext,
    cancelled: Option<oneshot::Receiver<()>>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    rows: u64,
    bytes: u64,
    done: bool,
}

impl QueryStream {
    pub(crate) fn new(inner: SendableRecordBatchStream, ctx: QueryContext) -> Self {
        let cancelled = Some(ctx.running.register(&ctx.id, &ctx.user));
        let sleep = ctx.deadline.map(|d| Box::pin(tokio::time::sleep_until(d)));
        ctx.metrics.query_started();
        Self {
            inner: Some(inner),
            ctx,
            cancelled,
            sleep,
            rows: 0,
            bytes: 0,
            done: false,
        }
    }

    /// Ends the query: drops the engine stream (stopping its fragments),
    /// returns the permits' slot, records the outcome.
    fn finish(&mut self, outcome: Outcome) {
        if self.done {
            return;
        }
        self.done = true;
        self.inner = None;
        self.ctx.permits = None;
        self.ctx.running.finish(&self.ctx.id);
        self.ctx
            .metrics
            .query_finished(outcome, self.ctx.started.elapsed(), self.rows, self.bytes);
        tracing::info!(
            query_id = self.ctx.id,
            user = self.ctx.user,
            rows = self.rows,
            ms = self.ctx.started.elapsed().as_millis() as u64,
            outcome = outcome.label(),
            "query finished"
        );
    }

    fn fail(&mut self, status: Status) -> Poll<Option<Result<RecordBatch, FlightError>>> {
        self.finish(Outcome::from_code(status.code()));
        Poll::Ready(Some(Err(FlightError::Tonic(Box::new(status)))))
    }
}

impl Stream for QueryStream {
    type Item = Result<RecordBatch, FlightError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(rx) = self.cancelled.as_mut() {
            match rx.poll_unpin(cx) {
                Poll::Ready(Ok(())) => {
                    let id = self.ctx.id.clone();
                    return self.fail(Status::cancelled(format!("query {id} was cancelled")));
                }
                // The registry dropped the sender: nothing can cancel now.
                Poll::Ready(Err(_)) => self.cancelled = None,
                Poll::Pending => {}
            }
        }
        if let Some(sleep) = self.sleep.as_mut() {
            if sleep.as_mut().poll(cx).is_ready() {
                let message = format!(
                    "query {} ran longer than server.limits.query_timeout ({:.1?}) and was stopped",
                    self.ctx.id,
                    self.ctx.started.elapsed()
                );
                return self.fail(Status::deadline_exceeded(message));
            }
        }
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        // A panic while computing the query (a bug) fails this query only.
        let polled =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll_next_unpin(cx)));
        let polled = match polled {
            Ok(polled) => polled,
            Err(panic) => {
                tracing::error!(
                    query_id = self.ctx.id,
                    panic = super::auth::panic_message(&panic),
                    "query panicked"
                );
                let id = self.ctx.id.clone();
                return self.fail(Status::internal(format!(
                    "internal error in query {id} (logged on the server); the server keeps serving"
                )));
            }
        };
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                self.finish(Outcome::Ok);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                let status = datafusion_status(&e, &self.ctx.id);
                self.fail(status)
            }
            Poll::Ready(Some(Ok(batch))) => {
                let rows = self.rows + batch.num_rows() as u64;
                if let Some(max) = self.ctx.max_rows {
                    if rows > max {
                        return self.fail(Status::resource_exhausted(format!(
                            "the result has more than {max} rows (server.limits.max_result_rows); add a LIMIT or narrow the query"
                        )));
                    }
                }
                let batch = match compact_views(batch) {
                    Ok(batch) => batch,
                    Err(e) => {
                        let id = self.ctx.id.clone();
                        return self.fail(Status::internal(format!(
                            "query {id}: cannot prepare a batch for sending: {e}"
                        )));
                    }
                };
                self.rows = rows;
                self.bytes += batch.get_array_memory_size() as u64;
                Poll::Ready(Some(Ok(batch)))
            }
        }
    }
}

/// String and binary view arrays point into buffers that many batches
/// share (a Parquet page, say); IPC would send every referenced buffer
/// whole with each batch (2.3x the bytes of a TPC-H lineitem scan).
/// Compacting copies each batch's own values once, as encoding would.
fn compact_views(batch: RecordBatch) -> Result<RecordBatch, arrow::error::ArrowError> {
    let has_views = batch
        .schema()
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::Utf8View | DataType::BinaryView));
    if !has_views {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Utf8View => Arc::new(c.as_string_view().gc()) as ArrayRef,
            DataType::BinaryView => Arc::new(c.as_binary_view().gc()) as ArrayRef,
            _ => Arc::clone(c),
        })
        .collect();
    RecordBatch::try_new_with_options(
        batch.schema(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
}

impl Drop for QueryStream {
    fn drop(&mut self) {
        // The client went away (or the server is shutting down).
        self.finish(Outcome::Cancelled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringViewArray;
    use arrow::datatypes::{Field, Schema};

    #[test]
    fn view_arrays_are_compacted_before_sending() -> Result<(), arrow::error::ArrowError> {
        let long: Vec<String> = (0..1000)
            .map(|i| format!("a value long enough to be out of line #{i}"))
            .collect();
        let whole = StringViewArray::from_iter_values(long.iter());
        // A two-row slice still points at the whole buffer.
        let slice = whole.slice(10, 2);
        let schema = Arc::new(Schema::new(vec![Field::new(
            "s",
            DataType::Utf8View,
            false,
        )]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(slice)])?;
        let before = batch.get_array_memory_size();
        let compacted = compact_views(batch.clone())?;
        assert!(compacted.get_array_memory_size() * 10 < before);
        assert_eq!(compacted.column(0).as_string_view().value(1), long[11]);
        assert_eq!(compacted.num_rows(), 2);
        Ok(())
    }
}
