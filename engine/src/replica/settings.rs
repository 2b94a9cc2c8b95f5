//! A source's failover settings: deadlines, health checks, the circuit
//! breaker, staleness, the resume buffer and hedging.

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
    /// replica invisibly.
    pub resume_buffer: usize,
    /// How a fragment continues when its replica fails after it emitted
    /// rows (see [`Resume`]).
    pub resume: Resume,
    /// When a fragment with no first batch yet also starts on a second
    /// replica (`None`: never). The first to deliver wins; the other's
    /// statement is cancelled.
    pub hedge_after: Option<HedgeAfter>,
    /// How old a table's statistics may grow before a query that reads
    /// the table has them read again from the source, in the background.
    pub statistics_ttl: Duration,
}

/// How a fragment continues on another replica after it emitted rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resume {
    /// Run the same SQL again, check that its first rows are the rows
    /// already delivered (an order-sensitive fingerprint of every value),
    /// and emit only what follows. The fragment's answer is then the new
    /// replica's, whole. Costs a hash of each emitted row; nothing at the
    /// source. Fails (never repeats or loses rows) when the new replica
    /// returns other first rows: other data, or another row order.
    #[default]
    Replay,
    /// Read large scans of one table with an integer or date key in key
    /// order (`ORDER BY` the key) and continue after the last key
    /// delivered; every other fragment replays. Costs the source a
    /// sort or an index scan.
    KeyOrder,
    /// No resume: a failure after rows were emitted fails the query.
    Off,
}

impl std::str::FromStr for Resume {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "replay" => Ok(Self::Replay),
            "key_order" => Ok(Self::KeyOrder),
            "off" => Ok(Self::Off),
            _ => Err(format!(
                "expected \"replay\", \"key_order\" or \"off\"; found \"{text}\""
            )),
        }
    }
}

impl std::fmt::Display for Resume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Replay => "replay",
            Self::KeyOrder => "key_order",
            Self::Off => "off",
        })
    }
}

/// When to hedge a fragment (see [`ReplicaSettings::hedge_after`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HedgeAfter {
    /// After this long without a first batch.
    Fixed(Duration),
    /// After this percentile (above 0, below 100) of the source's recent
    /// times to first batch; no hedging until 20 fragments are measured.
    Percentile(f64),
}

impl std::str::FromStr for HedgeAfter {
    type Err = String;

    /// `"250ms"`, `"2s"`, or a percentile: `"p95"`, `"p99.9"`.
    fn from_str(text: &str) -> Result<Self, String> {
        let expected = "expected a duration (\"250ms\") or a percentile of recent times to first batch (\"p95\", \"p99.9\")";
        if let Some(p) = text.strip_prefix('p') {
            return match p.parse::<f64>() {
                Ok(p) if p > 0.0 && p < 100.0 => Ok(Self::Percentile(p)),
                _ => Err(format!("{expected}; found \"{text}\"")),
            };
        }
        match humantime::parse_duration(text) {
            Ok(d) if !d.is_zero() && d <= Duration::from_secs(3600) => Ok(Self::Fixed(d)),
            _ => Err(format!("{expected}, from 1ms to 1h; found \"{text}\"")),
        }
    }
}

impl std::fmt::Display for HedgeAfter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fixed(d) => write!(f, "{}", humantime::format_duration(*d)),
            Self::Percentile(p) => write!(f, "p{p}"),
        }
    }
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
            resume: Resume::Replay,
            hedge_after: None,
            statistics_ttl: Duration::from_secs(3600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hedge_after_reads_durations_and_percentiles() {
        assert_eq!(
            "250ms".parse(),
            Ok(HedgeAfter::Fixed(Duration::from_millis(250)))
        );
        assert_eq!("p95".parse(), Ok(HedgeAfter::Percentile(95.0)));
        assert_eq!("p99.9".parse(), Ok(HedgeAfter::Percentile(99.9)));
        for bad in ["p0", "p100", "pNaN", "p-5", "0s", "2h", "soon", ""] {
            assert!(bad.parse::<HedgeAfter>().is_err(), "{bad}");
        }
    }

    #[test]
    fn resume_reads_its_three_names_and_no_other() {
        for mode in [Resume::Replay, Resume::KeyOrder, Resume::Off] {
            assert_eq!(mode.to_string().parse(), Ok(mode));
        }
        let e = "true".parse::<Resume>().err().unwrap_or_default();
        assert!(e.contains("\"key_order\"") && e.contains("\"true\""), "{e}");
    }
}
