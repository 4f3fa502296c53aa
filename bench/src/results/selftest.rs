//! `selftest.json`: the load engine's own figures beside wrk's and oha's.

use crate::results::setup::Placement;
use serde::{Deserialize, Serialize};

/// One tool's figures in one round.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolFigure {
    pub tool: String,
    pub round: usize,
    pub requests_per_second: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// The tool's own CPU time per request, in microseconds: what sending costs it.
    pub cpu_us_per_request: Option<f64>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SelftestResults {
    pub started_at: String,
    pub machine: crate::results::setup::Machine,
    pub url: String,
    pub connections: usize,
    pub duration_seconds: f64,
    pub placement: Placement,
    pub figures: Vec<ToolFigure>,
    /// The engine's median round over wrk's median round (rounds alternate tools, so drift on a
    /// shared machine hits each alike and the medians compare).
    pub engine_over_wrk: Option<f64>,
    pub engine_over_oha: Option<f64>,
    /// The engine's median CPU time per request over wrk's: what sending one request costs each
    /// tool, which a busy machine disturbs far less than the request rate.
    #[serde(default)]
    pub engine_cpu_over_wrk: Option<f64>,
    #[serde(default)]
    pub engine_cpu_over_oha: Option<f64>,
}
