//! `bakeoff concurrency`: the second study (Flask under gunicorn against FastAPI under uvicorn)
//! reproduced over the Rust variants. For each server: calibrate the CPU workload so that one
//! request costs about T seconds, then for N = 1..=K send a burst of N identical requests at once
//! and time the last answer, for four workloads: CPU work inline in the handler, CPU work moved off
//! the serving threads, a non-blocking wait and a thread sleep in the handler. The servers' threads
//! and memory are read idle and during the largest burst.
//!
//! Against the reference lines T (every request served at once) and T x ceil(N / workers) (the
//! workers take the requests in waves), the bursts show which workloads a server serialises.
//! Servers are started, configured and stopped by the harness a group at a time, as in `bakeoff
//! run`, and the bursts of a group run in interleaved rounds (`measure::study`); this module only
//! turns the flags into a plan and the outcome into `concurrency.json` and the report.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;
use indicatif::{MultiProgress, ProgressDrawTarget};

use crate::format::human_duration;
use crate::harness::database::{Database, DatabaseChoice};
use crate::harness::flags::{DatabaseArgs, DimensionArgs, ServerArgs, parse_duration};
use crate::harness::lifecycle::{self, Ready, Session, Trial, Verify};
use crate::machine::utc_now;
use crate::measure::study::{PAUSE, Study, StudyPlan, study_group};
use crate::placement::allowed_cpus;
use crate::results::ResultsFile;
use crate::results::server::{BuildProfile, ServerRecord};
use crate::results::setup::{CpuList, Dimensions, Machine, Placement};
use crate::results::study::{
    CEILING_FACTOR, FORMAT_VERSION, StudyResults, StudyServer, StudySettings,
};
use crate::results::vocabulary::{DatabaseKind, Workload};

/// The default K is 2 x CPUs + 2, but at most this: the worst case grows as K squared.
pub const DEFAULT_MAX_CONCURRENCY_CAP: usize = 12;
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
--quick (K = 4, T = 100ms, R = 1) does one variant in well under a minute.")]
pub struct ConcurrencyArgs {
    #[command(flatten)]
    pub servers: ServerArgs,
    /// Workloads, comma-separated (default: all four).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub workloads: Vec<Workload>,
    /// T: the server work of one request, e.g. 500ms or 0.5 (seconds); default 500ms, 100ms with
    /// --quick. `--seconds` is the old spelling.
    #[arg(long, alias = "seconds", value_parser = parse_duration)]
    pub request_time: Option<Duration>,
    /// K: bursts go from 1 to K concurrent requests (default 2 x CPUs + 2, at most 12; 4 with
    /// --quick).
    #[arg(long)]
    pub max_concurrency: Option<usize>,
    /// R: rounds, each with one burst per point, interleaved across the servers; the median is
    /// kept (default 3; 1 with --quick).
    #[arg(long)]
    pub repeat: Option<usize>,
    /// Calls to /test/calibrate averaged per server (default 50, as the study; 10 with --quick).
    #[arg(long)]
    pub calibration_samples: Option<usize>,
    /// Small and fast: K = 4, T = 100ms, R = 1, 10 calibration calls.
    #[arg(long)]
    pub quick: bool,
    #[command(flatten)]
    pub dimensions: DimensionArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// CPUs of the servers, e.g. 0-1 (default: unpinned, every CPU: the study is about how the
    /// servers use the machine's CPUs).
    #[arg(long)]
    pub server_cpus: Option<CpuList>,
    /// Where results/<timestamp>-concurrency/ is created.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
}

/// What every server's study shares, resolved from the flags before anything starts.
#[derive(Debug, Clone)]
struct Plan {
    study: StudyPlan,
    server_cpus: usize,
    placement: Placement,
    dimensions: Dimensions,
    profile: BuildProfile,
    allow_remote: bool,
}

impl Plan {
    fn new(args: &ConcurrencyArgs) -> Result<Plan> {
        anyhow::ensure!(
            args.servers.container_cgroups.is_none(),
            "--container-cgroups: only `bakeoff run` reads containers' cgroups"
        );
        let server_cpus = args
            .server_cpus
            .as_ref()
            .map_or_else(|| allowed_cpus().len().max(1), CpuList::len);
        let seconds = args
            .request_time
            .map_or(if args.quick { 0.1 } else { 0.5 }, |time| {
                time.as_secs_f64()
            });
        anyhow::ensure!(
            (0.01..=10.0).contains(&seconds),
            "--request-time must be from 10ms to 10s"
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
        let workloads = crate::names::chosen_or_all(&args.workloads);
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
            study: StudyPlan {
                seconds,
                max_concurrency,
                repeat,
                calibration_samples,
                workloads,
                seed: args.database.seed,
            },
            server_cpus,
            placement,
            dimensions: args.dimensions.dimensions(),
            profile: args.servers.profile(),
            allow_remote: args.servers.allow_remote,
        })
    }

    /// The shortest and the longest the bursts of one server can take: every burst as short as
    /// one request, and every burst served one request at a time.
    fn estimate_per_server(&self) -> (f64, f64) {
        let study = &self.study;
        let k = study.max_concurrency as f64;
        let bursts = study.workloads.len() as f64 * study.repeat as f64;
        let pause = PAUSE.as_secs_f64();
        // The baseline times up to six requests of T.
        let overhead = OVERHEAD_PER_SERVER.as_secs_f64() + 6.0 * study.seconds;
        (
            overhead + bursts * k * (study.seconds + pause),
            overhead + bursts * (study.seconds * k * (k + 1.0) / 2.0 + k * pause),
        )
    }
}

/// Runs the study; returns the results directory.
pub async fn concurrency(args: ConcurrencyArgs, command_line: String) -> Result<PathBuf> {
    let started = Instant::now();
    let (started_at, directory_name) = utc_now();
    // Every flag is checked, and every binary looked up, before anything starts.
    let plan = Plan::new(&args)?;
    let servers = args.servers.servers()?;
    let database_choice = args.database.choice()?;
    let trials = lifecycle::trials(&servers, &plan.dimensions, plan.profile)?;
    for trial in trials.iter().filter(|trial| !trial.is_runnable()) {
        eprintln!(
            "{}: its binary is not built; it is reported, not studied",
            trial.label
        );
    }
    let estimated = announce(&plan, trials.len());

    let database = database_if_needed(&trials, database_choice).await?;
    let machine = Machine::describe();
    let servers = study_all(&plan, &trials, database.as_ref()).await;

    let (finished_at, _) = utc_now();
    let results = StudyResults {
        format_version: FORMAT_VERSION,
        started_at,
        finished_at,
        machine,
        settings: plan.settings(
            &args,
            command_line,
            database.as_ref(),
            estimated,
            started.elapsed().as_secs_f64(),
        ),
        servers,
    };
    write_results(&results, &args.out, &directory_name)
}

/// Prints what the study will do and how long it may take, before anything starts; returns
/// the estimate, shortest and longest, in seconds.
fn announce(plan: &Plan, count: usize) -> [f64; 2] {
    let (shortest, longest) = plan.estimate_per_server();
    let estimated = [shortest * count as f64, longest * count as f64];
    eprintln!(
        "concurrency study: T = {} s, N = 1..={}, {} run(s) per point, {} workload(s); {}",
        plan.study.seconds,
        plan.study.max_concurrency,
        plan.study.repeat,
        plan.study.workloads.len(),
        plan.placement.note
    );
    eprintln!(
        "estimated time for {count} server(s): {} if every burst is as short as one request, \
         at most {} if every burst is served one request at a time",
        human_duration(estimated[0]),
        human_duration(estimated[1])
    );
    estimated
}

/// The database, prepared only where a trial needs one: the /test endpoints do not read it,
/// but every variant needs one to start.
async fn database_if_needed(trials: &[Trial], choice: DatabaseChoice) -> Result<Option<Database>> {
    let needs_database = trials.iter().any(|trial| {
        matches!(
            trial.server,
            crate::harness::servers::ServerSpec::Variant(_)
                | crate::harness::servers::ServerSpec::Peer(_)
        )
    });
    if !needs_database {
        return Ok(None);
    }
    let progress = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    Ok(Some(Database::prepare(choice, &progress).await?))
}

/// Has the harness start each group in turn and studies it; returns every trial's server, its
/// study's notes added to its record.
async fn study_all(plan: &Plan, trials: &[Trial], database: Option<&Database>) -> Vec<StudyServer> {
    let session = Session {
        placement: &plan.placement,
        database,
        dimensions: &plan.dimensions,
        allow_remote: plan.allow_remote,
        containers: None,
    };
    let say = |line: String| eprintln!("{line}");
    let groups = lifecycle::groups(trials, &plan.dimensions);
    let outcomes = lifecycle::drive_groups(
        trials,
        &groups,
        &session,
        Verify::Skip,
        &say,
        async |ready: &[Ready<'_>]| {
            let servers: Vec<(&str, &lifecycle::RunningServer)> = ready
                .iter()
                .map(|one| (one.trial.label.as_str(), &one.server))
                .collect();
            study_group(&servers, &plan.study).await
        },
    )
    .await;
    outcomes
        .into_iter()
        .map(|outcome| {
            let Study {
                notes,
                idle,
                calibration,
                workloads,
            } = outcome.measured.unwrap_or_default();
            let mut record: ServerRecord = outcome.record;
            record.notes.extend(notes);
            StudyServer {
                record,
                idle,
                calibration,
                workloads,
            }
        })
        .collect()
}

impl Plan {
    /// What the results file says of the study's settings.
    fn settings(
        &self,
        args: &ConcurrencyArgs,
        command: String,
        database: Option<&Database>,
        estimated_seconds: [f64; 2],
        elapsed_seconds: f64,
    ) -> StudySettings {
        StudySettings {
            command,
            seconds: self.study.seconds,
            max_concurrency: self.study.max_concurrency,
            repeat: self.study.repeat,
            calibration_samples: self.study.calibration_samples,
            quick: args.quick,
            dimensions: Some(self.dimensions.clone()),
            workers: None,
            workloads: self.study.workloads.clone(),
            ceiling_factor: CEILING_FACTOR,
            placement: self.placement.clone(),
            server_cpus: self.server_cpus,
            database: database.map_or(DatabaseKind::None, |d| d.kind),
            profile: self.profile.name().to_string(),
            estimated_seconds,
            elapsed_seconds,
        }
    }
}

/// Writes `concurrency.json`, `report.md` and the charts into a new directory under `out`,
/// and prints the tables; returns the directory.
fn write_results(results: &StudyResults, out: &Path, directory_name: &str) -> Result<PathBuf> {
    let directory =
        crate::results::create_directory(out, &format!("{directory_name}-concurrency"))?;
    results.write(&directory)?;
    crate::render::study_report::write(results, &directory)?;
    println!("{}", crate::render::study_report::terminal(results));
    println!("results: {}", directory.display());
    Ok(directory)
}
