//! The stream of a running fragment: open, hold back, rerun or resume.
//!
//! ```text
//!  open on a replica ──▶ batches ──▶ held back until `resume_buffer`
//!       ▲                  │          bytes or the end, then emitted
//!       │   retryable      │
//!       └── failure ◀──────┘
//!   nothing emitted yet: rerun on another replica (the held rows dropped)
//!   emitted, key-ordered scan: continue after the last key read
//!   emitted, replay: rerun, check its first rows against the emitted
//!     rows' fingerprint, emit only what follows
//!   otherwise (or the check fails): fail, naming the fragment, the
//!     replica and why
//! ```

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use arrow::array::ArrayRef;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::{ColumnStatistics, ScalarValue, Statistics};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_expr::expressions::{CastExpr, Column};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, Time,
};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use spar_connectors::ReplicaPosition;
use spar_planner::runtime_filter::{allowed_by, spell, Allowed, Respelled};
use spar_planner::{ResumableScan, SourceCost};

use super::fingerprint::Fingerprint;
use crate::error::EngineError;
use crate::replica::{is_retryable, FragmentTime, Opened, ReplicaSet};

/// What a fragment runs: its SQL, and how to continue it when it can.
#[derive(Debug, Clone)]
pub(super) struct Spelling {
    pub(super) source: String,
    /// The SQL of the first attempt.
    pub(super) sql: String,
    /// The fragment's output schema.
    pub(super) schema: SchemaRef,
    /// Set when the SQL reads a scan in key order.
    pub(super) resume: Option<Arc<ResumableScan>>,
    /// Whether a failure after rows were emitted reruns the SQL and skips
    /// the rows already emitted (checked by their fingerprint).
    pub(super) replay: bool,
}

/// What a run of the fragment is measured against, for the source's
/// calibration (see `ReplicaSet::record_fragment_time`).
#[derive(Debug, Clone)]
pub(super) struct Timing {
    /// The SQL as planned (before runtime filters), which `push_or_pull`
    /// looks its time up by.
    pub(super) sql: Arc<str>,
    /// What the cost model predicted of the sub-plan.
    pub(super) predicted: SourceCost,
}

/// The measuring of one execution.
struct Measuring {
    timing: Timing,
    /// When the first replica was asked.
    started: Option<Instant>,
    /// Arrow bytes read.
    bytes: usize,
    /// Whether the run failed over, reran or resumed (its time then says
    /// nothing of the source's speed).
    retried: bool,
    /// DataFusion's `source_time`: from asking to the last row.
    source_time: Time,
}

/// The replicas that served one execution and what it took, for EXPLAIN
/// ANALYZE.
#[derive(Debug, Default, Clone)]
pub(super) struct Served {
    pub(super) replicas: Vec<String>,
    /// What the runtime filters added to the SQL, once it started.
    pub(super) runtime_filter: Option<String>,
    /// The SQL sent, where runtime filters changed it.
    pub(super) sql: Option<String>,
}

/// The dynamic filters of the hash joins above a fragment.
#[derive(Debug, Clone, Default)]
pub(super) struct RuntimeFilters {
    filters: Vec<Arc<dyn PhysicalExpr>>,
    /// The most keys spelled as an IN list for one column.
    max_keys: usize,
}

impl RuntimeFilters {
    pub(super) fn filters(&self) -> &[Arc<dyn PhysicalExpr>] {
        &self.filters
    }

    pub(super) fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// The positions, in the fragment's output, of the columns the
    /// filters' keys are compared with.
    pub(super) fn key_columns(&self) -> Vec<usize> {
        let mut out: Vec<usize> = self
            .filters
            .iter()
            .flat_map(|f| f.children().into_iter().cloned().collect::<Vec<_>>())
            .filter_map(|c| key_column(&c))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Only the filters `keep` accepts, if it drops any.
    pub(super) fn retain(&self, keep: impl Fn(&Arc<dyn PhysicalExpr>) -> bool) -> Option<Self> {
        let kept: Vec<_> = self.filters.iter().filter(|f| keep(f)).cloned().collect();
        (kept.len() < self.filters.len()).then(|| Self {
            filters: kept,
            max_keys: self.max_keys,
        })
    }

    /// These and `more`.
    pub(super) fn with(&self, more: Vec<Arc<dyn PhysicalExpr>>, max_keys: usize) -> Self {
        let mut filters = self.filters.clone();
        filters.extend(more);
        Self { filters, max_keys }
    }

    /// What one execution of the fragment computing `plan`, whose output
    /// has these statistics, reads.
    pub(super) fn for_plan(
        &self,
        plan: &LogicalPlan,
        statistics: &Statistics,
    ) -> Option<PendingFilters> {
        (!self.filters.is_empty()).then(|| PendingFilters {
            filters: self.filters.clone(),
            max_keys: self.max_keys,
            plan: plan.clone(),
            columns: statistics.column_statistics.clone(),
        })
    }
}

/// The column a key is compared with: bare, or under a cast to the other
/// side's type (an index on the column serves both).
fn key_column(e: &Arc<dyn PhysicalExpr>) -> Option<usize> {
    if let Some(c) = e.downcast_ref::<Column>() {
        return Some(c.index());
    }
    e.downcast_ref::<CastExpr>()
        .and_then(|c| key_column(c.expr()))
}

/// Runtime filters not read yet: read when the fragment first opens.
pub(super) struct PendingFilters {
    filters: Vec<Arc<dyn PhysicalExpr>>,
    max_keys: usize,
    plan: LogicalPlan,
    /// What is estimated of each output column.
    columns: Vec<ColumnStatistics>,
}

impl PendingFilters {
    /// The fragment's SQL with the keys the filters hold now.
    fn respell(self, source: &str) -> Respelled {
        let schema = self.plan.schema().as_arrow();
        let allowed = self
            .filters
            .iter()
            .map(|f| allowed_by(f, schema))
            .fold(Allowed::everything(), Allowed::and);
        if allowed.is_everything() {
            return Respelled::Unchanged;
        }
        spell(&self.plan, &allowed, self.max_keys, &self.columns).unwrap_or_else(|e| {
            // Only a lost optimization: the SQL as planned is right.
            tracing::debug!(source, error = %e, "runtime filter not spelled");
            Respelled::Unchanged
        })
    }
}

/// Counters of one fragment's execution.
pub(super) struct Counters {
    pub(super) attempts: Count,
    pub(super) failovers: Count,
    pub(super) reruns: Count,
    pub(super) resumes: Count,
    pub(super) hedges: Count,
}

impl Counters {
    pub(super) fn new(metrics: &ExecutionPlanMetricsSet) -> Self {
        Self {
            attempts: MetricBuilder::new(metrics).counter("attempts", 0),
            failovers: MetricBuilder::new(metrics).counter("failovers", 0),
            reruns: MetricBuilder::new(metrics).counter("reruns", 0),
            resumes: MetricBuilder::new(metrics).counter("resumes", 0),
            hedges: MetricBuilder::new(metrics).counter("hedges", 0),
        }
    }
}

/// The fragment's stream; DataFusion's baseline metrics count rows, bytes
/// and the time spent waiting for them.
pub(super) struct FragmentStream {
    schema: SchemaRef,
    inner: BoxStream<'static, Result<RecordBatch>>,
    baseline: BaselineMetrics,
}

impl FragmentStream {
    pub(super) fn new(
        replicas: ReplicaSet,
        spelling: Spelling,
        runtime: Option<PendingFilters>,
        timing: Option<Timing>,
        metrics: &ExecutionPlanMetricsSet,
        served: Arc<Mutex<Served>>,
    ) -> Self {
        let schema = Arc::clone(&spelling.schema);
        let emitted = spelling.replay.then(Fingerprint::default);
        replicas.count_fragment();
        let runner = Runner {
            hold_back: replicas.settings().resume_buffer,
            replicas,
            spelling,
            runtime,
            counters: Counters::new(metrics),
            served,
            current: None,
            ready: VecDeque::new(),
            held: Vec::new(),
            held_bytes: 0,
            emitting: false,
            last_key: None,
            emitted,
            replaying: None,
            failed_in_a_row: Vec::new(),
            failures_in_a_row: 0,
            position: None,
            rows_read: 0,
            measuring: timing.map(|timing| Measuring {
                timing,
                started: None,
                bytes: 0,
                retried: false,
                source_time: MetricBuilder::new(metrics).subset_time("source_time", 0),
            }),
            done: false,
        };
        let inner = futures::stream::unfold(runner, |mut r| async move {
            let item = r.next().await?;
            Some((item, r))
        })
        .boxed();
        Self {
            schema,
            inner,
            baseline: BaselineMetrics::new(metrics, 0),
        }
    }
}

impl Stream for FragmentStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let elapsed = self.baseline.elapsed_compute().clone();
        let timer = elapsed.timer();
        let poll = self.inner.poll_next_unpin(cx);
        timer.done();
        self.baseline.record_poll(poll)
    }
}

impl RecordBatchStream for FragmentStream {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

/// A replay on another replica, reading the rows emitted before the
/// failure of `replica` again.
struct Replaying {
    read_again: Fingerprint,
    replica: String,
    error: String,
}

/// One execution of a fragment.
struct Runner {
    replicas: ReplicaSet,
    spelling: Spelling,
    /// Read once, before the first replica is asked.
    runtime: Option<PendingFilters>,
    counters: Counters,
    served: Arc<Mutex<Served>>,
    /// The replica being read: its index and the rest of its stream.
    current: Option<(usize, String, SendableRecordBatchStream)>,
    /// Batches to hand out.
    ready: VecDeque<RecordBatch>,
    /// Batches held back until `hold_back` bytes or the end.
    held: Vec<RecordBatch>,
    held_bytes: usize,
    hold_back: usize,
    /// Whether any batch has been handed out.
    emitting: bool,
    /// The key of the last row read (key-ordered scans only).
    last_key: Option<Vec<ScalarValue>>,
    /// The fingerprint of the rows emitted (fragments that replay).
    emitted: Option<Fingerprint>,
    /// While a replay reads the rows already emitted: their fingerprint
    /// so far, and the failure that made it replay.
    replaying: Option<Replaying>,
    /// The replicas that failed the fragment since it last emitted a new
    /// row, least recent first (each once): tried again only after every
    /// other.
    failed_in_a_row: Vec<usize>,
    /// How many failures that was: a failure that recurs at the same row
    /// on every replica must end the query, not loop.
    failures_in_a_row: usize,
    /// How far along replication the data read so far is (key-ordered
    /// scans on sources that can tell).
    position: Option<ReplicaPosition>,
    /// Rows read from the source, over every replica.
    rows_read: usize,
    /// The run's time, for the source's calibration.
    measuring: Option<Measuring>,
    done: bool,
}

impl Runner {
    async fn next(&mut self) -> Option<Result<RecordBatch>> {
        loop {
            if let Some(batch) = self.ready.pop_front() {
                return Some(Ok(batch));
            }
            if self.done {
                return None;
            }
            if let Some(runtime) = self.runtime.take() {
                self.apply_runtime_filters(runtime);
                continue;
            }
            if self.current.is_none() {
                if let Err(e) = self.open().await {
                    return Some(Err(self.fail(e)));
                }
                continue;
            }
            let Some((index, target, stream)) = self.current.as_mut() else {
                continue;
            };
            let index = *index;
            match stream.next().await {
                Some(Ok(batch)) => {
                    let was_emitting = self.emitting;
                    if let Err(e) = self.accept(batch) {
                        return Some(Err(self.fail(e)));
                    }
                    if !was_emitting && self.emitting && self.emitted.is_some() {
                        self.note_position(index).await;
                    }
                }
                None => {
                    self.current = None;
                    if let Err(e) = self.end() {
                        return Some(Err(self.fail(e)));
                    }
                }
                Some(Err(e)) => {
                    let target = target.clone();
                    self.current = None;
                    if let Err(e) = self.recover(index, &target, e).await {
                        return Some(Err(self.fail(e)));
                    }
                }
            }
        }
    }

    /// Spells the runtime filters' keys into the SQL every attempt sends;
    /// when no row can pass, the fragment ends without asking any replica.
    fn apply_runtime_filters(&mut self, runtime: PendingFilters) {
        let respelled = runtime.respell(&self.spelling.source);
        if let Ok(mut served) = self.served.lock() {
            served.runtime_filter = Some(respelled.to_string());
            if let Respelled::Sql { sql, .. } = &respelled {
                served.sql = Some(sql.clone());
            }
        }
        match respelled {
            Respelled::Sql { sql, .. } => self.spelling.sql = sql,
            Respelled::Nothing => self.done = true,
            Respelled::Unchanged => {}
        }
    }

    /// Opens the fragment on a replica (those that failed it since its
    /// last new row tried last), from the start or after the last key read.
    async fn open(&mut self) -> Result<()> {
        if let Some(m) = &mut self.measuring {
            m.started.get_or_insert_with(Instant::now);
        }
        let (sql, schema) = match (&self.spelling.resume, &self.last_key) {
            (Some(scan), Some(key)) => (
                scan.sql(Some(key), self.rows_read)?,
                Arc::clone(scan.schema()),
            ),
            (Some(scan), None) => (self.spelling.sql.clone(), Arc::clone(scan.schema())),
            (None, _) => (self.spelling.sql.clone(), Arc::clone(&self.spelling.schema)),
        };
        // A resumed scan or a replay continues only on a replica at least
        // as far along as the data it delivered (where the source can tell).
        let at_least = self
            .position
            .as_ref()
            .filter(|_| self.last_key.is_some() || self.replaying.is_some());
        let opened = self
            .replicas
            .open_avoiding(&sql, schema, &self.failed_in_a_row, at_least)
            .await?;
        let Opened {
            replica,
            index,
            attempts,
            failovers,
            hedges,
            first,
            rest,
        } = opened;
        self.counters.attempts.add(attempts);
        if let Some(m) = self.measuring.as_mut().filter(|_| attempts > 1) {
            m.retried = true;
        }
        self.counters.failovers.add(failovers);
        self.counters.hedges.add(hedges);
        if let Ok(mut served) = self.served.lock() {
            served.replicas.push(replica.clone());
        }
        let rest: SendableRecordBatchStream = match first {
            None => return self.end(),
            Some(Err(e)) => return Err(e),
            Some(Ok(batch)) => {
                self.accept(batch)?;
                rest
            }
        };
        // The position of the data this replica serves (read after its
        // first batch, so at or past the statement's snapshot): for a
        // key-ordered scan always, for a replay once it emits.
        if self.spelling.resume.is_some() || (self.emitted.is_some() && self.emitting) {
            self.note_position(index).await;
        }
        self.current = Some((index, replica, rest));
        Ok(())
    }

    /// Notes how far along replication replica `index` is, for a resume
    /// or replay to continue only on one at least as far along.
    async fn note_position(&mut self, index: usize) {
        if let Some(position) = self.replicas.position(index).await {
            self.position = Some(position);
        }
    }

    /// The end of the replica's rows: emits what was held back, unless a
    /// replay ended before reading again every row already emitted.
    fn end(&mut self) -> Result<()> {
        self.done = true;
        self.measured();
        if let Some(replaying) = &self.replaying {
            let why = format!(
                "rerun on another replica, it returned {} rows, fewer than the {} already delivered (its data differs)",
                replaying.read_again.rows(),
                self.emitted.as_ref().map_or(0, Fingerprint::rows)
            );
            return Err(self.replay_failed(why));
        }
        self.release()
    }

    /// Records the run's time, once it read the source's last row: in
    /// EXPLAIN ANALYZE (`source_time`) and, when it ran on one replica
    /// from start to end, in the source's calibration.
    fn measured(&mut self) {
        let Some(m) = self.measuring.take() else {
            return;
        };
        let Some(started) = m.started else {
            return;
        };
        let elapsed = started.elapsed();
        m.source_time.add_duration(elapsed);
        if !m.retried && self.replaying.is_none() {
            self.replicas.record_fragment_time(&FragmentTime {
                sql: &m.timing.sql,
                predicted: m.timing.predicted,
                rows: self.rows_read,
                bytes: m.bytes,
                elapsed,
            });
        }
    }

    /// Ends a replay whose first rows are not the rows already delivered.
    fn replay_failed(&mut self, why: String) -> DataFusionError {
        let (replica, error) = self
            .replaying
            .take()
            .map(|r| (r.replica, r.error))
            .unwrap_or_default();
        self.not_resumable(replica, error, why)
    }

    /// The error of a fragment that cannot continue after `replica`
    /// failed with `error` once rows were delivered.
    fn not_resumable(&self, replica: String, error: String, why: String) -> DataFusionError {
        EngineError::NotResumable {
            source_name: self.spelling.source.clone(),
            replica,
            sql: self.spelling.sql.clone(),
            why,
            error,
        }
        .into()
    }

    /// Takes one batch read from the source: notes its last key, drops the
    /// key columns the fragment does not output, and holds or emits it.
    fn accept(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows_read += batch.num_rows();
        if let Some(m) = &mut self.measuring {
            m.bytes += batch.get_array_memory_size();
        }
        let batch = match self.skip_emitted(batch)? {
            Some(batch) => batch,
            None => return Ok(()),
        };
        let batch = match &self.spelling.resume {
            Some(scan) => {
                let last = batch.num_rows() - 1;
                self.last_key = Some(
                    scan.key_columns()
                        .iter()
                        .map(|&k| ScalarValue::try_from_array(batch.column(k), last))
                        .collect::<Result<Vec<_>>>()?,
                );
                let columns: Vec<ArrayRef> = batch.columns()[..scan.output_columns()].to_vec();
                RecordBatch::try_new(Arc::clone(&self.spelling.schema), columns)?
            }
            None => batch,
        };
        if self.emitting {
            self.emit(batch)?;
        } else {
            self.held_bytes += batch.get_array_memory_size();
            self.held.push(batch);
            if self.held_bytes >= self.hold_back {
                self.release()?;
            }
        }
        Ok(())
    }

    /// While replaying: folds the rows already emitted into the replay's
    /// fingerprint and drops them; once all are read again, checks them
    /// against the emitted rows and returns what follows them.
    fn skip_emitted(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let (Some(replaying), Some(emitted)) = (self.replaying.as_mut(), self.emitted.as_ref())
        else {
            return Ok(Some(batch));
        };
        let skip = (emitted.rows() - replaying.read_again.rows()).min(batch.num_rows());
        replaying.read_again.add(&batch.slice(0, skip))?;
        if replaying.read_again.rows() < emitted.rows() {
            return Ok(None);
        }
        if !replaying.read_again.same_as(emitted) {
            let why = format!(
                "rerun on another replica, its first {} rows are not the rows already delivered (its data differs, or it returns rows in another order, as a parallel plan does)",
                emitted.rows()
            );
            return Err(self.replay_failed(why));
        }
        self.replaying = None;
        let rest = batch.num_rows() - skip;
        Ok((rest > 0).then(|| batch.slice(skip, rest)))
    }

    /// Hands out a batch, folding it into the fingerprint of the rows
    /// emitted when the fragment may replay.
    fn emit(&mut self, batch: RecordBatch) -> Result<()> {
        if let Some(emitted) = self.emitted.as_mut() {
            emitted.add(&batch)?;
        }
        self.failed_in_a_row.clear();
        self.failures_in_a_row = 0;
        self.ready.push_back(batch);
        Ok(())
    }

    /// Hands out everything held back; from now on batches pass through.
    fn release(&mut self) -> Result<()> {
        self.emitting = true;
        self.held_bytes = 0;
        for batch in std::mem::take(&mut self.held) {
            self.emit(batch)?;
        }
        Ok(())
    }

    /// After the stream of replica `index` failed with `error`: rerun,
    /// resume, or give up.
    async fn recover(&mut self, index: usize, target: &str, error: DataFusionError) -> Result<()> {
        if !is_retryable(&error) {
            return Err(error.context(format!(
                "source `{}`, replica {target}",
                self.spelling.source
            )));
        }
        self.replicas.report_failure(index, &error);
        if let Some(m) = &mut self.measuring {
            m.retried = true;
        }
        tracing::warn!(source = %self.spelling.source, replica = %target, error = %error, "fragment's replica failed mid-stream");
        // Each replica gets two turns; then a failure that recurs before
        // any new row ends the fragment rather than loop.
        self.failed_in_a_row.retain(|&i| i != index);
        self.failed_in_a_row.push(index);
        self.failures_in_a_row += 1;
        if self.failures_in_a_row >= 2 * self.replicas.connectors().count().max(1) {
            if !self.emitting {
                return Err(error.context(format!(
                    "source `{}`: the fragment failed mid-stream {} times in a row, last on replica {target}",
                    self.spelling.source, self.failures_in_a_row
                )));
            }
            let why = format!(
                "it was resumed {} times in a row without a new row (its replicas fail at the same point)",
                self.failures_in_a_row - 1
            );
            return Err(self.not_resumable(target.to_string(), error.to_string(), why));
        }
        if self.spelling.resume.is_some() {
            if self.last_key.is_some() {
                self.counters.resumes.add(1);
                self.replicas.count_resume();
            } else {
                self.counters.reruns.add(1);
            }
            return self.open().await;
        }
        if self.emitting && self.emitted.is_some() {
            self.counters.resumes.add(1);
            self.replicas.count_resume();
            self.replaying = Some(Replaying {
                read_again: Fingerprint::default(),
                replica: target.to_string(),
                error: error.to_string(),
            });
            return self.open().await;
        }
        if !self.emitting {
            self.held.clear();
            self.held_bytes = 0;
            self.rows_read = 0;
            self.counters.reruns.add(1);
            return self.open().await;
        }
        let why = format!(
            "{} rows were already delivered and the source's `resume` is \"off\"",
            self.rows_read
        );
        Err(self.not_resumable(target.to_string(), error.to_string(), why))
    }

    /// Ends the stream with `error`, counted as a failed fragment.
    fn fail(&mut self, error: DataFusionError) -> DataFusionError {
        self.done = true;
        self.current = None;
        self.ready.clear();
        self.held.clear();
        self.replicas.count_failed();
        error
    }
}
