//! Times to first batch: a histogram per replica (for `/metrics`), and a
//! window of a source's recent times (for percentile hedging).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the histogram's buckets, in seconds: 1 ms doubling to
/// about 65 s; slower times fall in the last, unbounded bucket.
pub const FIRST_BATCH_BUCKETS: [f64; 17] = [
    0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096,
    8.192, 16.384, 32.768, 65.536,
];

/// A histogram of times to first batch, updated without locks.
#[derive(Debug, Default)]
pub(crate) struct LatencyHistogram {
    /// Count per bucket of [`FIRST_BATCH_BUCKETS`], then the unbounded one.
    counts: [AtomicU64; FIRST_BATCH_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

/// A histogram read at one moment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, count in that bucket alone)`, the last
    /// bound infinite.
    pub buckets: Vec<(f64, u64)>,
    /// The sum of all times, in seconds.
    pub sum: f64,
    /// How many times were recorded.
    pub count: u64,
}

impl LatencyHistogram {
    pub(crate) fn record(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = FIRST_BATCH_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(FIRST_BATCH_BUCKETS.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        let bounds = FIRST_BATCH_BUCKETS.iter().copied().chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds
            .zip(&self.counts)
            .map(|(bound, count)| (bound, count.load(Ordering::Relaxed)))
            .collect();
        HistogramSnapshot {
            count: buckets.iter().map(|(_, c)| c).sum(),
            buckets,
            sum: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// How many recent times a source keeps for percentiles.
const WINDOW: usize = 256;
/// Fewer recent times than this give no percentile: too few to trust.
pub(crate) const MIN_SAMPLES: usize = 20;

/// A source's most recent times to first batch.
#[derive(Debug, Default)]
pub(crate) struct RecentLatencies {
    micros: Mutex<VecDeque<u64>>,
}

impl RecentLatencies {
    pub(crate) fn record(&self, took: Duration) {
        if let Ok(mut recent) = self.micros.lock() {
            if recent.len() == WINDOW {
                recent.pop_front();
            }
            recent.push_back(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
        }
    }

    /// The `p`th percentile (0 < p < 100) of the recent times, by the
    /// nearest-rank method; `None` with fewer than [`MIN_SAMPLES`].
    pub(crate) fn percentile(&self, p: f64) -> Option<Duration> {
        let mut sorted: Vec<u64> = self.micros.lock().ok()?.iter().copied().collect();
        if sorted.len() < MIN_SAMPLES {
            return None;
        }
        sorted.sort_unstable();
        let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
        let value = sorted[rank.clamp(1, sorted.len()) - 1];
        Some(Duration::from_micros(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_sums() {
        let h = LatencyHistogram::default();
        h.record(Duration::from_micros(500));
        h.record(Duration::from_millis(3));
        h.record(Duration::from_secs(100));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.buckets.len(), FIRST_BATCH_BUCKETS.len() + 1);
        assert_eq!(s.buckets[0], (0.001, 1));
        assert_eq!(s.buckets[2], (0.004, 1));
        assert_eq!(s.buckets.last(), Some(&(f64::INFINITY, 1)));
        assert!((s.sum - 100.0035).abs() < 1e-9, "{}", s.sum);
    }

    #[test]
    fn percentiles_need_enough_samples_and_follow_the_window() {
        let r = RecentLatencies::default();
        for ms in 1..MIN_SAMPLES as u64 {
            r.record(Duration::from_millis(ms));
        }
        assert_eq!(r.percentile(50.0), None);
        for ms in MIN_SAMPLES as u64..=100 {
            r.record(Duration::from_millis(ms));
        }
        assert_eq!(r.percentile(95.0), Some(Duration::from_millis(95)));
        assert_eq!(r.percentile(50.0), Some(Duration::from_millis(50)));
        assert_eq!(r.percentile(99.9), Some(Duration::from_millis(100)));
        // Old times leave the window.
        for _ in 0..WINDOW {
            r.record(Duration::from_millis(7));
        }
        assert_eq!(r.percentile(99.0), Some(Duration::from_millis(7)));
    }
}
