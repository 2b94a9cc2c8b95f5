//! A stream that fails when its source stops sending.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use futures::{FutureExt, Stream, StreamExt};
use spar_connectors::ConnectorError;
use tokio::time::{Instant, Sleep};

use super::InFlight;

/// Passes a replica's batches through; when none arrives for `timeout`,
/// yields a retryable error naming the replica and ends. Dropping it drops
/// the inner stream, which cancels the statement on the source.
pub(crate) struct StallGuarded {
    inner: SendableRecordBatchStream,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    target: String,
    done: bool,
    _in_flight: InFlight,
}

impl StallGuarded {
    pub(crate) fn new(
        inner: SendableRecordBatchStream,
        timeout: Duration,
        target: String,
        in_flight: InFlight,
    ) -> Self {
        Self {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            target,
            done: false,
            _in_flight: in_flight,
        }
    }
}

impl Stream for StallGuarded {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.inner.poll_next_unpin(cx) {
            Poll::Ready(item) => {
                let next = Instant::now() + self.timeout;
                self.deadline.as_mut().reset(next);
                if !matches!(item, Some(Ok(_))) {
                    self.done = true;
                }
                Poll::Ready(item)
            }
            Poll::Pending => match self.deadline.poll_unpin(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(()) => {
                    self.done = true;
                    Poll::Ready(Some(Err(DataFusionError::from(
                        ConnectorError::Transient {
                            target: self.target.clone(),
                            message: format!(
                                "no rows arrived for {} (stall_timeout); the replica stalled",
                                humantime::format_duration(self.timeout)
                            ),
                        },
                    ))))
                }
            },
        }
    }
}

impl RecordBatchStream for StallGuarded {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}
