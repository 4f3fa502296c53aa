//! `bakeoff run`: the whole benchmark. One server at a time: start it pinned to its CPUs, verify
//! it against the contract, warm it up, measure every scenario at every load level, stop it with
//! SIGTERM; then write `results.json`, `report.md` and the charts, and print the tables.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bakeoff_core::config::{ENV_VARS, SHUTDOWN_DEADLINE};
use bakeoff_testkit::conformance::{self, StatementCounts};
use bakeoff_testkit::postgres::{APP_ROLE, LocalPostgres};
use bakeoff_testkit::seed::{SeedSpec, seed};
use bakeoff_testkit::server::{ServerProcess, workspace_binary};
use bytes::Bytes;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::{self, LiveCounters, LoadSpec, PlannedRequest};
use crate::machine::{Machine, utc_now};
use crate::monitor::{DatabaseWatch, Sampler};
use crate::placement::{CpuList, Placement, PlacementArgs};
use crate::results::{
    Cell, Measurement, ResultsFile, RunResults, ServerResult, Settings, Shutdown, Verification,
};
use crate::scenarios::{Pools, Scenario, version_body};
use crate::variants::VARIANTS;

/// How long a started server has to answer `/version`.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// The options of `bakeoff run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Variants to run, comma-separated (default: every variant in bench/src/variants.rs);
    /// `none` runs only the servers given with --target.
    #[arg(long, value_delimiter = ',')]
    pub variants: Vec<String>,
    /// Scenarios to measure, comma-separated (default: all).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub scenarios: Vec<Scenario>,
    /// Connection levels, comma-separated: each scenario is measured at each.
    #[arg(long, value_delimiter = ',', default_value = "64")]
    pub connections: Vec<usize>,
    /// Measured time per cell, e.g. 10s or 500ms (default 10s; 3s with --quick).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Warm-up per server before its first cell, all scenarios mixed (default 2s; 1s with --quick).
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
    /// Also measure a running server that implements the contract: NAME=URL, or
    /// NAME=URL,DATABASE_URL when it serves another database than the run's.
    #[arg(long = "target", value_name = "NAME=URL[,DATABASE_URL]", value_parser = TargetSpec::parse)]
    pub targets: Vec<TargetSpec>,
    /// Use this database instead of a throwaway one (its data is used as it is unless --seed-data).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// With DATABASE_URL: replace its data with the generated data set first.
    #[arg(long)]
    pub seed_data: bool,
    /// Contacts in the generated data set.
    #[arg(long, default_value_t = 10_000)]
    pub contacts: u32,
    /// Seed of the generated data set (and of the request choice).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// WORKERS for every server (default: the server's CPUs).
    #[arg(long)]
    pub workers: Option<usize>,
    /// DB_POOL_SIZE for every server.
    #[arg(long, default_value_t = 4)]
    pub db_pool_size: usize,
    #[command(flatten)]
    pub placement: PlacementArgs,
    /// Run the debug builds of the servers instead of the release builds.
    #[arg(long)]
    pub debug: bool,
    /// Where results/<timestamp>/ is created.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// A request not answered within this counts as a timeout.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub timeout: Duration,
    /// Check the body of every N-th answer of each connection (1: all).
    #[arg(long, default_value_t = 16)]
    pub check_every: u64,
    /// Allow load to non-loopback targets.
    #[arg(long)]
    pub allow_remote: bool,
}

/// `--target NAME=URL[,DATABASE_URL]`.
#[derive(Debug, Clone)]
pub struct TargetSpec {
    pub name: String,
    pub url: String,
    pub database_url: Option<String>,
}

impl TargetSpec {
    pub fn parse(text: &str) -> Result<TargetSpec, String> {
        let (name, rest) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?} is not NAME=URL[,DATABASE_URL]"))?;
        let (url, database_url) = match rest.split_once(',') {
            Some((url, database)) => (url, Some(database.to_string())),
            None => (rest, None),
        };
        let name = name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!(
                "{name:?}: a target name is letters, digits, '-', '_' or '.'"
            ));
        }
        if !url.starts_with("http://") {
            return Err(format!("{url:?}: a target URL is http://HOST:PORT"));
        }
        Ok(TargetSpec {
            name: name.to_string(),
            url: url.trim_end_matches('/').to_string(),
            database_url,
        })
    }

    /// The socket address of the URL's host and port.
    pub fn address(&self) -> Result<SocketAddr> {
        let authority = self
            .url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default();
        let with_port = if authority.contains(':') && !authority.ends_with(']') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        with_port
            .to_socket_addrs()
            .with_context(|| format!("resolving {}", self.url))?
            .next()
            .with_context(|| format!("{} resolves to no address", self.url))
    }
}

/// Parses `10s`, `500ms`, `2m` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(index) => text.split_at(index),
        None => (text, "s"),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 10s or 500ms"))?;
    let seconds = match unit {
        "ms" => value / 1_000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("{text:?}: the unit must be ms, s or m")),
    };
    if !(0.0..=3_600.0).contains(&seconds) {
        return Err(format!("{text:?} must be from 0 to 60 minutes"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// What every cell of the run shares.
struct Plan {
    scenarios: Vec<Scenario>,
    connections: Vec<usize>,
    duration: Duration,
    warmup: Duration,
    repeat: usize,
    placement: Placement,
    workers: usize,
    args: RunArgs,
}

/// The database the run uses, and who to watch in it.
struct Database {
    /// Kept alive for the run; stopped and removed on drop.
    _throwaway: Option<LocalPostgres>,
    admin_url: String,
    app_url: String,
    role: String,
    kind: &'static str,
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
    let plan = plan(&args)?;
    let progress = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let say = |line: String| progress.suspend(|| eprintln!("{line}"));

    // Binaries first: a missing build is a message, not a failure half way through.
    let mut servers: Vec<ServerResult> = Vec::new();
    let mut runnable: Vec<(String, PathBuf)> = Vec::new();
    for name in selected_variants(&args)? {
        match workspace_binary(&name, !args.debug) {
            Ok(path) => runnable.push((name, path)),
            Err(error) => {
                say(format!("skipping {name}: {error:#}"));
                servers.push(skipped(&name, "variant", format!("{error:#}")));
            }
        }
    }
    if runnable.is_empty() && args.targets.is_empty() {
        bail!(
            "no server to run: none of the selected variants is built; build them with `cargo build --release --workspace`"
        );
    }
    say(format!("placement: {}", plan.placement.note));

    let database = prepare_database(&args, &progress).await?;
    let watch = Arc::new(DatabaseWatch::connect(&database.admin_url, &database.role).await?);
    let mut machine = Machine::describe();
    machine.postgres_version = watch.server_version().await;
    let contacts = count_contacts(&database.admin_url).await;
    let pools = Pools::build(&database.admin_url, &plan.scenarios, args.seed)
        .await
        .context("drawing the scenarios' requests from the database")?;

    let live = Arc::new(LiveCounters::default());
    let _stop_guard = StopOnDrop(Arc::clone(&live));
    let cells_per_server = plan.scenarios.len() * plan.connections.len() * plan.repeat;
    let bar = progress.add(ProgressBar::new(
        ((runnable.len() + args.targets.len()) * cells_per_server) as u64,
    ));
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} cells  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let meter = Meter::start(bar.clone(), Arc::clone(&live));

    for (name, binary) in &runnable {
        let result = measure_variant(
            name, binary, &plan, &database, &watch, &pools, &live, &meter,
        )
        .await
        .unwrap_or_else(|error| {
            let mut failed = skipped(name, "variant", format!("run failed: {error:#}"));
            failed.verification.ran = false;
            failed
        });
        if let Some(reason) = &result.skipped {
            say(format!("{name}: not measured: {reason}"));
            bar.inc(cells_per_server as u64);
        }
        servers.push(result);
    }
    for target in &args.targets {
        let result = measure_target(target, &plan, &database, &pools, &live, &meter)
            .await
            .unwrap_or_else(|error| skipped(&target.name, "target", format!("{error:#}")));
        if let Some(reason) = &result.skipped {
            say(format!("{}: not measured: {reason}", target.name));
            bar.inc(cells_per_server as u64);
        }
        servers.push(result);
    }
    meter.stop();
    bar.finish_and_clear();

    let (finished_at, _) = utc_now();
    let results = RunResults {
        format_version: crate::results::FORMAT_VERSION,
        started_at,
        finished_at,
        machine,
        settings: Settings {
            command: command_line,
            scenarios: plan
                .scenarios
                .iter()
                .map(|s| s.name().to_string())
                .collect(),
            connections: plan.connections.clone(),
            rate: args.rate,
            duration_seconds: plan.duration.as_secs_f64(),
            warmup_seconds: plan.warmup.as_secs_f64(),
            repeat: plan.repeat,
            quick: args.quick,
            timeout_seconds: args.timeout.as_secs_f64(),
            check_every: args.check_every,
            workers: plan.workers,
            db_pool_size: args.db_pool_size,
            placement: plan.placement.clone(),
            database: database.kind.to_string(),
            contacts,
            data_seed: (database.kind == "throwaway" || args.seed_data).then_some(args.seed),
            profile: if args.debug { "debug" } else { "release" }.to_string(),
        },
        servers,
    };
    let directory = crate::results::create_directory(&args.out, &directory_name)?;
    results.write(&directory)?;
    crate::report::write(&results, &directory)?;
    println!("{}", crate::report::terminal(&results));
    println!("results: {}", directory.display());
    Ok(directory)
}

fn plan(args: &RunArgs) -> Result<Plan> {
    let scenarios = if args.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        let mut chosen = args.scenarios.clone();
        chosen.dedup();
        chosen
    };
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
    let placement = Placement::choose(&args.placement).map_err(anyhow::Error::msg)?;
    let workers = args.workers.unwrap_or_else(|| {
        placement.server_cpus.as_ref().map_or_else(
            || bakeoff_core::config::available_cpus().get(),
            CpuList::len,
        )
    });
    anyhow::ensure!(workers >= 1, "--workers must be at least 1");
    anyhow::ensure!(args.db_pool_size >= 1, "--db-pool-size must be at least 1");
    Ok(Plan {
        scenarios,
        connections,
        duration,
        warmup,
        repeat: args.repeat,
        placement,
        workers,
        args: args.clone(),
    })
}

fn selected_variants(args: &RunArgs) -> Result<Vec<String>> {
    if args.variants.is_empty() {
        return Ok(VARIANTS.iter().map(ToString::to_string).collect());
    }
    if args.variants == ["none"] {
        if args.targets.is_empty() {
            bail!("--variants none leaves nothing to run: add servers with --target NAME=URL");
        }
        return Ok(Vec::new());
    }
    for name in &args.variants {
        if !crate::variants::is_known(name) {
            bail!(
                "{name:?} is not a variant; the variants are {} (or `none`; a running server can be added with --target NAME=URL)",
                VARIANTS.join(", ")
            );
        }
    }
    Ok(args.variants.clone())
}

fn skipped(name: &str, kind: &str, reason: String) -> ServerResult {
    ServerResult {
        name: name.to_string(),
        kind: kind.to_string(),
        verification: Verification::default(),
        skipped: Some(reason),
        startup_seconds: None,
        shutdown: None,
        cells: Vec::new(),
    }
}

async fn prepare_database(args: &RunArgs, progress: &MultiProgress) -> Result<Database> {
    let spec = SeedSpec {
        contacts: args.contacts,
        seed: args.seed,
    };
    match &args.database_url {
        Some(url) => {
            let role = url::Url::parse(url)
                .ok()
                .map(|parsed| parsed.username().to_string())
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| "postgres".to_string());
            if args.seed_data {
                seed_with_progress(url, &spec, progress).await?;
            }
            Ok(Database {
                _throwaway: None,
                admin_url: url.clone(),
                app_url: url.clone(),
                role,
                kind: "external",
            })
        }
        None => {
            let spinner = progress.add(ProgressBar::new_spinner());
            spinner.set_message("starting a throwaway PostgreSQL");
            spinner.enable_steady_tick(Duration::from_millis(120));
            let postgres = LocalPostgres::start_throwaway()
                .await
                .context("starting a throwaway PostgreSQL (or set DATABASE_URL)")?;
            spinner.finish_and_clear();
            let admin_url = postgres.admin_url();
            seed_with_progress(&admin_url, &spec, progress).await?;
            Ok(Database {
                app_url: postgres.app_url(),
                admin_url,
                role: APP_ROLE.to_string(),
                kind: "throwaway",
                _throwaway: Some(postgres),
            })
        }
    }
}

async fn seed_with_progress(url: &str, spec: &SeedSpec, progress: &MultiProgress) -> Result<()> {
    let bar = progress.add(ProgressBar::new(u64::from(spec.contacts)));
    bar.set_style(
        ProgressStyle::with_template("seeding {pos}/{len} contacts [{bar:30}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let report = |step: bakeoff_testkit::seed::SeedProgress| bar.set_position(step.done);
    seed(url, spec, &report)
        .await
        .with_context(|| format!("seeding {}", bakeoff_testkit::redact(url)))?;
    bar.finish_and_clear();
    Ok(())
}

async fn count_contacts(url: &str) -> Option<i64> {
    let client = bakeoff_testkit::connect(url).await.ok()?;
    client
        .query_one("SELECT count(*) FROM contacts", &[])
        .await
        .ok()?
        .try_get(0)
        .ok()
}

/// Start, verify, warm up, measure and stop one variant.
#[allow(clippy::too_many_arguments)]
async fn measure_variant(
    name: &str,
    binary: &Path,
    plan: &Plan,
    database: &Database,
    watch: &Arc<DatabaseWatch>,
    pools: &Pools,
    live: &Arc<LiveCounters>,
    meter: &Meter,
) -> Result<ServerResult> {
    let mut result = skipped(name, "variant", String::new());
    result.skipped = None;
    meter.set_phase(format!("{name}: starting"));

    let mut command = plan.placement.server_command(binary);
    for variable in ENV_VARS {
        command.env_remove(variable);
    }
    command
        .env("DATABASE_URL", &database.app_url)
        .env("BIND", "127.0.0.1:0")
        .env("WORKERS", plan.workers.to_string())
        .env("DB_POOL_SIZE", plan.args.db_pool_size.to_string())
        .env("RUST_LOG", "error");
    let started = Instant::now();
    let server = tokio::task::spawn_blocking(move || ServerProcess::spawn(command))
        .await
        .context("starting the server")??;
    // From here the server is killed on every way out (ServerProcess kills on drop).
    let address = server.address();
    let version = wait_until_ready(address).await?;
    result.startup_seconds = Some(started.elapsed().as_secs_f64());

    meter.set_phase(format!("{name}: verifying"));
    verify_server(
        &mut result,
        &conformance::Target {
            base_url: server.base_url(),
            expectations_url: database.admin_url.clone(),
            // Statements per request are checked only where the checker's own queries run as another
            // role than the server's (the throwaway cluster): on an external database both use
            // DATABASE_URL, and the checker would count itself.
            statement_counts: (database.kind == "throwaway").then(|| StatementCounts {
                admin_url: database.admin_url.clone(),
                role: database.role.clone(),
            }),
            variant: Some(name.to_string()),
            workers: Some(plan.workers),
            exact_bytes: true,
        },
    )
    .await?;
    if result.verification.passed {
        let expected_version = version_body(name);
        let version = if version == expected_version {
            version
        } else {
            expected_version
        };
        result.cells = measure_cells(
            name,
            address,
            Some(server.pid()),
            Some(watch),
            plan,
            pools,
            &version,
            live,
            meter,
        )
        .await?;
    }

    meter.set_phase(format!("{name}: stopping (SIGTERM)"));
    let deadline = SHUTDOWN_DEADLINE + Duration::from_secs(2);
    let exit = tokio::task::spawn_blocking(move || server.terminate(deadline))
        .await
        .context("stopping the server")??;
    result.shutdown = Some(Shutdown {
        clean: exit.is_clean(),
        exit_code: exit.code,
        killed: exit.killed,
        seconds: exit.elapsed.as_secs_f64(),
    });
    Ok(result)
}

/// Verify and measure a server the run did not start.
async fn measure_target(
    target: &TargetSpec,
    plan: &Plan,
    database: &Database,
    pools: &Pools,
    live: &Arc<LiveCounters>,
    meter: &Meter,
) -> Result<ServerResult> {
    let mut result = skipped(&target.name, "target", String::new());
    result.skipped = None;
    let address = target.address()?;
    if !address.ip().is_loopback() && !plan.args.allow_remote {
        bail!(
            "{} is not a loopback address; add --allow-remote to load it",
            target.url
        );
    }
    meter.set_phase(format!("{}: verifying", target.name));
    let version = wait_until_ready(address).await?;
    let expectations_url = target
        .database_url
        .clone()
        .unwrap_or_else(|| database.admin_url.clone());
    verify_server(
        &mut result,
        &conformance::Target {
            base_url: target.url.clone(),
            expectations_url: expectations_url.clone(),
            statement_counts: None,
            variant: None,
            workers: None,
            exact_bytes: false,
        },
    )
    .await?;
    if !result.verification.passed {
        return Ok(result);
    }
    // A foreign server may format its JSON differently: only statuses are checked under load,
    // and its requests are drawn from its own database when it has one.
    let own_pools;
    let pools = match &target.database_url {
        Some(url) => {
            own_pools = Pools::build(url, &plan.scenarios, plan.args.seed).await?;
            &own_pools
        }
        None => pools,
    };
    let status_only = pools.without_bodies();
    result.cells = measure_cells(
        &target.name,
        address,
        None,
        None,
        plan,
        &status_only,
        &version,
        live,
        meter,
    )
    .await?;
    Ok(result)
}

/// Checks a server against the contract and records the checks in `result`; a server that fails
/// them is marked skipped, with the first failure as the reason, and is not measured.
async fn verify_server(result: &mut ServerResult, target: &conformance::Target) -> Result<()> {
    let report = conformance::verify(target)
        .await
        .context("running the conformance checks")?;
    if !report.passed() {
        result.skipped = Some(format!(
            "failed verification ({} of {} checks): {}",
            report.failures.len(),
            report.checks,
            report.failures.first().cloned().unwrap_or_default()
        ));
    }
    result.verification = Verification {
        ran: true,
        passed: report.passed(),
        checks: report.checks,
        failures: report.failures,
    };
    Ok(())
}

/// Waits until `/version` answers 200; returns its body.
pub async fn wait_until_ready(address: SocketAddr) -> Result<Bytes> {
    let started = Instant::now();
    loop {
        match engine::get_once(address, "/version", Duration::from_secs(2)).await {
            Ok((200, body)) => return Ok(body),
            Ok((status, _)) if started.elapsed() > READY_TIMEOUT => {
                bail!("{address}/version answered {status}, not 200, for {READY_TIMEOUT:?}")
            }
            Err(kind) if started.elapsed() > READY_TIMEOUT => {
                bail!(
                    "{address}/version did not answer within {READY_TIMEOUT:?} ({})",
                    kind.name()
                )
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The warm-up, then every scenario at every level, `repeat` times.
#[allow(clippy::too_many_arguments)]
async fn measure_cells(
    name: &str,
    address: SocketAddr,
    pid: Option<u32>,
    watch: Option<&Arc<DatabaseWatch>>,
    plan: &Plan,
    pools: &Pools,
    version: &Bytes,
    live: &Arc<LiveCounters>,
    meter: &Meter,
) -> Result<Vec<Cell>> {
    let spec_for = |requests, connections, warmup: Duration, duration, seed| LoadSpec {
        address,
        requests,
        connections,
        threads: plan.placement.engine_threads,
        warmup,
        duration,
        rate: plan.args.rate,
        timeout: plan.args.timeout,
        check_every: plan.args.check_every,
        cpus: plan.placement.engine_cpus.clone(),
        seed,
        allow_remote: plan.args.allow_remote,
    };

    if !plan.warmup.is_zero() {
        // Every scenario's requests mixed, at the highest level: pools fill, caches and
        // statement caches warm up on every connection before anything is recorded.
        let mut mixed: Vec<PlannedRequest> = Vec::new();
        for &scenario in &plan.scenarios {
            mixed.extend(pools.mix(scenario, version)?.iter().cloned());
        }
        let connections = plan.connections.last().copied().unwrap_or(64);
        meter.set_phase(format!("{name}: warm-up, {connections} connections"));
        let spec = spec_for(
            Arc::new(mixed),
            connections,
            Duration::ZERO,
            plan.warmup,
            plan.args.seed,
        );
        run_engine(spec, live).await?;
    }

    let mut cells = Vec::new();
    for &connections in &plan.connections {
        for &scenario in &plan.scenarios {
            let requests = pools.mix(scenario, version)?;
            let mut runs = Vec::new();
            for repeat in 0..plan.repeat {
                meter.set_phase(format!(
                    "{name}: {} at {connections} connections{}",
                    scenario.name(),
                    if plan.repeat > 1 {
                        format!(" (run {}/{})", repeat + 1, plan.repeat)
                    } else {
                        String::new()
                    }
                ));
                let spec = spec_for(
                    Arc::clone(&requests),
                    connections,
                    Duration::ZERO,
                    plan.duration,
                    plan.args.seed.wrapping_add(repeat as u64),
                );
                let sampler = match pid {
                    Some(pid) => Some(Sampler::start(pid, watch.cloned()).await),
                    None => None,
                };
                let outcome = run_engine(spec, live).await?;
                let figures = match sampler {
                    Some(sampler) => Some(sampler.finish(outcome.total_responses).await),
                    None => None,
                };
                let measurement =
                    Measurement::from_outcome(&outcome, figures, plan.placement.engine_threads);
                meter.cell_done(&format!(
                    "{name:<22} {:<16} c={connections:<4} {:>9} req/s  p99 {:>8.2} ms  errors {}",
                    scenario.name(),
                    crate::report::group_thousands(measurement.ok_per_second.round() as i64),
                    measurement.latency_us.p99 as f64 / 1_000.0,
                    measurement.error_count()
                ));
                runs.push(measurement);
            }
            cells.push(Cell::new(
                scenario.name(),
                connections,
                plan.args.rate,
                runs,
            ));
        }
    }
    Ok(cells)
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
                    crate::report::group_thousands(rate.round() as i64)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_targets_parse() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5h").is_err());
        let target = TargetSpec::parse("fastapi=http://127.0.0.1:8000/,postgres://u@h/d").unwrap();
        assert_eq!(target.url, "http://127.0.0.1:8000");
        assert_eq!(target.database_url.as_deref(), Some("postgres://u@h/d"));
        assert!(target.address().unwrap().ip().is_loopback());
        assert!(TargetSpec::parse("no-url").is_err());
    }
}
