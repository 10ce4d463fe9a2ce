//! 95 % confidence intervals from repetitions.
//!
//! A row's headline figure (the p50 of its pooled round trips, or its
//! throughput) comes with an interval computed from the same figure of
//! each repetition, so that it reflects how much the figure moves from one
//! measurement to the next on this machine, not the spread inside one
//! measured window.
//!
//! The interval is Student's t on the logarithms of the repetitions'
//! figures, centred on the headline: `headline × exp(±t · s / √K)`, where
//! `s` is the standard deviation of the K logarithms and `t` the 97.5 %
//! quantile of Student's t with K − 1 degrees of freedom. Logarithms,
//! because noise on this kind of figure is multiplicative (a preempted
//! round trip costs a time slice whatever its size). An order statistic
//! interval, [min, max] of the repetitions, would need no such assumption
//! but holds only 1 − 2^(1−K) of the time: 75 % with the default three
//! repetitions, 95 % from six on. No interval is narrower than ±1 %
//! ([`MIN_RELATIVE`]): the figures are not known better than that.

use serde::{Deserialize, Serialize};

/// A 95 % confidence interval, in the unit of the figure it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

/// The 97.5 % quantile of Student's t for 1 to 30 degrees of freedom.
const T_975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

fn t_975(degrees: usize) -> f64 {
    match degrees {
        0 => f64::INFINITY,
        d if d <= T_975.len() => T_975[d - 1],
        31..=60 => 2.042,
        61..=120 => 2.000,
        _ => 1.96,
    }
}

/// The narrowest an interval gets: ±1 %. Figures are HDR buckets of three
/// significant digits read with a clock of tens of nanoseconds, so
/// repetitions that agree exactly say the figure is known to about that,
/// not to the nanosecond.
pub const MIN_RELATIVE: f64 = 0.01;

impl Interval {
    /// The interval of `centre` from the repetitions' `figures`; `None`
    /// with fewer than two, or with a figure that is not positive.
    pub fn around(centre: f64, figures: &[f64]) -> Option<Interval> {
        let k = figures.len();
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if k < 2 || !positive(centre) || !figures.iter().all(|&x| positive(x)) {
            return None;
        }
        let logs: Vec<f64> = figures.iter().map(|x| x.ln()).collect();
        let mean = logs.iter().sum::<f64>() / k as f64;
        let var = logs.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / (k - 1) as f64;
        let half = (t_975(k - 1) * (var / k as f64).sqrt()).max(MIN_RELATIVE.ln_1p());
        Some(Interval {
            low: centre * (-half).exp(),
            high: centre * half.exp(),
        })
    }

    /// Whether the two intervals share a value.
    pub fn overlaps(&self, other: &Interval) -> bool {
        self.low <= other.high && other.low <= self.high
    }

    /// The larger distance from `centre` to an end, relative to `centre`
    /// (0.06 for ±6 %).
    pub fn relative(&self, centre: f64) -> f64 {
        ((centre - self.low).max(self.high - centre) / centre).max(0.0)
    }
}

/// The median of `xs` (the mean of the middle two for an even count).
pub fn median(xs: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_repetitions_give_a_point_and_spread_ones_a_wider_interval() {
        let i = Interval::around(100.0, &[100.0, 100.0, 100.0]).unwrap();
        assert!((i.high - 101.0).abs() < 1e-9 && (i.low - 100.0 / 1.01).abs() < 1e-9);
        let narrow = Interval::around(100.0, &[99.0, 100.0, 101.0]).unwrap();
        let wide = Interval::around(100.0, &[80.0, 100.0, 120.0]).unwrap();
        assert!(wide.low < narrow.low && wide.high > narrow.high);
        assert!(narrow.low < 100.0 && narrow.high > 100.0);
        // Three repetitions of ±1 %: t = 4.303, s ≈ 0.01, half ≈ 2.5 %.
        assert!((narrow.relative(100.0) - 0.025).abs() < 0.002, "{narrow:?}");
    }

    #[test]
    fn no_interval_from_one_repetition_or_a_zero() {
        assert_eq!(Interval::around(5.0, &[5.0]), None);
        assert_eq!(Interval::around(5.0, &[5.0, 0.0]), None);
        assert_eq!(Interval::around(0.0, &[5.0, 6.0]), None);
    }

    #[test]
    fn overlap_and_median() {
        let a = Interval {
            low: 1.0,
            high: 2.0,
        };
        assert!(a.overlaps(&Interval {
            low: 2.0,
            high: 3.0
        }));
        assert!(!a.overlaps(&Interval {
            low: 2.1,
            high: 3.0
        }));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
