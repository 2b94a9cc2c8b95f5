//! A source's failover settings: deadlines, health checks, the circuit
//! breaker, staleness and the resume buffer.

use std::time::Duration;

/// How a source's replica set times, checks and fails over its replicas.
/// Every field has a default (see [`ReplicaSettings::default`]); spar.toml
/// sets them per source.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaSettings {
    /// Longest time to open a connection to a replica, TLS and the
    /// database's start-up included (libpq's and MySQL clients' meaning).
    /// A replica URL's own `connect_timeout` wins over it.
    pub connect_timeout: Duration,
    /// Longest wait for a fragment's first batch (the whole query on the
    /// source up to its first rows) before the replica counts as failed.
    pub first_batch_timeout: Duration,
    /// Longest wait between two batches of a running fragment.
    pub stall_timeout: Duration,
    /// How long after its first failure a fragment keeps retrying (with
    /// capped exponential back-off) before it fails.
    pub retry_deadline: Duration,
    /// How often each replica's health (and lag) is checked in the
    /// background.
    pub health_check_interval: Duration,
    /// Consecutive failures (fragments or health checks) that open a
    /// replica's circuit: no fragment is sent to it until a probe after
    /// the back-off succeeds.
    pub circuit_failures: u32,
    /// The first back-off of an open circuit; it doubles (with jitter) each
    /// time a probe fails, up to [`MAX_CIRCUIT_BACKOFF`].
    pub circuit_backoff: Duration,
    /// Replicas that trail their primary by more than this get no
    /// fragments (`None`: lag is not checked).
    pub max_staleness: Option<Duration>,
    /// Bytes a fragment holds back before it emits its first batch: a
    /// failure before that many bytes (or the end) reruns it on another
    /// replica invisibly. Scans estimated larger are read in key order so
    /// that they can resume after the last row delivered.
    pub resume_buffer: usize,
}

/// The longest an open circuit waits before a probe.
pub const MAX_CIRCUIT_BACKOFF: Duration = Duration::from_secs(60);

impl Default for ReplicaSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            first_batch_timeout: Duration::from_secs(300),
            stall_timeout: Duration::from_secs(60),
            retry_deadline: Duration::from_secs(10),
            health_check_interval: Duration::from_secs(5),
            circuit_failures: 3,
            circuit_backoff: Duration::from_secs(1),
            max_staleness: None,
            resume_buffer: 16 << 20,
        }
    }
}
