//! `bakeoff concurrency`: the second study (Flask under gunicorn against FastAPI under uvicorn)
//! reproduced over the Rust variants. For each server: calibrate the CPU workload so that one
//! request costs about T seconds, then for N = 1..=K send a burst of N identical requests at once
//! and time the last answer, for four workloads: CPU work inline in the handler, CPU work moved off
//! the serving threads, a non-blocking wait and a thread sleep in the handler. The servers' threads
//! and memory are read idle and during the largest burst.
//!
//! Against the reference lines T (every request served at once) and T x ceil(N / workers) (the
//! workers take the requests in waves), the bursts show which workloads a server serialises.
//! Servers are started, configured and stopped by the harness, as in `bakeoff run`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bakeoff_core::Iterations;
use bakeoff_core::resmon::ResourceSnapshot;
use bakeoff_core::workload::TimedBody;
use indicatif::{MultiProgress, ProgressDrawTarget};

use crate::burst;
use crate::format::human_duration;
use crate::harness::database::{Database, DatabaseKind};
use crate::harness::flags::{DatabaseArgs, DimensionArgs, ServerArgs, parse_duration};
use crate::harness::lifecycle::{
    self, Profile, RESMON_PATH, RunningServer, Session, Trial, Verify, resource_snapshot,
};
use crate::harness::record::ServerRecord;
use crate::harness::settings::Dimensions;
use crate::http1::get_once;
use crate::machine::{Machine, utc_now};
use crate::placement::{CpuList, Placement, allowed_cpus};
use crate::results::ResultsFile;
use crate::results::study::{
    BurstRun, CEILING_FACTOR, Calibration, FORMAT_VERSION, Peak, Point, StudyResults, StudyServer,
    StudySettings, Workload, WorkloadResult, ceiling,
};
use crate::stats::median;

/// The default K is 2 x CPUs + 2, but at most this: the worst case grows as K squared.
pub const DEFAULT_MAX_CONCURRENCY_CAP: usize = 12;
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
    /// R: bursts per point; the median is kept (default 3; 1 with --quick).
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
    seconds: f64,
    server_cpus: usize,
    max_concurrency: usize,
    repeat: usize,
    calibration_samples: usize,
    workloads: Vec<Workload>,
    placement: Placement,
    dimensions: Dimensions,
    profile: Profile,
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
            seconds,
            server_cpus,
            max_concurrency,
            repeat,
            calibration_samples,
            workloads,
            placement,
            dimensions: args.dimensions.dimensions(),
            profile: args.servers.profile(),
            allow_remote: args.servers.allow_remote,
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

    let count = trials.len();
    let (shortest, longest) = plan.estimate_per_server();
    let estimated = [shortest * count as f64, longest * count as f64];
    eprintln!(
        "concurrency study: T = {} s, N = 1..={}, {} run(s) per point, {} workload(s); {}",
        plan.seconds,
        plan.max_concurrency,
        plan.repeat,
        plan.workloads.len(),
        plan.placement.note
    );
    eprintln!(
        "estimated time for {count} server(s): {} if every burst is as short as one request, \
         at most {} if every burst is served one request at a time",
        human_duration(estimated[0]),
        human_duration(estimated[1])
    );

    // The /test endpoints do not read the database, but every variant needs one to start.
    let needs_database = trials.iter().any(|trial| {
        matches!(
            trial.server,
            crate::harness::servers::ServerSpec::Variant(_)
                | crate::harness::servers::ServerSpec::Peer(_)
        )
    });
    let database = if needs_database {
        let progress = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        Some(Database::prepare(database_choice, &progress).await?)
    } else {
        None
    };
    let machine = Machine::describe();
    let session = Session {
        placement: &plan.placement,
        database: database.as_ref(),
        dimensions: &plan.dimensions,
        allow_remote: plan.allow_remote,
        containers: None,
    };
    let say = |line: String| eprintln!("{line}");
    let outcomes = lifecycle::drive(
        &trials,
        &session,
        Verify::Skip,
        &say,
        async |trial: &Trial, server: &RunningServer| {
            eprintln!("{}: studying", trial.label);
            study_server(&trial.label, server, &plan).await
        },
    )
    .await;
    let servers: Vec<StudyServer> = outcomes
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
        .collect();

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
            dimensions: Some(plan.dimensions.clone()),
            workers: None,
            workloads: plan.workloads.clone(),
            ceiling_factor: CEILING_FACTOR,
            placement: plan.placement.clone(),
            server_cpus: plan.server_cpus,
            database: database.as_ref().map_or(DatabaseKind::None, |d| d.kind),
            profile: plan.profile.name().to_string(),
            estimated_seconds: estimated,
            elapsed_seconds: started.elapsed().as_secs_f64(),
        },
        servers,
    };
    let directory =
        crate::results::create_directory(&args.out, &format!("{directory_name}-concurrency"))?;
    results.write(&directory)?;
    crate::render::study_report::write(&results, &directory)?;
    println!("{}", crate::render::study_report::terminal(&results));
    println!("results: {}", directory.display());
    Ok(directory)
}

/// What the study measured of one server.
#[derive(Default)]
struct Study {
    notes: Vec<String>,
    idle: Option<ResourceSnapshot>,
    calibration: Option<Calibration>,
    workloads: Vec<WorkloadResult>,
}

/// Calibration, warm-up and every burst against a running server.
async fn study_server(name: &str, server: &RunningServer, plan: &Plan) -> Result<Study> {
    let (address, pid) = (server.address, server.pid());
    let mut result = Study::default();
    let quick_timeout = Duration::from_secs(10);
    result.idle = resource_snapshot(address).await;

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
                workload.to_string(),
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
            workload,
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
            Err(kind) => Some(kind.name().to_string()),
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
    if let Some(tree) = pid.and_then(crate::processes::read_tree) {
        return (i64::try_from(tree.threads).ok(), Some(tree.rss_bytes));
    }
    resource_snapshot(address)
        .await
        .map_or((None, None), |s| (Some(s.threads), Some(s.rss_bytes)))
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
        Some(Err(kind)) => (None, Some(kind.name().to_string())),
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
