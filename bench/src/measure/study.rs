//! The concurrency study's measurement: each server warmed up and its CPU workload calibrated so
//! that one request costs about T, then, in interleaved rounds, bursts of N identical requests at
//! once for N = 1..=K and every workload. A round holds every (workload, N) block once, in an
//! order shuffled per round from the seed, with the servers of a block one after the other in a
//! shuffled order (`order::round_order`): a slow minute of the machine falls on every server
//! alike, as in `bakeoff run`. The servers' threads and memory are read idle and during the first
//! round's largest burst.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bakeoff_core::Iterations;
use bakeoff_core::resmon::ResourceSnapshot;
use bakeoff_core::workload::TimedBody;

use crate::burst;
use crate::harness::lifecycle::{RESMON_PATH, RunningServer, resource_snapshot};
use crate::http1::get_once;
use crate::order::round_order;
use crate::results::study::{
    BurstRun, CEILING_FACTOR, Calibration, Peak, Point, WorkloadResult, ceiling,
};
use crate::results::vocabulary::Workload;
use crate::stats::median;

/// Rest between bursts, so that one burst's stragglers never overlap the next.
pub const PAUSE: Duration = Duration::from_millis(100);

/// What the study does to each server, resolved from the flags.
#[derive(Debug, Clone)]
pub struct StudyPlan {
    /// T, in seconds.
    pub seconds: f64,
    /// K.
    pub max_concurrency: usize,
    /// R: rounds, each with one burst per point.
    pub repeat: usize,
    pub calibration_samples: usize,
    pub workloads: Vec<Workload>,
    /// Seeds the rounds' order.
    pub seed: u64,
}

impl StudyPlan {
    /// The path of each workload on a server with this calibration.
    fn path(&self, workload: Workload, calibration: &Calibration) -> String {
        workload.path(calibration.iterations, self.millis())
    }

    fn millis(&self) -> u64 {
        (self.seconds * 1_000.0).round() as u64
    }
}

/// What the study measured of one server.
#[derive(Default)]
pub struct Study {
    pub notes: Vec<String>,
    pub idle: Option<ResourceSnapshot>,
    pub calibration: Option<Calibration>,
    pub workloads: Vec<WorkloadResult>,
}

/// A server warmed up and calibrated, ready for its bursts.
struct Prepared<'a> {
    name: &'a str,
    server: &'a RunningServer,
    study: Study,
    calibration: Calibration,
    /// A request not answered within this is lost.
    timeout: Duration,
}

/// One burst of a round: which server, which workload, how many at once.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Burst {
    server: usize,
    workload: Workload,
    concurrency: usize,
}

/// Studies a group of running servers (`(label, server)`), interleaved; one result per server.
pub async fn study_group(
    servers: &[(&str, &RunningServer)],
    plan: &StudyPlan,
) -> Vec<Result<Study>> {
    let mut prepared: Vec<Result<Prepared<'_>>> = Vec::new();
    for &(name, server) in servers {
        eprintln!("{name}: warming up and calibrating");
        prepared.push(prepare(name, server, plan).await);
    }
    let mut runs: BTreeMap<(usize, Workload, usize), Vec<BurstRun>> = BTreeMap::new();
    let mut peaks: BTreeMap<(usize, Workload), Peak> = BTreeMap::new();
    let mut failed: Vec<Option<anyhow::Error>> = servers.iter().map(|_| None).collect();
    let mut sequence = 0;
    for round in 0..plan.repeat {
        let blocks: Vec<Vec<Burst>> = plan
            .workloads
            .iter()
            .flat_map(|&workload| {
                (1..=plan.max_concurrency).map(move |concurrency| (workload, concurrency))
            })
            .map(|(workload, concurrency)| {
                (0..servers.len())
                    .map(|server| Burst {
                        server,
                        workload,
                        concurrency,
                    })
                    .collect()
            })
            .collect();
        for burst in round_order(blocks, plan.seed, 0x5eed_0003, round) {
            let Some(Ok(ready)) = prepared.get(burst.server) else {
                continue;
            };
            if failed[burst.server].is_some() {
                continue;
            }
            match one_burst(ready, burst, round == 0, plan).await {
                Ok((mut run, peak)) => {
                    run.round = Some(round);
                    run.sequence = Some(sequence);
                    sequence += 1;
                    if let Some(peak) = peak {
                        peaks.insert((burst.server, burst.workload), peak);
                    }
                    runs.entry((burst.server, burst.workload, burst.concurrency))
                        .or_default()
                        .push(run);
                }
                Err(error) => failed[burst.server] = Some(error),
            }
            tokio::time::sleep(PAUSE).await;
        }
    }
    prepared
        .into_iter()
        .zip(failed)
        .enumerate()
        .map(|(index, (ready, failure))| {
            let ready = ready?;
            if let Some(error) = failure {
                return Err(error);
            }
            Ok(finish(index, ready, plan, &mut runs, &mut peaks))
        })
        .collect()
}

/// One burst; the first round's burst at the largest N carries the probe, in the middle of the
/// first wave of work.
async fn one_burst(
    ready: &Prepared<'_>,
    burst: Burst,
    first_round: bool,
    plan: &StudyPlan,
) -> Result<(BurstRun, Option<Peak>)> {
    let (address, pid) = (ready.server.address, ready.server.pid());
    let probed = burst.concurrency == plan.max_concurrency && first_round;
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
        path: plan.path(burst.workload, &ready.calibration),
        concurrency: burst.concurrency,
        timeout: ready.timeout,
        probe,
    })
    .await?;
    let peak = outcome
        .probe
        .as_ref()
        .map(|seen| peak_of(burst.concurrency, plan.seconds / 2.0, before, seen));
    Ok((burst_run(&outcome), peak))
}

/// A server's points from its bursts of every round, printed as the study's lines.
fn finish(
    server: usize,
    ready: Prepared<'_>,
    plan: &StudyPlan,
    runs: &mut BTreeMap<(usize, Workload, usize), Vec<BurstRun>>,
    peaks: &mut BTreeMap<(usize, Workload), Peak>,
) -> Study {
    let Prepared {
        name,
        mut study,
        calibration,
        ..
    } = ready;
    for &workload in &plan.workloads {
        let mut points = Vec::new();
        for concurrency in 1..=plan.max_concurrency {
            let runs = runs
                .remove(&(server, workload, concurrency))
                .unwrap_or_default();
            let point = Point::of(concurrency, runs);
            eprintln!("{}", point_line(name, workload, &point));
            points.push(point);
        }
        study.workloads.push(WorkloadResult {
            workload,
            path: plan.path(workload, &calibration),
            ceiling: ceiling(&points, CEILING_FACTOR * plan.seconds),
            points,
            peak: peaks.remove(&(server, workload)),
        });
    }
    study.calibration = Some(calibration);
    study
}

fn point_line(name: &str, workload: Workload, point: &Point) -> String {
    let failures: usize = point
        .runs
        .iter()
        .flat_map(|run| run.failures.values())
        .sum();
    let seconds: Vec<String> = point
        .runs
        .iter()
        .map(|run| format!("{:.3}", run.seconds))
        .collect();
    format!(
        "{name:<22} {:<17} N={:<3} {:>7.3} s{}{}",
        workload.to_string(),
        point.concurrency,
        point.median_seconds,
        if seconds.len() > 1 {
            format!("  ({})", seconds.join(", "))
        } else {
            String::new()
        },
        if failures > 0 {
            format!("  {failures} request(s) failed")
        } else {
            String::new()
        }
    )
}

/// Warm-up and calibration of one server.
async fn prepare<'a>(
    name: &'a str,
    server: &'a RunningServer,
    plan: &StudyPlan,
) -> Result<Prepared<'a>> {
    let address = server.address;
    let mut study = Study {
        idle: resource_snapshot(address).await,
        ..Study::default()
    };
    warm_up(name, address, plan, &mut study.notes).await?;
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
    Ok(Prepared {
        name,
        server,
        study,
        calibration,
        timeout,
    })
}

/// A burst of cheap requests of each workload first: code paths, every thread of the pools and
/// their memory are warm before anything is timed.
async fn warm_up(
    name: &str,
    address: SocketAddr,
    plan: &StudyPlan,
    notes: &mut Vec<String>,
) -> Result<()> {
    for workload in &plan.workloads {
        let outcome = burst::run(&burst::BurstSpec {
            address,
            path: workload.path(1, 1),
            concurrency: plan.max_concurrency,
            timeout: Duration::from_secs(10),
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
            notes.push(note);
        }
    }
    Ok(())
}

/// The study's calibration: the mean of the server-side durations of one iteration, then the
/// baseline of the iterations it gives, corrected once when it is more than a tenth off T.
async fn calibrate(address: SocketAddr, plan: &StudyPlan) -> Result<Calibration> {
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
        round: None,
        sequence: None,
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

impl Point {
    /// The point of `concurrency` from its bursts.
    pub fn of(concurrency: usize, runs: Vec<BurstRun>) -> Point {
        let seconds: Vec<f64> = runs.iter().map(|run| run.seconds).collect();
        let server: Vec<f64> = runs.iter().filter_map(|r| r.server_seconds_mean).collect();
        Point {
            concurrency,
            median_seconds: median(&seconds),
            median_server_seconds: (!server.is_empty()).then(|| median(&server)),
            runs,
        }
    }
}
