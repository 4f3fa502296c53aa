//! `bakeoff run`: the whole benchmark. Every server in every configuration of the run's
//! dimensions, one at a time, through the harness: start it pinned to its CPUs, verify it against
//! the contract, warm it up, measure every scenario at every load level, stop it with SIGTERM;
//! then write `results.json`, `report.md` and the charts, and print the tables. With `--fault`,
//! each server then measures every scenario once more per fault, the fault injected into the
//! database during the cell (`harness::faults`), into fault cells of their own.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::{self, LiveCounters, LoadSpec, PlannedRequest};
use crate::format::group_thousands;
use crate::harness::containers::{ContainerRecord, Containers};
use crate::harness::database::Database;
use crate::harness::faults::{self, FaultRecord, FaultSpec};
use crate::harness::flags::{DatabaseArgs, DimensionArgs, ServerArgs, parse_duration};
use crate::harness::lifecycle::{self, Profile, RunningServer, Session, Trial, Verify};
use crate::harness::servers::{ServerSpec, TargetConformance};
use crate::harness::settings::Dimensions;
use crate::machine::{Machine, utc_now};
use crate::monitor::{DatabaseWatch, Sampler, Watched};
use crate::placement::{Placement, PlacementArgs};
use crate::results::ResultsFile;
use crate::results::run::{Cell, Measurement, RunContainers, RunResults, ServerResult, Settings};
use crate::scenarios::{Pools, Scenario, version_body};

/// The options of `bakeoff run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub servers: ServerArgs,
    /// Scenarios to measure, comma-separated (default: all).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub scenarios: Vec<Scenario>,
    /// Connection levels, comma-separated: each scenario is measured at each.
    #[arg(long, value_delimiter = ',', default_value = "64")]
    pub connections: Vec<usize>,
    /// Measured time per cell, e.g. 10s or 500ms (default 10s; 3s with --quick).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Warm-up per server before its first cell, all scenarios mixed (default 2s; 1s with
    /// --quick); a shorter one before the first cell of each further connection level.
    #[arg(long, value_parser = parse_duration)]
    pub warmup: Option<Duration>,
    /// Runs per cell; the report shows the median and the spread.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// The whole matrix in about two minutes: shorter cells and warm-up.
    #[arg(long)]
    pub quick: bool,
    /// Open loop at this many requests per second (latency from the intended send time);
    /// default: closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub dimensions: DimensionArgs,
    #[command(flatten)]
    pub placement: PlacementArgs,
    /// Where results/<timestamp>/ is created.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// A request not answered within this counts as a timeout.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub timeout: Duration,
    /// Check the body of every N-th answer of each connection (1: all).
    #[arg(long, default_value_t = 16)]
    pub check_every: u64,
    /// After the normal cells, measure every scenario again with this fault injected into the
    /// database (db-restart, db-stall, backend-kill), by default 3s into the cell for 2s; repeat
    /// the flag for several faults.
    #[arg(long = "fault", value_name = "KIND[:at=3s,for=2s]", value_parser = FaultSpec::parse)]
    pub faults: Vec<FaultSpec>,
}

/// Everything the run needs, resolved from the flags before anything starts.
struct Plan {
    servers: Vec<ServerSpec>,
    scenarios: Vec<Scenario>,
    connections: Vec<usize>,
    duration: Duration,
    warmup: Duration,
    repeat: usize,
    rate: Option<f64>,
    timeout: Duration,
    check_every: u64,
    placement: Placement,
    dimensions: Dimensions,
    profile: Profile,
    allow_remote: bool,
    seed: u64,
    faults: Vec<FaultSpec>,
    /// The host's containers, in a compose run (`--container-cgroups`).
    containers: Option<Containers>,
}

impl Plan {
    fn new(args: &RunArgs) -> Result<Plan> {
        let scenarios = crate::names::chosen_or_all(&args.scenarios);
        let mut connections = args.connections.clone();
        connections.sort_unstable();
        connections.dedup();
        if let Some(&bad) = connections
            .iter()
            .find(|&&count| count == 0 || count > engine::MAX_CONNECTIONS)
        {
            bail!(
                "--connections: {bad} is not from 1 to {}",
                engine::MAX_CONNECTIONS
            );
        }
        anyhow::ensure!(args.repeat >= 1, "--repeat must be at least 1");
        let duration = args.duration.unwrap_or(if args.quick {
            Duration::from_secs(3)
        } else {
            Duration::from_secs(10)
        });
        anyhow::ensure!(!duration.is_zero(), "--duration must be more than zero");
        let warmup = args.warmup.unwrap_or(if args.quick {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(2)
        });
        if let Some(rate) = args.rate {
            anyhow::ensure!(
                rate.is_finite() && rate > 0.0,
                "--rate must be a positive number of requests per second"
            );
        }
        Ok(Plan {
            servers: args.servers.servers()?,
            scenarios,
            connections,
            duration,
            warmup,
            repeat: args.repeat,
            rate: args.rate,
            timeout: args.timeout,
            check_every: args.check_every,
            placement: Placement::choose(&args.placement).map_err(anyhow::Error::msg)?,
            dimensions: args.dimensions.dimensions(),
            profile: args.servers.profile(),
            allow_remote: args.servers.allow_remote,
            seed: args.database.seed,
            faults: args.faults.clone(),
            containers: args.servers.containers()?,
        })
    }

    /// The warm-up before the first cell at the `index`-th connection level: the whole warm-up
    /// before the first, a shorter one at each higher level (pools and threads grow to it
    /// before its figures count; leftovers of a lower level never inflate a higher one's).
    fn warmup_before_level(&self, index: usize) -> Duration {
        if index == 0 {
            self.warmup
        } else {
            self.warmup.min(Duration::from_secs(1))
        }
    }
}

/// Sets the engine's stop flag when the run ends for any reason (Ctrl-C drops the run).
struct StopOnDrop(Arc<LiveCounters>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Relaxed);
    }
}

/// What measuring one server needs besides the server.
struct Bench<'a> {
    plan: &'a Plan,
    watch: &'a Arc<DatabaseWatch>,
    pools: &'a Pools,
    live: &'a Arc<LiveCounters>,
    meter: &'a Meter,
    database: &'a Database,
    /// Read around every cell besides the server: the load engine's container (in a compose
    /// run) and the database (its container, or the throwaway cluster's processes).
    sides: &'a Sides,
}

/// What is read of the load engine and the database around every cell.
#[derive(Default)]
struct Sides {
    engine_container: Option<Watched>,
    database: Option<Watched>,
}

impl Sides {
    /// Finds the engine's and the database's containers (a compose run), or the throwaway
    /// cluster's postmaster.
    async fn find(containers: Option<&Containers>, database: &Database) -> Sides {
        match containers {
            Some(containers) => Sides {
                engine_container: containers.own().map(Watched::Container),
                database: containers
                    .of_url(&database.admin_url)
                    .await
                    .map(Watched::Container),
            },
            None => Sides {
                engine_container: None,
                database: database.postmaster_pid().map(Watched::Process),
            },
        }
    }

    fn records(&self) -> RunContainers {
        let record = |watched: &Option<Watched>| match watched {
            Some(Watched::Container(cgroup)) => Some(ContainerRecord::of(cgroup)),
            _ => None,
        };
        RunContainers {
            engine: record(&self.engine_container),
            database: record(&self.database),
        }
    }

    /// CPU seconds so far: (engine's container, database).
    fn cpu_seconds(&self) -> (Option<f64>, Option<f64>) {
        let read = |watched: &Option<Watched>| watched.as_ref().and_then(Watched::cpu_seconds);
        (read(&self.engine_container), read(&self.database))
    }

    /// Sets the CPU seconds used since `before` on `measurement`.
    fn record_since(&self, before: (Option<f64>, Option<f64>), measurement: &mut Measurement) {
        let after = self.cpu_seconds();
        let used = |before: Option<f64>, after: Option<f64>| {
            before
                .zip(after)
                .map(|(before, after)| (after - before).max(0.0))
        };
        measurement.engine_container_cpu_seconds = used(before.0, after.0);
        measurement.database_cpu_seconds = used(before.1, after.1);
    }
}

/// What one server's measurement came to: its normal cells and its fault cells.
#[derive(Default)]
struct MeasuredCells {
    cells: Vec<Cell>,
    fault_cells: Vec<Cell>,
}

/// What measuring one server's cells depends on its kind: a variant's or peer's requests and
/// database figures, or a target's.
struct ServerLoad<'a> {
    name: &'a str,
    /// Its database activity, where it is the run's to count.
    watch: Option<&'a Arc<DatabaseWatch>>,
    pools: &'a Pools,
    version: &'a Bytes,
    faults: &'a [FaultSpec],
    deviations: BodyDeviations,
}

/// Runs the benchmark; returns the results directory.
pub async fn run(args: RunArgs, command_line: String) -> Result<PathBuf> {
    let (started_at, directory_name) = utc_now();
    // Every flag is checked, and every binary looked up, before anything starts.
    let plan = Plan::new(&args)?;
    let database_choice = args.database.choice()?;
    faults::check(&plan.faults, plan.duration, &database_choice)?;
    let trials = lifecycle::trials(&plan.servers, &plan.dimensions, plan.profile)?;
    let progress = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let say = |line: String| progress.suspend(|| eprintln!("{line}"));
    for trial in trials.iter() {
        if let Some(reason) = trial.unrunnable_reason() {
            say(format!("{}: reported, not run: {reason}", trial.label));
        }
    }
    say(format!("placement: {}", plan.placement.note));

    let database = Database::prepare(database_choice, &progress).await?;
    let watch = Arc::new(DatabaseWatch::connect(&database.admin_url, &database.role).await?);
    let mut machine = Machine::describe();
    machine.postgres_version = watch.server_version().await;
    let contacts = watch.contacts().await;
    let pools = Pools::build(&database.admin_url, &plan.scenarios, plan.seed)
        .await
        .context("drawing the scenarios' requests from the database")?;

    let sides = Sides::find(plan.containers.as_ref(), &database).await;
    if plan.containers.is_some() {
        let records = sides.records();
        say(format!(
            "containers: the engine's {}, the database's {}",
            records
                .engine
                .map_or("not found".to_string(), |found| found.id),
            records
                .database
                .map_or("not found".to_string(), |found| found.id),
        ));
    }

    let live = Arc::new(LiveCounters::default());
    let _stop_guard = StopOnDrop(Arc::clone(&live));
    let cells_per_server =
        plan.scenarios.len() * plan.connections.len() * (plan.repeat + plan.faults.len());
    let bar = progress.add(ProgressBar::new((trials.len() * cells_per_server) as u64));
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} cells  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let meter = Meter::start(bar.clone(), Arc::clone(&live));
    let bench = Bench {
        plan: &plan,
        watch: &watch,
        pools: &pools,
        live: &live,
        meter: &meter,
        database: &database,
        sides: &sides,
    };
    let session = Session {
        placement: &plan.placement,
        database: Some(&database),
        dimensions: &plan.dimensions,
        allow_remote: plan.allow_remote,
        containers: plan.containers.as_ref(),
    };
    let outcomes = lifecycle::drive(
        &trials,
        &session,
        Verify::Contract,
        &say,
        async |trial: &Trial, server: &RunningServer| {
            meter.set_phase(format!("{}: measuring", trial.label));
            bench.measure(trial, server).await
        },
    )
    .await;
    meter.stop();
    bar.finish_and_clear();

    let servers: Vec<ServerResult> = outcomes
        .into_iter()
        .map(|outcome| {
            let measured = outcome.measured.unwrap_or_default();
            ServerResult {
                record: outcome.record,
                cells: measured.cells,
                fault_cells: measured.fault_cells,
            }
        })
        .collect();
    let (finished_at, _) = utc_now();
    let results = RunResults {
        format_version: crate::results::run::FORMAT_VERSION,
        started_at,
        finished_at,
        machine,
        settings: Settings {
            command: command_line,
            scenarios: plan.scenarios.clone(),
            connections: plan.connections.clone(),
            rate: plan.rate,
            duration_seconds: plan.duration.as_secs_f64(),
            warmup_seconds: plan.warmup.as_secs_f64(),
            repeat: plan.repeat,
            quick: args.quick,
            timeout_seconds: plan.timeout.as_secs_f64(),
            check_every: plan.check_every,
            dimensions: Some(plan.dimensions.clone()),
            workers: None,
            db_pool_size: None,
            placement: plan.placement.clone(),
            database: database.kind,
            contacts,
            data_seed: database.data.map(|data| data.seed),
            profile: plan.profile.name().to_string(),
        },
        servers,
        containers: plan.containers.is_some().then(|| sides.records()),
    };
    let directory = crate::results::create_directory(&args.out, &directory_name)?;
    results.write(&directory)?;
    crate::render::report::write(&results, &directory)?;
    println!("{}", crate::render::report::terminal(&results));
    println!("results: {}", directory.display());
    Ok(directory)
}

impl Bench<'_> {
    /// Measures one running server: its requests drawn from its own database where it has one,
    /// bodies compared where its JSON must be bakeoff's bytes.
    async fn measure(&self, trial: &Trial, server: &RunningServer) -> Result<MeasuredCells> {
        match &trial.server {
            ServerSpec::Variant(_) | ServerSpec::Peer(_) => {
                let expected_version = version_body(&trial.server.name());
                let version = if server.version == expected_version {
                    server.version.clone()
                } else {
                    expected_version
                };
                self.measure_cells(
                    server,
                    ServerLoad {
                        name: &trial.label,
                        watch: Some(self.watch),
                        pools: self.pools,
                        version: &version,
                        faults: &self.plan.faults,
                        deviations: BodyDeviations::Errors,
                    },
                )
                .await
            }
            ServerSpec::Target(target) => {
                // A foreign server may format its JSON differently: only statuses are checked
                // under load, and its requests are drawn from its own database when it has one.
                // A lenient target's bodies are compared, and those that match the contract are
                // its checked bodies; the others count by their status.
                let own_pools;
                let pools = match &target.database_url {
                    Some(url) => {
                        own_pools = Pools::build(url, &self.plan.scenarios, self.plan.seed).await?;
                        &own_pools
                    }
                    None => self.pools,
                };
                // Its database activity is not the run's to count, and a fault of the run's
                // database would not reach one that serves its own.
                let faults: &[FaultSpec] = if target.database_url.is_some() {
                    &[]
                } else {
                    &self.plan.faults
                };
                let (pools, deviations) = match target.conformance {
                    TargetConformance::Strict => (pools.without_bodies(), BodyDeviations::Errors),
                    TargetConformance::Lenient => (pools.clone(), BodyDeviations::Tolerated),
                };
                self.measure_cells(
                    server,
                    ServerLoad {
                        name: &trial.label,
                        watch: None,
                        pools: &pools.in_path_style(server.path_style)?,
                        version: &server.version,
                        faults,
                        deviations,
                    },
                )
                .await
            }
        }
    }

    /// The warm-up, then every scenario at every level, `repeat` times; then every scenario at
    /// every level once per fault.
    async fn measure_cells(
        &self,
        server: &RunningServer,
        load: ServerLoad<'_>,
    ) -> Result<MeasuredCells> {
        let ServerLoad {
            name,
            watch,
            pools,
            version,
            faults,
            deviations,
        } = load;
        let plan = self.plan;
        let address: SocketAddr = server.address;
        let spec_for = |requests, connections, duration, seed| LoadSpec {
            address,
            requests,
            connections,
            threads: plan.placement.engine_threads,
            warmup: Duration::ZERO,
            duration,
            rate: plan.rate,
            timeout: plan.timeout,
            check_every: plan.check_every,
            cpus: plan.placement.engine_cpus.clone(),
            seed,
            allow_remote: plan.allow_remote,
        };
        // Every scenario's requests mixed: pools fill, caches and statement caches warm up on
        // every connection before anything is recorded.
        let mut mixed: Vec<PlannedRequest> = Vec::new();
        for &scenario in &plan.scenarios {
            mixed.extend(pools.mix(scenario, version)?.iter().cloned());
        }
        let mixed = Arc::new(mixed);

        let mut cells = Vec::new();
        for (level_index, &connections) in plan.connections.iter().enumerate() {
            let warmup = plan.warmup_before_level(level_index);
            if !warmup.is_zero() {
                self.meter
                    .set_phase(format!("{name}: warm-up, {connections} connections"));
                let spec = spec_for(Arc::clone(&mixed), connections, warmup, plan.seed);
                run_engine(spec, self.live).await?;
            }
            for &scenario in &plan.scenarios {
                let requests = pools.mix(scenario, version)?;
                let mut runs = Vec::new();
                for repeat in 0..plan.repeat {
                    self.meter.set_phase(format!(
                        "{name}: {scenario} at {connections} connections{}",
                        if plan.repeat > 1 {
                            format!(" (run {}/{})", repeat + 1, plan.repeat)
                        } else {
                            String::new()
                        }
                    ));
                    let spec = spec_for(
                        Arc::clone(&requests),
                        connections,
                        plan.duration,
                        plan.seed.wrapping_add(repeat as u64),
                    );
                    let sampler = match server.watched() {
                        Some(watched) => Some(
                            Sampler::start_behind_pooler(
                                watched,
                                watch.cloned(),
                                server.pooler_watch(),
                            )
                            .await,
                        ),
                        None => None,
                    };
                    let line_cpu_before = server.delay_line_cpu_seconds();
                    let sides_before = self.sides.cpu_seconds();
                    let mut outcome = run_engine(spec, self.live).await?;
                    let deviating_bodies = match deviations {
                        BodyDeviations::Errors => 0,
                        BodyDeviations::Tolerated => outcome.tolerate_body_deviations(),
                    };
                    let figures = match sampler {
                        Some(sampler) => Some(sampler.finish(outcome.total_responses).await),
                        None => None,
                    };
                    let mut measurement =
                        Measurement::from_outcome(&outcome, figures, plan.placement.engine_threads);
                    measurement.delay_line_cpu_seconds = line_cpu_before
                        .zip(server.delay_line_cpu_seconds())
                        .map(|(before, after)| (after - before).max(0.0));
                    measurement.deviating_bodies = deviating_bodies;
                    self.sides.record_since(sides_before, &mut measurement);
                    self.meter.cell_done(&format!(
                        "{name:<22} {:<16} c={connections:<4} {:>9} req/s  p99 {:>8.2} ms  errors {}",
                        scenario.to_string(),
                        group_thousands(measurement.ok_per_second.round() as i64),
                        measurement.latency_us.p99 as f64 / 1_000.0,
                        measurement.error_count()
                    ));
                    runs.push(measurement);
                }
                cells.push(Cell::new(scenario, connections, plan.rate, runs));
            }
        }
        // After every normal cell, so that no fault's aftermath is in their figures.
        let mut fault_cells = Vec::new();
        for &connections in &plan.connections {
            for &scenario in &plan.scenarios {
                for fault in faults {
                    self.meter.set_phase(format!(
                        "{name}: {scenario} at {connections} connections, {}",
                        fault.label()
                    ));
                    let spec = spec_for(
                        pools.mix(scenario, version)?,
                        connections,
                        plan.duration,
                        plan.seed,
                    );
                    let sampler = match server.watched() {
                        Some(watched) => Some(Sampler::start(watched, watch.cloned()).await),
                        None => None,
                    };
                    // The engine and the fault start together; the fault waits its `at`.
                    let (outcome, times) = tokio::join!(
                        run_engine(spec, self.live),
                        faults::inject(fault, self.database)
                    );
                    let outcome = outcome?;
                    let times = times.with_context(|| format!("injecting {}", fault.label()))?;
                    let figures = match sampler {
                        Some(sampler) => Some(sampler.finish(outcome.total_responses).await),
                        None => None,
                    };
                    let measurement =
                        Measurement::from_outcome(&outcome, figures, plan.placement.engine_threads);
                    let record = FaultRecord::of(
                        fault,
                        &times,
                        outcome.window_start,
                        &measurement.errors,
                        &outcome.series,
                    );
                    let recovery = match record.figures.recovered_after_seconds {
                        Some(seconds) => format!("back in {seconds:.1} s"),
                        None => "never recovered".to_string(),
                    };
                    self.meter.cell_done(&format!(
                        "{name:<22} {:<16} c={connections:<4} {:<13} failed {}  503 {}  longest {:.0} ms  {recovery}",
                        scenario.to_string(),
                        fault.kind.to_string(),
                        record.figures.failed,
                        record.figures.unavailable,
                        record.figures.longest_ms,
                    ));
                    let mut cell = Cell::new(scenario, connections, plan.rate, vec![measurement]);
                    cell.fault = Some(record);
                    fault_cells.push(cell);
                }
            }
        }
        Ok(MeasuredCells { cells, fault_cells })
    }
}

/// What a 2xx answer whose body differs from the contract's is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyDeviations {
    /// An error (a `body` failure), as for every server that passed verification.
    Errors,
    /// Counted by its status and apart from the checked bodies (a lenient target).
    Tolerated,
}

async fn run_engine(spec: LoadSpec, live: &Arc<LiveCounters>) -> Result<engine::LoadOutcome> {
    let live = Arc::clone(live);
    let outcome = tokio::task::spawn_blocking(move || engine::run(&spec, &live))
        .await
        .context("the load engine stopped")??;
    Ok(outcome)
}

/// The live progress line: what runs now and the current request rate.
struct Meter {
    bar: ProgressBar,
    phase: Arc<std::sync::Mutex<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl Meter {
    fn start(bar: ProgressBar, live: Arc<LiveCounters>) -> Meter {
        let phase = Arc::new(std::sync::Mutex::new(String::new()));
        let shown = Arc::clone(&phase);
        let ticker = bar.clone();
        let task = tokio::spawn(async move {
            let mut last = (Instant::now(), live.responses.load(Ordering::Relaxed));
            let mut interval = tokio::time::interval(Duration::from_millis(500));
            loop {
                interval.tick().await;
                let now = (Instant::now(), live.responses.load(Ordering::Relaxed));
                let rate =
                    (now.1 - last.1) as f64 / now.0.duration_since(last.0).as_secs_f64().max(1e-3);
                last = now;
                let phase = shown.lock().map(|p| p.clone()).unwrap_or_default();
                ticker.set_message(format!(
                    "{phase}  {} req/s",
                    group_thousands(rate.round() as i64)
                ));
            }
        });
        Meter { bar, phase, task }
    }

    fn set_phase(&self, text: String) {
        if let Ok(mut phase) = self.phase.lock() {
            *phase = text;
        }
    }

    fn cell_done(&self, line: &str) {
        // A hidden bar (no terminal, as in CI) prints nothing: the line goes to stderr directly.
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
        self.bar.inc(1);
    }

    fn stop(&self) {
        self.task.abort();
    }
}
