//! `bakeoff cost`: what a request costs each server in instructions, a figure that does not move
//! with the machine. Every server in every configuration is verified once, natively, by the
//! harness as `bakeoff run` verifies it; then started `--starts` times under Valgrind's callgrind
//! (`lifecycle::drive_under`: the same placement and environment, counting off), each time for
//! each scenario: uncounted warm-up requests, then each batch of a fixed number of requests in a
//! fixed order (`sequence`), counted over the server's whole process tree (`callgrind`), with
//! PostgreSQL's side read from pg_stat_statements around the batches (`monitor`). Writes
//! `cost.json`, `report.md` and the chart of the split, and prints the table.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use indicatif::{MultiProgress, ProgressDrawTarget};

use crate::callgrind::{self, Callgrind};
use crate::format::group_thousands;
use crate::harness::database::Database;
use crate::harness::flags::{DatabaseArgs, DimensionArgs, ServerArgs, parse_duration};
use crate::harness::lifecycle::{self, RunningServer, Session, Trial, Verify, Wrapper};
use crate::harness::servers::ServerSpec;
use crate::machine::utc_now;
use crate::monitor::DatabaseWatch;
use crate::placement::PlacementArgs;
use crate::results::ResultsFile;
use crate::results::cost::Counts;
use crate::results::cost::{
    Batch, BesideRun, CostCell, CostResults, CostSettings, DatabaseCost, RunCpu, ServerCost,
};
use crate::results::run::RunResults;
use crate::results::server::{BuildProfile, ServerRecord};
use crate::results::setup::{Dimensions, Machine, Placement};
use crate::results::vocabulary::Scenario;
use crate::scenarios::{Pools, version_body};
use crate::sequence;

/// The functions kept per batch, largest first.
const TOP_FUNCTIONS: usize = 25;

/// The options of `bakeoff cost`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Each server runs under callgrind (apt-get install valgrind), 5 to 100 times slower than \
natively: the requests go one at a time on each connection, at the pace the server keeps. Time: \
about 1 to 5 s per 1,000 requests of the small scenarios, a minute per 1,000 fibonacci requests, \
plus 10 to 30 s to start and verify each server.")]
pub struct CostArgs {
    #[command(flatten)]
    pub servers: ServerArgs,
    /// Scenarios to count, comma-separated (default: all).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub scenarios: Vec<Scenario>,
    /// Requests counted per batch.
    #[arg(long, default_value_t = 2_000)]
    pub requests: usize,
    /// Server processes started under callgrind one after another per server, each counted on
    /// its own: a process's count is steady, but another process may settle a percent or two
    /// away where threads and timers meet differently, so the figure is the mean of the
    /// starts. (Each server is verified once before, natively.)
    #[arg(long, default_value_t = 5)]
    pub starts: usize,
    /// Batches per scenario and start, each counted on its own.
    #[arg(long, default_value_t = 1)]
    pub batches: usize,
    /// Requests of each scenario sent before its first batch, not counted (caches, prepared
    /// statements, pools warm).
    #[arg(long, default_value_t = 200)]
    pub warmup: usize,
    /// Connections the requests are spread over, each sending one request at a time (1: every
    /// request alone, the most exact).
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Open a new connection for every request (as `curl` in a loop does), so that each
    /// request's count includes accepting and closing its connection.
    #[arg(long)]
    pub connection_per_request: bool,
    /// A request not answered within this fails.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub timeout: Duration,
    /// A `bakeoff run` results directory whose CPU time per request is shown beside the counts.
    #[arg(long, value_name = "RUN_DIRECTORY")]
    pub beside: Option<PathBuf>,
    /// Keep each batch's callgrind profiles in the results directory (profiles/), for
    /// callgrind_annotate.
    #[arg(long)]
    pub keep_profiles: bool,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub dimensions: DimensionArgs,
    #[command(flatten)]
    pub placement: PlacementArgs,
    /// Where results/<timestamp>-cost/ is created.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
}

/// Everything the command needs, resolved from the flags before anything starts.
struct Plan {
    servers: Vec<ServerSpec>,
    scenarios: Vec<Scenario>,
    requests: usize,
    starts: usize,
    batches: usize,
    warmup: usize,
    connections: usize,
    reuse: sequence::Connections,
    timeout: Duration,
    placement: Placement,
    dimensions: Dimensions,
    profile: BuildProfile,
    seed: u64,
    beside: Option<(PathBuf, RunResults)>,
}

impl Plan {
    fn new(args: &CostArgs) -> Result<Plan> {
        anyhow::ensure!(
            (1..=1_000_000).contains(&args.requests),
            "--requests must be from 1 to 1,000,000"
        );
        anyhow::ensure!(
            (1..=100).contains(&args.batches),
            "--batches must be from 1 to 100"
        );
        anyhow::ensure!(
            (1..=25).contains(&args.starts),
            "--starts must be from 1 to 25"
        );
        anyhow::ensure!(
            (1..=256).contains(&args.connections),
            "--connections must be from 1 to 256"
        );
        let beside = match &args.beside {
            Some(directory) => Some((directory.clone(), RunResults::read(directory)?)),
            None => None,
        };
        Ok(Plan {
            servers: args.servers.servers()?,
            scenarios: crate::names::chosen_or_all(&args.scenarios),
            requests: args.requests,
            starts: args.starts,
            batches: args.batches,
            warmup: args.warmup,
            connections: args.connections,
            reuse: if args.connection_per_request {
                sequence::Connections::PerRequest
            } else {
                sequence::Connections::KeptAlive
            },
            timeout: args.timeout,
            placement: Placement::choose(&args.placement).map_err(anyhow::Error::msg)?,
            dimensions: args.dimensions.dimensions(),
            profile: args.servers.profile(),
            seed: args.database.seed,
            beside,
        })
    }
}

/// Why a server cannot be counted under callgrind, if it cannot. A server whose runtime
/// compiles code as it runs (a JIT: PyPy, a JVM) or fights Valgrind's signals would be one; none
/// of the peers is: they run on CPython, an interpreter.
fn not_applicable(server: &ServerSpec) -> Option<&'static str> {
    match server {
        // Native code, and CPython's interpreter, run under Valgrind as they are.
        ServerSpec::Variant(_) | ServerSpec::Peer(_) => None,
        ServerSpec::Target(_) => Some(
            "not applicable: a --target runs as it was started, and only a server bakeoff starts can run under callgrind",
        ),
    }
}

/// Counts every server; returns the results directory.
pub async fn cost(args: CostArgs, command_line: String) -> Result<PathBuf> {
    let (started_at, directory_name) = utc_now();
    // Every flag is checked, every binary and valgrind looked up, before anything starts.
    let plan = Plan::new(&args)?;
    let mut callgrind = Callgrind::locate()?;
    let database_choice = args.database.choice()?;
    let trials = lifecycle::trials(&plan.servers, &plan.dimensions, plan.profile)?;
    let (counted, set_aside): (Vec<Trial>, Vec<Trial>) = trials
        .into_iter()
        .partition(|trial| not_applicable(&trial.server).is_none());
    if counted.is_empty()
        && let Some(reason) = set_aside
            .first()
            .and_then(|trial| not_applicable(&trial.server))
    {
        anyhow::bail!("nothing to count: {reason}");
    }
    let say = |line: String| eprintln!("{line}");
    for trial in &counted {
        if let Some(reason) = trial.unrunnable_reason() {
            say(format!("{}: reported, not counted: {reason}", trial.label));
        }
    }
    say(format!(
        "placement: {}; {} under callgrind",
        plan.placement.note, callgrind.version
    ));

    let progress = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let database = Database::prepare(database_choice, &progress).await?;
    let watch = DatabaseWatch::connect(&database.admin_url, &database.role).await?;
    let mut machine = Machine::describe();
    machine.postgres_version = watch.server_version().await;
    let contacts = watch.contacts().await;
    let pools = Pools::build(&database.admin_url, &plan.scenarios, plan.seed)
        .await
        .context("drawing the scenarios' requests from the database")?;
    let directory = crate::results::create_directory(&args.out, &format!("{directory_name}-cost"))?;

    let (program, arguments) = callgrind.command_prefix();
    let wrapper = Wrapper {
        program,
        arguments,
        slowdown: callgrind::STARTUP_SLOWDOWN,
    };
    let session = Session {
        placement: &plan.placement,
        database: Some(&database),
        dimensions: &plan.dimensions,
        allow_remote: false,
        containers: None,
    };
    let counter = Counter {
        plan: &plan,
        pools: &pools,
        watch: &watch,
        keep: args.keep_profiles.then(|| directory.join("profiles")),
    };
    let mut servers = count_all(&counted, &session, &wrapper, &counter, &mut callgrind, &say).await;
    servers.extend(set_aside.iter().map(not_counted));
    if let Some((_, run)) = &plan.beside {
        for server in &mut servers {
            for cell in &mut server.cells {
                cell.run_cpu = run_cpu(run, server.record.shown_name(), cell.scenario);
            }
        }
    }
    let (finished_at, _) = utc_now();
    let results = CostResults {
        format_version: crate::results::cost::FORMAT_VERSION,
        started_at,
        finished_at,
        machine,
        settings: plan.settings(command_line, &callgrind, &database, contacts),
        servers,
    };
    results.write(&directory)?;
    crate::render::cost_report::write(&results, &directory)?;
    println!("{}", crate::render::cost_report::terminal(&results));
    println!("results: {}", directory.display());
    Ok(directory)
}

/// Every server verified natively, then counted under callgrind in each start; a server that
/// passed verification but was counted in no start is skipped with the first start's reason.
async fn count_all(
    counted: &[Trial],
    session: &Session<'_>,
    wrapper: &Wrapper,
    counter: &Counter<'_>,
    callgrind: &mut Callgrind,
    say: &dyn Fn(String),
) -> Vec<ServerCost> {
    // Verified first, natively, as `bakeoff run` verifies: the counted processes then all
    // start the same way, none with the verification's requests in its history (which left
    // the allocator in a state that cost a verified process up to 2 % more per request).
    say("verifying every server against the contract (natively)".to_string());
    let verified = lifecycle::drive(
        counted,
        session,
        Verify::Contract,
        &say,
        async |_: &Trial, _: &RunningServer| Ok(()),
    )
    .await;
    let mut servers: Vec<ServerCost> = verified
        .into_iter()
        .map(|outcome| ServerCost {
            record: outcome.record,
            cells: Vec::new(),
        })
        .collect();
    let passed: Vec<Trial> = counted
        .iter()
        .filter(|trial| {
            servers.iter().any(|server| {
                server.record.shown_name() == trial.label && server.record.skipped.is_none()
            })
        })
        .cloned()
        .collect();
    for start in 1..=counter.plan.starts {
        say(format!(
            "under callgrind: start {start} of {}",
            counter.plan.starts
        ));
        let outcomes = lifecycle::drive_under(
            Some(wrapper),
            &passed,
            session,
            Verify::Skip,
            say,
            async |trial: &Trial, server: &RunningServer| {
                counter.count_server(callgrind, trial, server, start).await
            },
        )
        .await;
        merge_start(&mut servers, outcomes, start);
    }
    for server in &mut servers {
        // Verified, but counted in no start: its reason is the first start's.
        if server.cells.is_empty() && server.record.skipped.is_none() {
            server.record.skipped = server.record.notes.first().cloned();
        }
    }
    servers
}

/// The record of a server that cannot be counted, with the reason.
fn not_counted(trial: &Trial) -> ServerCost {
    let mut record = ServerRecord::new(
        trial.server.name(),
        trial.label.clone(),
        trial.server.kind(),
    );
    record.configuration = trial.configuration;
    record.skipped = not_applicable(&trial.server).map(str::to_string);
    ServerCost {
        record,
        cells: Vec::new(),
    }
}

impl Plan {
    /// The settings recorded with the counts.
    fn settings(
        &self,
        command: String,
        callgrind: &Callgrind,
        database: &Database,
        contacts: Option<i64>,
    ) -> CostSettings {
        CostSettings {
            command,
            scenarios: self.scenarios.clone(),
            requests: self.requests,
            starts: self.starts,
            batches: self.batches,
            warmup_requests: self.warmup,
            connections: self.connections,
            connection_per_request: self.reuse == sequence::Connections::PerRequest,
            valgrind: callgrind.version.clone(),
            dimensions: self.dimensions.clone(),
            placement: self.placement.clone(),
            database: database.kind,
            contacts,
            data_seed: database.data.map(|data| data.seed),
            profile: self.profile.name().to_string(),
            beside: self.beside.as_ref().map(|(path, run)| BesideRun {
                directory: path.display().to_string(),
                started_at: run.started_at.clone(),
                machine: run.machine.line(),
            }),
        }
    }
}

/// Adds one start's counts to the servers (verified before, so each is there): its batches to
/// the cells of the same scenario, or a note of why the start was not counted.
fn merge_start(
    servers: &mut [ServerCost],
    outcomes: Vec<lifecycle::Outcome<Vec<CostCell>>>,
    start: usize,
) {
    for outcome in outcomes {
        let Some(server) = servers
            .iter_mut()
            .find(|server| server.record.shown_name() == outcome.record.shown_name())
        else {
            continue;
        };
        let Some(cells) = outcome.measured else {
            server.record.notes.push(format!(
                "under callgrind, start {start}: {}",
                outcome.record.skipped.unwrap_or_default()
            ));
            continue;
        };
        // PostgreSQL's side stays the first start's: it does not depend on the server's
        // process.
        for cell in cells {
            match server
                .cells
                .iter_mut()
                .find(|c| c.scenario == cell.scenario)
            {
                Some(known) => known.batches.extend(cell.batches),
                None => server.cells.push(cell),
            }
        }
    }
}

/// The CPU time per request `run` measured for this server and scenario, at its lowest level.
fn run_cpu(run: &RunResults, server: &str, scenario: Scenario) -> Option<RunCpu> {
    let result = run
        .servers
        .iter()
        .find(|result| result.record.shown_name() == server)?;
    let cell = result
        .cells
        .iter()
        .filter(|cell| cell.scenario == scenario)
        .min_by_key(|cell| cell.connections)?;
    Some(RunCpu {
        connections: cell.connections,
        // Milliseconds per 1,000 answers are microseconds per answer.
        cpu_us_per_request: cell.median()?.server.as_ref()?.cpu_ms_per_1k?,
    })
}

/// What counting one server needs besides the server.
struct Counter<'a> {
    plan: &'a Plan,
    pools: &'a Pools,
    watch: &'a DatabaseWatch,
    keep: Option<PathBuf>,
}

impl Counter<'_> {
    /// Every scenario: the warm-up, then each batch counted.
    async fn count_server(
        &self,
        callgrind: &mut Callgrind,
        trial: &Trial,
        server: &RunningServer,
        start: usize,
    ) -> Result<Vec<CostCell>> {
        let pid = server.pid().context("the server has no process to count")?;
        let version = version_body(&trial.server.name());
        let mut cells = Vec::new();
        for &scenario in &self.plan.scenarios {
            let requests = self.pools.mix(scenario, &version)?;
            let send = |count| {
                sequence::send(
                    server.address,
                    &requests,
                    count,
                    self.plan.connections,
                    self.plan.reuse,
                    self.plan.timeout,
                )
            };
            let warm = send(self.plan.warmup).await?;
            anyhow::ensure!(
                warm.failed() == 0,
                "{scenario}: the warm-up failed: {:?}",
                warm.failures
            );
            let before = self.watch.statement_totals().await;
            let mut batches = Vec::new();
            for index in 0..self.plan.batches {
                let keep = self.keep.as_ref().map(|folder| {
                    folder
                        .join(folder_name(&trial.label))
                        .join(format!("{scenario}-start{start}-batch{}", index + 1))
                });
                let (sent, profiles) = callgrind
                    .count(pid, keep.as_deref(), send(self.plan.requests))
                    .await?;
                let sent = sent?;
                let batch = Batch {
                    start,
                    requests: self.plan.requests as u64,
                    ok: sent.ok,
                    failures: sent.failures,
                    seconds: sent.seconds,
                    counts: Counts::of(&profiles, TOP_FUNCTIONS),
                };
                eprintln!(
                    "{:<22} {:<16} start {start} batch {}: {:>11} instructions and {:.1} system calls per request ({} requests in {:.1} s{})",
                    trial.label,
                    scenario.to_string(),
                    index + 1,
                    group_thousands(batch.instructions_per_request().round() as i64),
                    batch.system_calls_per_request(),
                    batch.requests,
                    batch.seconds,
                    if batch.failed() > 0 {
                        format!(", {} FAILED", batch.failed())
                    } else {
                        String::new()
                    }
                );
                batches.push(batch);
            }
            let after = self.watch.statement_totals().await;
            let counted = (self.plan.requests * self.plan.batches) as f64;
            let database = before.zip(after).map(|(before, after)| DatabaseCost {
                statements: (after.calls - before.calls) as f64 / counted,
                rows: (after.rows - before.rows) as f64 / counted,
                buffers: (after.buffers - before.buffers) as f64 / counted,
                exec_ms: (after.exec_ms - before.exec_ms) / counted,
            });
            cells.push(CostCell {
                scenario,
                batches,
                database,
                run_cpu: None,
            });
        }
        Ok(cells)
    }
}

/// A server's label as a folder name: `actix-deadpool (verified)` -> `actix-deadpool-verified`.
fn folder_name(label: &str) -> String {
    label
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '.')
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}
