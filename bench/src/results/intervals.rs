//! The statistics the results keep (`stats.rs` computes them): intervals around a median,
//! paired ratios and the verdict they allow.

use serde::{Deserialize, Serialize};

/// An interval for the median of the population a few figures were drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
    /// The probability that an interval made this way covers the true median (0 to 1): exact,
    /// from the binomial distribution, whatever the figures' distribution.
    pub coverage: f64,
}

/// Which of two servers the figures say is ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The first is ahead: the interval of the ratio lies above 1.
    Ahead,
    /// The first is behind: the interval lies below 1.
    Behind,
    /// The interval holds 1, or there is none (one round): no ranking.
    Tied,
}

/// The ratio of two servers' figures round by round: each round measured both close together in
/// time, so a slow minute of the machine falls on both and cancels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedRatio {
    /// The median of the per-round ratios.
    pub median: f64,
    /// Its interval; `None` with fewer than two rounds.
    pub interval: Option<Interval>,
    /// How many rounds had both figures.
    pub rounds: usize,
}
