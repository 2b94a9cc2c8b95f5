//! How fast one source has been: its speed against the cost model's
//! defaults ([`spar_planner::cost`]), measured from the fragments it ran,
//! and the recent times of each fragment's SQL, for
//! `system.source_calibration` and for `push_or_pull`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use spar_planner::cost::{sending, FRAGMENT};
use spar_planner::{SourceCost, SourceSpeed};

/// A fragment predicted to take less than this tells nothing of the
/// source's speed (its round trip and Spar's own work would dominate).
const LEAST_PREDICTED: f64 = 5e-3;

/// The weight of each new measurement in the moving averages.
const WEIGHT: f64 = 0.3;

/// A factor is kept within these bounds (a fragment cut short, a machine
/// that paused, must not make a source look a thousand times faster or
/// slower).
const FACTOR_BOUNDS: (f64, f64) = (0.02, 50.0);

/// The most fragments whose times are remembered; past it, the oldest
/// gives way.
const MOST_REMEMBERED: usize = 1_000;

/// A fragment's time is trusted this long: after it, plans are weighed
/// by the model again (and the fragment, run again, measured again).
const REMEMBERED_FOR: Duration = Duration::from_secs(3600);

/// One run of a fragment, as measured.
#[derive(Debug, Clone)]
pub struct FragmentTime<'a> {
    /// The SQL it was planned with (before runtime filters).
    pub sql: &'a str,
    /// What the model predicted of its sub-plan.
    pub predicted: SourceCost,
    /// Rows it sent.
    pub rows: usize,
    /// Arrow bytes it sent.
    pub bytes: usize,
    /// From asking the source to its last row.
    pub elapsed: Duration,
}

/// The calibration of one source, for `system.source_calibration`.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationReport {
    /// The factors measured so far (the defaults, 1.0, until measured).
    pub speed: SourceSpeed,
    /// How many fragments measured the scan factor.
    pub scan_samples: u64,
    /// How many fragments measured the work factor.
    pub work_samples: u64,
    /// How many fragments' recent times are remembered.
    pub remembered: usize,
    /// When a fragment was last measured.
    pub last_measured: Option<SystemTime>,
}

#[derive(Debug, Default)]
pub(super) struct Calibration {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The factors' logarithms (averaged so that 2× slower and 2× faster
    /// weigh alike); `None` until first measured.
    scan: Option<f64>,
    work: Option<f64>,
    scan_samples: u64,
    work_samples: u64,
    last_measured: Option<SystemTime>,
    /// Per SQL: its moving average of seconds, and when last measured.
    times: HashMap<String, (f64, Instant)>,
}

impl Calibration {
    /// Takes one fragment's run into the factors and the remembered times.
    pub(super) fn record(&self, run: &FragmentTime<'_>) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let seconds = run.elapsed.as_secs_f64();
        state.last_measured = Some(SystemTime::now());
        let scan = run.predicted.read + sending(run.rows as f64, run.bytes as f64);
        if run.predicted.work < scan * 0.1 {
            // Reading and sending alone: the scan factor.
            if scan >= LEAST_PREDICTED {
                let sample = (seconds - FRAGMENT).max(0.0) / scan;
                state.scan = Some(averaged(state.scan, sample));
                state.scan_samples += 1;
            }
        } else if run.predicted.work >= LEAST_PREDICTED {
            // What reading and sending do not explain is the work.
            let scan_factor = state.speed().scan;
            let rest = (seconds - FRAGMENT - scan * scan_factor).max(seconds * 0.05);
            state.work = Some(averaged(state.work, rest / run.predicted.work));
            state.work_samples += 1;
        }
        let now = Instant::now();
        let times = &mut state.times;
        if times.len() >= MOST_REMEMBERED && !times.contains_key(run.sql) {
            times.retain(|_, (_, at)| now.duration_since(*at) < REMEMBERED_FOR);
            if times.len() >= MOST_REMEMBERED {
                if let Some(oldest) = times
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(sql, _)| sql.clone())
                {
                    times.remove(&oldest);
                }
            }
        }
        let average = match times.get(run.sql) {
            Some((before, at)) if now.duration_since(*at) < REMEMBERED_FOR => {
                before + WEIGHT * (seconds - before)
            }
            _ => seconds,
        };
        times.insert(run.sql.to_string(), (average, now));
    }

    /// The factors measured so far.
    pub(super) fn speed(&self) -> SourceSpeed {
        self.state
            .lock()
            .map_or_else(|_| SourceSpeed::default(), |state| state.speed())
    }

    /// The recent seconds of fragments sending `sql`.
    pub(super) fn measured(&self, sql: &str) -> Option<f64> {
        let state = self.state.lock().ok()?;
        let (seconds, at) = state.times.get(sql)?;
        (at.elapsed() < REMEMBERED_FOR).then_some(*seconds)
    }

    /// Forgets the remembered times (a table's statistics changed, and
    /// with them the plans).
    pub(super) fn forget_times(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.times.clear();
        }
    }

    pub(super) fn report(&self) -> CalibrationReport {
        let Ok(state) = self.state.lock() else {
            return CalibrationReport {
                speed: SourceSpeed::default(),
                scan_samples: 0,
                work_samples: 0,
                remembered: 0,
                last_measured: None,
            };
        };
        CalibrationReport {
            speed: state.speed(),
            scan_samples: state.scan_samples,
            work_samples: state.work_samples,
            remembered: state.times.len(),
            last_measured: state.last_measured,
        }
    }
}

impl State {
    /// The factors measured so far (1.0 until measured).
    fn speed(&self) -> SourceSpeed {
        SourceSpeed {
            scan: self.scan.map_or(1.0, f64::exp),
            work: self.work.map_or(1.0, f64::exp),
        }
    }
}

/// The moving average of the factors' logarithms, with `sample` taken in:
/// the first sample sets it.
fn averaged(before: Option<f64>, sample: f64) -> f64 {
    let sample = sample.clamp(FACTOR_BOUNDS.0, FACTOR_BOUNDS.1).ln();
    match before {
        Some(before) => before + WEIGHT * (sample - before),
        None => sample,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sql: &str, read: f64, work: f64, rows: usize, seconds: f64) -> FragmentTime<'_> {
        FragmentTime {
            sql,
            predicted: SourceCost { read, work },
            rows,
            bytes: rows * 16,
            elapsed: Duration::from_secs_f64(seconds),
        }
    }

    #[test]
    fn the_first_run_sets_a_factor_and_later_ones_move_it() {
        let c = Calibration::default();
        assert_eq!(c.speed(), SourceSpeed::default());
        // A scan predicted at 0.1 s of reading (and its rows' sending)
        // that took three times as long.
        let sending = sending(100_000.0, 1_600_000.0);
        let predicted = 0.1 + sending;
        c.record(&run(
            "SELECT a FROM t",
            0.1,
            0.0,
            100_000,
            FRAGMENT + 3.0 * predicted,
        ));
        let scan = c.speed().scan;
        assert!((scan - 3.0).abs() < 1e-6, "{scan}");
        assert_eq!(c.speed().work, 1.0);
        // A join whose reading took as the scan factor says and whose
        // work took ten times the model's.
        c.record(&run(
            "SELECT … JOIN …",
            0.1,
            0.2,
            0,
            FRAGMENT + 3.0 * 0.1 + 10.0 * 0.2,
        ));
        let work = c.speed().work;
        assert!((work - 10.0).abs() < 1e-6, "{work}");
        // The next scan, as predicted, moves the factor a part of the way.
        c.record(&run(
            "SELECT b FROM t",
            0.1,
            0.0,
            100_000,
            FRAGMENT + predicted,
        ));
        let scan = c.speed().scan;
        assert!(scan > 1.0 && scan < 3.0, "{scan}");
        let report = c.report();
        assert_eq!(
            (report.scan_samples, report.work_samples, report.remembered),
            (2, 1, 3)
        );
        assert!(report.last_measured.is_some());
    }

    #[test]
    fn tiny_fragments_leave_the_factors_and_wild_ones_are_bounded() {
        let c = Calibration::default();
        c.record(&run("SELECT 1", 1e-4, 0.0, 1, 0.5));
        assert_eq!(c.speed(), SourceSpeed::default());
        // Still remembered: its time is what it is.
        assert_eq!(c.measured("SELECT 1"), Some(0.5));
        c.record(&run("SELECT a FROM t", 0.1, 0.0, 0, 1e6));
        let scan = c.speed().scan;
        assert!((scan - FACTOR_BOUNDS.1).abs() < 1e-9, "{scan}");
    }

    #[test]
    fn times_are_averaged_per_sql_and_forgotten_on_request() {
        let c = Calibration::default();
        c.record(&run("SELECT a FROM t", 0.0, 0.0, 0, 1.0));
        c.record(&run("SELECT a FROM t", 0.0, 0.0, 0, 2.0));
        let seconds = c.measured("SELECT a FROM t").unwrap_or_default();
        assert!((seconds - (1.0 + WEIGHT)).abs() < 1e-9, "{seconds}");
        assert_eq!(c.measured("SELECT b FROM t"), None);
        c.forget_times();
        assert_eq!(c.measured("SELECT a FROM t"), None);
    }

    #[test]
    fn at_most_a_thousand_times_are_remembered() {
        let c = Calibration::default();
        for i in 0..MOST_REMEMBERED + 10 {
            c.record(&run(&format!("SELECT {i}"), 0.0, 0.0, 0, 0.01));
        }
        assert_eq!(c.report().remembered, MOST_REMEMBERED);
        // The newest are kept.
        assert!(c
            .measured(&format!("SELECT {}", MOST_REMEMBERED + 9))
            .is_some());
    }
}
