//! What the results record of the run's setup: the machine, the CPU placement, container limits,
//! the dimensions studied and the shard that measured.

use std::fmt;
use std::num::NonZeroUsize;
use std::str::FromStr;
use std::time::Duration;

use bakeoff_core::DbRecycle;

use serde::{Deserialize, Serialize};

use crate::results::vocabulary::Pooler;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    /// Logical CPUs online.
    pub cpu_count: usize,
    pub memory_bytes: Option<u64>,
    pub kernel: String,
    pub os: String,
    pub postgres_version: Option<String>,
    pub rustc_version: String,
    pub git_commit: String,
    /// Uncommitted changes in the work tree when the run started.
    pub git_dirty: bool,
}

/// Where the server and the engine run during a benchmark, as recorded in the results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// CPUs of the server process (`taskset -c`); `None`: unpinned.
    pub server_cpus: Option<CpuList>,
    /// CPUs of the engine threads; `None`: unpinned.
    pub engine_cpus: Option<CpuList>,
    /// Engine threads (one single-threaded runtime each).
    pub engine_threads: usize,
    /// In words, for the report.
    pub note: String,
}

/// A set of CPU numbers, written as `taskset -c` takes them: `0`, `0-3`, `0,2,4-5`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CpuList(Vec<usize>);

/// What a container may use, as its cgroup enforces it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerLimits {
    /// CPU time quota in CPUs' worth (`cpus:` in compose); `None` when unlimited.
    pub cpus: Option<f64>,
    /// The CPUs it may run on (`cpuset:`), when the cgroup says.
    pub cpuset: Option<String>,
    /// Memory limit in bytes; `None` when unlimited.
    pub memory_bytes: Option<u64>,
}

/// The values of every dimension a run covers; every list has at least one value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dimensions {
    pub workers: Vec<Workers>,
    pub db_pool_sizes: Vec<NonZeroUsize>,
    pub recycle: Vec<DbRecycle>,
    #[serde(default = "direct")]
    pub db_latencies: Vec<RoundTrip>,
    /// Empty: not set (one process). See [`Configuration::processes`].
    #[serde(default)]
    pub processes: Vec<NonZeroUsize>,
    /// At least one value in a run; empty in files written before the dimension (no pooler).
    #[serde(default)]
    pub poolers: Vec<Pooler>,
}

/// One point of the dimensions: what one server is started with. `None` in a field means the
/// dimension does not apply to that server (it is not set, and the report says so).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Configuration {
    pub workers: Workers,
    pub db_pool_size: NonZeroUsize,
    /// `None` for a server without connection checkout.
    pub recycle: Option<DbRecycle>,
    /// Added between the server and PostgreSQL by a delay line; zero: a direct connection.
    #[serde(default)]
    pub db_latency: RoundTrip,
    /// `PROCESSES` for a variant, `WORKERS` (its worker processes) for a peer; `None` when the
    /// run does not set it (one process; a peer's own worker count), as in files written before
    /// the dimension existed.
    #[serde(default)]
    pub processes: Option<NonZeroUsize>,
    /// What stands between the server and PostgreSQL.
    #[serde(default)]
    pub pooler: Pooler,
}

/// `WORKERS`: each server's own default for the CPUs it is pinned to, or one count for all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workers {
    /// Not set: each server runs the worker count its architecture recommends for its CPUs.
    OwnDefault,
    /// The same count for every server.
    Fixed(NonZeroUsize),
}

/// Which shard of how many: `2/3` is the second of three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShardIndex {
    /// From 1 to `count`.
    pub index: usize,
    pub count: usize,
}

/// Files written before the latency dimension ran every server on a direct connection.
fn direct() -> Vec<RoundTrip> {
    vec![RoundTrip::ZERO]
}

impl CpuList {
    pub fn new(mut cpus: Vec<usize>) -> Option<CpuList> {
        cpus.sort_unstable();
        cpus.dedup();
        (!cpus.is_empty()).then_some(CpuList(cpus))
    }

    pub fn cpus(&self) -> &[usize] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn overlaps(&self, other: &CpuList) -> bool {
        self.0.iter().any(|cpu| other.0.contains(cpu))
    }

    /// Restricts the calling thread (and the threads it creates later) to these CPUs.
    pub fn pin_current_thread(&self) -> nix::Result<()> {
        use nix::sched::{CpuSet, sched_setaffinity};
        let mut set = CpuSet::new();
        for &cpu in &self.0 {
            set.set(cpu)?;
        }
        sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
    }
}

impl fmt::Display for CpuList {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Consecutive CPUs are written as ranges, as taskset prints them.
        let mut parts = Vec::new();
        let mut index = 0;
        while index < self.0.len() {
            let first = self.0[index];
            let mut last = first;
            while index + 1 < self.0.len() && self.0[index + 1] == last + 1 {
                index += 1;
                last = self.0[index];
            }
            parts.push(if first == last {
                first.to_string()
            } else {
                format!("{first}-{last}")
            });
            index += 1;
        }
        formatter.write_str(&parts.join(","))
    }
}

impl FromStr for CpuList {
    type Err = String;

    fn from_str(text: &str) -> Result<CpuList, String> {
        let bad = || format!("{text:?} is not a CPU list such as 0, 1-3 or 0,2");
        let mut cpus = Vec::new();
        for part in text.split(',').map(str::trim) {
            match part.split_once('-') {
                Some((first, last)) => {
                    let first: usize = first.trim().parse().map_err(|_| bad())?;
                    let last: usize = last.trim().parse().map_err(|_| bad())?;
                    if first > last || last >= 1024 {
                        return Err(bad());
                    }
                    cpus.extend(first..=last);
                }
                None => {
                    let cpu: usize = part.parse().map_err(|_| bad())?;
                    if cpu >= 1024 {
                        return Err(bad());
                    }
                    cpus.push(cpu);
                }
            }
        }
        CpuList::new(cpus).ok_or_else(bad)
    }
}

impl TryFrom<String> for CpuList {
    type Error = String;
    fn try_from(text: String) -> Result<CpuList, String> {
        text.parse()
    }
}

impl From<CpuList> for String {
    fn from(list: CpuList) -> String {
        list.to_string()
    }
}

/// A round-trip time to add, from 0 to 1 s: half is added on the way there, half on the way back.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct RoundTrip(Duration);

impl RoundTrip {
    pub const ZERO: RoundTrip = RoundTrip(Duration::ZERO);

    pub fn new(duration: Duration) -> Result<RoundTrip, String> {
        if duration > MAX_ROUND_TRIP {
            return Err(format!(
                "a round trip of {} is more than the most, 1s",
                humantime::format_duration(duration)
            ));
        }
        Ok(RoundTrip(duration))
    }

    pub fn duration(self) -> Duration {
        self.0
    }

    pub fn one_way(self) -> Duration {
        self.0 / 2
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    pub fn milliseconds(self) -> f64 {
        self.0.as_secs_f64() * 1e3
    }

    /// For file names: `0ms`, `0_5ms`, `2ms`.
    pub fn slug(self) -> String {
        format!("{}ms", self.milliseconds()).replace('.', "_")
    }
}

impl fmt::Display for RoundTrip {
    /// `0`, `0.5ms`, `2ms`, `1s`: short, and parsed back by [`RoundTrip::from_str`].
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_zero() {
            return formatter.write_str("0");
        }
        let milliseconds = self.milliseconds();
        if milliseconds >= 1000.0 {
            write!(formatter, "{}s", milliseconds / 1000.0)
        } else {
            write!(formatter, "{milliseconds}ms")
        }
    }
}

impl FromStr for RoundTrip {
    type Err = String;

    /// `0`, `500us`, `0.5ms`, `2ms`, `1s`; a plain number is milliseconds.
    fn from_str(text: &str) -> Result<RoundTrip, String> {
        let text = text.trim();
        let bad = || format!("{text:?} is not a latency such as 0, 0.5ms, 2ms or 500us");
        if text.starts_with('-') {
            return Err(format!("{text:?}: a latency cannot be negative"));
        }
        let (number, unit_seconds) = if let Some(number) = text.strip_suffix("ms") {
            (number, 1e-3)
        } else if let Some(number) = text.strip_suffix("us").or_else(|| text.strip_suffix("µs")) {
            (number, 1e-6)
        } else if let Some(number) = text.strip_suffix('s') {
            (number, 1.0)
        } else {
            (text, 1e-3)
        };
        let value: f64 = number.trim().parse().map_err(|_| bad())?;
        if !value.is_finite() || value < 0.0 {
            return Err(bad());
        }
        let seconds = value * unit_seconds;
        if seconds > MAX_ROUND_TRIP.as_secs_f64() {
            return Err(format!("{text:?} is more than the most, 1s"));
        }
        RoundTrip::new(Duration::from_secs_f64(seconds))
    }
}

impl TryFrom<String> for RoundTrip {
    type Error = String;

    fn try_from(text: String) -> Result<RoundTrip, String> {
        text.parse()
    }
}

impl From<RoundTrip> for String {
    fn from(round_trip: RoundTrip) -> String {
        round_trip.to_string()
    }
}

/// The most a round trip may be set to.
pub const MAX_ROUND_TRIP: Duration = Duration::from_secs(1);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_parse_and_print() {
        for (text, micros, shown) in [
            ("0", 0, "0"),
            ("0ms", 0, "0"),
            ("0.5ms", 500, "0.5ms"),
            ("2ms", 2_000, "2ms"),
            ("500us", 500, "0.5ms"),
            ("1", 1_000, "1ms"),
            ("1s", 1_000_000, "1s"),
        ] {
            let round_trip: RoundTrip = text.parse().unwrap();
            assert_eq!(
                round_trip.duration(),
                Duration::from_micros(micros),
                "{text}"
            );
            assert_eq!(round_trip.to_string(), shown, "{text}");
            assert_eq!(shown.parse::<RoundTrip>().unwrap(), round_trip);
        }
        for bad in ["-1ms", "1.5s", "2000ms", "x", "ms", "1h", "nan"] {
            assert!(bad.parse::<RoundTrip>().is_err(), "{bad}");
        }
    }
}
