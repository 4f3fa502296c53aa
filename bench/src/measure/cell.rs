//! One cell measured: one server, one scenario, one load level, for one window; normal, or with a
//! fault injected into the database beside the load. Every cell of every command goes through
//! [`measure`], so that what a normal cell records (the server's figures from outside, behind a
//! pooler too; the delay line's CPU; body deviations of a lenient target) a fault cell records
//! as well.

use crate::results::{Percentiles, ServerFigures};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;

use crate::engine::{self, LiveCounters, LoadOutcome, LoadSpec, Mark, PlannedRequest};
use crate::harness::database::Database;
use crate::harness::faults::{self, FaultSpec};
use crate::harness::lifecycle::RunningServer;
use crate::measure::sides::Sides;
use crate::monitor::{DatabaseWatch, Sampler};
use crate::recovery::FaultWindow;
use crate::results::run::Measurement;
use crate::results::setup::Placement;
use crate::results::vocabulary::Scenario;
use crate::scenarios::Pools;

/// What a 2xx answer whose body differs from the contract's is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyDeviations {
    /// An error (a `body` failure), as for every server that passed verification.
    Errors,
    /// Counted by its status and apart from the checked bodies (a lenient target).
    Tolerated,
}

/// A running server as the measurement loads it.
pub struct LoadTarget<'a> {
    /// Its label in the run.
    pub label: String,
    pub server: &'a RunningServer,
    /// Its database activity, where it is the run's to count.
    pub watch: Option<Arc<DatabaseWatch>>,
    /// Its requests (in its path style, with or without bodies to compare).
    pub pools: Pools,
    /// The `/version` body it must answer.
    pub version: Bytes,
    pub deviations: BodyDeviations,
    /// Whether the run's faults reach its database (not a target that serves its own).
    pub faults_apply: bool,
    /// What its runtime needs before its figures count, beyond the run's warm-up (the JVM's
    /// JIT).
    pub minimum_warmup: Duration,
}

impl LoadTarget<'_> {
    /// The requests of `scenario` for this server.
    pub fn requests(&self, scenario: Scenario) -> Result<Arc<Vec<PlannedRequest>>> {
        self.pools.mix(scenario, &self.version)
    }
}

/// What every cell of a command shares.
pub struct Bench<'a> {
    pub placement: &'a Placement,
    pub timeout: Duration,
    pub check_every: u64,
    pub allow_remote: bool,
    pub live: &'a Arc<LiveCounters>,
    /// The run's database, which a fault is injected into.
    pub database: Option<&'a Database>,
    /// Read around every cell besides the server.
    pub sides: &'a Sides,
}

/// One cell to measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellLoad {
    pub scenario: Scenario,
    pub connections: usize,
    /// Open loop at this many requests per second; `None`: closed loop.
    pub rate: Option<f64>,
    /// Load sent first and not recorded: the server meets this cell's connections and requests
    /// before its figures count.
    pub warmup: Duration,
    pub duration: Duration,
    pub seed: u64,
}

/// Measures one cell: the engine loads the server for the cell's window while the monitor
/// watches it from outside; with `fault`, the fault is injected into the database beside the
/// load, and where it fell in the window is returned with the figures, with what the engine saw
/// when the database returned (the caller judges the recovery, against a reference of its
/// choosing: `recovery::FaultRecord::of`).
pub async fn measure(
    bench: &Bench<'_>,
    target: &LoadTarget<'_>,
    load: &CellLoad,
    fault: Option<&FaultSpec>,
) -> Result<(Measurement, Option<FaultWindow>)> {
    let mark = fault.map(|_| Arc::new(Mark::default()));
    let spec = LoadSpec {
        address: target.server.address,
        requests: target.requests(load.scenario)?,
        connections: load.connections,
        threads: bench.placement.engine_threads,
        warmup: load.warmup,
        duration: load.duration,
        rate: load.rate,
        timeout: bench.timeout,
        check_every: bench.check_every,
        cpus: bench.placement.engine_cpus.clone(),
        seed: load.seed,
        allow_remote: bench.allow_remote,
        mark: mark.clone(),
    };
    let sampler = match target.server.watched() {
        Some(watched) => Some(
            Sampler::start(
                watched,
                target.watch.clone(),
                target.server.pooler_watch(),
                target.server.database_clients(),
            )
            .await,
        ),
        None => None,
    };
    let line_cpu_before = target.server.delay_line_cpu_seconds();
    let sides_before = bench.sides.cpu_seconds();
    let (mut outcome, fault_times) = match fault {
        None => (run_engine(spec, bench.live).await?, None),
        Some(fault) => {
            let database = bench.database.context("a fault needs the run's database")?;
            // The engine and the fault start together; the fault waits its `at` past the
            // warm-up, which the engine spends before its window.
            let shifted = FaultSpec {
                at: fault.at + load.warmup,
                ..*fault
            };
            let mark = mark.as_deref().context("a fault cell has a mark")?;
            let (outcome, times) = tokio::join!(
                run_engine(spec, bench.live),
                faults::inject(&shifted, database, mark)
            );
            let times = times.with_context(|| format!("injecting {}", fault.label()))?;
            (outcome?, Some(times))
        }
    };
    let deviating_bodies = match target.deviations {
        BodyDeviations::Errors => 0,
        BodyDeviations::Tolerated => outcome.tolerate_body_deviations(),
    };
    let figures = match sampler {
        Some(sampler) => Some(sampler.finish(outcome.total_responses).await),
        None => None,
    };
    let mut measurement =
        Measurement::from_outcome(&outcome, figures, bench.placement.engine_threads);
    measurement.delay_line_cpu_seconds = line_cpu_before
        .zip(target.server.delay_line_cpu_seconds())
        .map(|(before, after)| (after - before).max(0.0));
    measurement.deviating_bodies = deviating_bodies;
    bench.sides.record_since(sides_before, &mut measurement);
    let window = fault_times
        .map(|times| FaultWindow::place(&times, outcome.window_start, outcome.after_mark.as_ref()));
    Ok((measurement, window))
}

/// Runs the engine on its own threads until the window is over.
pub async fn run_engine(spec: LoadSpec, live: &Arc<LiveCounters>) -> Result<LoadOutcome> {
    let live = Arc::clone(live);
    let outcome = tokio::task::spawn_blocking(move || engine::run(&spec, &live))
        .await
        .context("the load engine stopped")??;
    Ok(outcome)
}

/// The engine's outcome of a cell's window, as the results record it.
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
            deviating_bodies: 0,
            latency_us: Percentiles::of(&outcome.latency),
            uncorrected_latency_us: outcome.uncorrected.as_ref().map(Percentiles::of),
            errors: outcome
                .errors
                .iter()
                .map(|(kind, count)| (kind.name(), *count))
                .collect(),
            server,
            engine_busy_percent,
            delay_line_cpu_seconds: None,
            series: Some(outcome.series.clone()),
            group: None,
            round: None,
            sequence: None,
            shards: Vec::new(),
            engine_cpu_seconds: Some(outcome.engine_cpu.as_secs_f64()),
            engine_container_cpu_seconds: None,
            database_cpu_seconds: None,
            fault: None,
        }
    }
}
