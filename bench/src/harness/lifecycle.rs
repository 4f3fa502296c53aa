//! One lifecycle for every server a command drives: start (placement, port, environment) ->
//! ready -> verify -> the command's own measurement -> stop (SIGTERM, exit recorded). A target the
//! run did not start goes through the same steps, less starting and stopping.
//!
//! [`drive`] runs the trials one after another and never lets one server's failure stop the
//! others: whatever goes wrong is the server's result, recorded in its [`ServerRecord`].

use std::ffi::OsString;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bakeoff_core::config::SHUTDOWN_DEADLINE;
use bakeoff_core::resmon::ResourceSnapshot;
use bakeoff_testkit::conformance;
use bakeoff_testkit::server::{
    STARTUP_TIMEOUT, ServerEnvironment, ServerProcess, workspace_binary,
};
use bytes::Bytes;

use crate::cgroups::ContainerCgroup;

use crate::harness::containers::Containers;
use crate::harness::database::Database;
use crate::harness::db_latency::{self, DelayProxy};
use crate::harness::pooler::{self, PgBouncer, PoolerWatch};
use crate::harness::servers::{ServerSpec, TargetPaths, TargetSpec};
use crate::http1::get_once;
use crate::monitor::Watched;
use crate::results::server::{BuildProfile, ContainerRecord, LatencyCheck, TargetConformance};
use crate::results::server::{
    EffectiveSettings, PoolerRecord, ServerRecord, Shutdown, Verification,
};
use crate::results::setup::{Configuration, Dimensions, Placement, Workers};
use crate::results::vocabulary::{PathStyle, PoolMode, Pooler};

/// How long a started server has to answer `/version` with 200.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Where servers report their own figures and effective settings.
pub const RESMON_PATH: &str = "/test/resmon";

/// A program the servers run under (Valgrind, for `bakeoff cost`), put between the placement's
/// `taskset` and the server's own command line, and how much slower it makes them: start-up and
/// readiness get that many times longer.
#[derive(Debug, Clone)]
pub struct Wrapper {
    pub program: PathBuf,
    pub arguments: Vec<OsString>,
    pub slowdown: u32,
}

impl BuildProfile {
    pub fn name(self) -> &'static str {
        match self {
            BuildProfile::Release => "release",
            BuildProfile::Debug => "debug",
        }
    }
}

/// What every server of a command shares.
pub struct Session<'a> {
    pub placement: &'a Placement,
    /// The database the variants are given; `None` when only targets run.
    pub database: Option<&'a Database>,
    pub dimensions: &'a Dimensions,
    /// Load may go to targets that are not on loopback.
    pub allow_remote: bool,
    /// The host's containers, in a compose run: a target that is one is measured from its
    /// cgroup.
    pub containers: Option<&'a Containers>,
}

/// One server in one configuration: what [`drive`] starts, measures and stops.
#[derive(Debug, Clone)]
pub struct Trial {
    pub server: ServerSpec,
    /// `None` for a target.
    pub configuration: Option<Configuration>,
    pub label: String,
    /// The setting that makes it run behind a transaction-mode pooler, when it needs one.
    pub statements_setting: Option<&'static str>,
    /// How to start it (`None` for a target), or why it cannot run.
    launch: Result<Option<Launch>, String>,
}

impl Trial {
    /// Whether it can run: a variant whose binary is built, a peer whose environment is there,
    /// or a target.
    pub fn is_runnable(&self) -> bool {
        self.launch.is_ok()
    }

    /// Why it cannot run (a binary not built, a configuration that does not apply to it).
    pub fn unrunnable_reason(&self) -> Option<&str> {
        self.launch.as_ref().err().map(String::as_str)
    }
}

/// A program the harness starts: a variant's binary, or a peer's program as its runtime runs it
/// (the environment's Python with its `serve.py`, a Go program, `java -jar`).
#[derive(Debug, Clone)]
struct Launch {
    program: PathBuf,
    arguments: Vec<OsString>,
    /// How the processes dimension reaches it.
    processes_as: ProcessesVariable,
    /// PgBouncer, when the configuration puts it in front of the database.
    pooler: Option<PathBuf>,
    /// `DB_STATEMENTS=unprepared` behind a transaction-mode pooler.
    statements: Option<bakeoff_core::DbStatements>,
}

/// The variable that sets a server's process count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProcessesVariable {
    /// A variant: `PROCESSES` copies of the binary (`core::processes`).
    Processes,
    /// A Python peer: gunicorn's worker processes are its `WORKERS`.
    Workers,
    /// A peer that serves from one process (Go, the JVM): more than one is not applicable.
    None,
}

impl Launch {
    fn of(server: &ServerSpec, profile: BuildProfile) -> Result<Option<Launch>, String> {
        let launch = match server {
            ServerSpec::Variant(variant) => {
                workspace_binary(&variant.name(), profile == BuildProfile::Release).map(|program| {
                    Launch {
                        program,
                        arguments: Vec::new(),
                        processes_as: ProcessesVariable::Processes,
                        pooler: None,
                        statements: None,
                    }
                })
            }
            ServerSpec::Peer(peer) => peer.program().map(|program| Launch {
                program: program.program,
                arguments: program.arguments,
                processes_as: if peer.workers_are_processes() {
                    ProcessesVariable::Workers
                } else {
                    ProcessesVariable::None
                },
                pooler: None,
                statements: None,
            }),
            ServerSpec::Target(_) => return Ok(None),
        };
        launch.map(Some).map_err(|error| format!("{error:#}"))
    }
}

/// A launch that cannot take the configuration's processes (a Go or Java peer serves from one
/// process) becomes "not applicable".
fn one_process_only(
    launch: &Result<Option<Launch>, String>,
    configuration: &Configuration,
) -> Result<Option<Launch>, String> {
    match (launch, configuration.processes) {
        (Ok(Some(launch)), Some(processes))
            if launch.processes_as == ProcessesVariable::None && processes.get() > 1 =>
        {
            Err(format!(
                "not applicable: serves from one process (its WORKERS are threads), not {processes}"
            ))
        }
        _ => launch.clone(),
    }
}

/// Every server in every configuration of the dimensions, variants first. Binaries are looked up
/// now, so that a missing build is a message before anything starts; it is an error only when no
/// trial at all can run. A pooler in the dimensions needs its program: missing, it is an error
/// now. A configuration that does not apply to a server (transaction pooling for one that
/// prepares named statements) is a trial that is reported "not applicable", not run.
pub fn trials(
    servers: &[ServerSpec],
    dimensions: &Dimensions,
    profile: BuildProfile,
) -> Result<Vec<Trial>> {
    let pgbouncer = if dimensions
        .poolers
        .iter()
        .any(|pooler| matches!(pooler, Pooler::PgBouncer(_)))
    {
        Some(pooler::locate()?)
    } else {
        None
    };
    let mut trials = Vec::new();
    for server in servers {
        let launch = Launch::of(server, profile);
        let configurations = dimensions.configurations(server);
        if configurations.is_empty() {
            trials.push(Trial {
                server: server.clone(),
                configuration: None,
                label: server.name(),
                statements_setting: None,
                launch: launch.clone(),
            });
        }
        for configuration in configurations {
            let launch = one_process_only(&launch, &configuration);
            let statements_setting = match configuration.pooler {
                Pooler::PgBouncer(PoolMode::Transaction) => {
                    pooler::transaction_mode(server).ok().flatten()
                }
                _ => None,
            };
            let launch = match configuration.pooler {
                Pooler::None => launch.clone(),
                Pooler::PgBouncer(mode) => match (&launch, mode) {
                    (Err(error), _) => Err(error.clone()),
                    (Ok(_), PoolMode::Transaction) if pooler::transaction_mode(server).is_err() => {
                        Err(format!(
                            "not applicable: {}",
                            pooler::transaction_mode(server).err().unwrap_or_default()
                        ))
                    }
                    (Ok(launch), mode) => Ok(launch.clone().map(|mut launch| {
                        launch.pooler = pgbouncer.clone();
                        // A variant's setting is DB_STATEMENTS; a peer's would be its own.
                        if mode == PoolMode::Transaction
                            && matches!(server, ServerSpec::Variant(_))
                            && statements_setting.is_some()
                        {
                            launch.statements = Some(bakeoff_core::DbStatements::Unprepared);
                        }
                        launch
                    })),
                },
            };
            trials.push(Trial {
                server: server.clone(),
                label: dimensions.label(&server.name(), Some(&configuration)),
                configuration: Some(configuration),
                statements_setting,
                launch,
            });
        }
    }
    if !trials.iter().any(Trial::is_runnable) {
        if let Some(reason) = trials.iter().find_map(Trial::unrunnable_reason)
            && reason.starts_with("not applicable")
        {
            bail!("no server to run: every configuration is {reason}");
        }
        // A peer that cannot be prepared says why (a missing Debian package, PyPI unreachable).
        if let Some(trial) = trials
            .iter()
            .find(|trial| matches!(trial.server, ServerSpec::Peer(_)))
            && let Some(reason) = trial.unrunnable_reason()
        {
            bail!("no server to run: {}: {reason}", trial.label);
        }
        bail!(
            "no server to run: none of the selected variants is built; build them with `cargo build --release --workspace`"
        );
    }
    Ok(trials)
}

/// The trials that run together, as indexes into `trials`: every server of one configuration of
/// the dimensions in one group (a server without connection checkout joins the group of the
/// first checkout policy), targets with the first group. Servers of one group sit idle beside
/// each other while one of them is measured, so that they can be measured in interleaved
/// rounds; configurations are kept apart because each may hold its own delay line, pooler,
/// processes and pools of connections, which all together would not fit the database's
/// connections or the machine's memory.
pub fn groups(trials: &[Trial], dimensions: &Dimensions) -> Vec<Vec<usize>> {
    let first_recycle = dimensions.recycle.first().copied();
    let mut keys: Vec<Configuration> = Vec::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut targets = Vec::new();
    for (index, trial) in trials.iter().enumerate() {
        let Some(configuration) = trial.configuration else {
            targets.push(index);
            continue;
        };
        let key = Configuration {
            recycle: configuration.recycle.or(first_recycle),
            ..configuration
        };
        match keys.iter().position(|known| *known == key) {
            Some(position) => groups[position].push(index),
            None => {
                keys.push(key);
                groups.push(vec![index]);
            }
        }
    }
    match groups.first_mut() {
        Some(first) => first.extend(targets),
        None if !targets.is_empty() => groups.push(targets),
        None => {}
    }
    groups
}

/// A server that answers: started by the harness, or a target.
pub struct RunningServer {
    pub address: SocketAddr,
    pub base_url: String,
    /// The `/version` body it answered when ready.
    pub version: Bytes,
    /// What it reported in `/test/resmon`, when it has the endpoint.
    pub effective: Option<EffectiveSettings>,
    /// What the delay line in front of its database measured of itself, when it has one.
    pub latency_check: Option<LatencyCheck>,
    /// How its paths are written: the contract's, except for a target that wants a slash.
    pub path_style: PathStyle,
    /// The container a target runs in, when the run reads the host's cgroups and found it.
    pub container: Option<ContainerCgroup>,
    process: Option<ServerProcess>,
    /// Dropped after the server (fields drop in order): the server never loses its database
    /// while it drains.
    delay_proxy: Option<DelayProxy>,
    /// The PgBouncer in front of its database, stopped after the server.
    pooler: Option<RunningPooler>,
}

/// A pooler the harness started for one server, and its console.
pub struct RunningPooler {
    pub process: PgBouncer,
    pub watch: Option<std::sync::Arc<PoolerWatch>>,
}

impl RunningServer {
    /// The process id, for servers the harness started (monitored from /proc).
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ServerProcess::pid)
    }

    /// What the monitor reads of it: the process tree the harness started, or the container a
    /// target runs in; `None` for a target outside any container the run can see.
    pub fn watched(&self) -> Option<Watched> {
        match (self.pid(), &self.container) {
            (Some(pid), _) => Some(Watched::Process(pid)),
            (None, Some(container)) => Some(Watched::Container(container.clone())),
            (None, None) => None,
        }
    }

    /// CPU seconds used so far by the delay line in front of its database, when it has one.
    pub fn delay_line_cpu_seconds(&self) -> Option<f64> {
        self.delay_proxy.as_ref().and_then(DelayProxy::cpu_seconds)
    }

    /// The console of the pooler in front of its database, when there is one.
    pub fn pooler_watch(&self) -> Option<std::sync::Arc<PoolerWatch>> {
        self.pooler.as_ref().and_then(|pooler| pooler.watch.clone())
    }

    /// The processes that hold its connections to PostgreSQL: the server, or the delay line or
    /// pooler in front of the database when it has one (empty for a target).
    pub fn database_clients(&self) -> Vec<u32> {
        let Some(pid) = self.pid() else {
            return Vec::new();
        };
        let mut clients = vec![pid];
        clients.extend(self.delay_proxy.as_ref().map(DelayProxy::pid));
        clients.extend(self.pooler().map(PgBouncer::pid));
        clients
    }

    /// The pooler in front of its database, when there is one.
    pub fn pooler(&self) -> Option<&PgBouncer> {
        self.pooler.as_ref().map(|pooler| &pooler.process)
    }
}

/// The environment of a variant in one configuration.
pub fn environment(database_url: &str, configuration: &Configuration) -> ServerEnvironment {
    let mut environment = ServerEnvironment::new(database_url);
    environment.workers = match configuration.workers {
        Workers::OwnDefault => None,
        Workers::Fixed(count) => Some(count.get()),
    };
    environment.db_pool_size = Some(configuration.db_pool_size.get());
    environment.db_recycle = configuration.recycle;
    environment.processes = configuration.processes.map(NonZeroUsize::get);
    environment
}

/// The way from a server to its database in one configuration: direct, or through a delay line
/// started for it (and checked: the round trip it adds, measured).
struct DatabasePath {
    url: String,
    delay_proxy: Option<DelayProxy>,
    latency_check: Option<LatencyCheck>,
}

async fn database_path(
    upstream_url: &str,
    configuration: &Configuration,
    session: &Session<'_>,
) -> Result<DatabasePath> {
    let round_trip = configuration.db_latency;
    if round_trip.is_zero() {
        return Ok(DatabasePath {
            url: upstream_url.to_string(),
            delay_proxy: None,
            latency_check: None,
        });
    }
    let upstream = db_latency::database_address(upstream_url)?;
    let placement = session.placement.clone();
    let proxy =
        tokio::task::spawn_blocking(move || DelayProxy::start(upstream, round_trip, &placement))
            .await
            .context("starting the delay line")??;
    let url = db_latency::through(upstream_url, proxy.address)?;
    db_latency::wait_until_reachable(&url)
        .await
        .context("reaching PostgreSQL through the delay line")?;
    let check = db_latency::check(upstream_url, &url, round_trip)
        .await
        .context("timing round trips through the delay line")?;
    Ok(DatabasePath {
        url,
        delay_proxy: Some(proxy),
        latency_check: Some(check),
    })
}

/// Starts a variant or a peer pinned to the server CPUs (under `wrapper`, when given) and waits
/// until it answers.
async fn start_server(
    launch: Launch,
    configuration: &Configuration,
    session: &Session<'_>,
    wrapper: Option<&Wrapper>,
) -> Result<(RunningServer, f64)> {
    let database = session
        .database
        .context("a server the harness starts needs a database")?;
    let pooler = match (configuration.pooler, &launch.pooler) {
        (Pooler::PgBouncer(mode), Some(program)) => {
            Some(start_pooler(program, mode, configuration, launch.processes_as, database).await?)
        }
        (Pooler::PgBouncer(_), None) => bail!("--pooler pgbouncer: no pgbouncer program"),
        (Pooler::None, _) => None,
    };
    // A delay line goes in front of whatever the server would reach: the pooler beside the
    // database, as a managed pooler sits beside a managed PostgreSQL across the network.
    let upstream_url = match &pooler {
        Some(pooler) => pooler.process.url_for(&database.app_url)?,
        None => database.app_url.clone(),
    };
    let path = database_path(&upstream_url, configuration, session).await?;
    let mut command = match wrapper {
        Some(wrapper) => {
            let mut command = session.placement.server_command(&wrapper.program);
            command.args(&wrapper.arguments).arg(&launch.program);
            command
        }
        None => session.placement.server_command(&launch.program),
    };
    command.args(&launch.arguments);
    let mut environment = environment(&path.url, configuration);
    match launch.processes_as {
        ProcessesVariable::Processes => {}
        ProcessesVariable::Workers => {
            if let Some(processes) = environment.processes.take() {
                environment.workers = Some(processes);
            }
        }
        // One process, as `--processes 1` asks; it reads no PROCESSES.
        ProcessesVariable::None => environment.processes = None,
    }
    environment.db_statements = launch.statements;
    environment.apply_to(&mut command);
    let slowdown = wrapper.map_or(1, |wrapper| wrapper.slowdown.max(1));
    let started = Instant::now();
    let process = tokio::task::spawn_blocking(move || {
        ServerProcess::spawn_within(command, STARTUP_TIMEOUT * slowdown)
    })
    .await
    .context("starting the server")??;
    // From here the server is killed on every way out (ServerProcess kills on drop).
    let address = process.address();
    let version = wait_until_ready_within(address, "/version", READY_TIMEOUT * slowdown).await?;
    let startup_seconds = started.elapsed().as_secs_f64();
    Ok((
        RunningServer {
            address,
            base_url: process.base_url(),
            version,
            effective: effective_settings(address).await,
            latency_check: path.latency_check,
            path_style: PathStyle::Bare,
            container: None,
            process: Some(process),
            delay_proxy: path.delay_proxy,
            pooler,
        },
        startup_seconds,
    ))
}

/// Starts PgBouncer in front of the run's database for one server, and connects to its console.
async fn start_pooler(
    program: &std::path::Path,
    mode: PoolMode,
    configuration: &Configuration,
    processes_as: ProcessesVariable,
    database: &Database,
) -> Result<RunningPooler> {
    // In session mode every process's pool needs its own server connections. A peer started
    // without --processes runs its own default of workers, at most gunicorn's 2 x CPUs + 1.
    let processes = match (configuration.processes, processes_as, configuration.workers) {
        (Some(processes), _, _) => processes.get(),
        (None, ProcessesVariable::Processes | ProcessesVariable::None, _) => 1,
        (None, ProcessesVariable::Workers, Workers::Fixed(workers)) => workers.get(),
        (None, ProcessesVariable::Workers, Workers::OwnDefault) => {
            2 * bakeoff_core::config::available_cpus().get() + 1
        }
    };
    let pool_size = pooler::default_pool_size(mode, processes, configuration.db_pool_size);
    let (program, url) = (program.to_path_buf(), database.app_url.clone());
    let process =
        tokio::task::spawn_blocking(move || PgBouncer::start(&program, &url, mode, pool_size))
            .await
            .context("starting pgbouncer")??;
    let database_name = url::Url::parse(&database.app_url)
        .map(|url| url.path().trim_start_matches('/').to_string())
        .unwrap_or_default();
    let watch = PoolerWatch::connect(&process, &database_name)
        .await
        .ok()
        .map(std::sync::Arc::new);
    Ok(RunningPooler { process, watch })
}

async fn reach_target(target: &TargetSpec, session: &Session<'_>) -> Result<RunningServer> {
    let url = &target.url;
    let address = crate::harness::servers::url_address(url)?;
    if !address.ip().is_loopback() && !session.allow_remote {
        bail!("{url} is not a loopback address; add --allow-remote to load it");
    }
    let path_style = match target.paths {
        TargetPaths::Bare => PathStyle::Bare,
        TargetPaths::Slash => PathStyle::TrailingSlash,
        TargetPaths::Detect => detect_path_style(address).await,
    };
    let version = wait_until_ready(address, &path_style.apply("/version")).await?;
    let container = match session.containers {
        Some(containers) => containers.at_address(address.ip()).await,
        None => None,
    };
    Ok(RunningServer {
        address,
        base_url: url.to_string(),
        version,
        effective: effective_settings(address).await,
        latency_check: None,
        path_style,
        container,
        process: None,
        delay_proxy: None,
        pooler: None,
    })
}

/// A slash after every path when `/version` redirects (307 or 308, FastAPI's
/// `redirect_slashes`) and `/version/` answers 200; the contract's paths otherwise (a target
/// that is not up yet is waited for with them).
async fn detect_path_style(address: SocketAddr) -> PathStyle {
    let timeout = Duration::from_secs(2);
    match get_once(address, "/version", timeout).await {
        Ok((307 | 308, _)) => match get_once(address, "/version/", timeout).await {
            Ok((200, _)) => PathStyle::TrailingSlash,
            _ => PathStyle::Bare,
        },
        _ => PathStyle::Bare,
    }
}

/// Waits until `version_path` (`/version`, in the server's path style) answers 200; returns
/// its body.
pub async fn wait_until_ready(address: SocketAddr, version_path: &str) -> Result<Bytes> {
    wait_until_ready_within(address, version_path, READY_TIMEOUT).await
}

async fn wait_until_ready_within(
    address: SocketAddr,
    version_path: &str,
    ready_timeout: Duration,
) -> Result<Bytes> {
    let started = Instant::now();
    // A slowed server (under a wrapper) answers its first requests slowly too.
    let request_timeout = Duration::from_secs(2).max(ready_timeout / 8);
    loop {
        match get_once(address, version_path, request_timeout).await {
            Ok((200, body)) => return Ok(body),
            Ok((status, _)) if started.elapsed() > ready_timeout => {
                bail!("{address}/version answered {status}, not 200, for {ready_timeout:?}")
            }
            Err(kind) if started.elapsed() > ready_timeout => {
                bail!(
                    "{address}/version did not answer within {ready_timeout:?} ({})",
                    kind.name()
                )
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// `/test/resmon` now, when the server has it.
pub async fn resource_snapshot(address: SocketAddr) -> Option<ResourceSnapshot> {
    match get_once(address, RESMON_PATH, Duration::from_secs(10)).await {
        Ok((200, body)) => serde_json::from_slice(&body).ok(),
        _ => None,
    }
}

async fn effective_settings(address: SocketAddr) -> Option<EffectiveSettings> {
    let snapshot = resource_snapshot(address).await?;
    Some(EffectiveSettings {
        processes: snapshot.processes,
        workers: snapshot.workers,
        db_pool_size: snapshot.db_pool_size,
        db_recycle: snapshot.db_recycle,
    })
}

/// Checks a running server against the contract: byte for byte for a variant, whose statements
/// are counted where the database allows; by value for a target.
pub async fn check_contract(
    trial: &Trial,
    running: &RunningServer,
    session: &Session<'_>,
) -> Result<conformance::Report> {
    let (expectations_url, statement_counts, variant, exact_bytes) = match &trial.server {
        // A peer implements the contract byte for byte too, and answers its name in /version.
        ServerSpec::Variant(_) | ServerSpec::Peer(_) => {
            let database = session.database.context("a server needs a database")?;
            (
                database.admin_url.clone(),
                database.statement_counts(),
                Some(trial.server.name()),
                true,
            )
        }
        ServerSpec::Target(target) => {
            let url = match (&target.database_url, session.database) {
                (Some(url), _) => url.clone(),
                (None, Some(database)) => database.admin_url.clone(),
                (None, None) => bail!(
                    "verifying {} needs the database it serves: NAME=URL,DATABASE_URL",
                    target.name
                ),
            };
            (url, None, None, false)
        }
    };
    let workers = match trial.configuration.map(|c| c.workers) {
        Some(Workers::Fixed(count)) => Some(count.get()),
        _ => None,
    };
    conformance::verify(&conformance::Target {
        base_url: running.base_url.clone(),
        expectations_url,
        statement_counts,
        variant,
        workers,
        exact_bytes,
    })
    .await
    .context("running the conformance checks")
}

/// Stops a server the harness started with SIGTERM, and says how it exited (a slowed one, under
/// a wrapper, is given `slowdown` times longer beyond the contract's deadline).
async fn stop(running: RunningServer, slowdown: u32) -> Result<Option<Shutdown>> {
    let Some(process) = running.process else {
        return Ok(None);
    };
    let deadline = SHUTDOWN_DEADLINE + Duration::from_secs(2) * slowdown.max(1);
    let exit = tokio::task::spawn_blocking(move || process.terminate(deadline))
        .await
        .context("stopping the server")??;
    Ok(Some(Shutdown {
        clean: exit.is_clean(),
        exit_code: exit.code,
        killed: exit.killed,
        seconds: exit.elapsed.as_secs_f64(),
    }))
}

/// Whether [`drive`] checks each server against the contract before measuring it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// A server that fails is reported, not measured.
    Contract,
    /// The command checks what it needs itself (the study's endpoints).
    Skip,
}

/// What a trial came to: the record, and the command's measurement if it got that far.
pub struct Outcome<T> {
    pub record: ServerRecord,
    pub measured: Option<T>,
}

/// A server started (or reached) and verified, which a command may now measure.
pub struct Ready<'a> {
    pub trial: &'a Trial,
    pub server: RunningServer,
}

/// Runs every trial in turn: start, ready, verify, `measure`, stop. A trial that cannot run,
/// fails to start, fails verification or fails while measured is recorded as skipped with the
/// reason (and `say` prints it); the others go on.
pub async fn drive<T>(
    trials: &[Trial],
    session: &Session<'_>,
    verification: Verify,
    say: &dyn Fn(String),
    measure: impl AsyncFnMut(&Trial, &RunningServer) -> Result<T>,
) -> Vec<Outcome<T>> {
    drive_under(None, trials, session, verification, say, measure).await
}

/// [`drive`], each server started under `wrapper` when given (a target, which the harness does
/// not start, runs as it is).
pub async fn drive_under<T>(
    wrapper: Option<&Wrapper>,
    trials: &[Trial],
    session: &Session<'_>,
    verification: Verify,
    say: &dyn Fn(String),
    mut measure: impl AsyncFnMut(&Trial, &RunningServer) -> Result<T>,
) -> Vec<Outcome<T>> {
    let groups: Vec<Vec<usize>> = (0..trials.len()).map(|index| vec![index]).collect();
    drive_groups_under(
        wrapper,
        trials,
        &groups,
        session,
        verification,
        say,
        async |ready: &[Ready<'_>]| {
            let mut results = Vec::with_capacity(ready.len());
            for one in ready {
                results.push(measure(one.trial, &one.server).await);
            }
            results
        },
    )
    .await
}

/// Runs the trials a group at a time: every trial of the group is started and verified, then
/// `measure` gets all that are ready at once (so that it can interleave them) and answers one
/// result per server, in their order; then all of them are stopped. `groups` holds indexes into
/// `trials`; the outcomes come back in the order of `trials`. One server's failure is its own
/// result, as in [`drive`].
pub async fn drive_groups<T>(
    trials: &[Trial],
    groups: &[Vec<usize>],
    session: &Session<'_>,
    verification: Verify,
    say: &dyn Fn(String),
    measure: impl AsyncFnMut(&[Ready<'_>]) -> Vec<Result<T>>,
) -> Vec<Outcome<T>> {
    drive_groups_under(None, trials, groups, session, verification, say, measure).await
}

/// [`drive_groups`], each server started under `wrapper` when given.
async fn drive_groups_under<T>(
    wrapper: Option<&Wrapper>,
    trials: &[Trial],
    groups: &[Vec<usize>],
    session: &Session<'_>,
    verification: Verify,
    say: &dyn Fn(String),
    mut measure: impl AsyncFnMut(&[Ready<'_>]) -> Vec<Result<T>>,
) -> Vec<Outcome<T>> {
    let slowdown = wrapper.map_or(1, |wrapper| wrapper.slowdown);
    let mut outcomes: Vec<Option<Outcome<T>>> = (0..trials.len()).map(|_| None).collect();
    for group in groups {
        let mut records: Vec<(usize, ServerRecord)> = Vec::new();
        let mut ready: Vec<Ready<'_>> = Vec::new();
        let mut ready_records: Vec<usize> = Vec::new();
        for &index in group {
            let Some(trial) = trials.get(index) else {
                continue;
            };
            let mut record = new_record(trial);
            match prepare(trial, session, wrapper, verification, &mut record).await {
                Ok(Some(server)) => {
                    ready.push(Ready { trial, server });
                    ready_records.push(records.len());
                }
                Ok(None) => {}
                Err(error) => record.skipped = Some(format!("{error:#}")),
            }
            records.push((index, record));
        }
        let results = if ready.is_empty() {
            Vec::new()
        } else {
            measure(&ready).await
        };
        let mut values: Vec<Option<T>> = (0..records.len()).map(|_| None).collect();
        let mut results = results.into_iter();
        for (one, record_index) in ready.into_iter().zip(ready_records) {
            let record = &mut records[record_index].1;
            match results.next() {
                Some(Ok(value)) => values[record_index] = Some(value),
                Some(Err(error)) => record.skipped = Some(format!("run failed: {error:#}")),
                None => record.skipped = Some("run failed: no figures measured".to_string()),
            }
            // Stopped whatever happened: a server that failed its measurement still shows how
            // it exits on SIGTERM.
            match stop(one.server, slowdown).await {
                Ok(shutdown) => record.shutdown = shutdown,
                Err(error) => record.skipped = Some(format!("{error:#}")),
            }
        }
        for ((index, record), measured) in records.into_iter().zip(values) {
            if let Some(reason) = &record.skipped {
                say(format!("{}: not measured: {reason}", trials[index].label));
            }
            outcomes[index] = Some(Outcome { record, measured });
        }
    }
    outcomes
        .into_iter()
        .zip(trials)
        .map(|(outcome, trial)| {
            outcome.unwrap_or_else(|| {
                let mut record = new_record(trial);
                record.skipped = Some("in no group of the run".to_string());
                Outcome {
                    record,
                    measured: None,
                }
            })
        })
        .collect()
}

fn new_record(trial: &Trial) -> ServerRecord {
    let mut record = ServerRecord::new(
        trial.server.name(),
        trial.label.clone(),
        trial.server.kind(),
    );
    record.configuration = trial.configuration;
    record
}

/// Starts (or reaches) a trial's server and verifies it; `None` when it failed verification
/// (the record says why). A server that started and then failed is stopped here.
async fn prepare(
    trial: &Trial,
    session: &Session<'_>,
    wrapper: Option<&Wrapper>,
    verification: Verify,
    record: &mut ServerRecord,
) -> Result<Option<RunningServer>> {
    let slowdown = wrapper.map_or(1, |wrapper| wrapper.slowdown);
    let launch = trial.launch.clone().map_err(anyhow::Error::msg)?;
    let running = match (&trial.server, launch, &trial.configuration) {
        (ServerSpec::Target(target), _, _) => {
            let running = reach_target(target, session).await?;
            record.path_style = Some(running.path_style);
            record.container = running.container.as_ref().map(ContainerRecord::of);
            running
        }
        (_, Some(launch), Some(configuration)) => {
            let (running, startup_seconds) =
                start_server(launch, configuration, session, wrapper).await?;
            record.startup_seconds = Some(startup_seconds);
            running
        }
        (server, _, _) => bail!("{}: nothing to start it with", server.name()),
    };
    record.effective = running.effective.clone();
    record.latency_check = running.latency_check;
    record.pooler = running.pooler().map(|pooler| PoolerRecord {
        mode: pooler.mode,
        default_pool_size: pooler.default_pool_size,
        statements_setting: trial.statements_setting.map(str::to_string),
    });
    match verify(trial, session, verification, record, &running).await {
        Ok(true) => Ok(Some(running)),
        Ok(false) => {
            record.shutdown = stop(running, slowdown).await?;
            Ok(None)
        }
        Err(error) => {
            record.shutdown = stop(running, slowdown).await?;
            Err(error)
        }
    }
}

/// Checks the server against the contract when the command asks for it; whether it may be
/// measured (a lenient target is, whatever it deviates in).
async fn verify(
    trial: &Trial,
    session: &Session<'_>,
    verification: Verify,
    record: &mut ServerRecord,
    running: &RunningServer,
) -> Result<bool> {
    if verification == Verify::Skip {
        return Ok(true);
    }
    let report = check_contract(trial, running, session).await?;
    let lenient = matches!(
        &trial.server,
        ServerSpec::Target(target) if target.conformance == TargetConformance::Lenient
    );
    record.verification = Verification {
        ran: true,
        passed: report.passed(),
        checks: report.checks,
        failures: report.failures,
        lenient,
    };
    if !record.verification.passed && !lenient {
        record.skipped = Some(format!(
            "failed verification ({} of {} checks): {}",
            record.verification.failures.len(),
            record.verification.checks,
            record
                .verification
                .failures
                .first()
                .cloned()
                .unwrap_or_default()
        ));
        return Ok(false);
    }
    Ok(true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn launch(processes_as: ProcessesVariable) -> Result<Option<Launch>, String> {
        Ok(Some(Launch {
            program: PathBuf::from("/bin/true"),
            arguments: Vec::new(),
            processes_as,
            pooler: None,
            statements: None,
        }))
    }

    #[test]
    fn a_one_process_peer_is_not_applicable_above_one_process() {
        let dimensions = Dimensions::new(
            &crate::harness::settings::DimensionLists {
                processes: vec![NonZeroUsize::MIN, NonZeroUsize::new(2).unwrap()],
                ..Default::default()
            },
            NonZeroUsize::new(4).unwrap(),
        );
        let server = ServerSpec::Variant(crate::results::vocabulary::Variant::ActixDeadpool);
        let [one, two] = dimensions.configurations(&server)[..] else {
            panic!("expected two configurations");
        };
        let single = launch(ProcessesVariable::None);
        assert!(one_process_only(&single, &one).is_ok());
        let refused = one_process_only(&single, &two).unwrap_err();
        assert!(
            refused.starts_with("not applicable: serves from one process"),
            "{refused}"
        );
        for copies in [ProcessesVariable::Processes, ProcessesVariable::Workers] {
            assert!(one_process_only(&launch(copies), &two).is_ok());
        }
    }
}
