//! What the results record of each server: how it was built and started, the settings it ran with,
//! its verification, its pooler and container, how it shut down. The harness fills these in.

use bakeoff_core::DbRecycle;

use serde::{Deserialize, Serialize};

use crate::results::setup::{Configuration, ContainerLimits};
use crate::results::vocabulary::{PathStyle, PoolMode};

/// The kind of a server in the results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerKind {
    /// A bakeoff variant, started by the harness.
    Variant,
    /// A server already running, given with `--target`.
    Target,
    /// A Python peer (`peers/`), started by the harness like a variant.
    Peer,
}

/// How a run treats a target that deviates from the contract (`--lenient`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetConformance {
    /// A target that fails verification is reported, not measured (as a variant is).
    #[default]
    Strict,
    /// Its deviations are listed and it is measured anyway, its rows marked unverified; under
    /// load only answers that match the contract count as checked bodies.
    Lenient,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerRecord {
    /// The variant or target name.
    pub name: String,
    /// The name with the configuration where the run covers several: what reports show and
    /// `compare` matches on. Empty in files written before configurations existed.
    #[serde(default)]
    pub label: String,
    pub kind: ServerKind,
    /// What the run set; `None` for a target (it runs as it was started).
    #[serde(default)]
    pub configuration: Option<Configuration>,
    /// What the server reported running with (`/test/resmon`), read after it started.
    #[serde(default)]
    pub effective: Option<EffectiveSettings>,
    #[serde(default)]
    pub verification: Verification,
    /// Why it was not measured, when it was not.
    pub skipped: Option<String>,
    /// From spawn to the first `/version` answer.
    #[serde(default)]
    pub startup_seconds: Option<f64>,
    /// The load it served before its first measured cell: the run's warm-up, or longer where
    /// its runtime needs it (the JVM's JIT). `None` where the command warms up otherwise, and in
    /// files written before the field existed.
    #[serde(default)]
    pub warmup_seconds: Option<f64>,
    #[serde(default)]
    pub shutdown: Option<Shutdown>,
    /// The pooler the harness put in front of its database, when the configuration has one.
    #[serde(default)]
    pub pooler: Option<PoolerRecord>,
    /// What went wrong on the way without stopping the command (a failed warm-up request).
    #[serde(default)]
    pub notes: Vec<String>,
    /// The round trip the delay line in front of its database added, as measured before the
    /// server started; `None` on a direct connection.
    #[serde(default)]
    pub latency_check: Option<LatencyCheck>,
    /// How a target's paths were written (detected or set); `None` for servers the run starts,
    /// which take the contract's.
    #[serde(default)]
    pub path_style: Option<PathStyle>,
    /// The container a target ran in and its limits, when the run read the host's cgroups
    /// (`--container-cgroups`) and found it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerRecord>,
}

impl ServerRecord {
    pub fn new(name: String, label: String, kind: ServerKind) -> ServerRecord {
        ServerRecord {
            name,
            label,
            kind,
            configuration: None,
            effective: None,
            verification: Verification::default(),
            skipped: None,
            startup_seconds: None,
            warmup_seconds: None,
            shutdown: None,
            pooler: None,
            notes: Vec::new(),
            latency_check: None,
            path_style: None,
            container: None,
        }
    }

    /// The workers it reported running with.
    pub fn workers(&self) -> Option<usize> {
        self.effective.as_ref().map(|settings| settings.workers)
    }

    /// The name reports show: the label, or the name in files that have none.
    pub fn shown_name(&self) -> &str {
        if self.label.is_empty() {
            &self.name
        } else {
            &self.label
        }
    }

    /// The name in tables and chart legends: marked when it was measured without passing
    /// verification (a lenient target) and when it is a Python peer beside the variants.
    pub fn marked_name(&self) -> String {
        let name = self.shown_name();
        if self.is_unverified() {
            format!("{name} (unverified)")
        } else if self.kind == ServerKind::Peer {
            format!("{name} (peer)")
        } else {
            name.to_string()
        }
    }

    /// Measured without passing verification (a lenient target): its figures are not a
    /// verified server's.
    pub fn is_unverified(&self) -> bool {
        self.verification.ran && !self.verification.passed && self.skipped.is_none()
    }
}

/// The settings a server reported in `/test/resmon`: the effective ones, defaults resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectiveSettings {
    /// Processes serving its port (`PROCESSES`; a peer's worker processes); 1 in files written
    /// before the field existed.
    #[serde(default = "one")]
    pub processes: usize,
    pub workers: usize,
    pub db_pool_size: usize,
    /// `None` where the server does not say.
    #[serde(default)]
    pub db_recycle: Option<DbRecycle>,
}

/// The PgBouncer of one server, as started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolerRecord {
    pub mode: PoolMode,
    /// Server connections it may open to PostgreSQL (see `pooler::default_pool_size`).
    pub default_pool_size: usize,
    /// The documented setting the server ran with to work behind it (statements unprepared in
    /// transaction mode), when it needed one.
    #[serde(default)]
    pub statements_setting: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Verification {
    pub ran: bool,
    pub passed: bool,
    pub checks: usize,
    /// The deviations from the contract, one line each.
    pub failures: Vec<String>,
    /// The server was measured whatever the checks found (`--lenient`).
    #[serde(default)]
    pub lenient: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Shutdown {
    /// Exited by itself with code 0 within the deadline after SIGTERM.
    pub clean: bool,
    pub exit_code: Option<i32>,
    pub killed: bool,
    pub seconds: f64,
}

/// What the results say of a container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// The short id, as `docker ps` shows it.
    pub id: String,
    /// Its cgroup, below each controller's root.
    pub cgroup: String,
    pub limits: ContainerLimits,
}

/// What a level measured of its own setting.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyCheck {
    /// The round trip set, in milliseconds.
    pub set_ms: f64,
    /// Median `SELECT 1` round trip straight to PostgreSQL, in microseconds.
    pub around_us: f64,
    /// Median `SELECT 1` round trip through the delay line, in microseconds.
    pub through_us: f64,
    /// Round trips timed each way.
    pub probes: usize,
}

/// Which build of the variants runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuildProfile {
    Release,
    Debug,
}

/// A Python interpreter the peers run on, each with its own environment of pinned packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Interpreter {
    /// The machine's `python3` (3.11 on Debian 12).
    CPython,
    /// Debian's `pypy3` (PyPy 7.3, Python 3.9), its JIT compiling the same Python code.
    PyPy,
}

fn one() -> usize {
    1
}
