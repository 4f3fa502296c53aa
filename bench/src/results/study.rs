//! The results of `bakeoff concurrency` as written to `concurrency.json`: per server its
//! calibration, every burst of every workload and the probe of the largest burst, so that
//! `bakeoff report` can render the study again.

use std::collections::BTreeMap;

use bakeoff_core::resmon::ResourceSnapshot;
use serde::{Deserialize, Serialize};

use crate::results::ResultsFile;
use crate::results::server::{EffectiveSettings, ServerRecord};
use crate::results::setup::{Dimensions, Machine, Placement};
use crate::results::vocabulary::{DatabaseKind, Workload};

/// Bumped when the shape of `concurrency.json` changes: 2 names workloads and server kinds as
/// enums and records each server's configuration (version 1 files are still read).
pub const FORMAT_VERSION: u32 = 3;
/// The file with every figure, in the results directory.
pub const RESULTS_FILE: &str = "concurrency.json";
/// A burst "keeps up" while it lasts at most this many times T.
pub const CEILING_FACTOR: f64 = 1.2;

impl std::fmt::Display for Workload {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&crate::names::name_of(self))
    }
}

impl Workload {
    /// Every workload, in the study's order.
    pub fn all() -> &'static [Workload] {
        <Workload as clap::ValueEnum>::value_variants()
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
            format!("/test/{self}/{iterations}")
        } else {
            format!("/test/{self}/{millis}")
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
    /// The dimensions the study covered (workers, pool sizes, connection checks); each server's
    /// own point is in its record. Absent in version 1 files, which had `workers` instead.
    #[serde(default)]
    pub dimensions: Option<Dimensions>,
    /// Version 1: WORKERS given to every variant; `None`: each variant's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    pub workloads: Vec<Workload>,
    /// A burst within this many times T keeps up.
    pub ceiling_factor: f64,
    pub placement: Placement,
    /// The CPUs the servers may use: CPU work of N requests of T needs at least N x T / CPUs.
    pub server_cpus: usize,
    pub database: DatabaseKind,
    /// The build profile of the server binaries.
    pub profile: String,
    /// The estimate printed before the study: every burst as short as one request, and every
    /// burst fully serialised.
    pub estimated_seconds: [f64; 2],
    pub elapsed_seconds: f64,
}

/// One server's study.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "StudyServerFile")]
pub struct StudyServer {
    #[serde(flatten)]
    pub record: ServerRecord,
    /// /test/resmon before the first burst.
    pub idle: Option<ResourceSnapshot>,
    pub calibration: Option<Calibration>,
    pub workloads: Vec<WorkloadResult>,
}

/// [`StudyServer`] as read from any version: version 1 kept the workers a server reported
/// (`workers`, copied from its `idle` /test/resmon answer) beside its record, where version 2
/// on keep that answer's settings in the record's `effective`.
#[derive(Deserialize)]
struct StudyServerFile {
    #[serde(flatten)]
    record: ServerRecord,
    idle: Option<ResourceSnapshot>,
    calibration: Option<Calibration>,
    workloads: Vec<WorkloadResult>,
    /// Version 1 only.
    #[serde(default)]
    workers: Option<usize>,
}

impl From<StudyServerFile> for StudyServer {
    fn from(file: StudyServerFile) -> StudyServer {
        let mut record = file.record;
        if record.effective.is_none()
            && let (Some(workers), Some(idle)) = (file.workers, &file.idle)
        {
            record.effective = Some(EffectiveSettings {
                processes: idle.processes,
                workers,
                db_pool_size: idle.db_pool_size,
                db_recycle: idle.db_recycle,
            });
        }
        StudyServer {
            record,
            idle: file.idle,
            calibration: file.calibration,
            workloads: file.workloads,
        }
    }
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
    pub workload: Workload,
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
    /// The round it ran in, and its place in the group's order of bursts (version 3: the
    /// repeats interleaved across servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<usize>,
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
    const OLDEST_FORMAT_VERSION: u32 = 1;
    const DESCRIPTION: &'static str = "bakeoff concurrency results file";
}

impl StudySettings {
    /// What every server was started with, in words (from the dimensions, or a version 1 file's
    /// `workers`).
    pub fn servers_line(&self) -> String {
        match (&self.dimensions, self.workers) {
            (Some(dimensions), _) => dimensions.describe(),
            (None, Some(workers)) => format!("WORKERS {workers} for every variant"),
            (None, None) => "WORKERS: each variant's default".to_string(),
        }
    }
}

impl StudyResults {
    /// The workloads studied, in the study's order.
    pub fn workloads(&self) -> Vec<Workload> {
        let mut workloads = self.settings.workloads.clone();
        workloads.sort();
        workloads.dedup();
        workloads
    }
}

impl StudyServer {
    pub fn workload(&self, workload: Workload) -> Option<&WorkloadResult> {
        self.workloads.iter().find(|w| w.workload == workload)
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

#[cfg(test)]
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
        // A missing N breaks the run: the ceiling is never guessed across a gap.
        assert_eq!(ceiling(&[point(1, 0.5), point(3, 0.5)], 0.6), 1);
    }

    #[test]
    fn workload_paths_and_names() {
        assert_eq!(
            Workload::SyncCpubound.path(49, 500),
            "/test/sync-cpubound/49"
        );
        assert_eq!(
            Workload::BlockingIobound.path(49, 500),
            "/test/blocking-iobound/500"
        );
        assert_eq!(Workload::OffloadCpubound.to_string(), "offload-cpubound");
        assert_eq!(Workload::all().len(), 4);
    }
}
