//! Replica sets: the replicas of one source, their health, and the policy
//! that picks one for each fragment.
//!
//! ```text
//!   FragmentExec ──open(sql)──▶ ReplicaSet ──policy──▶ [r0, r1, …]
//!                                  │  skip: circuit open, lagging
//!                                  │  try r0 within first_batch_timeout;
//!                                  │  retryable error → next replica,
//!                                  │  rounds with back-off until
//!                                  │  retry_deadline
//!                                  ▼
//!                 first batch + the rest (stall_timeout between batches)
//! ```
//!
//! A background task per set checks every replica's health (and lag) each
//! `health_check_interval`, feeding the same circuit breakers fragments
//! feed ([`health`]). Failures after the first batch are the fragment's to
//! handle (`FragmentExec` resumes or reruns); it reports them here with
//! [`ReplicaSet::report_failure`].

mod advice;
mod calibration;
mod health;
mod latency;
mod settings;
mod stall;

pub use advice::AdviceRecord;
pub use calibration::{CalibrationReport, FragmentTime};
pub use health::Circuit;
pub use latency::{HistogramSnapshot, FIRST_BATCH_BUCKETS};
pub use settings::{HedgeAfter, ReplicaSettings, Resume, MAX_CIRCUIT_BACKOFF};

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use spar_connectors::error::find_connector_error;
use spar_connectors::{Connector, ConnectorError, ReplicaPosition, ReplicaRole};

use crate::error::EngineError;
use health::Health;
use latency::{LatencyHistogram, RecentLatencies};
use stall::StallGuarded;

/// How a replica set orders its replicas for each fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// The first replica (the primary) unless it is down, then the next.
    #[default]
    PrimaryFirst,
    /// Each fragment starts at the next replica in turn.
    RoundRobin,
    /// The replica with the lowest moving average time to first batch,
    /// weighed by the fragments it is running; replicas not yet measured
    /// go first.
    LeastLatency,
}

impl FromStr for Policy {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "primary_first" => Ok(Self::PrimaryFirst),
            "round_robin" => Ok(Self::RoundRobin),
            "least_latency" => Ok(Self::LeastLatency),
            other => Err(format!(
                "expected one of \"primary_first\", \"round_robin\", \"least_latency\"; found \"{other}\""
            )),
        }
    }
}

/// The replicas of one source.
#[derive(Debug, Clone)]
pub struct ReplicaSet {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    source: String,
    replicas: Vec<Replica>,
    policy: Policy,
    settings: ReplicaSettings,
    /// Round-robin cursor; shared by all fragments of the source.
    next: AtomicUsize,
    counters: Counters,
    /// The source's recent times to first batch (for `hedge_after = "p95"`).
    recent: RecentLatencies,
    /// Indexes fragments run here would have used.
    advisor: advice::Advisor,
    /// The source's measured speed and its fragments' recent times.
    calibration: calibration::Calibration,
}

/// Counters for `/metrics` and `system.replicas`, shared by every fragment
/// of the source.
#[derive(Debug, Default)]
struct Counters {
    fragments: AtomicU64,
    attempts: AtomicU64,
    failovers: AtomicU64,
    resumes: AtomicU64,
    failed: AtomicU64,
    hedges: AtomicU64,
    hedges_won: AtomicU64,
    hedges_lost: AtomicU64,
}

#[derive(Debug)]
struct Replica {
    connector: Arc<dyn Connector>,
    /// Moving average of the time to first batch, in microseconds; 0 until
    /// measured. Updated by every fragment that runs here.
    latency_micros: AtomicU64,
    /// Fragments reading from this replica now.
    in_flight: Arc<AtomicUsize>,
    health: Health,
    /// Every time to first batch measured here.
    first_batch: LatencyHistogram,
}

/// How one replica is doing, for `system.replicas` and `/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaReport {
    /// The redacted target (no password).
    pub target: String,
    /// Primary or replica, once a check has read it.
    pub role: Option<ReplicaRole>,
    /// `healthy`, `open`, `half-open` or `lagging`.
    pub state: &'static str,
    /// Replication lag, when known.
    pub lag: Option<Duration>,
    /// Moving average of the time to first batch (`None` until measured).
    pub latency: Option<Duration>,
    /// Fragments reading from it now.
    pub in_flight: usize,
    /// Failed attempts and checks, in all.
    pub failures: u64,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// When the state last changed.
    pub changed_at: SystemTime,
    /// Times to first batch of the fragments it served.
    pub first_batch: HistogramSnapshot,
}

/// A source's fragment counters and its replicas' state.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaSetStats {
    /// Fragments run on the source.
    pub fragments: u64,
    /// Attempts to open a fragment on a replica.
    pub attempts: u64,
    /// Attempts that failed on a replica with a retryable error before the
    /// first batch (each sends the fragment on to the next replica).
    pub failovers: u64,
    /// Fragments continued on another replica after rows were delivered.
    pub resumes: u64,
    /// Fragments that failed on every replica or with a non-retryable error.
    pub failed: u64,
    /// Second attempts started because the first had no batch after
    /// `hedge_after`.
    pub hedges: u64,
    /// Fragments that a hedge served (it delivered first).
    pub hedges_won: u64,
    /// Hedges cancelled because the attempt they hedged delivered first.
    pub hedges_lost: u64,
    /// Each replica's state.
    pub replicas: Vec<ReplicaReport>,
}

/// A fragment's stream opened on one replica, with its first item read.
pub struct Opened {
    /// The replica that serves the fragment (its redacted target).
    pub replica: String,
    /// Its position in the set (for [`ReplicaSet::report_failure`]).
    pub index: usize,
    /// Attempts started for the fragment, this one included.
    pub attempts: usize,
    /// Attempts that failed before this one succeeded.
    pub failovers: usize,
    /// Hedges started while opening (see [`ReplicaSettings::hedge_after`]).
    pub hedges: usize,
    /// The first item, already read (`None` for an empty result).
    pub first: Option<Result<RecordBatch>>,
    /// The rest of the stream; it fails with a retryable error when the
    /// replica stalls, and counts as in flight on the replica until
    /// dropped.
    pub rest: SendableRecordBatchStream,
}

/// Holds one unit of a replica's in-flight count.
pub(crate) struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(count))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The first pause between two rounds of attempts; it doubles up to
/// [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(50);
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(2);
/// How often an attempt waiting for its first batch looks whether its
/// replica's circuit has opened meanwhile.
const CIRCUIT_WATCH: Duration = Duration::from_millis(250);

impl ReplicaSet {
    /// A replica set for `source` with default settings; `replicas` must
    /// not be empty (the config refuses an empty list).
    pub fn new(
        source: impl Into<String>,
        replicas: Vec<Arc<dyn Connector>>,
        policy: Policy,
    ) -> Self {
        Self::with_settings(source, replicas, policy, ReplicaSettings::default())
    }

    /// A replica set with these settings.
    pub fn with_settings(
        source: impl Into<String>,
        replicas: Vec<Arc<dyn Connector>>,
        policy: Policy,
        settings: ReplicaSettings,
    ) -> Self {
        let replicas = replicas
            .into_iter()
            .map(|connector| Replica {
                connector,
                latency_micros: AtomicU64::new(0),
                in_flight: Arc::new(AtomicUsize::new(0)),
                health: Health::default(),
                first_batch: LatencyHistogram::default(),
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                source: source.into(),
                replicas,
                policy,
                settings,
                next: AtomicUsize::new(0),
                counters: Counters::default(),
                recent: RecentLatencies::default(),
                advisor: advice::Advisor::default(),
                calibration: calibration::Calibration::default(),
            }),
        }
    }

    /// The set's settings.
    pub fn settings(&self) -> &ReplicaSettings {
        &self.inner.settings
    }

    /// Counters and every replica's state, for monitoring.
    pub fn stats(&self) -> ReplicaSetStats {
        let i = &self.inner;
        let c = &i.counters;
        ReplicaSetStats {
            fragments: c.fragments.load(Ordering::Relaxed),
            attempts: c.attempts.load(Ordering::Relaxed),
            failovers: c.failovers.load(Ordering::Relaxed),
            resumes: c.resumes.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            hedges: c.hedges.load(Ordering::Relaxed),
            hedges_won: c.hedges_won.load(Ordering::Relaxed),
            hedges_lost: c.hedges_lost.load(Ordering::Relaxed),
            replicas: i.replicas.iter().map(Replica::report).collect(),
        }
    }

    /// The source's name.
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// The replicas' connectors, primary first.
    pub fn connectors(&self) -> impl Iterator<Item = &Arc<dyn Connector>> {
        self.inner.replicas.iter().map(|r| &r.connector)
    }

    /// The policy's order of the replicas for the next fragment (before
    /// open circuits and lagging replicas are skipped).
    pub fn candidates(&self) -> Vec<usize> {
        let n = self.inner.replicas.len();
        match self.inner.policy {
            Policy::PrimaryFirst => (0..n).collect(),
            Policy::RoundRobin => {
                let start = self.inner.next.fetch_add(1, Ordering::Relaxed) % n.max(1);
                (0..n).map(|i| (start + i) % n).collect()
            }
            Policy::LeastLatency => {
                let mut order: Vec<usize> = (0..n).collect();
                order.sort_by_key(|&i| {
                    let r = &self.inner.replicas[i];
                    let busy = r.in_flight.load(Ordering::Relaxed) as u64;
                    r.latency_micros
                        .load(Ordering::Relaxed)
                        .saturating_mul(busy + 1)
                });
                order
            }
        }
    }

    /// Starts the background health checks; they stop when the last clone
    /// of the set is dropped. Needs a Tokio runtime.
    pub fn start_health_checks(&self) {
        let weak = Arc::downgrade(&self.inner);
        let interval = self.inner.settings.health_check_interval;
        tokio::spawn(async move {
            loop {
                let Some(set) = Weak::upgrade(&weak).map(|inner| ReplicaSet { inner }) else {
                    return;
                };
                set.check_all().await;
                drop(set);
                tokio::time::sleep(interval).await;
            }
        });
    }

    /// Checks every replica whose circuit admits a check (an open one
    /// only after its back-off), at once.
    pub async fn check_all(&self) {
        let now = Instant::now();
        let checks = (0..self.inner.replicas.len())
            .filter(|&i| {
                self.inner.replicas[i]
                    .health
                    .admit(now, &self.inner.settings)
            })
            .map(|i| self.check(i));
        futures::future::join_all(checks).await;
    }

    /// One replica's health check and status read, within the connect
    /// timeout each.
    async fn check(&self, i: usize) {
        let replica = &self.inner.replicas[i];
        let settings = &self.inner.settings;
        let limit = settings.connect_timeout.max(Duration::from_secs(1));
        let target = replica.connector.target();
        match tokio::time::timeout(limit, replica.connector.health_check()).await {
            Ok(Ok(())) => replica.health.succeeded(),
            Ok(Err(e)) => return replica.health.failed(&e.to_string(), settings),
            Err(_) => {
                let e = format!(
                    "{target}: health check got no answer within {}",
                    humantime::format_duration(limit)
                );
                return replica.health.failed(&e, settings);
            }
        }
        if let Ok(Ok(status)) =
            tokio::time::timeout(limit, replica.connector.replica_status()).await
        {
            replica
                .health
                .set_status(status.role, status.lag, settings.max_staleness);
        }
    }

    /// Counts a fragment's continuation on another replica after rows
    /// were delivered.
    pub fn count_resume(&self) {
        self.inner.counters.resumes.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a failure of replica `index` after its first batch (a
    /// broken or stalled stream).
    pub fn report_failure(&self, index: usize, error: &DataFusionError) {
        if let Some(r) = self.inner.replicas.get(index) {
            r.health.failed(&error.to_string(), &self.inner.settings);
        }
    }

    /// Counts a fragment started on the source.
    pub fn count_fragment(&self) {
        self.inner
            .counters
            .fragments
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one run of a fragment that would have used each index of
    /// `advice` (see `system.index_advice`).
    pub fn record_index_advice(&self, advice: &[spar_planner::IndexAdvice]) {
        self.inner.advisor.record(advice);
    }

    /// The indexes fragments run on this source would have used, the most
    /// rows read without them first.
    pub fn index_advice(&self) -> Vec<AdviceRecord> {
        self.inner.advisor.records()
    }

    /// Takes one fragment's measured run into the source's speed and the
    /// fragment's recent times.
    pub fn record_fragment_time(&self, run: &FragmentTime<'_>) {
        self.inner.calibration.record(run);
    }

    /// The source's speed against the cost model's defaults, as measured.
    pub fn speed(&self) -> spar_planner::SourceSpeed {
        self.inner.calibration.speed()
    }

    /// The recent seconds of fragments that sent `sql`.
    pub fn measured(&self, sql: &str) -> Option<f64> {
        self.inner.calibration.measured(sql)
    }

    /// What `system.source_calibration` shows of the source.
    pub fn calibration(&self) -> CalibrationReport {
        self.inner.calibration.report()
    }

    /// Forgets the fragments' recent times, so that plans are weighed by
    /// the model again (a table's statistics were read again).
    pub fn forget_fragment_times(&self) {
        self.inner.calibration.forget_times();
    }

    /// Drops the advice recorded for `table` (`schema.table`), once its
    /// indexes were read again.
    pub fn forget_index_advice(&self, table: &str) {
        self.inner.advisor.forget(table);
    }

    /// Counts a fragment that failed for good.
    pub fn count_failed(&self) {
        self.inner.counters.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs `sql` on the first replica (in policy order, skipping open
    /// circuits and lagging replicas) that delivers a first batch (or the
    /// end of an empty result) in time. Retryable errors move on to the
    /// next replica, in rounds with back-off until `retry_deadline`; a
    /// non-retryable error fails at once with the source's message.
    pub async fn open(&self, sql: &str, schema: SchemaRef) -> Result<Opened> {
        self.count_fragment();
        let result = self.open_avoiding(sql, schema, &[], None).await;
        if result.is_err() {
            self.count_failed();
        }
        result
    }

    /// [`Self::open`] without counting the fragment (its caller counts
    /// it once, however often it opens): the replicas in `avoid` (those
    /// that just failed it) are tried only after every other, in that
    /// order.
    ///
    /// With `at_least` (the position of the data a resumed fragment has
    /// delivered), a replica whose own position is known to be behind it
    /// is passed over (not counted as failed): rows must not come from an
    /// older state than the rows before them.
    pub async fn open_avoiding(
        &self,
        sql: &str,
        schema: SchemaRef,
        avoid: &[usize],
        at_least: Option<&ReplicaPosition>,
    ) -> Result<Opened> {
        let settings = &self.inner.settings;
        if settings.max_staleness.is_some() {
            self.read_unknown_lags().await;
        }
        let mut pause = FIRST_RETRY_PAUSE;
        let mut first_failure: Option<Instant> = None;
        let mut failovers = 0;
        let mut hedges = 0;
        // Attempts started in earlier rounds.
        let mut admitted_total = 0;
        let hedge_after = self.hedge_delay();
        // The last failure of each replica in this fragment.
        let mut errors: Vec<Option<String>> = vec![None; self.inner.replicas.len()];
        loop {
            let mut order = self.candidates();
            if !avoid.is_empty() {
                order.retain(|i| !avoid.contains(i));
                order.extend(avoid.iter().filter(|&&i| i < self.inner.replicas.len()));
            }
            // Every circuit open (none lagging): probe the one whose back-off
            // ends first rather than fail on circuit state alone.
            if first_failure.is_none() {
                self.probe_if_all_open(&order);
            }
            // While some replica's circuit is closed, fragments go only to
            // closed ones: the background health checks probe the others.
            // (A fragment sent as a probe to a paused replica would wait
            // its whole first-batch timeout or hedge delay.)
            let probe = !order.iter().any(|&i| {
                let health = &self.inner.replicas[i].health;
                health.is_closed() && !health.is_lagging()
            });
            let mut order = order.into_iter();
            let mut admitted = 0;
            // At most two attempts at once: the one under way and its hedge.
            let mut running = FuturesUnordered::new();
            // The replicas of the attempts in `running`.
            let mut live: Vec<usize> = Vec::new();
            let mut hedge_timer = None;
            let mut can_hedge = hedge_after;
            loop {
                if running.is_empty() {
                    let Some(i) = self.next_admitted(&mut order, probe) else {
                        break;
                    };
                    admitted += 1;
                    live.push(i);
                    running.push(self.attempt_as(i, sql, Arc::clone(&schema), false, at_least));
                }
                if running.len() == 1 && hedge_timer.is_none() {
                    hedge_timer = can_hedge.map(|d| Box::pin(tokio::time::sleep(d)));
                }
                let finished = match hedge_timer.as_mut() {
                    Some(timer) if running.len() == 1 => tokio::select! {
                        finished = running.next() => finished,
                        () = timer => {
                            // The first batch is late: start a hedge.
                            hedge_timer = None;
                            match self.next_admitted(&mut order, probe) {
                                Some(i) => {
                                    admitted += 1;
                                    hedges += 1;
                                    self.inner.counters.hedges.fetch_add(1, Ordering::Relaxed);
                                    tracing::info!(source = %self.inner.source, replica = %self.inner.replicas[i].connector.target(), "no first batch yet; hedging on another replica");
                                    live.push(i);
                                    running.push(self.attempt_as(i, sql, Arc::clone(&schema), true, at_least));
                                }
                                // No replica left to hedge on this round.
                                None => can_hedge = None,
                            }
                            continue;
                        }
                    },
                    _ => running.next().await,
                };
                let Some((i, hedge, result)) = finished else {
                    break;
                };
                live.retain(|&r| r != i);
                let replica = &self.inner.replicas[i];
                match result {
                    Ok(mut opened) => {
                        if hedge {
                            self.inner
                                .counters
                                .hedges_won
                                .fetch_add(1, Ordering::Relaxed);
                            // The attempt it overtook counts as a failure of
                            // its replica: one that is overtaken
                            // `circuit_failures` times in a row (paused,
                            // overloaded) gets no fragments until a probe
                            // succeeds, rather than cost every fragment the
                            // hedge delay.
                            for &slow in &live {
                                let message = format!(
                                    "no first batch within {} (hedge_after); {} answered first",
                                    hedge_after
                                        .map(|d| humantime::format_duration(d).to_string())
                                        .unwrap_or_default(),
                                    replica.connector.target()
                                );
                                self.inner.replicas[slow].health.failed(&message, settings);
                            }
                        } else if hedges > 0 && !running.is_empty() {
                            self.inner
                                .counters
                                .hedges_lost
                                .fetch_add(1, Ordering::Relaxed);
                        }
                        // The other attempt, if any, is dropped here: its
                        // statement is cancelled on its server.
                        drop(running);
                        opened.attempts = admitted_total + admitted;
                        opened.failovers = failovers;
                        opened.hedges = hedges;
                        return Ok(opened);
                    }
                    Err(e) if is_behind(&e) => {
                        tracing::info!(source = %self.inner.source, error = %e, "replica behind the fragment's rows; trying the next");
                        errors[i] = Some(e.to_string());
                        hedge_timer = None;
                    }
                    Err(e) => {
                        if !is_retryable(&e) {
                            return Err(e.context(format!(
                                "source `{}`, replica {}",
                                self.inner.source,
                                replica.connector.target()
                            )));
                        }
                        replica.health.failed(&e.to_string(), settings);
                        self.inner
                            .counters
                            .failovers
                            .fetch_add(1, Ordering::Relaxed);
                        failovers += 1;
                        tracing::warn!(source = %self.inner.source, replica = %replica.connector.target(), error = %e, "replica failed; trying the next");
                        errors[i] = Some(e.to_string());
                        // A new attempt gets its own hedge delay.
                        hedge_timer = None;
                    }
                }
            }
            admitted_total += admitted;
            let started = *first_failure.get_or_insert_with(Instant::now);
            if admitted == 0 || started.elapsed() + pause > settings.retry_deadline {
                return Err(self.unavailable(&errors).into());
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_RETRY_PAUSE);
        }
    }

    /// The next replica of `order` that may take a fragment now: not
    /// lagging, and its circuit closed (or, with `probe`, due for a probe,
    /// which this claims).
    fn next_admitted(&self, order: &mut impl Iterator<Item = usize>, probe: bool) -> Option<usize> {
        let settings = &self.inner.settings;
        order.find(|&i| {
            let health = &self.inner.replicas[i].health;
            !health.is_lagging()
                && (health.is_closed() || (probe && health.admit(Instant::now(), settings)))
        })
    }

    /// How long a fragment waits for its first batch before hedging, by
    /// `hedge_after` (a percentile: of the source's recent times to first
    /// batch, once enough are measured).
    fn hedge_delay(&self) -> Option<Duration> {
        if self.inner.replicas.len() < 2 {
            return None;
        }
        match self.inner.settings.hedge_after? {
            HedgeAfter::Fixed(d) => Some(d),
            HedgeAfter::Percentile(p) => self
                .inner
                .recent
                .percentile(p)
                .map(|d| d.max(Duration::from_millis(1))),
        }
    }

    /// [`Self::attempt`], tagged with the replica and whether it hedges;
    /// first, with `at_least`, a check that the replica is not behind it.
    async fn attempt_as(
        &self,
        i: usize,
        sql: &str,
        schema: SchemaRef,
        hedge: bool,
        at_least: Option<&ReplicaPosition>,
    ) -> (usize, bool, Result<Opened>) {
        if let Some(required) = at_least {
            if let Some(position) = self.position(i).await {
                if position.covers(required) == Some(false) {
                    let behind = Behind {
                        target: self.inner.replicas[i].connector.target().to_string(),
                        position,
                        required: required.clone(),
                    };
                    return (i, hedge, Err(DataFusionError::External(Box::new(behind))));
                }
            }
        }
        (i, hedge, self.attempt(i, sql, schema).await)
    }

    /// A watch on replica `index`'s circuit: judged down once it opens
    /// after having opened `opened_before` times.
    fn circuit_watch(&self, index: usize, opened_before: u64) -> stall::CircuitWatch {
        let set = self.clone();
        stall::CircuitWatch {
            judged_down: Box::new(move || {
                set.inner
                    .replicas
                    .get(index)
                    .is_some_and(|r| r.health.opened_since(opened_before))
            }),
            tick: Box::pin(tokio::time::sleep(CIRCUIT_WATCH)),
        }
    }

    /// How far along replication replica `index` is, when it can tell
    /// within the connect timeout.
    pub async fn position(&self, index: usize) -> Option<ReplicaPosition> {
        let replica = self.inner.replicas.get(index)?;
        let limit = self.inner.settings.connect_timeout;
        match tokio::time::timeout(limit, replica.connector.replica_position()).await {
            Ok(Ok(position)) => position,
            Ok(Err(e)) => {
                tracing::debug!(source = %self.inner.source, replica = %replica.connector.target(), error = %e, "cannot read the replica's position");
                None
            }
            Err(_) => None,
        }
    }

    fn probe_if_all_open(&self, order: &[usize]) {
        let replicas = &self.inner.replicas;
        let usable: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| !replicas[i].health.is_lagging())
            .collect();
        if usable
            .iter()
            .any(|&i| replicas[i].health.retry_at().is_none())
        {
            return;
        }
        let now = Instant::now();
        if usable
            .iter()
            .any(|&i| replicas[i].health.retry_at().is_some_and(|t| now >= t))
        {
            return;
        }
        if let Some(&soonest) = usable
            .iter()
            .min_by_key(|&&i| replicas[i].health.retry_at())
        {
            replicas[soonest].health.force_probe(now);
        }
    }

    /// Records that replica `target` answered outside a fragment (the
    /// catalog was read through it): its circuit closes.
    pub fn record_success(&self, target: &str) {
        for r in &self.inner.replicas {
            if r.connector.target() == target {
                r.health.succeeded();
            }
        }
    }

    /// Opens `sql` on replica `i`: its first batch within the first-batch
    /// timeout, the rest guarded against stalls.
    async fn attempt(&self, i: usize, sql: &str, schema: SchemaRef) -> Result<Opened> {
        let replica = &self.inner.replicas[i];
        let settings = &self.inner.settings;
        let target = replica.connector.target().to_string();
        self.inner.counters.attempts.fetch_add(1, Ordering::Relaxed);
        let in_flight = InFlight::new(&replica.in_flight);
        let started = Instant::now();
        let first = async {
            let mut stream = replica.connector.execute(sql, schema).await?;
            let first = stream.next().await;
            Ok::<_, DataFusionError>((first, stream))
        };
        // Health checks (or other fragments) may judge the replica down
        // while this one waits: then it waits no longer.
        let opened_before = replica.health.times_opened();
        let judged_down = async {
            loop {
                tokio::time::sleep(CIRCUIT_WATCH).await;
                if replica.health.opened_since(opened_before) {
                    return;
                }
            }
        };
        let first = async {
            tokio::select! {
                opened = tokio::time::timeout(settings.first_batch_timeout, first) => Some(opened),
                () = judged_down => None,
            }
        };
        let (first, rest) = match first.await {
            None => {
                return Err(ConnectorError::Transient {
                    target,
                    message: "its circuit opened (failed health checks or fragments) while the fragment waited for its first batch; the statement was cancelled".into(),
                }
                .into())
            }
            Some(Err(_)) => {
                return Err(ConnectorError::Transient {
                    target,
                    message: format!(
                        "no rows within {} (first_batch_timeout); the statement was cancelled",
                        humantime::format_duration(settings.first_batch_timeout)
                    ),
                }
                .into())
            }
            Some(Ok(Err(e)) | Ok(Ok((Some(Err(e)), _)))) => return Err(e),
            Some(Ok(Ok(opened))) => opened,
        };
        let took = started.elapsed();
        replica.record_latency(took.as_micros());
        replica.first_batch.record(took);
        self.inner.recent.record(took);
        replica.health.succeeded();
        Ok(Opened {
            rest: Box::pin(StallGuarded::new(
                rest,
                settings.stall_timeout,
                target.clone(),
                in_flight,
                Some(self.circuit_watch(i, opened_before)),
            )),
            replica: target,
            index: i,
            attempts: 1,
            failovers: 0,
            hedges: 0,
            first,
        })
    }

    /// Reads the lag of replicas never checked yet (before the first
    /// background check has run), so that `max_staleness` holds from the
    /// first fragment on.
    async fn read_unknown_lags(&self) {
        let unknown: Vec<usize> = (0..self.inner.replicas.len())
            .filter(|&i| {
                let h = &self.inner.replicas[i].health;
                h.is_closed() && !h.lag_known()
            })
            .collect();
        futures::future::join_all(unknown.into_iter().map(|i| self.check(i))).await;
    }

    /// Why no replica could serve: each replica with its state and its last
    /// error (from this fragment, or else from its health).
    fn unavailable(&self, errors: &[Option<String>]) -> EngineError {
        let errors = self
            .inner
            .replicas
            .iter()
            .zip(errors)
            .map(|(r, e)| {
                let target = r.connector.target();
                let report = r.report();
                match (e, report.state) {
                    (Some(e), _) => e.clone(),
                    (None, "lagging") => format!(
                        "{target} trails its primary by {} (max_staleness {})",
                        report
                            .lag
                            .map(|l| humantime::format_duration(round_secs(l)).to_string())
                            .unwrap_or_else(|| "an unknown time (replication stopped)".into()),
                        self.inner
                            .settings
                            .max_staleness
                            .map(|m| humantime::format_duration(m).to_string())
                            .unwrap_or_default()
                    ),
                    (None, state) => match report.last_error {
                        Some(last) => format!("{target} is {state} (circuit), last error: {last}"),
                        None => format!("{target} is {state}"),
                    },
                }
            })
            .collect();
        EngineError::SourceUnavailable {
            source_name: self.inner.source.clone(),
            errors,
        }
    }
}

/// A replica passed over because its data is older than what a resumed
/// fragment has already delivered.
#[derive(Debug)]
struct Behind {
    target: String,
    position: ReplicaPosition,
    required: ReplicaPosition,
}

impl std::fmt::Display for Behind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is at {}, behind the {} of the rows the fragment already delivered",
            self.target, self.position, self.required
        )
    }
}

impl std::error::Error for Behind {}

fn is_behind(e: &DataFusionError) -> bool {
    matches!(e, DataFusionError::External(inner) if inner.is::<Behind>())
}

/// Whether running the fragment elsewhere may succeed.
pub(crate) fn is_retryable(e: &DataFusionError) -> bool {
    find_connector_error(e).is_some_and(|e| e.is_retryable())
}

fn round_secs(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
}

impl Replica {
    fn record_latency(&self, micros: u128) {
        let sample = u64::try_from(micros).unwrap_or(u64::MAX).max(1);
        let old = self.latency_micros.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            (old * 7 + sample) / 8
        };
        self.latency_micros.store(new, Ordering::Relaxed);
    }

    fn report(&self) -> ReplicaReport {
        let h = self.health.snapshot();
        let state = match h.circuit {
            Circuit::Open => "open",
            Circuit::HalfOpen => "half-open",
            Circuit::Closed if h.lagging => "lagging",
            Circuit::Closed => "healthy",
        };
        let latency = self.latency_micros.load(Ordering::Relaxed);
        ReplicaReport {
            target: self.connector.target().to_string(),
            role: h.role,
            state,
            lag: h.lag.flatten(),
            latency: (latency > 0).then(|| Duration::from_micros(latency)),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            failures: h.failures,
            last_error: h.last_error,
            changed_at: h.changed_at,
            first_batch: self.first_batch.snapshot(),
        }
    }
}

#[cfg(test)]
mod tests;
