//! Exact cost: a server run under Valgrind's callgrind, counting the instructions it executes
//! only while the requests that are measured run, and what they were spent on.
//!
//! A count of instructions does not move with the machine's load, frequency or caches, so two
//! runs of the same binaries over the same requests agree to a fraction of a percent where their
//! CPU times differ by tens of percent (the reason compilers' benchmarks, rustc-perf and
//! iai-callgrind, count instructions). The server starts with instrumentation off
//! (`--instr-atstart=no`: start-up, verification and warm-up are not counted), every process of
//! its tree is followed (`--trace-children=yes`: the copies of `PROCESSES`, a peer's workers),
//! and system calls are counted too (`--collect-systime`). [`Callgrind::instrument`] switches
//! counting on and off around the measured requests with `callgrind_control`, and
//! [`Callgrind::dump`] has each process write what it counted and reads it back ([`profile`]),
//! split by where the code came from ([`components`]).
//!
//! Under callgrind a server runs 5 to 100 times slower: commands give it longer to start
//! ([`STARTUP_SLOWDOWN`]) and send their requests at the pace it keeps.

pub mod components;
pub mod profile;

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::results::cost::{Counts, FunctionCount};
use crate::results::vocabulary::Component;
pub use components::{component_of, source_of};
pub use profile::{ParseError, Profile, SelfCost, parse};

/// How many times longer than natively a server may take to start and get ready under
/// callgrind with instrumentation off (Valgrind translates every block of code before it runs it:
/// about 5 to 10 times slower; with instrumentation on, 20 to 100 times, says its manual).
pub const STARTUP_SLOWDOWN: u32 = 10;
/// How long a dump may take to appear after `callgrind_control -d` returned.
const DUMP_TIMEOUT: Duration = Duration::from_secs(60);
/// The prefix of every profile a process writes (`callgrind.out.PID`, dumps `...PID.N`).
const OUT_PREFIX: &str = "callgrind.out.";

/// Valgrind and its callgrind tool, found on this machine, and the folder their profiles and
/// logs are written to.
pub struct Callgrind {
    valgrind: PathBuf,
    control: PathBuf,
    /// `valgrind-3.19.0`.
    pub version: String,
    directory: tempfile::TempDir,
    /// Dumps already read.
    taken: HashSet<PathBuf>,
}

impl Callgrind {
    /// Finds `valgrind` and `callgrind_control` (Debian's `valgrind` package), or says how to
    /// install them.
    pub fn locate() -> Result<Callgrind> {
        let missing = || {
            anyhow::anyhow!(
                "valgrind is not installed: `apt-get install valgrind` (callgrind and callgrind_control come with it)"
            )
        };
        let valgrind = which("valgrind").ok_or_else(missing)?;
        let control = which("callgrind_control").ok_or_else(missing)?;
        let output = Command::new(&valgrind)
            .arg("--version")
            .output()
            .context("running valgrind --version")?;
        anyhow::ensure!(output.status.success(), "valgrind --version failed");
        let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
        let directory = tempfile::Builder::new()
            .prefix("bakeoff-callgrind-")
            .tempdir()
            .context("creating a folder for the profiles")?;
        Ok(Callgrind {
            valgrind,
            control,
            version,
            directory,
            taken: HashSet::new(),
        })
    }

    /// The program and arguments that run a server under callgrind: put before the server's own
    /// program and arguments.
    pub fn command_prefix(&self) -> (PathBuf, Vec<OsString>) {
        let directory = self.directory.path();
        let mut out_file = OsString::from("--callgrind-out-file=");
        out_file.push(directory.join(format!("{OUT_PREFIX}%p")));
        let mut log_file = OsString::from("--log-file=");
        log_file.push(directory.join("valgrind.%p.log"));
        let arguments = [
            "--tool=callgrind",
            // Start-up, verification and warm-up are not counted.
            "--instr-atstart=no",
            // Every process of the tree: PROCESSES copies, a peer's workers.
            "--trace-children=yes",
            // System calls counted (sysCount), beside their time (sysTime, not used: it is noise).
            "--collect-systime=yes",
            // Threads take Valgrind's lock in the order they asked for it, rather than as the
            // kernel happens to wake them: fewer differences in spinning between runs.
            "--fair-sched=yes",
        ]
        .into_iter()
        .map(OsString::from)
        .chain([out_file, log_file])
        .collect();
        (self.valgrind.clone(), arguments)
    }

    /// The processes of `pids` that run under callgrind (their executable is Valgrind's
    /// callgrind tool); others (none, with `--trace-children`) cannot be counted.
    pub fn counted(pids: &[i32]) -> Vec<i32> {
        pids.iter()
            .copied()
            .filter(|pid| {
                std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| {
                    exe.file_name()
                        .is_some_and(|name| name.to_string_lossy().starts_with("callgrind-"))
                })
            })
            .collect()
    }

    /// Switches counting on or off in each process of `pids`.
    pub fn instrument(&self, pids: &[i32], on: bool) -> Result<()> {
        for &pid in pids {
            self.control(&["-i", if on { "on" } else { "off" }], pid)?;
        }
        Ok(())
    }

    /// Has each process of `pids` write what it counted since its last dump, and reads the
    /// profiles back. With `keep`, the files are moved there (`PID.callgrind.out` under it, for
    /// `callgrind_annotate`); otherwise they are removed once read.
    pub fn dump(&mut self, pids: &[i32], keep: Option<&Path>) -> Result<Vec<Profile>> {
        let mut profiles = Vec::new();
        for &pid in pids {
            self.control(&["-d"], pid)?;
            let path = self.wait_for_dump(pid)?;
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let profile = parse(&text).with_context(|| format!("reading {}", path.display()))?;
            profiles.push(profile);
            match keep {
                Some(folder) => {
                    std::fs::create_dir_all(folder)
                        .with_context(|| format!("creating {}", folder.display()))?;
                    let kept = folder.join(format!("{pid}.callgrind.out"));
                    std::fs::copy(&path, &kept)
                        .with_context(|| format!("keeping {}", kept.display()))?;
                    std::fs::remove_file(&path).ok();
                }
                None => {
                    std::fs::remove_file(&path).ok();
                }
            }
            self.taken.insert(path);
        }
        Ok(profiles)
    }

    /// Counts what the process tree of `pid` executes while `work` runs: counting is switched
    /// on in each of its processes, `work` awaited, counting switched off, and each process's
    /// dump read back (kept under `keep` when given). Only `work`'s time is counted, less the
    /// moments `callgrind_control` takes to reach each process.
    pub async fn count<T>(
        &mut self,
        pid: u32,
        keep: Option<&Path>,
        work: impl Future<Output = T>,
    ) -> Result<(T, Vec<Profile>)> {
        let pids = Callgrind::counted(&crate::processes::tree_pids(pid));
        anyhow::ensure!(
            !pids.is_empty(),
            "process {pid} does not run under callgrind (was it started with Callgrind::command_prefix?)"
        );
        tokio::task::block_in_place(|| self.instrument(&pids, true))?;
        let outcome = work.await;
        let switched_off = tokio::task::block_in_place(|| self.instrument(&pids, false));
        switched_off?;
        let profiles = tokio::task::block_in_place(|| self.dump(&pids, keep))?;
        Ok((outcome, profiles))
    }

    fn control(&self, arguments: &[&str], pid: i32) -> Result<()> {
        // Always with a pid: without one, callgrind_control acts on every callgrind process of
        // the machine.
        let output = Command::new(&self.control)
            .args(arguments)
            .arg(pid.to_string())
            .output()
            .context("running callgrind_control")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() || stdout.contains("Error") || stdout.contains("not detected") {
            bail!(
                "callgrind_control {} {pid} failed: {} {}",
                arguments.join(" "),
                stdout.trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    /// The dump `pid` just wrote: a `callgrind.out.PID.N` not read before, once complete (its
    /// last line is `totals:`).
    fn wait_for_dump(&self, pid: i32) -> Result<PathBuf> {
        let prefix = format!("{OUT_PREFIX}{pid}.");
        let started = Instant::now();
        loop {
            let entries = std::fs::read_dir(self.directory.path())
                .context("listing the profiles")?
                .flatten();
            for entry in entries {
                let path = entry.path();
                let is_dump = entry
                    .file_name()
                    .to_string_lossy()
                    .strip_prefix(&prefix)
                    .is_some_and(|part| part.parse::<u32>().is_ok());
                if is_dump && !self.taken.contains(&path) && is_complete(&path) {
                    return Ok(path);
                }
            }
            if started.elapsed() > DUMP_TIMEOUT {
                bail!("process {pid} wrote no callgrind dump within {DUMP_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The C library's clock functions, which natively read the clock in the vDSO without entering
/// the kernel.
fn is_clock_read(function: &str) -> bool {
    matches!(
        function.trim_start_matches("__"),
        "clock_gettime" | "clock_gettime64" | "gettimeofday" | "time" | "getcpu"
    )
}

/// A profile is complete once its last line, `totals:`, is written.
fn is_complete(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| {
        text.trim_end()
            .lines()
            .last()
            .is_some_and(|line| line.starts_with("totals:"))
    })
}

/// `program` on the `PATH`.
fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|directory| directory.join(program))
            .find(|candidate| candidate.is_file())
    })
}

impl Counts {
    /// Sums `profiles` (one per process); keeps the `top` largest functions.
    pub fn of(profiles: &[Profile], top: usize) -> Counts {
        let mut counts = Counts {
            processes: profiles.len(),
            components: Component::ALL.iter().map(|&c| (c, 0)).collect(),
            ..Counts::default()
        };
        let mut functions: HashMap<(String, String), (u64, u64)> = HashMap::new();
        for cost in profiles.iter().flat_map(|profile| &profile.costs) {
            counts.instructions += cost.instructions;
            if cost.system_calls > 0 {
                // `clock_gettime@@GLIBC_2.17` -> `clock_gettime`
                let name = cost.function.split('@').next().unwrap_or(&cost.function);
                *counts
                    .system_calls_by_function
                    .entry(name.to_string())
                    .or_default() += cost.system_calls;
                if is_clock_read(name) {
                    counts.clock_reads += cost.system_calls;
                } else {
                    counts.system_calls += cost.system_calls;
                }
            }
            *counts.components.entry(component_of(cost)).or_default() += cost.instructions;
            let source = source_of(cost);
            *counts.sources.entry(source.clone()).or_default() += cost.instructions;
            let entry = functions
                .entry((cost.function.clone(), source))
                .or_default();
            entry.0 += cost.instructions;
            entry.1 += cost.system_calls;
        }
        let mut functions: Vec<FunctionCount> = functions
            .into_iter()
            .map(
                |((function, source), (instructions, system_calls))| FunctionCount {
                    function,
                    source,
                    instructions,
                    system_calls,
                },
            )
            .collect();
        functions.sort_by(|a, b| {
            b.instructions
                .cmp(&a.instructions)
                .then_with(|| a.function.cmp(&b.function))
        });
        functions.truncate(top);
        counts.functions = functions;
        counts
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn the_frozen_profile_splits_into_components_as_annotated() {
        let profile = parse(profile::tests::TINY).unwrap();
        let counts = Counts::of(&[profile], 5);
        assert_eq!(
            (counts.processes, counts.instructions, counts.system_calls),
            (1, 1_858, 1)
        );
        assert_eq!(counts.clock_reads, 0);
        assert_eq!(
            counts.system_calls_by_function,
            BTreeMap::from([("write".to_string(), 1)])
        );
        // From callgrind_annotate's file:function lines: malloc.c 411 (+ 8 at lines it lists
        // under malloc.c without an object), std's allocator shims 29, the `__rust_*` symbols 8.
        let expected = [
            (Component::Allocator, 456),
            (Component::Std, 1_126),
            (Component::System, 48),
            // tiny.rs is in no crate this project knows.
            (Component::Other, 228),
            (Component::Server, 0),
            (Component::Framework, 0),
        ];
        for (component, instructions) in expected {
            assert_eq!(counts.components[&component], instructions, "{component}");
        }
        assert_eq!(counts.components.values().sum::<u64>(), 1_858);
        assert_eq!(counts.sources["std"], 1_126 + 26 + 3);
        assert_eq!(counts.functions.len(), 5);
        assert_eq!(counts.functions[0].function, "tiny::measured");
        assert!(counts.functions[0].instructions >= 228 + 139);
    }

    #[test]
    fn clock_reads_are_counted_apart_from_the_system_calls() {
        let cost = |function: &str, system_calls: u64| SelfCost {
            object: "/usr/lib/x86_64-linux-gnu/libc.so.6".to_string(),
            file: "???".to_string(),
            function: function.to_string(),
            instructions: 10,
            system_calls,
        };
        let profile = Profile {
            pid: Some(1),
            costs: vec![
                cost("clock_gettime@@GLIBC_2.17", 6),
                cost("epoll_wait", 1),
                cost("recv", 1),
                cost("__gettimeofday", 2),
            ],
        };
        let counts = Counts::of(&[profile.clone(), profile], 10);
        assert_eq!((counts.system_calls, counts.clock_reads), (4, 16));
        assert_eq!(counts.system_calls_by_function["clock_gettime"], 12);
        assert_eq!(counts.system_calls_by_function["epoll_wait"], 2);
        assert_eq!(counts.processes, 2);
    }
}
