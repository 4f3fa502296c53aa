//! The results of `bakeoff cost` as written to `cost.json`: per server and scenario, the
//! instructions (and system calls) each measured batch of requests cost the server's process
//! tree under callgrind, what they were spent on, PostgreSQL's side of the same requests, and the
//! CPU time per request of a `bakeoff run` beside them when one was given.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::results::ResultsFile;
use crate::results::server::ServerRecord;
use crate::results::setup::{Dimensions, Machine, Placement};
use crate::results::vocabulary::{Component, DatabaseKind, Scenario};

/// Bumped when the file's shape changes.
pub const FORMAT_VERSION: u32 = 1;

/// Two counts of the same requests are the same cost within this band, in percent: instruction
/// counts of identical runs agree far closer than time does (the reproducibility test holds every
/// variant to it), and `bakeoff compare` marks changes within it as such.
pub const BAND_PERCENT: f64 = 1.0;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CostResults {
    pub format_version: u32,
    /// UTC, `2026-05-01T12:00:00Z`.
    pub started_at: String,
    pub finished_at: String,
    pub machine: Machine,
    pub settings: CostSettings,
    pub servers: Vec<ServerCost>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CostSettings {
    /// The command line, as typed.
    pub command: String,
    pub scenarios: Vec<Scenario>,
    /// Requests counted per batch.
    pub requests: usize,
    /// Server processes started per server, one after another: each counted on its own.
    pub starts: usize,
    /// Batches per scenario and start, each counted on its own.
    pub batches: usize,
    /// Requests of each scenario sent before its first batch, not counted.
    pub warmup_requests: usize,
    /// Connections the requests are spread over, each sending one request at a time.
    pub connections: usize,
    /// Every request on a new connection (accepting and closing it counted with the request).
    #[serde(default)]
    pub connection_per_request: bool,
    /// `valgrind --version`.
    pub valgrind: String,
    pub dimensions: Dimensions,
    pub placement: Placement,
    pub database: DatabaseKind,
    pub contacts: Option<i64>,
    pub data_seed: Option<u64>,
    /// The build profile of the server binaries.
    pub profile: String,
    /// The `bakeoff run` whose CPU time per request is shown beside the counts.
    pub beside: Option<BesideRun>,
}

/// The run given with `--beside`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BesideRun {
    /// Its directory, as given.
    pub directory: String,
    pub started_at: String,
    pub machine: String,
}

/// One server in one configuration: the harness's record and a cell per scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerCost {
    #[serde(flatten)]
    pub record: ServerRecord,
    pub cells: Vec<CostCell>,
}

/// One scenario on one server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CostCell {
    pub scenario: Scenario,
    pub batches: Vec<Batch>,
    /// PostgreSQL's side of every measured request (all batches), from pg_stat_statements;
    /// `None` where the database's statistics could not be read.
    pub database: Option<DatabaseCost>,
    /// The CPU time per request that the run given with `--beside` measured.
    pub run_cpu: Option<RunCpu>,
}

/// One counted batch of requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Batch {
    /// Which start of the server (its process) it was counted in, from 1.
    pub start: usize,
    /// Requests sent.
    pub requests: u64,
    /// 2xx answers with the expected body.
    pub ok: u64,
    /// Failed requests by kind: a failed request costs what it costs, so a batch with failures
    /// is not the scenario's cost.
    pub failures: BTreeMap<String, u64>,
    /// Wall time of the batch under callgrind (not a figure of the server: the profiler's).
    pub seconds: f64,
    pub counts: Counts,
}

/// What PostgreSQL did for the measured requests, per request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DatabaseCost {
    pub statements: f64,
    pub rows: f64,
    /// Shared buffers hit or read: PostgreSQL's work in pages, as exact as the statements.
    pub buffers: f64,
    /// Execution time in milliseconds: a time, so noise like any other.
    pub exec_ms: f64,
}

/// A run's CPU time per request for the same server and scenario.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RunCpu {
    /// The connection level of the run's cell.
    pub connections: usize,
    /// User + system CPU time of the server per answer, in microseconds.
    pub cpu_us_per_request: f64,
}

impl Batch {
    pub fn instructions_per_request(&self) -> f64 {
        per(self.counts.instructions, self.requests)
    }

    /// Entries into the kernel per request (clock reads left out, see [`Counts::clock_reads`]).
    pub fn system_calls_per_request(&self) -> f64 {
        per(self.counts.system_calls, self.requests)
    }

    pub fn clock_reads_per_request(&self) -> f64 {
        per(self.counts.clock_reads, self.requests)
    }

    /// Instructions per request of one component.
    pub fn component_per_request(&self, component: Component) -> f64 {
        per(
            self.counts.components.get(&component).copied().unwrap_or(0),
            self.requests,
        )
    }

    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }
}

fn per(total: u64, requests: u64) -> f64 {
    if requests == 0 {
        0.0
    } else {
        total as f64 / requests as f64
    }
}

impl CostCell {
    /// Instructions per request of each start of the server: the mean of its batches.
    pub fn per_start(&self) -> Vec<f64> {
        let mut starts: Vec<usize> = self.batches.iter().map(|batch| batch.start).collect();
        starts.sort_unstable();
        starts.dedup();
        starts
            .iter()
            .map(|&start| {
                let counts: Vec<f64> = self
                    .batches
                    .iter()
                    .filter(|batch| batch.start == start)
                    .map(Batch::instructions_per_request)
                    .collect();
                counts.iter().sum::<f64>() / counts.len() as f64
            })
            .collect()
    }

    /// The cell's figure: the mean over the starts. A server process's count is steady from
    /// batch to batch, but another process of the same binary may settle on another level, up
    /// to a percent or two away, where threads and timers meet differently under callgrind:
    /// actix-deadpool's processes counted either about 21,120 or about 21,395 instructions per
    /// `version` request, and a median of three starts flipped between the two from one run to
    /// the next (1.3 %). The mean moves by the share of starts on each level instead.
    pub fn instructions_per_request(&self) -> Option<f64> {
        let per_start = self.per_start();
        (!per_start.is_empty()).then(|| per_start.iter().sum::<f64>() / per_start.len() as f64)
    }

    /// The batch closest to the cell's figure: the one whose split, functions and system calls
    /// the report shows.
    pub fn representative(&self) -> Option<&Batch> {
        let figure = self.instructions_per_request()?;
        self.batches.iter().min_by(|a, b| {
            (a.instructions_per_request() - figure)
                .abs()
                .total_cmp(&(b.instructions_per_request() - figure).abs())
        })
    }

    /// (max - min) / the cell's figure of every batch's instructions per request, in percent; 0
    /// with one.
    pub fn spread_percent(&self) -> f64 {
        let values: Vec<f64> = self
            .batches
            .iter()
            .map(Batch::instructions_per_request)
            .collect();
        let figure = self.instructions_per_request().unwrap_or(0.0);
        let (min, max) = values
            .iter()
            .fold((f64::INFINITY, 0.0_f64), |(min, max), &v| {
                (min.min(v), max.max(v))
            });
        if figure > 0.0 && values.len() > 1 {
            (max - min) / figure * 100.0
        } else {
            0.0
        }
    }

    /// Failed requests over every batch.
    pub fn failed(&self) -> u64 {
        self.batches.iter().map(Batch::failed).sum()
    }
}

impl ResultsFile for CostResults {
    const FILE_NAME: &'static str = "cost.json";
    const FORMAT_VERSION: u32 = FORMAT_VERSION;
    const OLDEST_FORMAT_VERSION: u32 = 1;
    const DESCRIPTION: &'static str = "bakeoff cost file";
}

impl CostResults {
    /// Every cell with its server.
    pub fn cells(&self) -> impl Iterator<Item = (&ServerCost, &CostCell)> {
        self.servers
            .iter()
            .flat_map(|server| server.cells.iter().map(move |cell| (server, cell)))
    }

    /// The scenarios present, in the canonical order.
    pub fn scenarios(&self) -> Vec<Scenario> {
        let mut scenarios: Vec<Scenario> = self.cells().map(|(_, cell)| cell.scenario).collect();
        scenarios.sort();
        scenarios.dedup();
        scenarios
    }
}

/// One server and scenario counted in two cost runs.
#[derive(Debug, Clone, PartialEq)]
pub struct CostChange {
    pub server: String,
    pub scenario: Scenario,
    pub before: f64,
    pub after: f64,
    /// Relative change of instructions per request, in percent.
    pub percent: f64,
}

impl CostChange {
    /// Within [`BAND_PERCENT`]: the same cost.
    pub fn within_band(&self) -> bool {
        self.percent.abs() <= BAND_PERCENT
    }
}

/// The cells of `before` and `after` matched by server (its label) and scenario.
pub fn changes(before: &CostResults, after: &CostResults) -> Vec<CostChange> {
    let mut changes = Vec::new();
    for (server, cell) in after.cells() {
        let old = before.cells().find(|(old_server, old_cell)| {
            old_server.record.shown_name() == server.record.shown_name()
                && old_cell.scenario == cell.scenario
        });
        let (Some((_, old)), Some(after_count)) = (old, cell.instructions_per_request()) else {
            continue;
        };
        let Some(before_count) = old.instructions_per_request() else {
            continue;
        };
        let percent = if before_count > 0.0 {
            (after_count - before_count) / before_count * 100.0
        } else {
            0.0
        };
        changes.push(CostChange {
            server: server.record.shown_name().to_string(),
            scenario: cell.scenario,
            before: before_count,
            after: after_count,
            percent,
        });
    }
    changes
}

/// What the processes of a server counted over one measured batch, summed over its processes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Processes that were counted (1 for a variant with one process).
    pub processes: usize,
    pub instructions: u64,
    /// System calls, less the clock reads: the times the process entered the kernel.
    pub system_calls: u64,
    /// Reads of the clock (`clock_gettime`, `gettimeofday`, `time`): system calls under
    /// Valgrind, which gives its programs no vDSO, but served in user space (the vDSO) natively.
    #[serde(default)]
    pub clock_reads: u64,
    /// System calls by the C library function that made them (`epoll_wait`, `recv`, `writev`,
    /// clock reads included).
    #[serde(default)]
    pub system_calls_by_function: BTreeMap<String, u64>,
    /// Instructions per component of the request path, every component present (0 where none).
    pub components: BTreeMap<Component, u64>,
    /// Instructions per crate, or per object where there is no source information.
    pub sources: BTreeMap<String, u64>,
    /// The functions that executed the most instructions themselves, largest first.
    pub functions: Vec<FunctionCount>,
}

/// One function's own instructions and system calls (all its source files together).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCount {
    pub function: String,
    /// Its crate, or its object without source information.
    pub source: String,
    pub instructions: u64,
    pub system_calls: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(start: usize, requests: u64, instructions: u64) -> Batch {
        Batch {
            start,
            requests,
            ok: requests,
            failures: BTreeMap::new(),
            seconds: 1.0,
            counts: Counts {
                processes: 1,
                instructions,
                ..Counts::default()
            },
        }
    }

    /// A cell of one batch per start, with these instructions per 1,000 requests.
    fn cell(instructions: &[u64]) -> CostCell {
        CostCell {
            scenario: Scenario::Types,
            batches: instructions
                .iter()
                .enumerate()
                .map(|(index, &i)| batch(index + 1, 1_000, i))
                .collect(),
            database: None,
            run_cpu: None,
        }
    }

    #[test]
    fn a_cell_is_the_mean_of_its_starts_and_shows_the_spread_of_its_batches() {
        let three = cell(&[77_000_000, 76_000_000, 78_000_000]);
        assert_eq!(three.instructions_per_request(), Some(77_000.0));
        assert_eq!(three.representative().map(|batch| batch.start), Some(1));
        // (78 - 76) / 77
        assert!((three.spread_percent() - 2.0 / 77.0 * 100.0).abs() < 1e-9);
        let two = cell(&[100_000, 120_000]);
        assert_eq!(two.instructions_per_request(), Some(110.0));
        // Two levels, as actix-deadpool's processes settle: the mean moves by the share of
        // starts on each, where the median of three jumped from one level to the other.
        let mostly_low = cell(&[21_120_000, 21_120_000, 21_395_000]);
        let mostly_high = cell(&[21_120_000, 21_395_000, 21_395_000]);
        let (low, high) = (
            mostly_low.instructions_per_request().unwrap(),
            mostly_high.instructions_per_request().unwrap(),
        );
        assert!((high - low) / low < 0.005, "{low} {high}");
        assert_eq!(cell(&[5_000]).spread_percent(), 0.0);
        assert_eq!(cell(&[]).instructions_per_request(), None);
    }

    #[test]
    fn a_start_counts_the_mean_of_its_batches() {
        let mut cell = cell(&[]);
        cell.batches = vec![
            batch(1, 1_000, 10_000_000),
            batch(1, 1_000, 10_200_000),
            batch(2, 1_000, 10_500_000),
        ];
        assert_eq!(cell.per_start(), vec![10_100.0, 10_500.0]);
        // The mean of the two starts; the batch shown is the one closest to it (10,200).
        assert_eq!(cell.instructions_per_request(), Some(10_300.0));
        assert_eq!(cell.representative().map(|batch| batch.start), Some(1));
    }

    #[test]
    fn a_change_within_one_percent_is_the_same_cost() {
        let change = |percent: f64| CostChange {
            server: "s".into(),
            scenario: Scenario::Types,
            before: 100.0,
            after: 100.0 + percent,
            percent,
        };
        assert!(change(1.0).within_band());
        assert!(change(-0.4).within_band());
        assert!(!change(1.1).within_band());
        assert!(!change(-2.4).within_band());
    }
}
