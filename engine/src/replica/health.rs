//! One replica's health: its circuit breaker, last error and lag.
//!
//! ```text
//!            N consecutive failures          back-off elapsed
//!  Closed ───────────────────────────▶ Open ─────────────────▶ HalfOpen
//!    ▲                                  ▲      (one probe: a check, │
//!    │             success              │  or a fragment when no    │
//!    │                                  │  circuit is closed)       │
//!    └──────────────────────────────────┼───────────────────────────┤
//!                                       └──────── failure ──────────┘
//! ```
//!
//! Each opening doubles the back-off (from `circuit_backoff`, up to
//! [`MAX_CIRCUIT_BACKOFF`]), with ±25 % jitter so that many Spar processes
//! do not probe a recovering server at the same instant.

use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use spar_connectors::ReplicaRole;

use super::settings::{ReplicaSettings, MAX_CIRCUIT_BACKOFF};

/// A replica's circuit breaker state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    /// Fragments go to it.
    Closed,
    /// It failed too often; nothing goes to it until its back-off ends.
    Open,
    /// Its back-off ended: one probe may go to it.
    HalfOpen,
}

#[derive(Debug)]
pub(crate) struct Health {
    state: Mutex<State>,
}

#[derive(Debug, Clone)]
pub(crate) struct State {
    pub(crate) circuit: Circuit,
    /// Open: when a probe may go. Half-open: when another probe may go
    /// if the first never reported.
    pub(crate) retry_at: Option<Instant>,
    pub(crate) consecutive_failures: u32,
    /// Times the circuit opened since it was last closed (the back-off's
    /// exponent).
    pub(crate) openings: u32,
    /// Times the circuit opened, in all (never reset).
    pub(crate) times_opened: u64,
    pub(crate) failures: u64,
    pub(crate) last_error: Option<String>,
    /// When the circuit or the lag state last changed.
    pub(crate) changed_at: SystemTime,
    pub(crate) role: Option<ReplicaRole>,
    /// `None`: never read. `Some(None)`: the replica cannot tell
    /// (replication stopped).
    pub(crate) lag: Option<Option<Duration>>,
    pub(crate) lagging: bool,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                circuit: Circuit::Closed,
                retry_at: None,
                consecutive_failures: 0,
                openings: 0,
                times_opened: 0,
                failures: 0,
                last_error: None,
                changed_at: SystemTime::now(),
                role: None,
                lag: None,
                lagging: false,
            }),
        }
    }
}

impl Health {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // A poisoned lock only means another thread panicked mid-update;
        // the state is plain data and stays usable.
        let mut guard = match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// A copy of the state, for `system.replicas` and tests.
    pub(crate) fn snapshot(&self) -> State {
        self.with(|s| s.clone())
    }

    /// Whether a fragment (or a background check) may use the replica
    /// now. An open circuit whose back-off has ended turns half-open and
    /// admits this one caller as its probe.
    pub(crate) fn admit(&self, now: Instant, settings: &ReplicaSettings) -> bool {
        self.with(|s| match s.circuit {
            Circuit::Closed => true,
            Circuit::Open | Circuit::HalfOpen if s.retry_at.is_none_or(|t| now >= t) => {
                if s.circuit == Circuit::Open {
                    s.changed_at = SystemTime::now();
                }
                s.circuit = Circuit::HalfOpen;
                // A probe that never reports (its query was dropped) lets
                // another go after one more back-off.
                s.retry_at = Some(now + backoff(settings, s.openings));
                true
            }
            Circuit::Open | Circuit::HalfOpen => false,
        })
    }

    /// When an open circuit lets its next probe go (`None` when closed).
    pub(crate) fn retry_at(&self) -> Option<Instant> {
        self.with(|s| {
            (s.circuit != Circuit::Closed)
                .then_some(s.retry_at)
                .flatten()
        })
    }

    /// Lets one probe go now, whatever the back-off says: used when every
    /// replica's circuit is open, so that a fragment never fails on stale
    /// circuit state alone.
    pub(crate) fn force_probe(&self, now: Instant) {
        self.with(|s| {
            if s.circuit != Circuit::Closed {
                s.retry_at = Some(now);
            }
        });
    }

    /// Whether the circuit is closed (no admission side effect).
    pub(crate) fn is_closed(&self) -> bool {
        self.with(|s| s.circuit == Circuit::Closed)
    }

    /// How many times the circuit has opened so far.
    pub(crate) fn times_opened(&self) -> u64 {
        self.with(|s| s.times_opened)
    }

    /// Whether the circuit is open now, having opened after it had opened
    /// `before` times (so an attempt started then sees the replica judged
    /// down since).
    pub(crate) fn opened_since(&self, before: u64) -> bool {
        self.with(|s| s.circuit == Circuit::Open && s.times_opened > before)
    }

    pub(crate) fn is_lagging(&self) -> bool {
        self.with(|s| s.lagging)
    }

    pub(crate) fn lag_known(&self) -> bool {
        self.with(|s| s.lag.is_some())
    }

    /// A fragment or check succeeded: the circuit closes.
    pub(crate) fn succeeded(&self) {
        self.with(|s| {
            if s.circuit != Circuit::Closed {
                s.changed_at = SystemTime::now();
            }
            s.circuit = Circuit::Closed;
            s.retry_at = None;
            s.consecutive_failures = 0;
            s.openings = 0;
        });
    }

    /// A fragment or check failed with `error`: after enough consecutive
    /// failures, or any failure of a probe, the circuit opens.
    pub(crate) fn failed(&self, error: &str, settings: &ReplicaSettings) {
        self.with(|s| {
            s.failures += 1;
            s.consecutive_failures = s.consecutive_failures.saturating_add(1);
            s.last_error = Some(error.to_string());
            let open = s.circuit == Circuit::HalfOpen
                || (s.circuit == Circuit::Closed
                    && s.consecutive_failures >= settings.circuit_failures.max(1));
            if open {
                s.retry_at = Some(Instant::now() + backoff(settings, s.openings));
                s.openings = s.openings.saturating_add(1);
                s.times_opened += 1;
                s.circuit = Circuit::Open;
                s.changed_at = SystemTime::now();
            }
        });
    }

    /// The replica's role and lag, as its last check read them; whether it
    /// lags is judged against `max_staleness`.
    pub(crate) fn set_status(
        &self,
        role: ReplicaRole,
        lag: Option<Duration>,
        max_staleness: Option<Duration>,
    ) {
        self.with(|s| {
            s.role = Some(role);
            s.lag = Some(lag);
            let lagging = match (role, max_staleness) {
                (ReplicaRole::Primary, _) | (_, None) => false,
                (ReplicaRole::Replica, Some(max)) => lag.is_none_or(|l| l > max),
            };
            if lagging != s.lagging {
                s.changed_at = SystemTime::now();
            }
            s.lagging = lagging;
        });
    }
}

/// The back-off after the circuit opened `openings` times: doubling from
/// `circuit_backoff`, at most [`MAX_CIRCUIT_BACKOFF`], times a random
/// factor in [0.75, 1.25).
pub(crate) fn backoff(settings: &ReplicaSettings, openings: u32) -> Duration {
    let base = settings
        .circuit_backoff
        .saturating_mul(1u32 << openings.min(16))
        .min(MAX_CIRCUIT_BACKOFF);
    base.mul_f64(0.75 + 0.5 * random_fraction())
}

/// A number in [0, 1) from the standard library's random hasher keys.
pub(crate) fn random_fraction() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x5eed);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ReplicaSettings {
        ReplicaSettings {
            circuit_failures: 2,
            circuit_backoff: Duration::from_millis(100),
            ..ReplicaSettings::default()
        }
    }

    #[test]
    fn opens_after_consecutive_failures_and_probes_after_the_backoff() {
        let s = settings();
        let h = Health::default();
        let now = Instant::now();
        h.failed("refused", &s);
        assert!(h.admit(now, &s), "one failure keeps it closed");
        h.failed("refused", &s);
        assert_eq!(h.snapshot().circuit, Circuit::Open);
        assert!(!h.admit(Instant::now(), &s), "open: nothing goes");
        let later = Instant::now() + Duration::from_millis(200);
        assert!(h.admit(later, &s), "back-off over: one probe");
        assert_eq!(h.snapshot().circuit, Circuit::HalfOpen);
        assert!(!h.admit(later, &s), "only one probe at a time");
        h.failed("refused again", &s);
        let st = h.snapshot();
        assert_eq!(st.circuit, Circuit::Open);
        assert_eq!(st.last_error.as_deref(), Some("refused again"));
        assert_eq!(st.failures, 3);
        h.succeeded();
        assert_eq!(h.snapshot().circuit, Circuit::Closed);
        assert!(h.admit(Instant::now(), &s));
    }

    #[test]
    fn success_resets_the_count() {
        let s = settings();
        let h = Health::default();
        h.failed("x", &s);
        h.succeeded();
        h.failed("x", &s);
        assert_eq!(h.snapshot().circuit, Circuit::Closed);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let s = settings();
        for openings in 0..4 {
            let b = backoff(&s, openings);
            let base = 100.0 * f64::from(1u32 << openings);
            let ms = b.as_secs_f64() * 1000.0;
            assert!(ms >= base * 0.75 && ms < base * 1.25, "{openings}: {ms}");
        }
        assert!(backoff(&s, 40) <= MAX_CIRCUIT_BACKOFF.mul_f64(1.25));
    }

    #[test]
    fn lag_beyond_max_staleness_marks_a_replica_lagging() {
        let h = Health::default();
        let max = Some(Duration::from_secs(30));
        h.set_status(ReplicaRole::Replica, Some(Duration::from_secs(5)), max);
        assert!(!h.is_lagging());
        h.set_status(ReplicaRole::Replica, Some(Duration::from_secs(31)), max);
        assert!(h.is_lagging());
        h.set_status(ReplicaRole::Replica, None, max);
        assert!(
            h.is_lagging(),
            "replication stopped: unknown lag counts as lagging"
        );
        h.set_status(ReplicaRole::Primary, None, max);
        assert!(!h.is_lagging(), "a primary never lags");
        h.set_status(ReplicaRole::Replica, None, None);
        assert!(!h.is_lagging(), "no max_staleness: lag is not checked");
    }
}
