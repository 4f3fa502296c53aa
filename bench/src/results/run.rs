//! The results of `bakeoff run` as written to `results.json`: every figure, the settings and the
//! machine, so that `bakeoff report` can render the report again and `bakeoff compare` can set two
//! runs side by side.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::results::ResultsFile;
use crate::results::intervals::Interval;
use crate::results::recovery::{FaultRecord, Recovery};
use crate::results::series::Series;
use crate::results::server::{ContainerRecord, ServerRecord};
use crate::results::setup::{Dimensions, Machine, Placement, ShardIndex};
use crate::results::vocabulary::{DatabaseKind, FaultKind, Scenario};

/// Bumped when the file's shape changes: 2 names scenarios, server kinds and the database as
/// enums and records each server's configuration; 3 adds each run's series and the fault cells,
/// and `status-503` counts only 503s with `Retry-After`; 4 measures in interleaved rounds: a
/// cell's runs are its rounds (each with its round and place in the order), the rounds and the
/// machine's speed reference are recorded, summaries carry intervals, and efficiency cells are
/// kept apart; fault cells are measured in rounds too, each round with its fault record and the
/// cell with its recovery over the rounds (version 1 to 3 files are still read).
pub const FORMAT_VERSION: u32 = 4;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResults {
    pub format_version: u32,
    /// UTC, `2026-05-01T12:00:00Z`.
    pub started_at: String,
    pub finished_at: String,
    pub machine: Machine,
    pub settings: Settings,
    pub servers: Vec<ServerResult>,
    /// Every round as it ran, group by group (absent before version 4).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rounds: Vec<RoundRecord>,
    /// The servers (labels) measured together, interleaved, group by group; servers of
    /// different groups were measured at different times (absent before version 4).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Vec<String>>,
    /// The load engine's and the database's containers, in a compose run
    /// (`--container-cgroups`); each target's is in its record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containers: Option<RunContainers>,
}

/// Which stage of a group's measurement a round belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Closed loop: as fast as each server answers.
    ClosedLoop,
    /// Every server at the same open-loop rate.
    Efficiency,
    /// Every fault cell, each followed by its reference cell (the same server, scenario and
    /// level without a fault).
    Fault,
}

/// One round of one group: the machine's speed before it, and the cells in the order they ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    pub group: usize,
    pub stage: Stage,
    /// From 0.
    pub round: usize,
    /// Milliseconds for the speed reference on the servers' CPUs before the round
    /// (`measure::drift`); more is a slower machine.
    pub reference_ms: Option<f64>,
    pub order: Vec<CellRef>,
}

/// A cell named by its server's label, scenario and level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellRef {
    pub server: String,
    pub scenario: Scenario,
    pub connections: usize,
    pub rate: Option<f64>,
    /// In a fault round: the fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultKind>,
}

/// The containers around the servers in a compose run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunContainers {
    /// The benchmark's own container (the load engine), when found.
    pub engine: Option<ContainerRecord>,
    /// The database's container, when the database URL's host is one.
    pub database: Option<ContainerRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// The command line, as typed.
    pub command: String,
    pub scenarios: Vec<Scenario>,
    pub connections: Vec<usize>,
    /// Open-loop rate in requests per second; `None` for the closed loop.
    pub rate: Option<f64>,
    pub duration_seconds: f64,
    /// Warm-up per server, before its first measured cell.
    pub warmup_seconds: f64,
    /// Version 3 and before: runs per cell, one after another.
    #[serde(default)]
    pub repeat: usize,
    /// Rounds per cell (version 4); 0 in older files.
    #[serde(default)]
    pub rounds: usize,
    /// Load before each cell's window in a round, not recorded (version 4).
    #[serde(default)]
    pub cell_warmup_seconds: f64,
    /// Each efficiency cell's window per round; `None`: no efficiency cells (version 4).
    #[serde(default)]
    pub efficiency_seconds: Option<f64>,
    /// Rounds per fault cell (version 4; 0 in older files, which measured each once).
    #[serde(default)]
    pub fault_rounds: usize,
    /// The window of the reference cell measured right after each fault cell (version 4).
    #[serde(default)]
    pub fault_reference_seconds: Option<f64>,
    pub quick: bool,
    pub timeout_seconds: f64,
    /// Every how-many-th answer per connection has its body checked.
    pub check_every: u64,
    /// The dimensions the run covered (workers, pool sizes, connection checks); each server's
    /// own point is in its record. Absent in version 1 files, which had the two fields below.
    #[serde(default)]
    pub dimensions: Option<Dimensions>,
    /// Version 1: `WORKERS` given to every server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Version 1: `DB_POOL_SIZE` given to every server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_pool_size: Option<usize>,
    pub placement: Placement,
    pub database: DatabaseKind,
    pub contacts: Option<i64>,
    /// The seed of the generated data, when the run seeded it.
    pub data_seed: Option<u64>,
    /// The build profile of the server binaries.
    pub profile: String,
}

/// One server in one configuration: what the harness recorded, and the cells measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerResult {
    #[serde(flatten)]
    pub record: ServerRecord,
    pub cells: Vec<Cell>,
    /// The cells measured with a fault injected (`--fault`): kept apart, so that their figures
    /// never mix with the normal cells'. Absent before version 3.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fault_cells: Vec<Cell>,
    /// Every server of its group at one open-loop rate per scenario: the cost of the same load
    /// (version 4).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub efficiency_cells: Vec<Cell>,
    /// Its group in `RunResults::groups` (version 4).
    #[serde(default)]
    pub group: Option<usize>,
}

/// One scenario at one connection level on one server: every round (every repeat before version
/// 4), and their summary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cell {
    pub scenario: Scenario,
    pub connections: usize,
    pub rate: Option<f64>,
    pub runs: Vec<Measurement>,
    pub summary: Summary,
    /// The fault injected during the cell, in a fault cell: the record of the round the report
    /// shows (every round's is in its run, from version 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultRecord>,
    /// A fault cell's figures over its rounds (version 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Recovery>,
}

/// The median run and the spread of throughput over the rounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Index into `runs` of the run with the median throughput: the one the report shows.
    pub median_run: usize,
    pub ok_per_second: f64,
    pub min_ok_per_second: f64,
    pub max_ok_per_second: f64,
    /// (max - min) / median, in percent; 0 with one run.
    pub spread_percent: f64,
    /// The interval of the median throughput (order statistics; `None` with one run).
    #[serde(default)]
    pub interval: Option<Interval>,
    /// The server's CPU milliseconds per 1,000 answers: the median over the runs and its
    /// interval, where measured.
    #[serde(default)]
    pub cpu_ms_per_1k: Option<f64>,
    #[serde(default)]
    pub cpu_interval: Option<Interval>,
}

impl Cell {
    /// A fault cell's record of every round: each run's, or the cell's one (version 3).
    pub fn fault_records(&self) -> Vec<&FaultRecord> {
        let records: Vec<&FaultRecord> = self
            .runs
            .iter()
            .filter_map(|run| run.fault.as_ref())
            .collect();
        if records.is_empty() {
            self.fault.iter().collect()
        } else {
            records
        }
    }

    /// A fault cell's recovery over its rounds (computed for version 3 files, which have one).
    pub fn recovery(&self) -> Option<Recovery> {
        self.recovery
            .clone()
            .or_else(|| Recovery::of(&self.fault_records()))
    }

    /// The run the report shows.
    pub fn median(&self) -> Option<&Measurement> {
        self.runs.get(self.summary.median_run)
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
    /// Bodies compared with the contract's and found equal.
    pub checked_bodies: u64,
    /// A lenient target's 2xx answers whose compared body deviated from the contract's: counted
    /// in `ok` by their status, not in `checked_bodies` nor as errors.
    #[serde(default)]
    pub deviating_bodies: u64,
    /// Latency in microseconds; in an open loop, from the intended send time.
    pub latency_us: Percentiles,
    /// Open loop only: from the actual send time (coordinated omission not corrected).
    pub uncorrected_latency_us: Option<Percentiles>,
    /// Failures by kind: `status-503` (with `Retry-After`), `status-503-no-retry-after`, other
    /// statuses, `connect`, `timeout`, `reset`, `protocol`, `body`.
    pub errors: BTreeMap<String, u64>,
    /// Seen from outside the server (absent for targets the run did not start).
    pub server: Option<ServerFigures>,
    /// How busy the load engine's threads were, in percent of their time: near 100 the engine,
    /// not the server, may be what limits the figures.
    #[serde(default)]
    pub engine_busy_percent: Option<f64>,
    /// CPU seconds the delay line in front of the database used in the window (a latency level
    /// above zero only): what the added latency cost the machine.
    #[serde(default)]
    pub delay_line_cpu_seconds: Option<f64>,
    /// The run over time (absent before version 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<Series>,
    /// The group of servers it was measured with, and the round in that group, from 0 (version
    /// 4): runs of two servers pair where both agree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<usize>,
    /// Its place in its group's order of measurement, from 0 (version 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<usize>,
    /// The load shards whose answers this run merges (`bakeoff merge`), each with its own
    /// engine's load; empty for a run of one engine.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardLoad>,
    /// CPU seconds the load engine's threads used in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_cpu_seconds: Option<f64>,
    /// CPU seconds the load engine's container used in the window, from its cgroup (a compose
    /// run): the engine with its container's share of networking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_container_cpu_seconds: Option<f64>,
    /// CPU seconds the database used in the window: its container's cgroup in a compose run,
    /// the throwaway cluster's processes otherwise; `None` for another database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_cpu_seconds: Option<f64>,
    /// In a fault cell's round: the fault and how the server rode it out (version 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultRecord>,
}

impl Measurement {
    /// CPU milliseconds per 1,000 answers of `seconds` (the engine's, its container's or the
    /// database's).
    pub fn cpu_ms_per_thousand(&self, seconds: Option<f64>) -> Option<f64> {
        let seconds = seconds?;
        (self.responses > 0).then(|| seconds / self.responses as f64 * 1e6)
    }

    /// The delay line's CPU time per 1,000 answers, in milliseconds.
    pub fn delay_line_cpu_ms_per_thousand(&self) -> Option<f64> {
        let seconds = self.delay_line_cpu_seconds?;
        (self.responses > 0).then(|| seconds / self.responses as f64 * 1e6)
    }

    /// How busy the engine's CPUs were with the engine and the delay line together, in percent
    /// of their time (`None` where the engine is unpinned or no line ran): the line shares the
    /// engine's CPUs, and near 100 the two of them, not the server, may limit the figures.
    pub fn engine_cpus_busy_percent(&self, placement: &Placement) -> Option<f64> {
        let line_seconds = self.delay_line_cpu_seconds?;
        let engine_cpus = placement.engine_cpus.as_ref()?.len();
        if self.seconds <= 0.0 || engine_cpus == 0 {
            return None;
        }
        let engine_seconds = self.engine_busy_percent.unwrap_or(0.0) / 100.0
            * self.seconds
            * placement.engine_threads as f64;
        Some(
            ((engine_seconds + line_seconds) / (self.seconds * engine_cpus as f64) * 100.0)
                .min(100.0),
        )
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The server's CPU milliseconds per 1,000 answers, where measured.
    pub fn cpu_ms_per_1k(&self) -> Option<f64> {
        self.server
            .as_ref()
            .and_then(|figures| figures.cpu_ms_per_1k)
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
    /// Threads and resident memory when the cell started: what an earlier cell left, beside
    /// the peak this one reached.
    #[serde(default)]
    pub threads_at_start: u64,
    #[serde(default)]
    pub rss_at_start_bytes: u64,
    /// Processes in the server's tree, peak (1 for a Rust variant; a peer's master and workers).
    #[serde(default)]
    pub processes_peak: u64,
    /// Connections the server held to PostgreSQL (pg_stat_activity), peak over the run.
    pub db_connections_peak: Option<u64>,
    /// Behind a pooler: the client connections it served for the server (`SHOW CLIENTS`) and the
    /// server connections it held to PostgreSQL (`SHOW POOLS`), peaks over the run.
    #[serde(default)]
    pub pooler_clients_peak: Option<u64>,
    #[serde(default)]
    pub pooler_server_connections_peak: Option<u64>,
    /// Statements the server ran (pg_stat_statements) per answer.
    pub statements_per_request: Option<f64>,
}

impl ResultsFile for RunResults {
    const FILE_NAME: &'static str = "results.json";
    const FORMAT_VERSION: u32 = FORMAT_VERSION;
    const OLDEST_FORMAT_VERSION: u32 = 1;
    const DESCRIPTION: &'static str = "bakeoff results file";
}

/// One shard's part of a merged run, kept for the report: how busy its engine was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardLoad {
    pub shard: ShardIndex,
    pub host: String,
    pub connections: usize,
    pub engine_threads: usize,
    pub ok_per_second: f64,
    /// Its engine threads' CPU time over their time in the window, in percent.
    pub engine_busy_percent: Option<f64>,
    /// Its window's start after the earliest shard's, in milliseconds.
    pub start_offset_ms: f64,
}

impl RunResults {
    /// The machine's speed reference timed before a closed-loop round of a group, where the run
    /// recorded one (version 4).
    pub fn closed_loop_reference_ms(&self, group: usize, round: usize) -> Option<f64> {
        self.rounds
            .iter()
            .find(|record| {
                record.stage == Stage::ClosedLoop && record.group == group && record.round == round
            })
            .and_then(|record| record.reference_ms)
    }

    /// Every measured cell with its server's name.
    pub fn cells(&self) -> impl Iterator<Item = (&ServerResult, &Cell)> {
        self.servers
            .iter()
            .flat_map(|server| server.cells.iter().map(move |cell| (server, cell)))
    }
}

/// A load level: a connection count, and the open-loop rate if any.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    pub connections: usize,
    pub rate: Option<f64>,
}

impl Level {
    pub fn label(&self) -> String {
        match self.rate {
            Some(rate) => format!(
                "{} connections, open loop at {} req/s",
                self.connections,
                crate::format::group_thousands(rate.round() as i64)
            ),
            None => format!("{} connections, closed loop", self.connections),
        }
    }

    /// For file names: `c64` or `c64-r1000`.
    pub fn slug(&self) -> String {
        match self.rate {
            Some(rate) => format!("c{}-r{}", self.connections, rate.round() as u64),
            None => format!("c{}", self.connections),
        }
    }

    pub fn matches(&self, cell: &Cell) -> bool {
        cell.connections == self.connections && cell.rate == self.rate
    }
}

impl Settings {
    /// What every server was started with, in words (from the dimensions, or a version 1 file's
    /// single values).
    pub fn servers_line(&self) -> String {
        match &self.dimensions {
            Some(dimensions) => dimensions.describe(),
            None => format!(
                "WORKERS={} and DB_POOL_SIZE={} for every variant",
                self.workers.map_or_else(|| "?".into(), |w| w.to_string()),
                self.db_pool_size
                    .map_or_else(|| "?".into(), |p| p.to_string())
            ),
        }
    }
}

impl RunResults {
    /// The dimensions of a run that covered database latency levels, else `None`.
    pub fn latency_dimensions(&self) -> Option<&Dimensions> {
        self.settings
            .dimensions
            .as_ref()
            .filter(|dimensions| dimensions.db_latencies.len() > 1 || dimensions.adds_db_latency())
    }

    /// The levels present in the results, by connection count.
    pub fn levels(&self) -> Vec<Level> {
        let mut levels: Vec<Level> = Vec::new();
        for (_, cell) in self.cells() {
            let level = Level {
                connections: cell.connections,
                rate: cell.rate,
            };
            if !levels.contains(&level) {
                levels.push(level);
            }
        }
        levels.sort_by_key(|level| level.connections);
        levels
    }

    /// The scenarios present, in the canonical order.
    pub fn scenarios(&self) -> Vec<Scenario> {
        let mut scenarios: Vec<Scenario> = self.cells().map(|(_, cell)| cell.scenario).collect();
        scenarios.sort();
        scenarios.dedup();
        scenarios
    }
}

/// A measurement with only its throughput and p99 set, for the tests of what is computed from
/// measurements (summaries, comparisons, reports).
#[cfg(test)]
pub fn test_measurement(ok_per_second: f64, p99_us: u64) -> Measurement {
    Measurement {
        seconds: 1.0,
        ok: ok_per_second as u64,
        responses: ok_per_second as u64,
        ok_per_second,
        body_bytes_per_second: 0.0,
        checked_bodies: 0,
        deviating_bodies: 0,
        latency_us: Percentiles {
            p99: p99_us,
            ..Percentiles::default()
        },
        uncorrected_latency_us: None,
        errors: BTreeMap::new(),
        server: None,
        engine_busy_percent: None,
        delay_line_cpu_seconds: None,
        series: None,
        group: None,
        round: None,
        sequence: None,
        shards: Vec::new(),
        engine_cpu_seconds: None,
        engine_container_cpu_seconds: None,
        database_cpu_seconds: None,
        fault: None,
    }
}

/// A `types` cell of one group whose rounds had these throughputs, one run per round, for the
/// tests of what is read from rounds (verdicts, readings).
#[cfg(test)]
pub fn test_cell_in_rounds(rates: &[f64]) -> Cell {
    let runs = rates
        .iter()
        .enumerate()
        .map(|(round, &rate)| Measurement {
            group: Some(0),
            round: Some(round),
            ..test_measurement(rate, 1_000)
        })
        .collect();
    Cell::new(Scenario::Types, 64, None, runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(rates: &[f64]) -> Summary {
        let runs: Vec<Measurement> = rates.iter().map(|&r| test_measurement(r, 1)).collect();
        Summary::of(&runs)
    }

    #[test]
    fn the_engine_cpus_are_as_busy_as_the_engine_and_the_line_together() {
        let placement = |engine_cpus: &str| Placement {
            server_cpus: None,
            engine_cpus: engine_cpus.parse().ok(),
            engine_threads: 1,
            note: String::new(),
        };
        let mut measurement = Measurement {
            seconds: 5.0,
            engine_busy_percent: Some(20.0),
            ..test_measurement(1_000.0, 1)
        };
        assert_eq!(measurement.engine_cpus_busy_percent(&placement("1")), None);
        measurement.delay_line_cpu_seconds = Some(3.0);
        // 1 s of engine and 3 s of line in 5 s: 80 % of one CPU, 40 % of two.
        let one = measurement
            .engine_cpus_busy_percent(&placement("1"))
            .unwrap_or(0.0);
        let two = measurement
            .engine_cpus_busy_percent(&placement("1-2"))
            .unwrap_or(0.0);
        assert!((one - 80.0).abs() < 1e-9, "{one}");
        assert!((two - 40.0).abs() < 1e-9, "{two}");
        assert_eq!(measurement.engine_cpus_busy_percent(&placement("")), None);
    }

    #[test]
    fn a_cell_summary_is_its_median_run_and_the_spread_of_its_repeats() {
        let three = summary(&[300.0, 100.0, 200.0]);
        assert_eq!(three.median_run, 2);
        assert_eq!(three.ok_per_second, 200.0);
        assert_eq!(three.min_ok_per_second, 100.0);
        assert_eq!(three.max_ok_per_second, 300.0);
        assert_eq!(three.spread_percent, 100.0);
        // Of two runs the upper one is the median.
        let two = summary(&[100.0, 120.0]);
        assert_eq!((two.median_run, two.ok_per_second), (1, 120.0));
        assert!((two.spread_percent - 20.0 / 120.0 * 100.0).abs() < 1e-9);
        let one = summary(&[50.0]);
        assert_eq!((one.ok_per_second, one.spread_percent), (50.0, 0.0));
        let none = summary(&[]);
        assert_eq!((none.ok_per_second, none.spread_percent), (0.0, 0.0));
    }
}
