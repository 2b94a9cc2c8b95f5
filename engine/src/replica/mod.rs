//! Replica sets: the replicas of one source and the policy that picks one.
//!
//! ```text
//!   FragmentExec ──open(sql)──▶ ReplicaSet ──policy──▶ [r0, r1, …]
//!                                  │ try r0: retryable error before the
//!                                  │         first batch → try r1 …
//!                                  ▼
//!                       first batch + rest of the stream
//! ```
//!
//! Failover happens only before a fragment's first batch has been
//! delivered; after that, an error ends the query (resuming mid-stream on
//! another replica needs an order on a unique key and comes with the
//! replica work). A query never returns partial results silently.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use spar_connectors::error::find_connector_error;
use spar_connectors::Connector;

use crate::error::EngineError;

/// How a replica set orders its replicas for each fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// The first replica (the primary) unless it fails, then the next.
    #[default]
    PrimaryFirst,
    /// Each fragment starts at the next replica in turn.
    RoundRobin,
    /// The replica with the lowest moving average time to first batch;
    /// replicas not yet measured go first.
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
    /// Round-robin cursor; shared by all fragments of the source.
    next: AtomicUsize,
    /// Fragments opened, replicas failed over, fragments that failed:
    /// counters for `/metrics`, shared by every fragment of the source.
    fragments: AtomicU64,
    failovers: AtomicU64,
    failed: AtomicU64,
}

#[derive(Debug)]
struct Replica {
    connector: Arc<dyn Connector>,
    /// Moving average of the time to first batch, in microseconds; 0 until
    /// measured. Updated by every fragment that runs here.
    latency_micros: AtomicU64,
    /// Whether the last attempt here succeeded (true until one fails).
    healthy: AtomicBool,
}

/// A source's fragment counters and its replicas' last known health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSetStats {
    /// Fragments run on the source.
    pub fragments: u64,
    /// Attempts that failed on a replica with a retryable error (each sends
    /// the fragment on to the next replica, when there is one).
    pub failovers: u64,
    /// Fragments that failed on every replica or with a non-retryable error.
    pub failed: u64,
    /// Each replica's redacted target and whether its last attempt succeeded.
    pub replicas: Vec<(String, bool)>,
}

/// A fragment's stream opened on one replica, with its first item read.
pub struct Opened {
    /// The replica that serves the fragment (its redacted target).
    pub replica: String,
    /// How many replicas failed before this one.
    pub failovers: usize,
    /// The first item, already read (`None` for an empty result).
    pub first: Option<Result<RecordBatch>>,
    /// The rest of the stream.
    pub rest: SendableRecordBatchStream,
}

impl ReplicaSet {
    /// A replica set for `source`; `replicas` must not be empty (the
    /// config refuses an empty list).
    pub fn new(
        source: impl Into<String>,
        replicas: Vec<Arc<dyn Connector>>,
        policy: Policy,
    ) -> Self {
        let replicas = replicas
            .into_iter()
            .map(|connector| Replica {
                connector,
                latency_micros: AtomicU64::new(0),
                healthy: AtomicBool::new(true),
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                source: source.into(),
                replicas,
                policy,
                next: AtomicUsize::new(0),
                fragments: AtomicU64::new(0),
                failovers: AtomicU64::new(0),
                failed: AtomicU64::new(0),
            }),
        }
    }

    /// Counters and replica health, for monitoring.
    pub fn stats(&self) -> ReplicaSetStats {
        let i = &self.inner;
        ReplicaSetStats {
            fragments: i.fragments.load(Ordering::Relaxed),
            failovers: i.failovers.load(Ordering::Relaxed),
            failed: i.failed.load(Ordering::Relaxed),
            replicas: i
                .replicas
                .iter()
                .map(|r| {
                    (
                        r.connector.target().to_string(),
                        r.healthy.load(Ordering::Relaxed),
                    )
                })
                .collect(),
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

    /// The order in which replicas are tried for the next fragment.
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
                    self.inner.replicas[i]
                        .latency_micros
                        .load(Ordering::Relaxed)
                });
                order
            }
        }
    }

    /// Runs `sql` on the first replica (in policy order) that answers,
    /// failing over on retryable errors until a first batch (or the end of
    /// an empty result) has arrived. A non-retryable error fails at once.
    pub async fn open(&self, sql: &str, schema: SchemaRef) -> Result<Opened> {
        self.inner.fragments.fetch_add(1, Ordering::Relaxed);
        let result = self.try_replicas(sql, schema).await;
        if result.is_err() {
            self.inner.failed.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn try_replicas(&self, sql: &str, schema: SchemaRef) -> Result<Opened> {
        let mut errors = Vec::new();
        for i in self.candidates() {
            let replica = &self.inner.replicas[i];
            let target = replica.connector.target().to_string();
            let started = Instant::now();
            let attempt = match replica.connector.execute(sql, Arc::clone(&schema)).await {
                Ok(mut stream) => Ok((stream.next().await, stream)),
                Err(e) => Err(DataFusionError::from(e)),
            };
            let failed = match attempt {
                Ok((Some(Err(e)), _)) | Err(e) => e,
                Ok((first, rest)) => {
                    replica.record_latency(started.elapsed().as_micros());
                    replica.healthy.store(true, Ordering::Relaxed);
                    return Ok(Opened {
                        replica: target,
                        failovers: errors.len(),
                        first,
                        rest,
                    });
                }
            };
            let retryable = find_connector_error(&failed).is_some_and(|e| e.is_retryable());
            if !retryable {
                return Err(
                    failed.context(format!("source `{}`, replica {target}", self.inner.source))
                );
            }
            replica.healthy.store(false, Ordering::Relaxed);
            self.inner.failovers.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(source = %self.inner.source, replica = %target, error = %failed, "replica failed; trying the next");
            errors.push(failed.to_string());
        }
        Err(EngineError::SourceUnavailable {
            source_name: self.inner.source.clone(),
            errors,
        }
        .into())
    }
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
}

#[cfg(test)]
mod tests;
