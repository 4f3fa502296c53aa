//! Running a server binary as a child process: start it, wait for its `listening on` line, stop
//! it with SIGTERM and report how it exited. Shared by the tests and the benchmark.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long a server may take to print its `listening on` line.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The environment a server under test is started with: the contract's variables and nothing
/// inherited that could change them. The one place that assembles it, for the tests and for every
/// `bakeoff` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEnvironment {
    pub database_url: String,
    /// `BIND`; port 0 lets the server choose, and `listening on` says which.
    pub bind: String,
    /// `PROCESSES`; `None` leaves one process.
    pub processes: Option<usize>,
    /// `WORKERS`; `None` leaves the server's own default.
    pub workers: Option<usize>,
    /// `DB_POOL_SIZE`; `None` leaves the server's own default.
    pub db_pool_size: Option<usize>,
    /// `DB_WAIT_TIMEOUT_MS`; `None` leaves the contract's default.
    pub db_wait_timeout_ms: Option<u64>,
    /// `DB_RECYCLE`; `None` leaves the default.
    pub db_recycle: Option<bakeoff_core::DbRecycle>,
    /// `DB_STATEMENTS`; `None` leaves the default (prepared).
    pub db_statements: Option<bakeoff_core::DbStatements>,
    /// `RUST_LOG`.
    pub log_filter: String,
}

impl ServerEnvironment {
    /// A server on a free loopback port, logging errors only, every other setting its default.
    pub fn new(database_url: &str) -> ServerEnvironment {
        ServerEnvironment {
            database_url: database_url.to_string(),
            bind: "127.0.0.1:0".to_string(),
            processes: None,
            workers: None,
            db_pool_size: None,
            db_wait_timeout_ms: None,
            db_recycle: None,
            db_statements: None,
            log_filter: "error".to_string(),
        }
    }

    /// Clears every contract variable inherited by `command`, then sets this environment's.
    pub fn apply_to(&self, command: &mut Command) {
        for variable in bakeoff_core::config::ENV_VARS {
            command.env_remove(variable);
        }
        command
            .env("DATABASE_URL", &self.database_url)
            .env("BIND", &self.bind)
            .env("RUST_LOG", &self.log_filter);
        let optional = [
            ("PROCESSES", self.processes.map(|value| value.to_string())),
            ("WORKERS", self.workers.map(|value| value.to_string())),
            (
                "DB_POOL_SIZE",
                self.db_pool_size.map(|value| value.to_string()),
            ),
            (
                "DB_WAIT_TIMEOUT_MS",
                self.db_wait_timeout_ms.map(|value| value.to_string()),
            ),
            (
                "DB_RECYCLE",
                self.db_recycle.map(|recycle| recycle.as_str().to_string()),
            ),
            (
                "DB_STATEMENTS",
                self.db_statements
                    .map(|statements| statements.as_str().to_string()),
            ),
        ];
        for (variable, value) in optional {
            if let Some(value) = value {
                command.env(variable, value);
            }
        }
    }

    /// `program` with this environment.
    pub fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        self.apply_to(&mut command);
        command
    }
}

/// A running server process, killed on drop if still running.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    address: SocketAddr,
}

/// How a server ended after [`ServerProcess::terminate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitReport {
    /// The exit code, `None` when killed by a signal.
    pub code: Option<i32>,
    /// From SIGTERM to exit (or to the kill, past the deadline).
    pub elapsed: Duration,
    /// Whether it had to be killed after the deadline.
    pub killed: bool,
}

impl ExitReport {
    /// Exited by itself, with code 0, within the deadline.
    pub fn is_clean(&self) -> bool {
        self.code == Some(0) && !self.killed
    }
}

impl ServerProcess {
    /// Starts `command` (stdout is taken over to read the address; stderr is inherited) and waits
    /// for `listening on http://ADDR`.
    pub fn spawn(command: Command) -> Result<ServerProcess> {
        ServerProcess::spawn_within(command, STARTUP_TIMEOUT)
    }

    /// [`ServerProcess::spawn`], giving it `timeout` to print `listening on` (a server slowed by
    /// a profiler needs longer than [`STARTUP_TIMEOUT`]).
    pub fn spawn_within(mut command: Command, timeout: Duration) -> Result<ServerProcess> {
        let program = command.get_program().to_string_lossy().into_owned();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {program}"))?;
        let stdout = child.stdout.take().context("server stdout")?;

        // A thread reads stdout for the life of the process, so that the server never blocks on a
        // full pipe; the first `listening on` line is handed over through a channel.
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut sender = Some(sender);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(address) = line.strip_prefix("listening on http://")
                    && let Some(sender) = sender.take()
                {
                    let _ = sender.send(address.trim().to_string());
                }
            }
        });

        let started = Instant::now();
        loop {
            match receiver.recv_timeout(Duration::from_millis(50)) {
                Ok(address) => {
                    let address: SocketAddr = address.parse().with_context(|| {
                        format!("{program} announced an unparsable address {address:?}")
                    })?;
                    return Ok(ServerProcess { child, address });
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait()?;
                    bail!("{program} exited ({status}) before printing `listening on http://ADDR`");
                }
            }
            if let Some(status) = child.try_wait()? {
                bail!("{program} exited ({status}) before printing `listening on http://ADDR`");
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                bail!("{program} did not print `listening on http://ADDR` within {timeout:?}");
            }
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://ADDR`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` without waiting.
    pub fn signal(&self, signal: Signal) -> Result<()> {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).context("pid out of range")?);
        kill(pid, signal).with_context(|| format!("sending {signal} to {pid}"))
    }

    /// Whether it has exited, without waiting.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// Sends SIGTERM and waits up to `deadline` for the exit, then kills it.
    pub fn terminate(mut self, deadline: Duration) -> Result<ExitReport> {
        let started = Instant::now();
        if self.child.try_wait()?.is_none() {
            self.signal(Signal::SIGTERM)?;
        }
        self.wait_for_exit(started, deadline)
    }

    /// Waits up to `deadline` (counted from `started`) for an exit already asked for.
    pub fn wait_for_exit(&mut self, started: Instant, deadline: Duration) -> Result<ExitReport> {
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(ExitReport {
                    code: status.code(),
                    elapsed: started.elapsed(),
                    killed: false,
                });
            }
            if started.elapsed() > deadline {
                let _ = self.child.kill();
                let status = self.child.wait()?;
                return Ok(ExitReport {
                    code: status.code(),
                    elapsed: started.elapsed(),
                    killed: true,
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The path of a workspace binary: next to the running executable (as `target/<profile>/` holds
/// both `bakeoff` and the servers), one level up (test executables live in `deps/`), or under
/// `target/<profile>` of the current directory. A missing one is an error naming the build command.
pub fn workspace_binary(name: &str, release: bool) -> Result<PathBuf> {
    let profile = if release { "release" } else { "debug" };
    let mut candidates = Vec::new();
    if let Ok(executable) = std::env::current_exe()
        && let Some(directory) = executable.parent()
    {
        candidates.push(directory.join(name));
        if let Some(parent) = directory.parent() {
            candidates.push(parent.join(name));
        }
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    candidates.push(target.join(profile).join(name));
    candidates.retain(|candidate| in_profile(candidate, profile));
    if let Some(found) = candidates.iter().find(|candidate| candidate.is_file()) {
        return Ok(found.clone());
    }
    let flag = if release { " --release" } else { "" };
    bail!(
        "the {name} binary is not built ({profile} profile); build it with `cargo build{flag} -p {name}` (or `cargo build{flag} --workspace`)"
    )
}

/// Keeps release runs on release binaries and debug runs on debug ones.
fn in_profile(candidate: &Path, profile: &str) -> bool {
    candidate
        .ancestors()
        .any(|ancestor| ancestor.file_name().is_some_and(|name| name == profile))
}
