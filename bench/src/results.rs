//! The results of a run as written to `results.json`: every figure, the settings and the machine,
//! so that `bakeoff report` can render the report again and `bakeoff compare` can set two runs
//! side by side. Also the results directory itself: how it is created, and how its versioned JSON
//! files (this one and the concurrency study's) are written and read back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::engine::LoadOutcome;
use crate::machine::Machine;
use crate::placement::Placement;

/// Bumped when the file's shape changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResults {
    pub format_version: u32,
    /// UTC, `2026-05-01T12:00:00Z`.
    pub started_at: String,
    pub finished_at: String,
    pub machine: Machine,
    pub settings: Settings,
    pub servers: Vec<ServerResult>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// The command line, as typed.
    pub command: String,
    pub scenarios: Vec<String>,
    pub connections: Vec<usize>,
    /// Open-loop rate in requests per second; `None` for the closed loop.
    pub rate: Option<f64>,
    pub duration_seconds: f64,
    /// Warm-up per server, before its first measured cell.
    pub warmup_seconds: f64,
    pub repeat: usize,
    pub quick: bool,
    pub timeout_seconds: f64,
    /// Every how-many-th answer per connection has its body checked.
    pub check_every: u64,
    /// `WORKERS` given to every server.
    pub workers: usize,
    /// `DB_POOL_SIZE` given to every server.
    pub db_pool_size: usize,
    pub placement: Placement,
    /// `throwaway` (started and removed by the run) or `external` (DATABASE_URL).
    pub database: String,
    pub contacts: Option<i64>,
    /// The seed of the generated data, when the run seeded it.
    pub data_seed: Option<u64>,
    /// The build profile of the server binaries.
    pub profile: String,
}

/// One server: a bakeoff variant started by the run, or a `--target` already running.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerResult {
    pub name: String,
    /// `variant` or `target`.
    pub kind: String,
    pub verification: Verification,
    /// Why it was not measured, when it was not.
    pub skipped: Option<String>,
    /// From spawn to the `/version` answer.
    pub startup_seconds: Option<f64>,
    pub shutdown: Option<Shutdown>,
    pub cells: Vec<Cell>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Verification {
    pub ran: bool,
    pub passed: bool,
    pub checks: usize,
    pub failures: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Shutdown {
    /// Exited by itself with code 0 within the deadline after SIGTERM.
    pub clean: bool,
    pub exit_code: Option<i32>,
    pub killed: bool,
    pub seconds: f64,
}

/// One scenario at one connection level on one server: every repeat, and their summary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cell {
    pub scenario: String,
    pub connections: usize,
    pub rate: Option<f64>,
    pub runs: Vec<Measurement>,
    pub summary: Summary,
}

/// The median run and the spread of throughput over the repeats.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Index into `runs` of the run with the median throughput: the one the report shows.
    pub median_run: usize,
    pub ok_per_second: f64,
    pub min_ok_per_second: f64,
    pub max_ok_per_second: f64,
    /// (max - min) / median, in percent; 0 with one run.
    pub spread_percent: f64,
}

impl Cell {
    pub fn new(
        scenario: &str,
        connections: usize,
        rate: Option<f64>,
        runs: Vec<Measurement>,
    ) -> Cell {
        let summary = Summary::of(&runs);
        Cell {
            scenario: scenario.to_string(),
            connections,
            rate,
            runs,
            summary,
        }
    }

    /// The run the report shows.
    pub fn median(&self) -> Option<&Measurement> {
        self.runs.get(self.summary.median_run)
    }
}

impl Summary {
    pub fn of(runs: &[Measurement]) -> Summary {
        let mut order: Vec<usize> = (0..runs.len()).collect();
        order.sort_by(|&a, &b| runs[a].ok_per_second.total_cmp(&runs[b].ok_per_second));
        let median_run = order.get(order.len() / 2).copied().unwrap_or(0);
        let value = |index: Option<&usize>| index.map_or(0.0, |&i| runs[i].ok_per_second);
        let median = value(order.get(order.len() / 2));
        let min = value(order.first());
        let max = value(order.last());
        Summary {
            median_run,
            ok_per_second: median,
            min_ok_per_second: min,
            max_ok_per_second: max,
            spread_percent: if median > 0.0 {
                (max - min) / median * 100.0
            } else {
                0.0
            },
        }
    }
}

/// One measured run of one cell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    pub seconds: f64,
    /// 2xx answers (with the expected body where checked) in the window.
    pub ok: u64,
    /// Every answer in the window.
    pub responses: u64,
    pub ok_per_second: f64,
    pub body_bytes_per_second: f64,
    pub checked_bodies: u64,
    /// Latency in microseconds; in an open loop, from the intended send time.
    pub latency_us: Percentiles,
    /// Open loop only: from the actual send time (coordinated omission not corrected).
    pub uncorrected_latency_us: Option<Percentiles>,
    /// Failures by kind: `status-503`, `connect`, `timeout`, `reset`, `protocol`, `body`.
    pub errors: BTreeMap<String, u64>,
    /// Seen from outside the server (absent for targets the run did not start).
    pub server: Option<ServerFigures>,
    /// How busy the load engine's threads were, in percent of their time: near 100 the engine,
    /// not the server, may be what limits the figures.
    #[serde(default)]
    pub engine_busy_percent: Option<f64>,
}

impl Measurement {
    pub fn from_outcome(
        outcome: &LoadOutcome,
        server: Option<ServerFigures>,
        engine_threads: usize,
    ) -> Measurement {
        let seconds = outcome.measured.as_secs_f64();
        let engine_busy_percent = (seconds > 0.0 && engine_threads > 0).then(|| {
            (outcome.engine_cpu.as_secs_f64() / (seconds * engine_threads as f64) * 100.0)
                .min(100.0)
        });
        Measurement {
            seconds,
            ok: outcome.ok,
            responses: outcome.responses,
            ok_per_second: outcome.ok_per_second(),
            body_bytes_per_second: outcome.body_bytes as f64 / seconds.max(1e-9),
            checked_bodies: outcome.checked_bodies,
            latency_us: Percentiles::of(&outcome.latency),
            uncorrected_latency_us: outcome.uncorrected.as_ref().map(Percentiles::of),
            errors: outcome
                .errors
                .iter()
                .map(|(kind, count)| (kind.name(), *count))
                .collect(),
            server,
            engine_busy_percent,
        }
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p99_9: u64,
    pub max: u64,
}

impl Percentiles {
    /// The percentiles the report's tables and the latency charts show, in the order of `shown`.
    pub const SHOWN: [&'static str; 5] = ["p50", "p90", "p99", "p99.9", "max"];

    /// The values of `SHOWN`, in microseconds.
    pub fn shown(&self) -> [u64; 5] {
        [self.p50, self.p90, self.p99, self.p99_9, self.max]
    }

    pub fn of(histogram: &Histogram<u64>) -> Percentiles {
        if histogram.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: histogram.len(),
            mean: histogram.mean(),
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            p99_9: histogram.value_at_quantile(0.999),
            max: histogram.max(),
        }
    }
}

/// The server's resource use during one run, read from /proc and PostgreSQL by the benchmark.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServerFigures {
    /// User + system CPU seconds of the server process over the run.
    pub cpu_seconds: f64,
    /// CPU milliseconds per 1,000 answers.
    pub cpu_ms_per_1k: Option<f64>,
    pub rss_peak_bytes: u64,
    pub rss_final_bytes: u64,
    pub threads_peak: u64,
    pub threads_final: u64,
    /// Connections the server held to PostgreSQL (pg_stat_activity), peak over the run.
    pub db_connections_peak: Option<u64>,
    /// Statements the server ran (pg_stat_statements) per answer.
    pub statements_per_request: Option<f64>,
}

/// A versioned file of figures in a results directory: `results.json` of a run, or
/// `concurrency.json` of the concurrency study. Both are written and read back the same way.
pub trait ResultsFile: Serialize + DeserializeOwned {
    /// The file's name in its results directory.
    const FILE_NAME: &'static str;
    /// The format version this bakeoff writes and reads.
    const FORMAT_VERSION: u32;
    /// What the file is, for the error about a file that is not one.
    const DESCRIPTION: &'static str;

    /// The format version the file was written with.
    fn format_version(&self) -> u32;

    /// Writes the file, as indented JSON, into `directory`.
    fn write(&self, directory: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).context("serializing the results")?;
        write_file(directory, Self::FILE_NAME, text)
    }

    /// Reads the file from its results directory, or from its own path; a file of another
    /// format version is refused rather than read wrong.
    fn read(directory_or_file: &Path) -> Result<Self> {
        let path = if directory_or_file.is_dir() {
            directory_or_file.join(Self::FILE_NAME)
        } else {
            directory_or_file.to_path_buf()
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let results: Self = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a {}", path.display(), Self::DESCRIPTION))?;
        anyhow::ensure!(
            results.format_version() == Self::FORMAT_VERSION,
            "{} has format version {}, this bakeoff reads {}",
            path.display(),
            results.format_version(),
            Self::FORMAT_VERSION
        );
        Ok(results)
    }
}

/// Creates the results directory `name` (a timestamp, for one) under `out`; returns its path.
pub fn create_directory(out: &Path, name: &str) -> Result<PathBuf> {
    let directory = out.join(name);
    std::fs::create_dir_all(&directory)
        .with_context(|| format!("creating {}", directory.display()))?;
    Ok(directory)
}

/// Writes one file of a results directory (the JSON, a report).
pub fn write_file(directory: &Path, name: &str, contents: impl AsRef<[u8]>) -> Result<()> {
    let path = directory.join(name);
    std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))
}

impl ResultsFile for RunResults {
    const FILE_NAME: &'static str = "results.json";
    const FORMAT_VERSION: u32 = FORMAT_VERSION;
    const DESCRIPTION: &'static str = "bakeoff results file";

    fn format_version(&self) -> u32 {
        self.format_version
    }
}

impl RunResults {
    /// Every measured cell with its server's name.
    pub fn cells(&self) -> impl Iterator<Item = (&ServerResult, &Cell)> {
        self.servers
            .iter()
            .flat_map(|server| server.cells.iter().map(move |cell| (server, cell)))
    }
}
