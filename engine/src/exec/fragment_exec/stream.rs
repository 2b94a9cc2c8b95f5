//! The stream of a running fragment.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use datafusion::execution::RecordBatchStream;
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder,
};
use futures::future::BoxFuture;
use futures::{FutureExt, Stream, StreamExt};

use crate::replica::{Opened, ReplicaSet};

/// Opens the fragment on a replica on first poll, then passes its batches
/// through; DataFusion's baseline metrics count rows, bytes and the time
/// spent waiting for them.
pub(super) struct FragmentStream {
    schema: SchemaRef,
    state: State,
    baseline: BaselineMetrics,
    failovers: Count,
    served_by: Arc<Mutex<Option<String>>>,
}

enum State {
    Opening(BoxFuture<'static, Result<Opened>>),
    First(
        Option<Result<RecordBatch>>,
        datafusion::execution::SendableRecordBatchStream,
    ),
    Streaming(datafusion::execution::SendableRecordBatchStream),
    Done,
}

impl FragmentStream {
    pub(super) fn new(
        replicas: ReplicaSet,
        sql: String,
        schema: SchemaRef,
        metrics: &ExecutionPlanMetricsSet,
        served_by: Arc<Mutex<Option<String>>>,
    ) -> Self {
        let open_schema = Arc::clone(&schema);
        let opening = async move { replicas.open(&sql, open_schema).await }.boxed();
        Self {
            schema,
            state: State::Opening(opening),
            baseline: BaselineMetrics::new(metrics, 0),
            failovers: MetricBuilder::new(metrics).counter("failovers", 0),
            served_by,
        }
    }

    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<RecordBatch>>> {
        loop {
            match std::mem::replace(&mut self.state, State::Done) {
                State::Opening(mut opening) => match opening.poll_unpin(cx) {
                    Poll::Pending => {
                        self.state = State::Opening(opening);
                        return Poll::Pending;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
                    Poll::Ready(Ok(opened)) => {
                        self.failovers.add(opened.failovers);
                        if let Ok(mut served_by) = self.served_by.lock() {
                            *served_by = Some(opened.replica);
                        }
                        self.state = State::First(opened.first, opened.rest);
                    }
                },
                State::First(Some(item), rest) => {
                    self.state = State::Streaming(rest);
                    return Poll::Ready(Some(item));
                }
                State::First(None, _) | State::Done => return Poll::Ready(None),
                State::Streaming(mut rest) => {
                    let item = rest.poll_next_unpin(cx);
                    if !matches!(item, Poll::Ready(None | Some(Err(_)))) {
                        self.state = State::Streaming(rest);
                    }
                    return item;
                }
            }
        }
    }
}

impl Stream for FragmentStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let elapsed = self.baseline.elapsed_compute().clone();
        let timer = elapsed.timer();
        let poll = self.poll_inner(cx);
        timer.done();
        self.baseline.record_poll(poll)
    }
}

impl RecordBatchStream for FragmentStream {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}
