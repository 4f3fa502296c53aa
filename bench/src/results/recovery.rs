//! The figures of a fault cell (`recovery.rs` computes them): what was done, when, and how the
//! server came back; and their medians over rounds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::results::intervals::Interval;
use crate::results::vocabulary::FaultKind;

/// A fault cell's fault in one round: what was asked, when it happened, and what the server
/// made of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    pub kind: FaultKind,
    /// As asked: seconds into the window, and length.
    pub at_seconds: f64,
    pub for_seconds: f64,
    /// As it happened, in seconds from the window's start: the fault began, the database was
    /// back.
    pub started_seconds: f64,
    pub returned_seconds: f64,
    pub figures: FaultFigures,
}

/// How a server rode out a fault in one round, read from its cell's totals and series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultFigures {
    /// Requests that failed over the whole cell: anything but a 2xx or a 503 with
    /// `Retry-After` (connection errors, timeouts, resets, 500s, 503s without it, wrong bodies).
    pub failed: u64,
    /// The failures by kind.
    pub failed_by_kind: BTreeMap<String, u64>,
    /// 503 answers with `Retry-After` over the cell: the contract's "come back later".
    pub unavailable: u64,
    /// The longest answer from the fault's start until throughput was back (or the cell's end),
    /// in milliseconds.
    pub longest_ms: f64,
    /// 2xx answers per second before the fault.
    pub before_ok_per_second: f64,
    /// From the database's return to the first 2xx answer (exact, from the engine; in version 3
    /// files, to the end of the first 100 ms interval with one); `None` if none came.
    pub first_ok_after_seconds: Option<f64>,
    /// From the database's return until throughput was back (see the module); `None`: not
    /// within the cell.
    pub recovered_after_seconds: Option<f64>,
    /// The reference cell's 2xx per second (absent in version 3 files).
    #[serde(default)]
    pub reference_ok_per_second: Option<f64>,
    /// The level "back" was judged against, in 2xx per second: the lower of the level before
    /// the fault and the reference cell's; and which it was (absent in version 3 files: the
    /// level before).
    #[serde(default)]
    pub level_ok_per_second: Option<f64>,
    #[serde(default)]
    pub reference: Reference,
    /// The window the level had to hold, in seconds (absent in version 3 files, which averaged
    /// half a second from the return, burst included).
    #[serde(default)]
    pub sustained_seconds: Option<f64>,
    /// Requests waiting when the database returned (sent before, answered after), and the time
    /// from the return until the last of them was answered.
    #[serde(default)]
    pub backlog: Option<u64>,
    #[serde(default)]
    pub drained_after_seconds: Option<f64>,
}

/// A figure over rounds: its median and the interval of the median.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MedianFigure {
    pub median: f64,
    /// Order statistics (`stats::Interval`); `None` with one round.
    pub interval: Option<Interval>,
}

/// A time over rounds that may not have come within the cell: a round where it did not counts
/// as later than any where it did. `None` stands for "not within the cell".
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MedianTime {
    pub median: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// The interval's coverage (`stats::Interval`); `None` with one round.
    pub coverage: Option<f64>,
}

/// A fault cell over its rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    pub rounds: usize,
    /// Rounds whose throughput was back within the cell.
    pub rounds_back: usize,
    /// Rounds judged against the reference cell, the lower level (the others, against the
    /// level before the fault).
    pub rounds_level_after: usize,
    /// Rounds with a failed request, and the failed requests of all rounds together.
    pub rounds_failed: usize,
    pub failed_total: u64,
    pub failed: MedianFigure,
    pub unavailable: MedianFigure,
    pub unavailable_without_retry_after: MedianFigure,
    pub longest_ms: MedianFigure,
    pub first_ok_after_seconds: MedianTime,
    /// When throughput was back: "not within the cell" unless it was in more than half the
    /// rounds.
    pub back_after_seconds: MedianTime,
    /// Absent where the engine did not watch the return (version 3 files).
    pub backlog: Option<MedianFigure>,
    pub drained_after_seconds: Option<MedianFigure>,
    pub before_ok_per_second: MedianFigure,
    /// The reference cells' 2xx per second (absent in version 3 files).
    pub reference_ok_per_second: Option<MedianFigure>,
    /// The level judged against.
    pub level_ok_per_second: MedianFigure,
    /// The reference over the level before the fault, round by round: well below 1 in every
    /// round, the server was still slower after the fault (or the machine was).
    pub reference_over_before: Option<MedianFigure>,
}

/// Which level "back" was judged against: the lower of the two.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reference {
    /// The cell's own throughput before the fault (also in version 3 files, and where no
    /// reference cell answered).
    #[default]
    LevelBefore,
    /// The reference cell: the same server's plain cell of the same scenario and level,
    /// measured right after its fault cell.
    CellAfter,
}
