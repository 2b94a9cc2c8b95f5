//! The fragment stream's rerun and give-up rules, with replicas whose
//! failures are scripted (the real servers are in tests/tests/replicas.rs).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{AsArray, Int64Array};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use spar_connectors::{
    Connector, ConnectorError, IndexMeta, SqlDialect, TableKind, TableName, TableStats,
};

use super::stream::{FragmentStream, Served, Spelling};
use crate::replica::{Policy, ReplicaSet, ReplicaSettings};

/// What a scripted replica does with a query.
#[derive(Debug, Clone, Copy)]
enum Script {
    /// Sends `n` batches of one row each (values 0..n), then ends.
    Rows(i64),
    /// Sends `n` batches, then fails as a lost connection does.
    FailAfter(i64),
    /// Sends `n` batches, then never another.
    StallAfter(i64),
}

#[derive(Debug)]
struct Scripted {
    target: String,
    script: Script,
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]))
}

#[async_trait]
impl Connector for Scripted {
    fn target(&self) -> &str {
        &self.target
    }
    fn dialect(&self) -> Arc<dyn SqlDialect> {
        Arc::new(spar_connectors::sqlite::SqliteSqlDialect)
    }
    async fn list_schemas(&self) -> spar_connectors::Result<Vec<String>> {
        Ok(Vec::new())
    }
    async fn list_tables(&self, _: &str) -> spar_connectors::Result<Vec<(String, TableKind)>> {
        Ok(Vec::new())
    }
    async fn table_schema(&self, _: &TableName) -> spar_connectors::Result<SchemaRef> {
        Ok(schema())
    }
    async fn table_statistics(
        &self,
        _: &TableName,
        _: &SchemaRef,
    ) -> spar_connectors::Result<TableStats> {
        Ok(TableStats::unknown(1))
    }
    async fn indexes(&self, _: &TableName) -> spar_connectors::Result<Vec<IndexMeta>> {
        Ok(Vec::new())
    }
    async fn execute(
        &self,
        _sql: &str,
        schema: SchemaRef,
    ) -> spar_connectors::Result<SendableRecordBatchStream> {
        let (n, end) = match self.script {
            Script::Rows(n) => (n, 0),
            Script::FailAfter(n) => (n, 1),
            Script::StallAfter(n) => (n, 2),
        };
        let target = self.target.clone();
        let batch_schema = Arc::clone(&schema);
        let rows = futures::stream::iter(0..n).map(move |v| {
            Ok(RecordBatch::try_new(
                Arc::clone(&batch_schema),
                vec![Arc::new(Int64Array::from(vec![v]))],
            )?)
        });
        let tail: futures::stream::BoxStream<'static, _> = match end {
            1 => futures::stream::once(async move {
                Err(ConnectorError::Unavailable {
                    target,
                    message: "connection reset".into(),
                }
                .into())
            })
            .boxed(),
            2 => futures::stream::pending().boxed(),
            _ => futures::stream::empty().boxed(),
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            rows.chain(tail),
        )))
    }
    async fn health_check(&self) -> spar_connectors::Result<()> {
        Ok(())
    }
}

fn replicas(scripts: &[Script], resume_buffer: usize) -> ReplicaSet {
    let connectors = scripts
        .iter()
        .enumerate()
        .map(|(i, &script)| {
            Arc::new(Scripted {
                target: format!("r{i}"),
                script,
            }) as Arc<dyn Connector>
        })
        .collect();
    let settings = ReplicaSettings {
        stall_timeout: Duration::from_millis(200),
        first_batch_timeout: Duration::from_millis(500),
        resume_buffer,
        ..ReplicaSettings::default()
    };
    ReplicaSet::with_settings("src", connectors, Policy::PrimaryFirst, settings)
}

/// Runs the fragment to its end: the values read, the error that ended
/// it (if any), the replicas that served it and its metrics.
async fn run(set: &ReplicaSet) -> (Vec<i64>, Option<String>, Vec<String>, String) {
    let metrics = ExecutionPlanMetricsSet::new();
    let served = Arc::new(Mutex::new(Served::default()));
    let spelling = Spelling {
        source: "src".into(),
        sql: "SELECT v FROM t".into(),
        schema: schema(),
        resume: None,
    };
    let mut stream = FragmentStream::new(set.clone(), spelling, &metrics, Arc::clone(&served));
    let mut values = Vec::new();
    let mut error = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(b) => values.extend(b.column(0).as_primitive::<Int64Type>().values().iter()),
            Err(e) => error = Some(e.to_string()),
        }
    }
    let served = served
        .lock()
        .map(|s| s.replicas.clone())
        .unwrap_or_default();
    (values, error, served, metrics.clone_inner().to_string())
}

#[tokio::test]
async fn a_failure_before_anything_was_emitted_reruns_invisibly() {
    let set = replicas(&[Script::FailAfter(3), Script::Rows(5)], 1 << 20);
    let (values, error, served, metrics) = run(&set).await;
    assert_eq!(error, None);
    assert_eq!(
        values,
        [0, 1, 2, 3, 4],
        "the first replica's rows were dropped"
    );
    assert_eq!(served, ["r0", "r1"]);
    assert!(metrics.contains("reruns{partition=0}=1"), "{metrics}");
    assert_eq!(set.stats().replicas[0].failures, 1);
}

#[tokio::test]
async fn a_stalled_replica_is_given_up_on_and_the_fragment_reruns() {
    let set = replicas(&[Script::StallAfter(2), Script::Rows(3)], 1 << 20);
    let (values, error, served, _) = run(&set).await;
    assert_eq!(error, None);
    assert_eq!(values, [0, 1, 2]);
    assert_eq!(served, ["r0", "r1"]);
    let last = set.stats().replicas[0]
        .last_error
        .clone()
        .unwrap_or_default();
    assert!(last.contains("stall_timeout"), "{last}");
}

#[tokio::test]
async fn a_fragment_that_cannot_resume_fails_rather_than_repeat_rows() {
    // A one-byte buffer: every batch is emitted at once.
    let set = replicas(&[Script::FailAfter(3), Script::Rows(5)], 1);
    let (values, error, _, _) = run(&set).await;
    assert_eq!(values, [0, 1, 2], "what was delivered before the failure");
    let error = error.unwrap_or_default();
    assert!(
        error.contains("replica r0 failed after the fragment had delivered rows")
            && error.contains("cannot be resumed")
            && error.contains("connection reset")
            && error.contains("SELECT v FROM t"),
        "{error}"
    );
    assert_eq!(set.stats().failed, 1);
}
