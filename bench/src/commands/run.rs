//! `bakeoff run`: the whole benchmark, as a thin driver. Its flags become a plan; the harness
//! starts and verifies the servers a group at a time (every server of one configuration of the
//! run's dimensions together, pinned to the same CPUs); the measurement layer measures each
//! group in interleaved rounds (`measure::rounds`): every scenario at every load level, then the
//! efficiency cells at one open-loop rate, then the fault cells of `--fault` in rounds of their
//! own, each followed by its reference cell; the harness stops
//! them with SIGTERM; then `results.json`, `report.md` and the charts are written and the tables
//! printed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::{self, LiveCounters};
use crate::format::group_thousands;
use crate::harness::containers::Containers;
use crate::harness::database::{Database, DatabaseChoice};
use crate::harness::faults::{self, FaultSpec};
use crate::harness::flags::{DatabaseArgs, DimensionArgs, ServerArgs, parse_duration};
use crate::harness::lifecycle::{self, Outcome, Ready, Session, Trial, Verify};
use crate::harness::servers::ServerSpec;
use crate::machine::utc_now;
use crate::measure::cell::{Bench, BodyDeviations, LoadTarget};
use crate::measure::rounds::{self, EfficiencyRate, RoundsPlan, ServerCells};
use crate::measure::sides::Sides;
use crate::monitor::DatabaseWatch;
use crate::order::{self, CELL_WARMUP, DEFAULT_ROUNDS};
use crate::placement::PlacementArgs;
use crate::results::ResultsFile;
use crate::results::run::{RoundRecord, RunResults, ServerResult, Settings};
use crate::results::server::{BuildProfile, TargetConformance};
use crate::results::setup::{Dimensions, Machine, Placement};
use crate::results::vocabulary::Scenario;
use crate::scenarios::{Pools, version_body};

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
    /// Measured time per cell over all its rounds, e.g. 10s or 500ms (default 10s; 3s with
    /// --quick); a fault cell's whole window.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Warm-up per server before its first cell, all scenarios mixed (default 2s; 1s with
    /// --quick); a shorter one before the first cell of each further connection level.
    #[arg(long, value_parser = parse_duration)]
    pub warmup: Option<Duration>,
    /// Rounds: every cell is measured once per round, for its share of --duration, in an order
    /// shuffled per round, so that every server meets the machine's slow minutes alike (default
    /// 5; 1 measures each cell in one block and gives no intervals).
    #[arg(long, alias = "repeat")]
    pub rounds: Option<usize>,
    /// The whole matrix in about two minutes: shorter cells and warm-up.
    #[arg(long)]
    pub quick: bool,
    /// The efficiency cells' open-loop rate in requests per second (latency from the intended
    /// send time); default: half of the slowest server's closed-loop median in each scenario.
    #[arg(long)]
    pub rate: Option<f64>,
    /// No efficiency cells (every server at the same open-loop rate after the closed-loop
    /// rounds).
    #[arg(long)]
    pub no_efficiency: bool,
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
    // The help lists `FaultKind`'s values.
    #[arg(
        long = "fault",
        value_name = "KIND[:at=3s,for=2s]",
        value_parser = FaultSpec::parse,
        help = FaultSpec::help()
    )]
    pub faults: Vec<FaultSpec>,
    /// Rounds of the fault cells, interleaved across the servers like the others (default: the
    /// run's --rounds).
    #[arg(long)]
    pub fault_rounds: Option<usize>,
}

/// Everything the run needs, resolved from the flags before anything starts.
struct Plan {
    servers: Vec<ServerSpec>,
    rounds: RoundsPlan,
    timeout: Duration,
    check_every: u64,
    placement: Placement,
    dimensions: Dimensions,
    profile: BuildProfile,
    allow_remote: bool,
    seed: u64,
    /// The whole time of a cell (all its rounds together).
    duration: Duration,
    /// The host's containers, in a compose run (`--container-cgroups`).
    containers: Option<Containers>,
}

/// An efficiency cell's window per round.
pub const EFFICIENCY_DURATION: Duration = Duration::from_secs(1);
/// The reference cell after a fault cell: at least this long, or a round's window if longer
/// (its level must be read well enough for a 90 % band: a second holds thousands of answers).
pub const MIN_FAULT_REFERENCE: Duration = Duration::from_secs(1);

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
        let rounds = args.rounds.unwrap_or(DEFAULT_ROUNDS);
        let duration = args.duration.unwrap_or(if args.quick {
            Duration::from_secs(3)
        } else {
            Duration::from_secs(10)
        });
        let round_duration = order::round_window(duration, rounds)?;
        let warmup = args.warmup.unwrap_or(if args.quick {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(2)
        });
        let efficiency = match (args.no_efficiency, args.rate) {
            (true, Some(_)) => {
                bail!("--rate sets the efficiency cells' rate: drop --no-efficiency")
            }
            (true, None) => EfficiencyRate::Off,
            (false, Some(rate)) => {
                anyhow::ensure!(
                    rate.is_finite() && rate > 0.0,
                    "--rate must be a positive number of requests per second"
                );
                EfficiencyRate::Fixed(rate)
            }
            (false, None) => EfficiencyRate::HalfOfSlowest,
        };
        let placement = Placement::choose(&args.placement).map_err(anyhow::Error::msg)?;
        let faults = args.faults.clone();
        let fault_rounds = args.fault_rounds.unwrap_or(rounds);
        anyhow::ensure!(
            (1..=100).contains(&fault_rounds),
            "--fault-rounds must be from 1 to 100"
        );
        anyhow::ensure!(
            args.fault_rounds.is_none() || !faults.is_empty(),
            "--fault-rounds sets the rounds of the fault cells: add --fault"
        );
        Ok(Plan {
            servers: args.servers.servers()?,
            rounds: RoundsPlan {
                scenarios,
                connections,
                rounds,
                round_duration,
                cell_warmup: CELL_WARMUP,
                warmup,
                efficiency,
                efficiency_duration: EFFICIENCY_DURATION.min(round_duration),
                faults,
                fault_duration: duration,
                fault_rounds,
                fault_reference: round_duration.max(MIN_FAULT_REFERENCE),
                seed: args.database.seed,
                server_cpus: placement.server_cpus.clone(),
            },
            timeout: args.timeout,
            check_every: args.check_every,
            placement,
            dimensions: args.dimensions.dimensions(),
            profile: args.servers.profile(),
            allow_remote: args.servers.allow_remote,
            seed: args.database.seed,
            duration,
            containers: args.servers.containers()?,
        })
    }
}

/// Sets the engine's stop flag when the run ends for any reason (Ctrl-C drops the run).
struct StopOnDrop(Arc<LiveCounters>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Relaxed);
    }
}

/// Runs the benchmark; returns the results directory.
pub async fn run(args: RunArgs, command_line: String) -> Result<PathBuf> {
    let (started_at, directory_name) = utc_now();
    // Every flag is checked, and every binary looked up, before anything starts.
    let plan = Plan::new(&args)?;
    let database_choice = args.database.choice()?;
    faults::check(&plan.rounds.faults, plan.duration, &database_choice)?;
    let trials = lifecycle::trials(&plan.servers, &plan.dimensions, plan.profile)?;
    let groups = lifecycle::groups(&trials, &plan.dimensions);
    let progress = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let say = |line: String| progress.suspend(|| eprintln!("{line}"));
    for trial in trials.iter() {
        if let Some(reason) = trial.unrunnable_reason() {
            say(format!("{}: reported, not run: {reason}", trial.label));
        }
    }
    say(format!("placement: {}", plan.placement.note));

    let prepared = Prepared::start(database_choice, &plan, &progress, &say).await?;
    let live = Arc::new(LiveCounters::default());
    let _stop_guard = StopOnDrop(Arc::clone(&live));
    let (outcomes, rounds) =
        measure_groups(&plan, &trials, &groups, &prepared, &live, &progress, &say).await;

    let (servers, group_labels) = server_results(outcomes);
    let (finished_at, _) = utc_now();
    let results = RunResults {
        format_version: crate::results::run::FORMAT_VERSION,
        started_at,
        finished_at,
        machine: prepared.machine,
        settings: settings(
            &plan,
            &args,
            command_line,
            &prepared.database,
            prepared.contacts,
        ),
        servers,
        rounds,
        groups: group_labels,
        containers: plan.containers.is_some().then(|| prepared.sides.records()),
    };
    write_results(&results, &args.out, &directory_name)
}

/// What every group's measurement shares, prepared once before the first server starts.
/// Fields drop in order: what uses the database before the database itself.
struct Prepared {
    sides: Sides,
    pools: Pools,
    contacts: Option<i64>,
    /// Described once the database is up, so that it names PostgreSQL's version.
    machine: Machine,
    watch: Arc<DatabaseWatch>,
    database: Database,
}

impl Prepared {
    /// Prepares the database, draws the scenarios' requests from it, and finds what is
    /// measured around the servers (in a compose run, the engine's and the database's
    /// containers).
    async fn start(
        choice: DatabaseChoice,
        plan: &Plan,
        progress: &MultiProgress,
        say: &dyn Fn(String),
    ) -> Result<Prepared> {
        let database = Database::prepare(choice, progress).await?;
        let watch = Arc::new(DatabaseWatch::connect(&database.admin_url, &database.role).await?);
        let mut machine = Machine::describe();
        machine.postgres_version = watch.server_version().await;
        let contacts = watch.contacts().await;
        let pools = Pools::build(&database.admin_url, &plan.rounds.scenarios, plan.seed)
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
        Ok(Prepared {
            sides,
            pools,
            contacts,
            machine,
            watch,
            database,
        })
    }
}

/// What the harness hands back for each trial: the group it was measured in, and its cells.
type MeasuredServer = (usize, ServerCells);

/// Has the harness start each group in turn and measures it in rounds, under a progress bar
/// over every cell of the run; returns each trial's outcome and the rounds of every group.
async fn measure_groups(
    plan: &Plan,
    trials: &[Trial],
    groups: &[Vec<usize>],
    prepared: &Prepared,
    live: &Arc<LiveCounters>,
    progress: &MultiProgress,
    say: &dyn Fn(String),
) -> (Vec<Outcome<MeasuredServer>>, Vec<RoundRecord>) {
    let bar = progress.add(ProgressBar::new(
        (trials.len() * plan.rounds.cells_per_server()) as u64,
    ));
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} cells  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let meter = Meter::start(bar.clone(), Arc::clone(live));
    let bench = Bench {
        placement: &plan.placement,
        timeout: plan.timeout,
        check_every: plan.check_every,
        allow_remote: plan.allow_remote,
        live,
        database: Some(&prepared.database),
        sides: &prepared.sides,
    };
    let session = Session {
        placement: &plan.placement,
        database: Some(&prepared.database),
        dimensions: &plan.dimensions,
        allow_remote: plan.allow_remote,
        containers: plan.containers.as_ref(),
    };
    let mut rounds = Vec::new();
    let mut group_number = 0;
    let outcomes = lifecycle::drive_groups(
        trials,
        groups,
        &session,
        Verify::Contract,
        say,
        async |ready: &[Ready<'_>]| {
            let group = group_number;
            group_number += 1;
            let (servers, group_rounds) =
                measure_ready(ready, group, prepared, plan, &bench, &meter).await;
            rounds.extend(group_rounds);
            servers
        },
    )
    .await;
    meter.stop();
    bar.finish_and_clear();
    (outcomes, rounds)
}

/// Measures one started group: a server whose requests cannot be drawn fails alone, the others
/// are measured together. Returns a result per server of `ready`, in its order, and the
/// group's rounds.
async fn measure_ready(
    ready: &[Ready<'_>],
    group: usize,
    prepared: &Prepared,
    plan: &Plan,
    bench: &Bench<'_>,
    meter: &Meter,
) -> (Vec<Result<MeasuredServer>>, Vec<RoundRecord>) {
    let mut targets = Vec::new();
    let mut results: Vec<Option<anyhow::Error>> = Vec::new();
    for one in ready {
        match load_target(one, &prepared.watch, &prepared.pools, plan).await {
            Ok(target) => {
                targets.push(target);
                results.push(None);
            }
            Err(error) => results.push(Some(error)),
        }
    }
    let measured = rounds::measure_group(bench, &targets, &plan.rounds, group, meter).await;
    let mut servers = measured.servers.into_iter();
    let results = results
        .into_iter()
        .map(|failure| match failure {
            Some(error) => Err(error),
            None => servers
                .next()
                .unwrap_or_else(|| Err(anyhow::anyhow!("no figures measured")))
                .map(|cells| (group, cells)),
        })
        .collect();
    (results, measured.rounds)
}

/// Each trial's result, and the labels of each group's servers (the results file's groups).
fn server_results(outcomes: Vec<Outcome<MeasuredServer>>) -> (Vec<ServerResult>, Vec<Vec<String>>) {
    let mut group_labels: Vec<Vec<String>> = Vec::new();
    let servers: Vec<ServerResult> = outcomes
        .into_iter()
        .map(|outcome| {
            let (group, measured) = match outcome.measured {
                Some((group, cells)) => (Some(group), cells),
                None => (None, ServerCells::default()),
            };
            if let Some(group) = group {
                if group_labels.len() <= group {
                    group_labels.resize(group + 1, Vec::new());
                }
                group_labels[group].push(outcome.record.label.clone());
            }
            let mut record = outcome.record;
            record.warmup_seconds = measured.warmup_seconds;
            ServerResult {
                record,
                cells: measured.cells,
                fault_cells: measured.fault_cells,
                efficiency_cells: measured.efficiency_cells,
                group,
            }
        })
        .collect();
    (servers, group_labels)
}

/// Writes `results.json`, `report.md` and the charts into a new directory under `out`, and
/// prints the tables; returns the directory.
fn write_results(results: &RunResults, out: &Path, directory_name: &str) -> Result<PathBuf> {
    let directory = crate::results::create_directory(out, directory_name)?;
    results.write(&directory)?;
    crate::render::report::write(results, &directory)?;
    println!("{}", crate::render::report::terminal(results));
    println!("results: {}", directory.display());
    Ok(directory)
}

/// What the results file says of the run's settings.
fn settings(
    plan: &Plan,
    args: &RunArgs,
    command: String,
    database: &Database,
    contacts: Option<i64>,
) -> Settings {
    Settings {
        command,
        scenarios: plan.rounds.scenarios.clone(),
        connections: plan.rounds.connections.clone(),
        rate: None,
        duration_seconds: plan.duration.as_secs_f64(),
        warmup_seconds: plan.rounds.warmup.as_secs_f64(),
        repeat: 1,
        rounds: plan.rounds.rounds,
        cell_warmup_seconds: plan.rounds.cell_warmup.as_secs_f64(),
        efficiency_seconds: (plan.rounds.efficiency != EfficiencyRate::Off)
            .then_some(plan.rounds.efficiency_duration.as_secs_f64()),
        fault_rounds: if plan.rounds.faults.is_empty() {
            0
        } else {
            plan.rounds.fault_rounds
        },
        fault_reference_seconds: (!plan.rounds.faults.is_empty())
            .then_some(plan.rounds.fault_reference.as_secs_f64()),
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
    }
}

/// How the rounds load one ready server: its requests drawn from its own database where it has
/// one, bodies compared where its JSON must be bakeoff's bytes.
async fn load_target<'a>(
    ready: &'a Ready<'_>,
    watch: &Arc<DatabaseWatch>,
    pools: &Pools,
    plan: &Plan,
) -> Result<LoadTarget<'a>> {
    let server = &ready.server;
    let label = ready.trial.label.clone();
    match &ready.trial.server {
        ServerSpec::Variant(_) | ServerSpec::Peer(_) => {
            let expected_version = version_body(&ready.trial.server.name());
            let version = if server.version == expected_version {
                server.version.clone()
            } else {
                expected_version
            };
            Ok(LoadTarget {
                label,
                server,
                watch: Some(Arc::clone(watch)),
                pools: pools.clone(),
                version,
                deviations: BodyDeviations::Errors,
                faults_apply: true,
                minimum_warmup: ready.trial.server.minimum_warmup(),
            })
        }
        ServerSpec::Target(target) => {
            // A foreign server may format its JSON differently: only statuses are checked
            // under load, and its requests are drawn from its own database when it has one.
            // A lenient target's bodies are compared, and those that match the contract are
            // its checked bodies; the others count by their status.
            let own = match &target.database_url {
                Some(url) => Pools::build(url, &plan.rounds.scenarios, plan.seed).await?,
                None => pools.clone(),
            };
            let (own, deviations) = match target.conformance {
                TargetConformance::Strict => (own.without_bodies(), BodyDeviations::Errors),
                TargetConformance::Lenient => (own, BodyDeviations::Tolerated),
            };
            Ok(LoadTarget {
                label,
                server,
                // Its database activity is not the run's to count, and a fault of the run's
                // database would not reach one that serves its own.
                watch: None,
                pools: own.in_path_style(server.path_style)?,
                version: server.version.clone(),
                deviations,
                faults_apply: target.database_url.is_none(),
                minimum_warmup: Duration::ZERO,
            })
        }
    }
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

impl rounds::Progress for Meter {
    fn phase(&self, text: String) {
        self.set_phase(text);
    }

    fn cell_done(&self, line: String) {
        Meter::cell_done(self, &line);
    }
}
