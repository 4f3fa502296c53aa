//! The statistics behind every figure and verdict: medians, distribution-free intervals of the
//! median, per-round paired ratios and the rank test `bakeoff compare` decides with.
//!
//! Why these: the rounds of a run are few (5 by default) and the machine's noise is neither
//! normal nor steady, so nothing here assumes a distribution. The interval of a median is the
//! one given by order statistics (the binomial interval, exact for any continuous distribution);
//! two runs are told apart by the Mann-Whitney rank test, exact for the small counts at hand.

use crate::results::intervals::{Interval, PairedRatio, Verdict};

/// The coverage an interval aims at: the narrowest order-statistic interval with at least this
/// coverage is taken; with too few rounds for it, the widest (lowest to highest) and its own,
/// lower coverage, which the interval states.
pub const TARGET_COVERAGE: f64 = 0.90;

/// The significance level of `bakeoff compare`'s rank test.
pub const SIGNIFICANCE: f64 = 0.05;

/// The median of some figures (the upper one of an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

impl Interval {
    /// The order-statistic interval of the median of `values`: `[x(k), x(n+1-k)]` of the sorted
    /// figures, with the largest `k` whose coverage is at least [`TARGET_COVERAGE`] (`k` = 1
    /// when none reaches it). `None` for fewer than two figures.
    pub fn of_median(values: &[f64]) -> Option<Interval> {
        let count = values.len();
        if count < 2 {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mut chosen = 1;
        for k in 1..=count / 2 {
            if coverage(count, k) >= TARGET_COVERAGE {
                chosen = k;
            } else {
                break;
            }
        }
        Some(Interval {
            low: sorted[chosen - 1],
            high: sorted[count - chosen],
            coverage: coverage(count, chosen),
        })
    }

    pub fn contains(&self, value: f64) -> bool {
        self.low <= value && value <= self.high
    }

    pub fn overlaps(&self, other: &Interval) -> bool {
        self.low <= other.high && other.low <= self.high
    }

    /// `[low, high]` with `digits` decimals, and the coverage in percent.
    pub fn describe(&self, digits: usize) -> String {
        format!(
            "[{:.digits$}, {:.digits$}] ({:.0} %)",
            self.low,
            self.high,
            self.coverage * 100.0
        )
    }
}

/// The coverage of `[x(k), x(n+1-k)]` for the median of `n` figures: 1 - 2 P(B <= k-1),
/// B ~ Binomial(n, 1/2).
fn coverage(n: usize, k: usize) -> f64 {
    let below: f64 = (0..k).map(|i| binomial(n, i)).sum::<f64>() / 2f64.powi(n as i32);
    (1.0 - 2.0 * below).max(0.0)
}

fn binomial(n: usize, k: usize) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

impl PairedRatio {
    /// The per-round ratios `first[i] / second[i]` of the rounds where both are positive.
    pub fn of(first: &[f64], second: &[f64]) -> Option<PairedRatio> {
        let ratios: Vec<f64> = first
            .iter()
            .zip(second)
            .filter(|(a, b)| **a > 0.0 && **b > 0.0)
            .map(|(a, b)| a / b)
            .collect();
        if ratios.is_empty() {
            return None;
        }
        Some(PairedRatio {
            median: median_of_all(&ratios),
            interval: Interval::of_median(&ratios),
            rounds: ratios.len(),
        })
    }

    /// Ahead or behind only where the interval excludes 1; tied otherwise.
    pub fn verdict(&self) -> Verdict {
        match self.interval {
            Some(interval) if interval.low > 1.0 => Verdict::Ahead,
            Some(interval) if interval.high < 1.0 => Verdict::Behind,
            _ => Verdict::Tied,
        }
    }

    /// `1.42x [1.31, 1.55] (94 %)`, or `1.42x (one round)`.
    pub fn describe(&self) -> String {
        match self.interval {
            Some(interval) => format!("{:.2}x {}", self.median, interval.describe(2)),
            None => format!("{:.2}x (one round)", self.median),
        }
    }
}

/// The median in the usual sense (the mean of the two middle figures of an even count), for
/// ratios, where the upper one would lean one way.
pub fn median_of_all(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let count = sorted.len();
    match count {
        0 => 0.0,
        _ if count % 2 == 1 => sorted[count / 2],
        _ => (sorted[count / 2 - 1] + sorted[count / 2]) / 2.0,
    }
}

/// The two-sided p-value of the Mann-Whitney rank test that `a` and `b` come from the same
/// distribution: exact (the distribution of U counted over every ordering) up to 400 orderings'
/// worth of figures, from the normal approximation beyond. Ties count one half.
pub fn mann_whitney_p(a: &[f64], b: &[f64]) -> Option<f64> {
    let (m, n) = (a.len(), b.len());
    if m == 0 || n == 0 {
        return None;
    }
    // U counts the pairs where a's figure is the larger (ties one half), doubled to stay whole.
    let doubled_u: usize = a
        .iter()
        .flat_map(|x| b.iter().map(move |y| (x, y)))
        .map(|(x, y)| match x.total_cmp(y) {
            std::cmp::Ordering::Greater => 2,
            std::cmp::Ordering::Equal => 1,
            std::cmp::Ordering::Less => 0,
        })
        .sum();
    let u = doubled_u as f64 / 2.0;
    let mean = (m * n) as f64 / 2.0;
    let p = if m + n <= 40 {
        let counts = u_distribution(m, n);
        let total: f64 = counts.iter().sum();
        // The tail on the side of u, from the farther of u and its mirror image.
        let distance = (u - mean).abs();
        let tail: f64 = counts
            .iter()
            .enumerate()
            .filter(|(value, _)| (*value as f64 - mean).abs() >= distance - 1e-9)
            .map(|(_, count)| count)
            .sum();
        tail / total
    } else {
        let sd = ((m * n * (m + n + 1)) as f64 / 12.0).sqrt();
        let z = ((u - mean).abs() - 0.5).max(0.0) / sd;
        2.0 * (1.0 - standard_normal_cdf(z))
    };
    Some(p.min(1.0))
}

/// How many orderings of `m` and `n` figures give each value of U (0 to m*n).
fn u_distribution(m: usize, n: usize) -> Vec<f64> {
    // table[i][j][u]: the orderings of i figures of a and j of b with statistic u, by where the
    // largest figure comes from: a's largest beats all j of b's (u shifts by j), b's beats none.
    let mut table: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); n + 1]; m + 1];
    for i in 0..=m {
        for j in 0..=n {
            let mut counts = vec![0.0; i * j + 1];
            if i == 0 || j == 0 {
                counts[0] = 1.0;
            } else {
                for (u, count) in table[i - 1][j].iter().enumerate() {
                    counts[u + j] += count;
                }
                for (u, count) in table[i][j - 1].iter().enumerate() {
                    counts[u] += count;
                }
            }
            table[i][j] = counts;
        }
    }
    std::mem::take(&mut table[m][n])
}

/// Φ(z), from the complementary error function (Abramowitz and Stegun 7.1.26, |error| < 1.5e-7).
fn standard_normal_cdf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erfc = poly * (-x * x).exp();
    if z >= 0.0 {
        1.0 - erfc / 2.0
    } else {
        erfc / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_the_upper_middle_value() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0]), 2.0);
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median_of_all(&[1.0, 2.0]), 1.5);
        assert_eq!(median_of_all(&[5.0, 1.0, 3.0]), 3.0);
    }

    #[test]
    fn the_interval_of_a_median_is_the_order_statistics_with_their_binomial_coverage() {
        // Five figures: only lowest..highest reaches 90 % (1 - 2/32 = 93.75 %).
        let five = Interval::of_median(&[12.0, 10.0, 14.0, 11.0, 13.0]).unwrap();
        assert_eq!((five.low, five.high), (10.0, 14.0));
        assert!((five.coverage - 0.9375).abs() < 1e-12);
        // Eight: the second lowest to the second highest (1 - 2 * 9/256 = 92.97 %).
        let eight: Vec<f64> = (1..=8).map(f64::from).collect();
        let interval = Interval::of_median(&eight).unwrap();
        assert_eq!((interval.low, interval.high), (2.0, 7.0));
        assert!((interval.coverage - (1.0 - 18.0 / 256.0)).abs() < 1e-12);
        // Twelve: the third to the tenth (1 - 2 * 79/4096 = 96.14 %; the fourth gives 85 %).
        let twelve: Vec<f64> = (1..=12).map(f64::from).collect();
        let interval = Interval::of_median(&twelve).unwrap();
        assert_eq!((interval.low, interval.high), (3.0, 10.0));
        assert!((interval.coverage - (1.0 - 158.0 / 4096.0)).abs() < 1e-12);
        // Three cannot reach 90 %: the whole range, at its own 75 %.
        let three = Interval::of_median(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((three.low, three.high, three.coverage), (1.0, 3.0, 0.75));
        assert_eq!(Interval::of_median(&[1.0]), None);
    }

    #[test]
    fn a_ratio_ranks_only_where_its_interval_excludes_one() {
        // Every round has the first ahead: 1.2 to 1.5.
        let ahead = PairedRatio::of(&[120.0, 130.0, 150.0, 140.0, 125.0], &[100.0; 5]).unwrap();
        assert_eq!(ahead.verdict(), Verdict::Ahead);
        assert!((ahead.median - 1.3).abs() < 1e-12);
        // One round of five goes the other way: the interval holds 1.
        let mixed = PairedRatio::of(&[120.0, 130.0, 95.0, 140.0, 125.0], &[100.0; 5]).unwrap();
        assert_eq!(mixed.verdict(), Verdict::Tied);
        let behind = PairedRatio::of(&[80.0, 90.0, 85.0], &[100.0, 100.0, 100.0]).unwrap();
        assert_eq!(behind.verdict(), Verdict::Behind);
        // One round gives no interval, so no ranking, however large the gap.
        let once = PairedRatio::of(&[300.0], &[100.0]).unwrap();
        assert_eq!((once.verdict(), once.interval), (Verdict::Tied, None));
        // Rounds where either measured nothing are left out.
        let gaps = PairedRatio::of(&[0.0, 200.0, 200.0], &[100.0, 100.0, 0.0]).unwrap();
        assert_eq!((gaps.rounds, gaps.median), (1, 2.0));
        assert_eq!(PairedRatio::of(&[], &[]), None);
    }

    #[test]
    fn the_rank_test_is_exact_for_small_samples() {
        // Five against five, fully separated: the most extreme of 252 orderings, on both sides.
        let p = mann_whitney_p(&[10.0, 11.0, 12.0, 13.0, 14.0], &[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!((p.unwrap() - 2.0 / 252.0).abs() < 1e-12);
        // One swap (U = 24 of 25): 2 orderings at least as extreme on each side, 4 of 252.
        let p = mann_whitney_p(&[10.0, 11.0, 12.0, 13.0, 4.5], &[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!((p.unwrap() - 4.0 / 252.0).abs() < 1e-12);
        // Interleaved figures: nothing to tell apart.
        let p = mann_whitney_p(&[1.0, 3.0, 5.0, 7.0, 9.0], &[2.0, 4.0, 6.0, 8.0, 10.0]);
        assert!(p.unwrap() > 0.5);
        // Three against three, separated: 2 of 20 orderings.
        let p = mann_whitney_p(&[4.0, 5.0, 6.0], &[1.0, 2.0, 3.0]);
        assert!((p.unwrap() - 0.1).abs() < 1e-12);
        assert_eq!(mann_whitney_p(&[], &[1.0]), None);
        // Large samples use the normal approximation: separated samples of 30 are far below 1 %.
        let high: Vec<f64> = (100..130).map(f64::from).collect();
        let low: Vec<f64> = (0..30).map(f64::from).collect();
        assert!(mann_whitney_p(&high, &low).unwrap() < 1e-6);
    }

    #[test]
    fn the_normal_distribution_function_matches_its_tables() {
        assert!((standard_normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((standard_normal_cdf(1.959_964) - 0.975).abs() < 1e-6);
        assert!((standard_normal_cdf(-1.0) - 0.158_655_3).abs() < 1e-6);
    }
}
