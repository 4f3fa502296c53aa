//! Faults under load: a step a command runs beside the load engine during one cell, so that how a
//! server rides out a database outage is a measured figure like its throughput.
//!
//! - `db-restart`: PostgreSQL stopped with a fast shutdown (connections closed) and started
//!   again after the fault's length.
//! - `db-stall`: every process of the cluster (the postmaster and its children) stopped with
//!   SIGSTOP and resumed with SIGCONT: the database hangs instead of refusing, as on a network
//!   partition.
//! - `backend-kill`: the servers' own connections terminated with `pg_terminate_backend`, at the
//!   start and then every [`KILL_EVERY`] until the fault's length is over (a failover, an
//!   idle-connection reaper; `for=0s` kills once).
//!
//! The first two need the cluster the run owns; whatever happens (an error, Ctrl-C dropping the
//! run), a guard resumes or restarts PostgreSQL when the step ends. [`FaultFigures::of`] reads
//! the recovery from the cell's series.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bakeoff_testkit::postgres::LocalPostgres;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::engine::{ErrorKind, Series};
use crate::harness::database::{Database, DatabaseChoice};

/// When a fault starts in the measured window, and how long it lasts, unless told.
pub const DEFAULT_AT: Duration = Duration::from_secs(3);
pub const DEFAULT_LENGTH: Duration = Duration::from_secs(2);
/// The contract gives a server 2 s to serve again once the database is back; a fault cell must
/// go on at least that long after the fault.
pub const RECOVERY_ALLOWANCE: Duration = Duration::from_secs(2);
/// A fault starts at least this far into the window, so the throughput before it is known.
pub const MIN_AT: Duration = Duration::from_secs(1);
/// How often `backend-kill` terminates the servers' connections during its window.
pub const KILL_EVERY: Duration = Duration::from_millis(250);
/// Throughput is back when it reaches this share of its level before the fault ...
pub const RECOVERED_SHARE: f64 = 0.9;
/// ... averaged over this many intervals (half a second at 100 ms), so one lucky interval does
/// not count as recovery.
const RECOVERY_WINDOW_INTERVALS: usize = 5;

/// What is done to the database.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// PostgreSQL stopped (fast shutdown) and started again.
    DbRestart,
    /// Every PostgreSQL process stopped (SIGSTOP), then resumed (SIGCONT).
    DbStall,
    /// The servers' connections terminated with pg_terminate_backend.
    BackendKill,
}

impl FaultKind {
    pub fn name(self) -> String {
        crate::names::name_of(&self)
    }

    /// Whether the fault stops or pauses the cluster itself, which only a run that started it
    /// may do.
    pub fn needs_owned_cluster(self) -> bool {
        matches!(self, FaultKind::DbRestart | FaultKind::DbStall)
    }

    /// In words, for the report.
    pub fn description(self) -> &'static str {
        match self {
            FaultKind::DbRestart => "PostgreSQL stopped (fast shutdown) and started again",
            FaultKind::DbStall => {
                "every PostgreSQL process stopped with SIGSTOP, then resumed with SIGCONT"
            }
            FaultKind::BackendKill => {
                "the servers' connections terminated with pg_terminate_backend, again every 250 ms during the window"
            }
        }
    }
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.name())
    }
}

/// One `--fault`: what, when in the window, for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultSpec {
    pub kind: FaultKind,
    pub at: Duration,
    pub length: Duration,
}

impl FaultSpec {
    /// Parses `KIND` or `KIND:at=3s,for=2s` (either setting may be left out).
    pub fn parse(text: &str) -> Result<FaultSpec, String> {
        let (kind_text, settings) = match text.split_once(':') {
            Some((kind, settings)) => (kind, Some(settings)),
            None => (text, None),
        };
        let kind =
            <FaultKind as clap::ValueEnum>::from_str(kind_text.trim(), false).map_err(|_| {
                format!(
                    "unknown fault {kind_text:?}; the faults are db-restart, db-stall, backend-kill"
                )
            })?;
        let mut spec = FaultSpec {
            kind,
            at: DEFAULT_AT,
            length: DEFAULT_LENGTH,
        };
        for setting in settings.into_iter().flat_map(|s| s.split(',')) {
            let (name, value) = setting
                .split_once('=')
                .ok_or_else(|| format!("{setting:?} is not at=DURATION or for=DURATION"))?;
            let value = crate::harness::flags::parse_duration(value)?;
            match name.trim() {
                "at" => spec.at = value,
                "for" => spec.length = value,
                other => return Err(format!("unknown fault setting {other:?}; use at= and for=")),
            }
        }
        Ok(spec)
    }

    /// The label of its cells: `db-restart at 3s for 2s`.
    pub fn label(&self) -> String {
        format!(
            "{} at {} for {}",
            self.kind,
            seconds_text(self.at),
            seconds_text(self.length)
        )
    }
}

fn seconds_text(duration: Duration) -> String {
    format!("{}s", duration.as_secs_f64())
}

/// Checks the faults of a run before anything starts: each fits in a cell of `duration` with
/// time to recover after it, and those that stop or pause the cluster have one the run owns.
pub fn check(faults: &[FaultSpec], duration: Duration, database: &DatabaseChoice) -> Result<()> {
    for fault in faults {
        anyhow::ensure!(
            fault.at >= MIN_AT,
            "--fault {}: at= must be at least {}s, so that the throughput before the fault is measured",
            fault.label(),
            MIN_AT.as_secs()
        );
        let needed = fault.at + fault.length + RECOVERY_ALLOWANCE;
        anyhow::ensure!(
            needed <= duration,
            "--fault {}: the fault and the {} s the contract allows for recovery need a cell of {} s, longer than --duration {} s",
            fault.label(),
            RECOVERY_ALLOWANCE.as_secs(),
            needed.as_secs_f64(),
            duration.as_secs_f64()
        );
        if fault.kind.needs_owned_cluster() && matches!(database, DatabaseChoice::External { .. }) {
            bail!(
                "--fault {}: stopping or pausing PostgreSQL needs the run's own throwaway cluster, not an external database (DATABASE_URL); unset it, or use backend-kill",
                fault.kind
            );
        }
    }
    Ok(())
}

/// When the fault began and when the database was back (for a restart: accepting connections
/// again; for a stall: resumed; for backend-kill: the last termination).
#[derive(Debug, Clone, Copy)]
pub struct FaultTimes {
    pub started: Instant,
    pub returned: Instant,
}

/// Runs `fault` against `database`: waits its `at` (from the call, which is when the cell's load
/// starts), does it, undoes it after its length. Run it beside the engine; the guard inside puts
/// PostgreSQL back even if this future is dropped half-way.
pub async fn inject(fault: &FaultSpec, database: &Database) -> Result<FaultTimes> {
    let begin = Instant::now() + fault.at;
    match fault.kind {
        FaultKind::DbRestart => {
            let cluster = owned(database, fault.kind)?;
            tokio::time::sleep_until(begin.into()).await;
            let mut guard = RestartGuard {
                cluster: Some(Arc::clone(&cluster)),
            };
            let started = Instant::now();
            on_cluster(&cluster, LocalPostgres::stop)
                .await
                .context("stopping PostgreSQL")?;
            tokio::time::sleep_until((started + fault.length).into()).await;
            guard.cluster = None;
            on_cluster(&cluster, LocalPostgres::start)
                .await
                .context("starting PostgreSQL again")?;
            Ok(FaultTimes {
                started,
                returned: Instant::now(),
            })
        }
        FaultKind::DbStall => {
            let cluster = owned(database, fault.kind)?;
            tokio::time::sleep_until(begin.into()).await;
            let postmaster = postmaster_pid(&cluster)?;
            let processes: Vec<Pid> = crate::processes::tree_pids(postmaster)
                .into_iter()
                .map(Pid::from_raw)
                .collect();
            anyhow::ensure!(!processes.is_empty(), "PostgreSQL's processes are gone");
            let mut guard = StallGuard {
                stopped: Vec::new(),
            };
            let started = Instant::now();
            // The postmaster first, so that it forks no process the list does not hold.
            for &pid in &processes {
                if kill(pid, Signal::SIGSTOP).is_ok() {
                    guard.stopped.push(pid);
                }
            }
            tokio::time::sleep_until((started + fault.length).into()).await;
            guard.resume();
            Ok(FaultTimes {
                started,
                returned: Instant::now(),
            })
        }
        FaultKind::BackendKill => {
            let admin = bakeoff_testkit::connect(&database.admin_url)
                .await
                .context("connecting to terminate the servers' connections")?;
            tokio::time::sleep_until(begin.into()).await;
            let started = Instant::now();
            loop {
                let killed_at = Instant::now();
                admin
                    .execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE usename = $1 AND datname = current_database() \
                           AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
                        &[&database.role],
                    )
                    .await
                    .context("terminating the servers' connections")?;
                if killed_at + KILL_EVERY > started + fault.length {
                    return Ok(FaultTimes {
                        started,
                        returned: killed_at,
                    });
                }
                tokio::time::sleep_until((killed_at + KILL_EVERY).into()).await;
            }
        }
    }
}

fn owned(database: &Database, kind: FaultKind) -> Result<Arc<Mutex<LocalPostgres>>> {
    database
        .owned_cluster()
        .with_context(|| format!("the fault {kind} needs the run's own throwaway PostgreSQL"))
}

/// Runs a blocking step on the cluster (stop, start) off the async threads.
async fn on_cluster(
    cluster: &Arc<Mutex<LocalPostgres>>,
    step: fn(&mut LocalPostgres) -> Result<()>,
) -> Result<()> {
    let cluster = Arc::clone(cluster);
    tokio::task::spawn_blocking(move || {
        let mut postgres = cluster
            .lock()
            .map_err(|_| anyhow::anyhow!("the cluster's lock was poisoned"))?;
        step(&mut postgres)
    })
    .await
    .context("the cluster step stopped")?
}

/// The postmaster's process id, from the first line of `postmaster.pid` in its data directory.
fn postmaster_pid(cluster: &Arc<Mutex<LocalPostgres>>) -> Result<u32> {
    let data_directory = cluster
        .lock()
        .map_err(|_| anyhow::anyhow!("the cluster's lock was poisoned"))?
        .cluster()
        .data_directory()
        .to_path_buf();
    let path = data_directory.join("postmaster.pid");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .next()
        .and_then(|line| line.trim().parse().ok())
        .with_context(|| format!("{} does not start with a process id", path.display()))
}

/// Starts PostgreSQL again when a restart fault ends before it did (an error, Ctrl-C).
struct RestartGuard {
    /// Set while the cluster is stopped by the fault.
    cluster: Option<Arc<Mutex<LocalPostgres>>>,
}

impl Drop for RestartGuard {
    fn drop(&mut self) {
        let Some(cluster) = self.cluster.take() else {
            return;
        };
        let started = cluster.lock().map(|mut postgres| postgres.start());
        if !matches!(started, Ok(Ok(()))) {
            eprintln!("warning: PostgreSQL could not be started again after a db-restart fault");
        }
    }
}

/// Resumes every process a stall fault stopped, whatever ends the fault.
struct StallGuard {
    stopped: Vec<Pid>,
}

impl StallGuard {
    fn resume(&mut self) {
        for pid in self.stopped.drain(..) {
            let _ = kill(pid, Signal::SIGCONT);
        }
    }
}

impl Drop for StallGuard {
    fn drop(&mut self) {
        self.resume();
    }
}

/// A fault cell's fault: what was asked, when it happened, and what the server made of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    pub kind: FaultKind,
    /// As asked: seconds into the window, and length.
    pub at_seconds: f64,
    pub for_seconds: f64,
    /// As it happened, in seconds from the window's start: the fault began, the database was
    /// back.
    pub started_seconds: f64,
    pub returned_seconds: f64,
    pub figures: FaultFigures,
}

/// How a server rode out a fault, read from its cell's totals and series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultFigures {
    /// Requests that failed over the whole cell: anything but a 2xx or a 503 with
    /// `Retry-After` (connection errors, timeouts, resets, 500s, 503s without it, wrong bodies).
    pub failed: u64,
    /// The failures by kind.
    pub failed_by_kind: BTreeMap<String, u64>,
    /// 503 answers with `Retry-After` over the cell: the contract's "come back later".
    pub unavailable: u64,
    /// The longest answer from the fault's start until throughput was back (or the cell's end),
    /// in milliseconds.
    pub longest_ms: f64,
    /// 2xx answers per second before the fault.
    pub before_ok_per_second: f64,
    /// From the database's return to the end of the first interval with a 2xx answer, in
    /// seconds; `None` if none came.
    pub first_ok_after_seconds: Option<f64>,
    /// From the database's return to the end of the first interval from which throughput
    /// averaged at least 90 % of `before_ok_per_second`; `None`: never recovered in the cell.
    pub recovered_after_seconds: Option<f64>,
}

impl FaultFigures {
    /// The figures of a cell whose failures by kind are `errors` and whose series is `series`,
    /// for a fault between `started_seconds` and `returned_seconds` of its window.
    pub fn of(
        errors: &BTreeMap<String, u64>,
        series: &Series,
        started_seconds: f64,
        returned_seconds: f64,
    ) -> FaultFigures {
        let accepted = ErrorKind::Status(503).name();
        let failed_by_kind: BTreeMap<String, u64> = errors
            .iter()
            .filter(|(kind, _)| **kind != accepted)
            .map(|(kind, count)| (kind.clone(), *count))
            .collect();
        let interval = series.interval_ms as f64 / 1_000.0;
        let intervals = &series.intervals;
        // A hair over, so that 0.3 s / 0.1 s is interval 3 and not 2.999...
        let index_at = |seconds: f64| (seconds / interval + 1e-9).floor().max(0.0) as usize;
        // Only whole intervals before the fault count towards the level before it.
        let before: Vec<u64> = intervals
            .iter()
            .take(index_at(started_seconds).min(intervals.len()))
            .map(|figures| figures.ok)
            .collect();
        let before_per_interval = if before.is_empty() {
            0.0
        } else {
            before.iter().sum::<u64>() as f64 / before.len() as f64
        };
        let returned_index = index_at(returned_seconds);
        let after_return =
            |index: usize| ((index + 1) as f64 * interval - returned_seconds).max(0.0);
        let first_ok = (returned_index..intervals.len()).find(|&index| intervals[index].ok > 0);
        let recovered = (returned_index..intervals.len()).find(|&index| {
            let window =
                &intervals[index..(index + RECOVERY_WINDOW_INTERVALS).min(intervals.len())];
            let mean = window.iter().map(|f| f.ok).sum::<u64>() as f64 / window.len() as f64;
            mean > 0.0 && mean >= RECOVERED_SHARE * before_per_interval
        });
        let fault_index = index_at(started_seconds).min(intervals.len());
        let until = recovered.map_or(intervals.len(), |index| (index + 1).min(intervals.len()));
        let longest_us = intervals
            .get(fault_index..until)
            .unwrap_or_default()
            .iter()
            .map(|figures| figures.max_us)
            .max()
            .unwrap_or(0);
        FaultFigures {
            failed: failed_by_kind.values().sum(),
            failed_by_kind,
            unavailable: errors.get(&accepted).copied().unwrap_or(0),
            longest_ms: longest_us as f64 / 1_000.0,
            before_ok_per_second: before_per_interval / interval,
            first_ok_after_seconds: first_ok.map(after_return),
            recovered_after_seconds: recovered.map(after_return),
        }
    }

    pub fn recovered(&self) -> bool {
        self.recovered_after_seconds.is_some()
    }
}

impl FaultRecord {
    /// The record of `fault` as it happened (`times`, placed against the engine's
    /// `window_start`), with the figures of the cell's `errors` and `series`.
    pub fn of(
        fault: &FaultSpec,
        times: &FaultTimes,
        window_start: Instant,
        errors: &BTreeMap<String, u64>,
        series: &Series,
    ) -> FaultRecord {
        let offset = |at: Instant| signed_seconds(at, window_start);
        let started_seconds = offset(times.started);
        let returned_seconds = offset(times.returned);
        FaultRecord {
            kind: fault.kind,
            at_seconds: fault.at.as_secs_f64(),
            for_seconds: fault.length.as_secs_f64(),
            started_seconds,
            returned_seconds,
            figures: FaultFigures::of(errors, series, started_seconds, returned_seconds),
        }
    }
}

fn signed_seconds(at: Instant, origin: Instant) -> f64 {
    if at >= origin {
        at.duration_since(origin).as_secs_f64()
    } else {
        -origin.duration_since(at).as_secs_f64()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::engine::IntervalFigures;

    #[test]
    fn faults_parse_with_or_without_their_window() {
        assert_eq!(
            FaultSpec::parse("db-stall").unwrap(),
            FaultSpec {
                kind: FaultKind::DbStall,
                at: DEFAULT_AT,
                length: DEFAULT_LENGTH
            }
        );
        assert_eq!(
            FaultSpec::parse("db-restart:at=1500ms,for=1s").unwrap(),
            FaultSpec {
                kind: FaultKind::DbRestart,
                at: Duration::from_millis(1_500),
                length: Duration::from_secs(1)
            }
        );
        assert_eq!(
            FaultSpec::parse("backend-kill:for=0").unwrap().length,
            Duration::ZERO
        );
        assert!(
            FaultSpec::parse("db-melt")
                .unwrap_err()
                .contains("unknown fault \"db-melt\"")
        );
        assert!(FaultSpec::parse("db-stall:after=1s").is_err());
        assert!(FaultSpec::parse("db-stall:at=soon").is_err());
    }

    #[test]
    fn a_fault_must_fit_its_cell_and_own_its_cluster() {
        let throwaway = DatabaseChoice::Throwaway { data: None };
        let external = DatabaseChoice::External {
            url: "postgres://x@127.0.0.1/db".into(),
            data: None,
        };
        let fault = FaultSpec::parse("db-restart").unwrap();
        assert!(check(&[fault], Duration::from_secs(7), &throwaway).is_ok());
        let long = check(&[fault], Duration::from_secs(6), &throwaway).unwrap_err();
        assert!(
            long.to_string().contains("longer than --duration 6 s"),
            "{long}"
        );
        let foreign = check(&[fault], Duration::from_secs(10), &external).unwrap_err();
        assert!(
            foreign.to_string().contains("external database"),
            "{foreign}"
        );
        let kill = FaultSpec::parse("backend-kill").unwrap();
        assert!(check(&[kill], Duration::from_secs(10), &external).is_ok());
        let early = FaultSpec::parse("db-stall:at=0s").unwrap();
        assert!(check(&[early], Duration::from_secs(10), &throwaway).is_err());
    }

    fn interval(ok: u64, unavailable: u64, max_us: u64) -> IntervalFigures {
        IntervalFigures {
            ok,
            unavailable,
            max_us,
            ..IntervalFigures::default()
        }
    }

    #[test]
    fn recovery_is_read_from_the_series() {
        // 1 s before the fault at 100 per interval, 1 s of 503s, then 50 and back to 95.
        let mut intervals = vec![interval(100, 0, 5_000); 10];
        intervals.extend(vec![interval(0, 20, 2_000_000); 10]);
        intervals.extend(vec![interval(50, 0, 9_000); 2]);
        intervals.extend(vec![interval(95, 0, 6_000); 10]);
        let series = Series {
            interval_ms: 100,
            intervals,
        };
        let errors = BTreeMap::from([("status-503".to_string(), 200), ("timeout".to_string(), 3)]);
        let figures = FaultFigures::of(&errors, &series, 1.0, 2.05);
        assert_eq!(figures.failed, 3);
        assert_eq!(figures.unavailable, 200);
        assert_eq!(figures.before_ok_per_second, 1_000.0);
        // The first 2xx came in the interval 2.0-2.1 s; 90 % was reached from 2.2 s on (the
        // half-second from 2.1 s averages (50 + 4 x 95) / 5 = 86 per interval, short of 90).
        assert!((figures.first_ok_after_seconds.unwrap() - 0.05).abs() < 1e-9);
        assert!((figures.recovered_after_seconds.unwrap() - 0.25).abs() < 1e-9);
        assert_eq!(figures.longest_ms, 2_000.0);
        // Never back to 90 %: reported as such.
        let mut stuck = series.clone();
        stuck.intervals.truncate(22);
        let figures = FaultFigures::of(&errors, &stuck, 1.0, 2.05);
        assert!(!figures.recovered());
        assert!(figures.first_ok_after_seconds.is_some());
    }
}
