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
//! run), a guard resumes or restarts PostgreSQL when the step ends. How a server rode the fault
//! out is read from its cell in [`crate::recovery`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bakeoff_testkit::postgres::LocalPostgres;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::engine::Mark;
use crate::harness::database::{Database, DatabaseChoice};
use crate::names::name_of;
use crate::results::vocabulary::FaultKind;

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

impl FaultKind {
    pub fn name(self) -> String {
        name_of(&self)
    }

    /// Whether the fault stops or pauses the cluster itself, which only a run that started it
    /// may do.
    pub fn needs_owned_cluster(self) -> bool {
        match self {
            FaultKind::DbRestart | FaultKind::DbStall => true,
            FaultKind::BackendKill => false,
        }
    }

    /// Every fault's name, as `--fault` takes it.
    fn names() -> Vec<String> {
        <FaultKind as clap::ValueEnum>::value_variants()
            .iter()
            .map(name_of)
            .collect()
    }

    /// The names of the faults an external database allows.
    fn without_owned_cluster() -> Vec<String> {
        <FaultKind as clap::ValueEnum>::value_variants()
            .iter()
            .filter(|kind| !kind.needs_owned_cluster())
            .map(name_of)
            .collect()
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
                    "unknown fault {kind_text:?}; the faults are {}",
                    FaultKind::names().join(", ")
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

    /// `--fault`'s help.
    pub fn help() -> String {
        format!(
            "After the normal cells, measure every scenario again with this fault injected into \
             the database ({}), by default {} into the cell for {}; repeat the flag for several \
             faults. A fault cell lasts --duration, and is followed by a short reference cell of \
             the same server without a fault",
            FaultKind::names().join(", "),
            seconds_text(DEFAULT_AT),
            seconds_text(DEFAULT_LENGTH)
        )
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
                "--fault {}: stopping or pausing PostgreSQL needs the run's own throwaway cluster, not an external database (DATABASE_URL); unset it, or use a fault that needs none ({})",
                fault.kind,
                FaultKind::without_owned_cluster().join(", ")
            );
        }
    }
    Ok(())
}

/// When the fault began and when the database was back (for a restart: accepting connections
/// again; for a stall: resumed; for backend-kill: the last termination done).
#[derive(Debug, Clone, Copy)]
pub struct FaultTimes {
    pub started: Instant,
    pub returned: Instant,
}

/// Runs `fault` against `database`: waits its `at` (from the call, which is when the cell's load
/// starts), does it, undoes it after its length, and sets `mark` when the database is back (the
/// engine counts what was waiting then). Run it beside the engine; the guard inside puts
/// PostgreSQL back even if this future is dropped half-way.
pub async fn inject(fault: &FaultSpec, database: &Database, mark: &Mark) -> Result<FaultTimes> {
    let times = inject_unmarked(fault, database).await?;
    mark.set(times.returned);
    Ok(times)
}

async fn inject_unmarked(fault: &FaultSpec, database: &Database) -> Result<FaultTimes> {
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
                    // Back once the last termination is done: what was waiting then is the
                    // backlog.
                    return Ok(FaultTimes {
                        started,
                        returned: Instant::now(),
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
}
