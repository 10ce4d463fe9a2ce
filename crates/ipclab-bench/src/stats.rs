//! Summary statistics from an HDR histogram of nanoseconds.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The figures of a latency distribution, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
    pub stddev: f64,
}

impl Stats {
    pub fn of(h: &Histogram<u64>) -> Self {
        Stats {
            min: h.min(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
            stddev: h.stdev(),
        }
    }

    /// Of raw samples (few enough to keep them all).
    pub fn of_samples(samples: impl IntoIterator<Item = u64>) -> Self {
        Stats::of(&histogram(samples.into_iter().map(|v| (v, 1))))
    }
}

/// An empty histogram of 1 ns to 1 hour with 3 significant figures; a
/// value outside that range is clamped to it.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("the bounds are valid")
}

/// A histogram from (value, count) pairs.
pub fn histogram(pairs: impl IntoIterator<Item = (u64, u64)>) -> Histogram<u64> {
    let mut h = new_histogram();
    for (value, count) in pairs {
        h.saturating_record_n(value, count);
    }
    h
}

/// Points of the distribution for plotting a CDF: (quantile, ns).
pub fn cdf(h: &Histogram<u64>) -> Vec<(f64, u64)> {
    const QUANTILES: [f64; 14] = [
        0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999, 1.0,
    ];
    QUANTILES
        .iter()
        .map(|&q| (q, h.value_at_quantile(q)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_set() {
        let s = Stats::of_samples(1..=1000);
        assert_eq!((s.min, s.max), (1, 1000));
        assert_eq!(s.p50, 500);
        assert_eq!(s.p99, 990);
        assert!((s.mean - 500.5).abs() < 1.0);
        let s = Stats::of_samples([14_000, 15_000, 16_000, 2_000_000]);
        // Three significant figures: within 0.1 %.
        let close = |a: u64, b: u64| a.abs_diff(b) * 1000 <= b;
        assert!(
            close(s.min, 14_000) && close(s.p50, 15_000) && close(s.max, 2_000_000),
            "{s:?}"
        );
    }
}
