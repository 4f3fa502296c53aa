//! `bakeoff concurrency`: the second study (Flask under gunicorn against FastAPI under uvicorn)
//! reproduced over the Rust variants. For each server: calibrate the CPU workload so that one
//! request costs about T seconds, then for N = 1..=K send a burst of N identical requests at once
//! and time the last answer, for four workloads: CPU work inline in the handler, CPU work moved off
//! the serving threads, a non-blocking wait and a thread sleep in the handler. The servers' threads
//! and memory are read idle and during the largest burst.
//!
//! Against the reference lines T (every request served at once) and T x ceil(N / workers) (the
//! workers take the requests in waves), the bursts show which workloads a server serialises.

pub mod burst;
pub mod charts;
pub mod report;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bakeoff_core::Iterations;
use bakeoff_core::config::{ENV_VARS, SHUTDOWN_DEADLINE};
use bakeoff_core::resmon::ResourceSnapshot;
use bakeoff_core::workload::TimedBody;
use bakeoff_testkit::postgres::LocalPostgres;
use bakeoff_testkit::server::{ServerProcess, workspace_binary};
use serde::{Deserialize, Serialize};

use crate::engine::get_once;
use crate::machine::{Machine, utc_now};
use crate::placement::{CpuList, Placement, allowed_cpus};
use crate::results::ResultsFile;
use crate::run::{TargetSpec, wait_until_ready};
use crate::variants::{VARIANTS, is_known};

/// Bumped when the shape of `concurrency.json` changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;
/// The file with every figure, in the results directory.
pub const RESULTS_FILE: &str = "concurrency.json";
/// A burst "keeps up" while it lasts at most this many times T.
pub const CEILING_FACTOR: f64 = 1.2;
/// The default K is 2 x CPUs + 2, but at most this: the worst case grows as K squared.
pub const DEFAULT_MAX_CONCURRENCY_CAP: usize = 12;
/// Where the probe asks for the server's own figures.
const RESMON_PATH: &str = "/test/resmon";
/// Rest between bursts, so that one burst's stragglers never overlap the next.
const PAUSE: Duration = Duration::from_millis(100);
/// What starting, calibrating and warming up one server costs, for the estimate.
const OVERHEAD_PER_SERVER: Duration = Duration::from_secs(3);

/// The options of `bakeoff concurrency`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Time: each point is a burst lasting from T (all N requests served at once) to N x T (one at a \
time), so one workload costs between R x K x T and R x T x K(K+1)/2. The defaults (T = 0.5 s, \
K = 2 x CPUs + 2 capped at 12, R = 3) keep the whole study over the four variants to about 6 \
minutes on 2 CPUs (3 at best, 9 at the very worst); the estimate is printed before anything \
starts. \
--quick (K = 4, T = 0.1 s, R = 1) does one variant in well under a minute.")]
pub struct ConcurrencyArgs {
    /// Variants to study, comma-separated (default: every variant in bench/src/variants.rs).
    #[arg(long, value_delimiter = ',')]
    pub variants: Vec<String>,
    /// Workloads, comma-separated (default: all four).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub workloads: Vec<Workload>,
    /// T: the server work of one request, in seconds (default 0.5; 0.1 with --quick).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// K: bursts go from 1 to K concurrent requests (default 2 x CPUs + 2, at most 12; 4 with
    /// --quick).
    #[arg(long)]
    pub max_concurrency: Option<usize>,
    /// R: bursts per point; the median is kept (default 3; 1 with --quick).
    #[arg(long)]
    pub repeat: Option<usize>,
    /// Calls to /test/calibrate averaged per server (default 50, as the study; 10 with --quick).
    #[arg(long)]
    pub calibration_samples: Option<usize>,
    /// WORKERS for every variant; `--workers 1` is the study's single-worker case (default: each
    /// variant's own default).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Small and fast: K = 4, T = 0.1 s, R = 1, 10 calibration calls.
    #[arg(long)]
    pub quick: bool,
    /// Also study a running server that implements the contract's /test endpoints: NAME=URL.
    #[arg(long = "target", value_name = "NAME=URL", value_parser = TargetSpec::parse)]
    pub targets: Vec<TargetSpec>,
    /// The database the variants are given (default: a throwaway PostgreSQL; the /test endpoints
    /// do not read it, but every server needs one).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// CPUs of the servers, e.g. 0-1 (default: unpinned, every CPU: the study is about how the
    /// servers use the machine's CPUs).
    #[arg(long)]
    pub server_cpus: Option<CpuList>,
    /// Run the debug builds of the servers instead of the release builds.
    #[arg(long)]
    pub debug: bool,
    /// Where results/<timestamp>-concurrency/ is created.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Allow targets that are not on a loopback address.
    #[arg(long)]
    pub allow_remote: bool,
}

/// The four workloads of the study.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Workload {
    /// CPU work inline in the handler, on a request-serving thread.
    SyncCpubound,
    /// The same CPU work moved off the request-serving threads.
    OffloadCpubound,
    /// A non-blocking wait of T.
    AsyncIobound,
    /// A thread sleep of T inside the handler.
    BlockingIobound,
}

impl Workload {
    pub const ALL: [Workload; 4] = [
        Workload::SyncCpubound,
        Workload::OffloadCpubound,
        Workload::AsyncIobound,
        Workload::BlockingIobound,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::SyncCpubound => "sync-cpubound",
            Workload::OffloadCpubound => "offload-cpubound",
            Workload::AsyncIobound => "async-iobound",
            Workload::BlockingIobound => "blocking-iobound",
        }
    }

    pub fn from_name(name: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == name)
    }

    /// What the workload does, in a few words, for reports.
    pub fn description(self) -> &'static str {
        match self {
            Workload::SyncCpubound => "CPU work inline in the handler",
            Workload::OffloadCpubound => "CPU work off the request-serving threads",
            Workload::AsyncIobound => "non-blocking wait of T",
            Workload::BlockingIobound => "thread sleep of T inside the handler",
        }
    }

    pub fn is_cpu(self) -> bool {
        matches!(self, Workload::SyncCpubound | Workload::OffloadCpubound)
    }

    /// The request path: iterations for the CPU workloads, milliseconds for the waits.
    pub fn path(self, iterations: u32, millis: u64) -> String {
        if self.is_cpu() {
            format!("/test/{}/{iterations}", self.name())
        } else {
            format!("/test/{}/{millis}", self.name())
        }
    }
}

/// Everything `concurrency.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StudyResults {
    pub format_version: u32,
    pub started_at: String,
    pub finished_at: String,
    pub machine: Machine,
    pub settings: StudySettings,
    pub servers: Vec<StudyServer>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StudySettings {
    /// The command line, as typed.
    pub command: String,
    /// T, in seconds.
    pub seconds: f64,
    /// K.
    pub max_concurrency: usize,
    /// R.
    pub repeat: usize,
    pub calibration_samples: usize,
    pub quick: bool,
    /// WORKERS given to every variant; `None`: each variant's default.
    pub workers: Option<usize>,
    pub workloads: Vec<String>,
    /// A burst within this many times T keeps up.
    pub ceiling_factor: f64,
    pub placement: Placement,
    /// The CPUs the servers may use: CPU work of N requests of T needs at least N x T / CPUs.
    pub server_cpus: usize,
    /// `throwaway`, `external` (DATABASE_URL) or `none` (targets only).
    pub database: String,
    /// The build profile of the server binaries.
    pub profile: String,
    /// The estimate printed before the study: every burst as short as one request, and every
    /// burst fully serialised.
    pub estimated_seconds: [f64; 2],
    pub elapsed_seconds: f64,
}

/// One server's study.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StudyServer {
    pub name: String,
    /// `variant` (started by the study) or `target` (already running).
    pub kind: String,
    /// Why it was not studied.
    pub skipped: Option<String>,
    /// What went wrong on the way without stopping the study (a failed warm-up request).
    #[serde(default)]
    pub notes: Vec<String>,
    /// The workers it reports in /test/resmon.
    pub workers: Option<usize>,
    /// /test/resmon before the first burst.
    pub idle: Option<ResourceSnapshot>,
    pub calibration: Option<Calibration>,
    pub workloads: Vec<WorkloadResult>,
}

/// The study's calibration and baseline: the average of the calls to `/test/calibrate` gives the
/// iterations for T, and one request of those iterations is then timed. A single iteration timed
/// alone is not what the same iteration costs in a loop (fresh memory, cold caches), so when the
/// baseline is more than a tenth off T the iterations are corrected once by the ratio.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Calibration {
    pub samples: usize,
    /// Mean server-side duration of one iteration.
    pub mean_seconds: f64,
    pub min_seconds: f64,
    pub max_seconds: f64,
    /// T / mean, as the study derived it.
    pub calibrated_iterations: u32,
    /// Server-side duration of one request of `calibrated_iterations` (median of 3): the study's
    /// baseline.
    pub calibrated_baseline_seconds: f64,
    /// The iterations the bursts ask for.
    pub iterations: u32,
    /// Server-side duration of one request of `iterations` (median of 3): the CPU work of one
    /// request of the CPU workloads.
    pub work_seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkloadResult {
    pub workload: String,
    /// The path every burst asked for.
    pub path: String,
    pub points: Vec<Point>,
    /// The largest N such that every burst up to N lasted at most CEILING_FACTOR x T (0 when
    /// even one request took longer).
    pub ceiling: usize,
    /// The probe during the first burst at the largest N.
    pub peak: Option<Peak>,
}

/// One N: its bursts and their median.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Point {
    pub concurrency: usize,
    pub runs: Vec<BurstRun>,
    /// The median burst time over the runs (the upper one of two).
    pub median_seconds: f64,
    /// The median over the runs of the server-side time per request (each run's mean).
    #[serde(default)]
    pub median_server_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BurstRun {
    /// From the release to the last answer.
    pub seconds: f64,
    /// From the release to the first answer.
    pub first_seconds: f64,
    /// Answers with status 200 and a well-formed body.
    pub ok: usize,
    /// Everything else, by kind: `status-503`, `timeout`, `body`, ...
    pub failures: BTreeMap<String, usize>,
    /// The time each request took inside the server (its `result`), averaged over the answers:
    /// it stays at T when requests queue, and grows when they share the CPUs.
    #[serde(default)]
    pub server_seconds_mean: Option<f64>,
    #[serde(default)]
    pub server_seconds_max: Option<f64>,
}

/// The server while the largest burst was in flight.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Peak {
    pub concurrency: usize,
    /// Seconds after the release.
    pub at_seconds: f64,
    /// Just before the burst: a pool that grew in an earlier workload may still hold its threads.
    pub threads_before: Option<i64>,
    pub rss_before_bytes: Option<u64>,
    /// From /proc, for servers the study started.
    pub threads: Option<i64>,
    pub rss_bytes: Option<u64>,
    /// /test/resmon asked at that moment...
    pub resmon: Option<ResourceSnapshot>,
    /// ... and how long it took to answer while the burst was in flight.
    pub resmon_answered_after: Option<f64>,
    pub resmon_error: Option<String>,
}

impl Peak {
    /// Threads during the burst: /proc when read, else /test/resmon's figure.
    pub fn threads(&self) -> Option<i64> {
        self.threads
            .or_else(|| self.resmon.as_ref().map(|snapshot| snapshot.threads))
    }

    pub fn rss_bytes(&self) -> Option<u64> {
        self.rss_bytes
            .or_else(|| self.resmon.as_ref().map(|snapshot| snapshot.rss_bytes))
    }
}

impl ResultsFile for StudyResults {
    const FILE_NAME: &'static str = RESULTS_FILE;
    const FORMAT_VERSION: u32 = FORMAT_VERSION;
    const DESCRIPTION: &'static str = "bakeoff concurrency results file";

    fn format_version(&self) -> u32 {
        self.format_version
    }
}

impl StudyResults {
    /// The workloads studied, in the study's order.
    pub fn workloads(&self) -> Vec<Workload> {
        let mut workloads: Vec<Workload> = self
            .settings
            .workloads
            .iter()
            .filter_map(|name| Workload::from_name(name))
            .collect();
        workloads.sort();
        workloads.dedup();
        workloads
    }
}

impl StudyServer {
    pub fn workload(&self, workload: Workload) -> Option<&WorkloadResult> {
        self.workloads
            .iter()
            .find(|w| w.workload == workload.name())
    }
}

/// The largest N such that every median up to N is within `limit` seconds.
pub fn ceiling(points: &[Point], limit: f64) -> usize {
    let mut ceiling = 0;
    for point in points {
        if point.concurrency != ceiling + 1 || point.median_seconds > limit {
            break;
        }
        ceiling = point.concurrency;
    }
    ceiling
}

/// The median of some figures (the upper one of an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

/// What every server's study shares.
#[derive(Debug, Clone)]
struct Plan {
    seconds: f64,
    server_cpus: usize,
    max_concurrency: usize,
    repeat: usize,
    calibration_samples: usize,
    workloads: Vec<Workload>,
    placement: Placement,
    args: ConcurrencyArgs,
}

impl Plan {
    fn new(args: &ConcurrencyArgs) -> Result<Plan> {
        let server_cpus = args
            .server_cpus
            .as_ref()
            .map_or_else(|| allowed_cpus().len().max(1), CpuList::len);
        let seconds = args.seconds.unwrap_or(if args.quick { 0.1 } else { 0.5 });
        anyhow::ensure!(
            (0.01..=10.0).contains(&seconds),
            "--seconds must be from 0.01 to 10"
        );
        let max_concurrency = args.max_concurrency.unwrap_or(if args.quick {
            4
        } else {
            (2 * server_cpus + 2).min(DEFAULT_MAX_CONCURRENCY_CAP)
        });
        anyhow::ensure!(
            (1..=256).contains(&max_concurrency),
            "--max-concurrency must be from 1 to 256"
        );
        let repeat = args.repeat.unwrap_or(if args.quick { 1 } else { 3 });
        anyhow::ensure!((1..=20).contains(&repeat), "--repeat must be from 1 to 20");
        let calibration_samples =
            args.calibration_samples
                .unwrap_or(if args.quick { 10 } else { 50 });
        anyhow::ensure!(
            (1..=1_000).contains(&calibration_samples),
            "--calibration-samples must be from 1 to 1000"
        );
        if let Some(workers) = args.workers {
            anyhow::ensure!(workers >= 1, "--workers must be at least 1");
        }
        let mut workloads = if args.workloads.is_empty() {
            Workload::ALL.to_vec()
        } else {
            args.workloads.clone()
        };
        workloads.sort();
        workloads.dedup();
        let placement = Placement {
            note: match &args.server_cpus {
                Some(cpus) => format!(
                    "servers pinned to CPU {cpus}; the burst client and PostgreSQL unpinned"
                ),
                None => "nothing pinned: the servers may use every CPU, and the burst client \
                         is idle while it waits"
                    .to_string(),
            },
            server_cpus: args.server_cpus.clone(),
            engine_cpus: None,
            engine_threads: 1,
        };
        Ok(Plan {
            seconds,
            server_cpus,
            max_concurrency,
            repeat,
            calibration_samples,
            workloads,
            placement,
            args: args.clone(),
        })
    }

    /// The shortest and the longest the bursts of one server can take: every burst as short as
    /// one request, and every burst served one request at a time.
    fn estimate_per_server(&self) -> (f64, f64) {
        let k = self.max_concurrency as f64;
        let bursts = self.workloads.len() as f64 * self.repeat as f64;
        let pause = PAUSE.as_secs_f64();
        // The baseline times up to six requests of T.
        let overhead = OVERHEAD_PER_SERVER.as_secs_f64() + 6.0 * self.seconds;
        (
            overhead + bursts * k * (self.seconds + pause),
            overhead + bursts * (self.seconds * k * (k + 1.0) / 2.0 + k * pause),
        )
    }

    /// The path of each workload on a server with this calibration.
    fn path(&self, workload: Workload, calibration: &Calibration) -> String {
        workload.path(calibration.iterations, self.millis())
    }

    fn millis(&self) -> u64 {
        (self.seconds * 1_000.0).round() as u64
    }
}

/// `1 min 05 s`, `42.0 s`.
pub fn human_duration(seconds: f64) -> String {
    if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else {
        let whole = seconds.round() as u64;
        format!("{} min {:02} s", whole / 60, whole % 60)
    }
}

/// The database handed to the variants.
struct Database {
    /// Kept alive for the study; stopped and removed on drop.
    _throwaway: Option<LocalPostgres>,
    url: String,
    kind: &'static str,
}

async fn prepare_database(args: &ConcurrencyArgs) -> Result<Database> {
    match &args.database_url {
        Some(url) => Ok(Database {
            _throwaway: None,
            url: url.clone(),
            kind: "external",
        }),
        None => {
            eprintln!("starting a throwaway PostgreSQL (the variants need one to start)");
            let postgres = LocalPostgres::start_throwaway()
                .await
                .context("starting a throwaway PostgreSQL (or set DATABASE_URL)")?;
            Ok(Database {
                url: postgres.app_url(),
                kind: "throwaway",
                _throwaway: Some(postgres),
            })
        }
    }
}

fn selected_variants(args: &ConcurrencyArgs) -> Result<Vec<String>> {
    if args.variants.is_empty() {
        return Ok(VARIANTS.iter().map(ToString::to_string).collect());
    }
    if let Some(name) = args.variants.iter().find(|name| !is_known(name)) {
        bail!(
            "{name:?} is not a variant; the variants are {} (a running server can be added with --target NAME=URL)",
            VARIANTS.join(", ")
        );
    }
    Ok(args.variants.clone())
}

fn not_studied(name: &str, kind: &str, reason: String) -> StudyServer {
    StudyServer {
        name: name.to_string(),
        kind: kind.to_string(),
        skipped: Some(reason),
        notes: Vec::new(),
        workers: None,
        idle: None,
        calibration: None,
        workloads: Vec::new(),
    }
}

/// Runs the study; returns the results directory.
pub async fn concurrency(args: ConcurrencyArgs, command_line: String) -> Result<PathBuf> {
    let started = Instant::now();
    let (started_at, directory_name) = utc_now();
    let plan = Plan::new(&args)?;

    let mut servers: Vec<StudyServer> = Vec::new();
    let mut runnable: Vec<(String, PathBuf)> = Vec::new();
    for name in selected_variants(&args)? {
        match workspace_binary(&name, !args.debug) {
            Ok(path) => runnable.push((name, path)),
            Err(error) => {
                eprintln!("skipping {name}: {error:#}");
                servers.push(not_studied(&name, "variant", format!("{error:#}")));
            }
        }
    }
    if runnable.is_empty() && args.targets.is_empty() {
        bail!(
            "no server to study: none of the selected variants is built; build them with `cargo build --release --workspace`"
        );
    }

    let count = runnable.len() + args.targets.len();
    let (shortest, longest) = plan.estimate_per_server();
    let estimated = [shortest * count as f64, longest * count as f64];
    eprintln!(
        "concurrency study: T = {} s, N = 1..={}, {} run(s) per point, {} workload(s), WORKERS {}; {}",
        plan.seconds,
        plan.max_concurrency,
        plan.repeat,
        plan.workloads.len(),
        args.workers.map_or_else(
            || "as each variant's default".to_string(),
            |w| format!("= {w}")
        ),
        plan.placement.note
    );
    eprintln!(
        "estimated time for {count} server(s): {} if every burst is as short as one request, \
         at most {} if every burst is served one request at a time",
        human_duration(estimated[0]),
        human_duration(estimated[1])
    );

    let database = if runnable.is_empty() {
        None
    } else {
        Some(prepare_database(&args).await?)
    };
    let machine = Machine::describe();

    for (name, binary) in &runnable {
        let url = database
            .as_ref()
            .map(|d| d.url.as_str())
            .unwrap_or_default();
        let result = study_variant(name, binary, &plan, url)
            .await
            .unwrap_or_else(|error| not_studied(name, "variant", format!("{error:#}")));
        if let Some(reason) = &result.skipped {
            eprintln!("{name}: {reason}");
        }
        servers.push(result);
    }
    for target in &args.targets {
        let result = study_target(target, &plan)
            .await
            .unwrap_or_else(|error| not_studied(&target.name, "target", format!("{error:#}")));
        if let Some(reason) = &result.skipped {
            eprintln!("{}: {reason}", target.name);
        }
        servers.push(result);
    }

    let (finished_at, _) = utc_now();
    let results = StudyResults {
        format_version: FORMAT_VERSION,
        started_at,
        finished_at,
        machine,
        settings: StudySettings {
            command: command_line,
            seconds: plan.seconds,
            max_concurrency: plan.max_concurrency,
            repeat: plan.repeat,
            calibration_samples: plan.calibration_samples,
            quick: args.quick,
            workers: args.workers,
            workloads: plan
                .workloads
                .iter()
                .map(|w| w.name().to_string())
                .collect(),
            ceiling_factor: CEILING_FACTOR,
            placement: plan.placement.clone(),
            server_cpus: plan.server_cpus,
            database: database.as_ref().map_or("none", |d| d.kind).to_string(),
            profile: if args.debug { "debug" } else { "release" }.to_string(),
            estimated_seconds: estimated,
            elapsed_seconds: started.elapsed().as_secs_f64(),
        },
        servers,
    };
    let directory =
        crate::results::create_directory(&args.out, &format!("{directory_name}-concurrency"))?;
    report::write(&results, &directory)?;
    println!("{}", report::terminal(&results));
    println!("results: {}", directory.display());
    Ok(directory)
}

/// Starts a variant, studies it, and stops it with SIGTERM.
async fn study_variant(
    name: &str,
    binary: &Path,
    plan: &Plan,
    database_url: &str,
) -> Result<StudyServer> {
    let mut command = plan.placement.server_command(binary);
    for variable in ENV_VARS {
        command.env_remove(variable);
    }
    command
        .env("DATABASE_URL", database_url)
        .env("BIND", "127.0.0.1:0")
        .env("RUST_LOG", "error");
    if let Some(workers) = plan.args.workers {
        command.env("WORKERS", workers.to_string());
    }
    eprintln!("{name}: starting");
    let server = tokio::task::spawn_blocking(move || ServerProcess::spawn(command))
        .await
        .context("starting the server")??;
    // From here the server is killed on every way out (ServerProcess kills on drop).
    wait_until_ready(server.address()).await?;
    let result = study_server(name, "variant", server.address(), Some(server.pid()), plan).await;
    let deadline = SHUTDOWN_DEADLINE + Duration::from_secs(2);
    let exit = tokio::task::spawn_blocking(move || server.terminate(deadline))
        .await
        .context("stopping the server")??;
    if !exit.is_clean() {
        eprintln!("{name}: did not stop cleanly on SIGTERM ({exit:?})");
    }
    result
}

async fn study_target(target: &TargetSpec, plan: &Plan) -> Result<StudyServer> {
    let address = target.address()?;
    if !address.ip().is_loopback() && !plan.args.allow_remote {
        bail!(
            "{} is not a loopback address; add --allow-remote to study it",
            target.url
        );
    }
    wait_until_ready(address).await?;
    study_server(&target.name, "target", address, None, plan).await
}

/// Calibration, warm-up and every burst against a running server.
async fn study_server(
    name: &str,
    kind: &str,
    address: SocketAddr,
    pid: Option<u32>,
    plan: &Plan,
) -> Result<StudyServer> {
    let mut result = not_studied(name, kind, String::new());
    result.skipped = None;
    let quick_timeout = Duration::from_secs(10);

    result.idle = match get_once(address, RESMON_PATH, quick_timeout).await {
        Ok((200, body)) => serde_json::from_slice::<ResourceSnapshot>(&body).ok(),
        _ => None,
    };
    result.workers = result.idle.as_ref().map(|snapshot| snapshot.workers);

    // A burst of cheap requests of each workload first: code paths, every thread of the pools
    // and their memory are warm before anything is timed.
    for workload in &plan.workloads {
        let outcome = burst::run(&burst::BurstSpec {
            address,
            path: workload.path(1, 1),
            concurrency: plan.max_concurrency,
            timeout: quick_timeout,
            probe: None,
        })
        .await?;
        let run = burst_run(&outcome);
        if run.ok == 0 {
            bail!(
                "{} failed during the warm-up: {:?}",
                workload.path(1, 1),
                run.failures
            );
        }
        if !run.failures.is_empty() {
            // Worth knowing, but the bursts record their own failures: the study goes on.
            let note = format!(
                "warm-up: {} of {} concurrent requests to {} failed: {:?}",
                outcome.answers.len() - run.ok,
                outcome.answers.len(),
                workload.path(1, 1),
                run.failures
            );
            eprintln!("{name}: {note}");
            result.notes.push(note);
        }
    }

    let calibration = calibrate(address, plan).await?;
    eprintln!(
        "{name}: average of {} - duration of one iteration: {:.6} seconds; {} iterations for {} s \
         took {:.3} s in one request",
        calibration.samples,
        calibration.mean_seconds,
        calibration.calibrated_iterations,
        plan.seconds,
        calibration.calibrated_baseline_seconds
    );
    if calibration.iterations != calibration.calibrated_iterations {
        eprintln!(
            "{name}: corrected to {} iterations, which took {:.3} s",
            calibration.iterations, calibration.work_seconds
        );
    }
    // The slowest a burst can be is every request one after another; twice that, plus slack,
    // before a request counts as lost.
    let longest_request = calibration.work_seconds.max(plan.seconds);
    let timeout =
        Duration::from_secs_f64(2.0 * longest_request * plan.max_concurrency as f64 + 5.0);

    for &workload in &plan.workloads {
        let path = plan.path(workload, &calibration);
        let mut points = Vec::new();
        let mut peak = None;
        for concurrency in 1..=plan.max_concurrency {
            let mut runs = Vec::new();
            for repeat in 0..plan.repeat {
                // The first burst at the largest N carries the probe, in the middle of the
                // first wave of work.
                let probed = concurrency == plan.max_concurrency && repeat == 0;
                let before = if probed {
                    resources_now(address, pid).await
                } else {
                    (None, None)
                };
                let probe = probed.then(|| burst::Probe {
                    after: Duration::from_secs_f64(plan.seconds / 2.0),
                    path: Some(RESMON_PATH.to_string()),
                    pid,
                });
                let outcome = burst::run(&burst::BurstSpec {
                    address,
                    path: path.clone(),
                    concurrency,
                    timeout,
                    probe,
                })
                .await?;
                if let Some(seen) = &outcome.probe {
                    peak = Some(peak_of(concurrency, plan.seconds / 2.0, before, seen));
                }
                runs.push(burst_run(&outcome));
                tokio::time::sleep(PAUSE).await;
            }
            let seconds: Vec<f64> = runs.iter().map(|run| run.seconds).collect();
            let server: Vec<f64> = runs.iter().filter_map(|r| r.server_seconds_mean).collect();
            let point = Point {
                concurrency,
                median_seconds: median(&seconds),
                median_server_seconds: (!server.is_empty()).then(|| median(&server)),
                runs,
            };
            let failures: usize = point
                .runs
                .iter()
                .flat_map(|run| run.failures.values())
                .sum();
            eprintln!(
                "{name:<22} {:<17} N={concurrency:<3} {:>7.3} s{}{}",
                workload.name(),
                point.median_seconds,
                if plan.repeat > 1 {
                    format!(
                        "  ({})",
                        seconds
                            .iter()
                            .map(|s| format!("{s:.3}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                } else {
                    String::new()
                },
                if failures > 0 {
                    format!("  {failures} request(s) failed")
                } else {
                    String::new()
                }
            );
            points.push(point);
        }
        result.workloads.push(WorkloadResult {
            workload: workload.name().to_string(),
            path,
            ceiling: ceiling(&points, CEILING_FACTOR * plan.seconds),
            points,
            peak,
        });
    }
    result.calibration = Some(calibration);
    Ok(result)
}

/// The study's calibration: the mean of the server-side durations of one iteration, then the
/// baseline of the iterations it gives, corrected once when it is more than a tenth off T.
async fn calibrate(address: SocketAddr, plan: &Plan) -> Result<Calibration> {
    let mut durations = Vec::with_capacity(plan.calibration_samples);
    for _ in 0..plan.calibration_samples {
        durations.push(timed(address, "/test/calibrate").await?);
    }
    let mean = durations.iter().sum::<f64>() / durations.len().max(1) as f64;
    anyhow::ensure!(
        mean > 0.0,
        "/test/calibrate reports no time for one iteration"
    );
    let for_t = |per_iteration: f64| {
        ((plan.seconds / per_iteration).round() as u32).clamp(Iterations::MIN, Iterations::MAX)
    };
    let calibrated_iterations = for_t(mean);
    let calibrated_baseline = baseline(address, calibrated_iterations).await?;
    let (iterations, work_seconds) =
        if (calibrated_baseline - plan.seconds).abs() > 0.1 * plan.seconds {
            let corrected = for_t(calibrated_baseline / f64::from(calibrated_iterations));
            (corrected, baseline(address, corrected).await?)
        } else {
            (calibrated_iterations, calibrated_baseline)
        };
    Ok(Calibration {
        samples: durations.len(),
        mean_seconds: mean,
        min_seconds: durations.iter().copied().fold(f64::INFINITY, f64::min),
        max_seconds: durations.iter().copied().fold(0.0, f64::max),
        calibrated_iterations,
        calibrated_baseline_seconds: calibrated_baseline,
        iterations,
        work_seconds,
    })
}

/// The median server-side duration of three requests of `iterations` in a row.
async fn baseline(address: SocketAddr, iterations: u32) -> Result<f64> {
    let path = Workload::SyncCpubound.path(iterations, 0);
    let mut durations = Vec::with_capacity(3);
    for _ in 0..3 {
        durations.push(timed(address, &path).await?);
    }
    Ok(median(&durations))
}

/// The `result` (server-side seconds) of one request to a timed endpoint.
async fn timed(address: SocketAddr, path: &str) -> Result<f64> {
    let (status, body) = get_once(address, path, Duration::from_secs(60))
        .await
        .map_err(|kind| anyhow::anyhow!("{path} failed ({})", kind.name()))?;
    anyhow::ensure!(status == 200, "{path} answered {status}");
    let body: TimedBody = serde_json::from_slice(&body)
        .with_context(|| format!("{path}'s answer is not a timed body"))?;
    Ok(body.result)
}

fn burst_run(outcome: &burst::BurstOutcome) -> BurstRun {
    let mut failures = BTreeMap::new();
    let mut server_seconds = Vec::new();
    for answer in &outcome.answers {
        let failure = match &answer.result {
            Ok((200, body)) => match serde_json::from_slice::<TimedBody>(body) {
                Ok(timed) => {
                    server_seconds.push(timed.result);
                    None
                }
                Err(_) => Some("body".to_string()),
            },
            Ok((status, _)) => Some(format!("status-{status}")),
            Err(kind) => Some(kind.name()),
        };
        if let Some(kind) = failure {
            *failures.entry(kind).or_insert(0) += 1;
        }
    }
    let count = server_seconds.len();
    BurstRun {
        seconds: outcome.seconds,
        first_seconds: outcome.first_seconds(),
        ok: count,
        failures,
        server_seconds_mean: (count > 0).then(|| server_seconds.iter().sum::<f64>() / count as f64),
        server_seconds_max: server_seconds.iter().copied().reduce(f64::max),
    }
}

/// Threads and resident bytes now: from /proc for a local process, else from /test/resmon.
async fn resources_now(address: SocketAddr, pid: Option<u32>) -> (Option<i64>, Option<u64>) {
    if let Some((threads, rss)) = pid.and_then(burst::read_process) {
        return (Some(threads), Some(rss));
    }
    match get_once(address, RESMON_PATH, Duration::from_secs(10)).await {
        Ok((200, body)) => serde_json::from_slice::<ResourceSnapshot>(&body)
            .map_or((None, None), |s| (Some(s.threads), Some(s.rss_bytes))),
        _ => (None, None),
    }
}

fn peak_of(
    concurrency: usize,
    at_seconds: f64,
    (threads_before, rss_before_bytes): (Option<i64>, Option<u64>),
    seen: &burst::ProbeOutcome,
) -> Peak {
    let (resmon, resmon_error) = match &seen.answer {
        Some(Ok((200, body))) => match serde_json::from_slice::<ResourceSnapshot>(body) {
            Ok(snapshot) => (Some(snapshot), None),
            Err(error) => (None, Some(format!("unreadable body: {error}"))),
        },
        Some(Ok((status, _))) => (None, Some(format!("status {status}"))),
        Some(Err(kind)) => (None, Some(kind.name())),
        None => (None, None),
    };
    Peak {
        concurrency,
        at_seconds,
        threads_before,
        rss_before_bytes,
        threads: seen.threads,
        rss_bytes: seen.rss_bytes,
        resmon,
        resmon_answered_after: seen.answered_after,
        resmon_error,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn point(concurrency: usize, seconds: f64) -> Point {
        Point {
            concurrency,
            runs: Vec::new(),
            median_seconds: seconds,
            median_server_seconds: None,
        }
    }

    #[test]
    fn the_ceiling_is_the_last_n_of_an_unbroken_run_within_the_limit() {
        let points = [point(1, 0.5), point(2, 0.55), point(3, 1.0), point(4, 0.5)];
        assert_eq!(ceiling(&points, 0.6), 2);
        assert_eq!(ceiling(&points[..2], 0.6), 2);
        assert_eq!(ceiling(&[point(1, 0.7)], 0.6), 0);
        assert_eq!(ceiling(&[], 0.6), 0);
    }

    #[test]
    fn medians_and_paths() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0]), 2.0);
        assert_eq!(
            Workload::SyncCpubound.path(49, 500),
            "/test/sync-cpubound/49"
        );
        assert_eq!(
            Workload::BlockingIobound.path(49, 500),
            "/test/blocking-iobound/500"
        );
        assert_eq!(
            Workload::from_name("offload-cpubound"),
            Some(Workload::OffloadCpubound)
        );
        assert_eq!(human_duration(42.04), "42.0 s");
        assert_eq!(human_duration(125.0), "2 min 05 s");
    }
}
