//! A cell's figures over time, as the engine records them: one entry per interval, with errors
//! by kind.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A run over time: one entry per interval of the measured window, from its start.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// The length of every interval but possibly the last, in milliseconds.
    pub interval_ms: u64,
    pub intervals: Vec<IntervalFigures>,
}

/// What one interval of a run saw, counted when each answer or failure completed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IntervalFigures {
    /// 2xx answers (with the expected body where checked).
    pub ok: u64,
    /// 503 answers, with or without `Retry-After`.
    pub unavailable: u64,
    /// Every other non-2xx answer.
    pub other_status: u64,
    /// Failures by kind, as in the run's totals (`status-503`, `timeout`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, u64>,
    /// Latency percentiles of the interval's answers, in microseconds (0 without answers).
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// How a request failed: its status, its body, or the transport under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ErrorKind {
    /// A response with this non-2xx status (a 503 with `Retry-After`, for 503).
    Status(u16),
    /// A 503 without `Retry-After`: not the contract's "come back later".
    UnavailableWithoutRetryAfter,
    /// The TCP connection could not be made.
    Connect,
    /// No complete answer within the timeout.
    Timeout,
    /// The connection was closed or reset before the answer was complete.
    Reset,
    /// The answer was not valid HTTP.
    Protocol,
    /// A 2xx answer whose body differs from the expected one.
    Body,
}
