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
    /// While no batch arrives, whether the replica has been judged down
    /// (its circuit opened) since the stream started: then it waits no
    /// longer for `timeout`.
    watch: Option<CircuitWatch>,
    _in_flight: InFlight,
}

/// What a waiting stream looks at: has its replica's circuit opened?
pub(crate) struct CircuitWatch {
    /// True once the circuit has opened since the stream began.
    pub(crate) judged_down: Box<dyn Fn() -> bool + Send + Sync>,
    pub(crate) tick: Pin<Box<Sleep>>,
}

impl StallGuarded {
    pub(crate) fn new(
        inner: SendableRecordBatchStream,
        timeout: Duration,
        target: String,
        in_flight: InFlight,
        watch: Option<CircuitWatch>,
    ) -> Self {
        Self {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            target,
            done: false,
            watch,
            _in_flight: in_flight,
        }
    }

    fn fail(&mut self, message: String) -> Poll<Option<Result<RecordBatch>>> {
        self.done = true;
        Poll::Ready(Some(Err(DataFusionError::from(
            ConnectorError::Transient {
                target: self.target.clone(),
                message,
            },
        ))))
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
            Poll::Pending => {
                if self.deadline.poll_unpin(cx).is_ready() {
                    let message = format!(
                        "no rows arrived for {} (stall_timeout); the replica stalled",
                        humantime::format_duration(self.timeout)
                    );
                    return self.fail(message);
                }
                let mut judged_down = false;
                if let Some(watch) = self.watch.as_mut() {
                    while watch.tick.poll_unpin(cx).is_ready() {
                        if (watch.judged_down)() {
                            judged_down = true;
                            break;
                        }
                        let next = Instant::now() + super::CIRCUIT_WATCH;
                        watch.tick.as_mut().reset(next);
                    }
                }
                if judged_down {
                    return self.fail(
                        "its circuit opened (failed health checks or fragments) while the fragment waited for rows; the statement was cancelled".into(),
                    );
                }
                Poll::Pending
            }
        }
    }
}

impl RecordBatchStream for StallGuarded {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}
