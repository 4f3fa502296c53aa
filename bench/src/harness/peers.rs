//! The peers (`peers/`): the studies' own stacks on the same contract, started and measured like
//! the variants. How each one runs is its [`Runtime`]: the Python peers share one virtual
//! environment in `.bakeoff/peers/venv` beside the `peers/` folder, created from PyPI with the
//! pinned `peers/requirements.txt`; the Go and Java peers are built from Debian's packages into
//! `.bakeoff/peers/<peer>/` ([`peer_builds`]). `bakeoff peers install` prepares them all, and the
//! harness prepares a missing one on first use. Nothing is installed system-wide.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use clap::builder::PossibleValue;
use serde::{Deserialize, Serialize};

use crate::harness::peer_builds::{self, BuildPlan, which};

/// Where the environment is created, relative to the folder that holds `peers/`.
pub const VENV_DIRECTORY: &str = ".bakeoff/peers/venv";
/// Where the compiled peers are built, each in its own folder, relative to the folder that holds
/// `peers/`.
pub const BUILD_DIRECTORY: &str = ".bakeoff/peers";

/// A peer: a folder of `peers/` with its own program, run as its [`Runtime`] says.
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
#[value(rename_all = "kebab-case")]
pub enum Peer {
    /// FastAPI on uvicorn workers under gunicorn, an asyncpg pool per process.
    FastapiAsyncpg,
    /// FastAPI with SQLAlchemy 2's async ORM over asyncpg.
    FastapiSqlalchemy,
    /// Flask under gunicorn sync workers, psycopg 3 with psycopg_pool.
    FlaskGunicorn,
    /// Go's net/http, a goroutine per request, pgxpool.
    GoPgx,
    /// Spring MVC 4.3 in embedded Jetty 9.4, thread-per-request, JdbcTemplate over HikariCP.
    SpringJdbc,
}

/// How a peer runs: what `bakeoff peers install` prepares for it, what the harness starts, and
/// what its `WORKERS` count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// `serve.py` under the peers' Python environment; gunicorn's master and `WORKERS` worker
    /// processes.
    Python,
    /// A Go program built from the peer's folder; one process, `WORKERS` is GOMAXPROCS.
    Go,
    /// A Java program compiled from the peer's `src/main/java` into a jar; one JVM, `WORKERS`
    /// request threads.
    Java { main_class: &'static str },
}

/// A peer's command line: the program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub program: PathBuf,
    pub arguments: Vec<OsString>,
}

impl Peer {
    pub fn all() -> &'static [Peer] {
        Peer::value_variants()
    }

    /// The folder name, which is also what its `/version` answers.
    pub fn name(self) -> String {
        crate::names::name_of(&self)
    }

    /// How it runs.
    pub fn runtime(self) -> Runtime {
        match self {
            Peer::FastapiAsyncpg | Peer::FastapiSqlalchemy | Peer::FlaskGunicorn => Runtime::Python,
            Peer::GoPgx => Runtime::Go,
            Peer::SpringJdbc => Runtime::Java {
                main_class: "bakeoff.springjdbc.Main",
            },
        }
    }

    /// Whether its `WORKERS` are processes (gunicorn's workers), each with its own pool, rather
    /// than threads of one process: the processes dimension of a run is then its `WORKERS`.
    pub fn workers_are_processes(self) -> bool {
        self.runtime() == Runtime::Python
    }

    /// How long it must serve load before its figures count, when that is longer than a run's
    /// usual warm-up: the JVM interprets bytecode until its JIT has compiled the hot paths.
    pub fn minimum_warmup(self) -> Duration {
        match self.runtime() {
            Runtime::Java { .. } => JVM_WARMUP,
            Runtime::Python | Runtime::Go => Duration::ZERO,
        }
    }

    /// Its `serve.py`, the whole command line of a Python peer (run by the environment's
    /// Python).
    pub fn script(self) -> Result<PathBuf> {
        let script = self.folder()?.join("serve.py");
        anyhow::ensure!(script.is_file(), "{} is missing", script.display());
        Ok(script)
    }

    /// Its folder under `peers/`.
    pub fn folder(self) -> Result<PathBuf> {
        Ok(peers_directory()?.join(self.name()))
    }

    /// The command that starts it, preparing what it runs first when that is missing or
    /// stale: the Python environment, or the Go or Java build.
    pub fn program(self) -> Result<Program> {
        self.prepare(false)
    }

    /// Prepares what it runs (`force`: rebuilds a compiled peer even when it is current) and
    /// returns its command.
    pub fn prepare(self, force: bool) -> Result<Program> {
        let (name, folder) = (self.name(), self.folder()?);
        let (output, openapi) = (
            build_directory()?.join(&name),
            peers_directory()?.join("common/openapi.json"),
        );
        let plan = BuildPlan {
            name: &name,
            source: &folder,
            openapi: &openapi,
            output: &output,
        };
        match self.runtime() {
            Runtime::Python => Ok(Program {
                program: python()?,
                arguments: vec![self.script()?.into_os_string()],
            }),
            Runtime::Go => Ok(Program {
                program: peer_builds::build_go(&plan, force)?,
                arguments: Vec::new(),
            }),
            Runtime::Java { main_class } => {
                let jar = peer_builds::build_java(&plan, main_class, force)?;
                Ok(Program {
                    program: which("java").context("no java on PATH")?,
                    arguments: peer_builds::java_arguments(&jar),
                })
            }
        }
    }
}

/// The JVM's warm-up before a run measures it: long enough for HotSpot's tiered JIT to compile
/// the request paths at its top tier under load. Measured (spring-jdbc pinned to one CPU of a busy
/// 2-CPU machine, 16 connections, no warm-up, 2 s cells): `/types` throughput rose from 700 to
/// its plateau of about 4,000 req/s over the first 14 to 16 s, and `/contacts/{id}`, measured
/// next, took 8 to 10 s more for its own paths. A run's warm-up mixes every scenario.
pub const JVM_WARMUP: Duration = Duration::from_secs(30);

impl fmt::Display for Peer {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.name())
    }
}

/// What `--peers` takes: peer names, or `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerChoice {
    Peer(Peer),
    All,
}

impl ValueEnum for PeerChoice {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            PeerChoice::All,
            PeerChoice::Peer(Peer::FastapiAsyncpg),
            PeerChoice::Peer(Peer::FastapiSqlalchemy),
            PeerChoice::Peer(Peer::FlaskGunicorn),
            PeerChoice::Peer(Peer::GoPgx),
            PeerChoice::Peer(Peer::SpringJdbc),
        ]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        match self {
            PeerChoice::Peer(peer) => peer.to_possible_value(),
            PeerChoice::All => Some(PossibleValue::new("all").help("every peer")),
        }
    }
}

/// Resolves `--peers`: none by default, `all` for every peer.
pub fn chosen_peers(choices: &[PeerChoice]) -> Vec<Peer> {
    if choices.contains(&PeerChoice::All) {
        return Peer::all().to_vec();
    }
    let mut peers: Vec<Peer> = choices
        .iter()
        .filter_map(|choice| match choice {
            PeerChoice::Peer(peer) => Some(*peer),
            PeerChoice::All => None,
        })
        .collect();
    peers.sort();
    peers.dedup();
    peers
}

/// The `peers/` folder: below the current directory, or in the source tree `bakeoff` was built
/// from.
pub fn peers_directory() -> Result<PathBuf> {
    let candidates = [
        PathBuf::from("peers"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../peers"),
    ];
    candidates
        .into_iter()
        .find(|candidate| candidate.join("requirements.txt").is_file())
        .map(|found| found.canonicalize().unwrap_or(found))
        .context("no peers/ folder with a requirements.txt here or in bakeoff's source tree")
}

/// The environment's folder: `.bakeoff/peers/venv` beside `peers/`.
pub fn venv_directory() -> Result<PathBuf> {
    let peers = peers_directory()?;
    let project = peers.parent().unwrap_or(Path::new("."));
    Ok(project.join(VENV_DIRECTORY))
}

/// The compiled peers' folder: `.bakeoff/peers` beside `peers/`.
pub fn build_directory() -> Result<PathBuf> {
    let peers = peers_directory()?;
    let project = peers.parent().unwrap_or(Path::new("."));
    Ok(project.join(BUILD_DIRECTORY))
}

/// Prepares every peer: the Python environment, then every compiled peer (rebuilt). When Debian
/// packages are missing, nothing is compiled and the error names them all in one `apt-get`
/// line.
pub fn install_all() -> Result<()> {
    install()?;
    let mut missing: Vec<String> = Vec::new();
    for peer in Peer::all()
        .iter()
        .filter(|peer| peer.runtime() != Runtime::Python)
    {
        for package in peer_builds::missing_packages(&peer_builds::needs_of(&peer.folder()?)?) {
            if !missing.contains(&package) {
                missing.push(package);
            }
        }
    }
    peer_builds::require_packages(&missing, "building the Go and Java peers")?;
    for peer in Peer::all()
        .iter()
        .filter(|peer| peer.runtime() != Runtime::Python)
    {
        peer.prepare(true)?;
    }
    Ok(())
}

/// The environment's Python, when the environment is complete.
pub fn installed_python() -> Option<PathBuf> {
    let venv = venv_directory().ok()?;
    let python = venv.join("bin/python");
    let complete = venv.join(".bakeoff-installed");
    // Made absolute without resolving links: the environment's python is a link to the base
    // interpreter, which outside the environment would not see its packages.
    (python.is_file() && complete.is_file()).then(|| std::path::absolute(&python).unwrap_or(python))
}

/// The environment's Python, creating the environment first when it is missing.
pub fn python() -> Result<PathBuf> {
    match installed_python() {
        Some(python) => Ok(python),
        None => install(),
    }
}

/// Creates (or completes) the environment from PyPI with the pinned versions; returns its
/// Python. Says what it does on stderr, and what to install when Python or venv is missing.
pub fn install() -> Result<PathBuf> {
    let requirements = peers_directory()?.join("requirements.txt");
    let system_python = which("python3").context(
        "the peers need Python 3 (3.11 or later): install it, e.g. `apt-get install python3 python3-venv`",
    )?;
    let venv = venv_directory()?;
    let venv = venv.as_path();
    std::fs::create_dir_all(venv).with_context(|| format!("creating {}", venv.display()))?;
    // One installer at a time (tests start peers in parallel); the next finds it done.
    let lock = std::fs::File::create(venv.with_extension("lock"))
        .with_context(|| format!("creating the lock beside {}", venv.display()))?;
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, error)| anyhow::anyhow!("locking the peers' environment: {error}"))?;
    if let Some(python) = installed_python() {
        return Ok(python);
    }
    if !venv.join("bin/python").is_file() {
        eprintln!("peers: creating a Python environment in {}", venv.display());
        let output = Command::new(&system_python)
            .args(["-m", "venv"])
            .arg(venv)
            .stdin(Stdio::null())
            .output()
            .context("running python3 -m venv")?;
        if !output.status.success() {
            bail!(
                "python3 -m venv failed (on Debian: `apt-get install python3-venv`): {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
    }
    eprintln!(
        "peers: installing the pinned packages of {} from PyPI (a minute or two the first time)",
        requirements.display()
    );
    let status = Command::new(venv.join("bin/python"))
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
            "--progress-bar",
            "off",
            "-r",
        ])
        .arg(&requirements)
        .stdin(Stdio::null())
        .status()
        .context("running pip")?;
    if !status.success() {
        bail!(
            "pip could not install {} ({status}); is PyPI reachable?",
            requirements.display()
        );
    }
    std::fs::write(venv.join(".bakeoff-installed"), "")
        .with_context(|| format!("writing {}/.bakeoff-installed", venv.display()))?;
    eprintln!("peers: ready in {}", venv.display());
    installed_python().context("the environment is incomplete after installing")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_choices_resolve() {
        assert!(chosen_peers(&[]).is_empty());
        assert_eq!(chosen_peers(&[PeerChoice::All]), Peer::all());
        assert_eq!(
            chosen_peers(&[
                PeerChoice::Peer(Peer::FlaskGunicorn),
                PeerChoice::Peer(Peer::FastapiAsyncpg),
                PeerChoice::Peer(Peer::FlaskGunicorn),
            ]),
            [Peer::FastapiAsyncpg, Peer::FlaskGunicorn]
        );
        assert_eq!(Peer::FastapiSqlalchemy.to_string(), "fastapi-sqlalchemy");
        assert_eq!(Peer::GoPgx.to_string(), "go-pgx");
        assert_eq!(Peer::SpringJdbc.to_string(), "spring-jdbc");
    }

    #[test]
    fn only_python_peers_count_processes_and_only_the_jvm_needs_a_long_warmup() {
        assert!(Peer::FlaskGunicorn.workers_are_processes());
        assert!(!Peer::GoPgx.workers_are_processes());
        assert!(!Peer::SpringJdbc.workers_are_processes());
        assert_eq!(Peer::GoPgx.minimum_warmup(), Duration::ZERO);
        assert!(Peer::SpringJdbc.minimum_warmup() >= Duration::from_secs(5));
    }

    #[test]
    fn every_peer_has_its_folder_and_what_its_runtime_starts() {
        for &peer in Peer::all() {
            let folder = peer.folder().unwrap();
            let entry = match peer.runtime() {
                Runtime::Python => folder.join("serve.py"),
                Runtime::Go => folder.join("main.go"),
                Runtime::Java { main_class } => folder
                    .join("src/main/java")
                    .join(main_class.replace('.', "/"))
                    .with_extension("java"),
            };
            assert!(entry.is_file(), "{peer}: {} is missing", entry.display());
            if peer.runtime() != Runtime::Python {
                assert!(
                    !peer_builds::needs_of(&folder).unwrap().is_empty(),
                    "{peer}"
                );
            }
        }
    }
}
