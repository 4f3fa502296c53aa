//! The peers (`peers/`): the studies' own stacks on the same contract, started and measured like
//! the variants. How each one runs is its [`Runtime`]: a Python peer runs on one of two
//! [`Interpreter`]s, CPython in `.bakeoff/peers/venv` from the pinned `peers/requirements.txt` or
//! PyPy in `.bakeoff/peers/pypy-venv` from `peers/requirements-pypy.txt`; the Go and Java peers
//! are built from Debian's packages into `.bakeoff/peers/<peer>/` ([`peer_builds`]). `bakeoff
//! peers install` prepares them all, and the harness prepares a missing one on first use.
//! Nothing is installed system-wide; a missing Debian package is named with the `apt-get
//! install` line that adds it.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::LazyLock;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use clap::builder::PossibleValue;

use crate::harness::peer_builds::{self, BuildPlan, which};
use crate::results::server::Interpreter;
use crate::results::vocabulary::Peer;

/// Where the Python environments and the compiled peers go, each in its own folder, relative to
/// the folder that holds `peers/`.
pub const ENVIRONMENTS_DIRECTORY: &str = ".bakeoff/peers";

/// How a peer runs: what `bakeoff peers install` prepares for it, what the harness starts, and
/// what its `WORKERS` count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// `serve.py` under the interpreter's environment; gunicorn's master and `WORKERS` worker
    /// processes.
    Python(Interpreter),
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
            Peer::FastapiAsyncpg
            | Peer::FastapiSqlalchemy
            | Peer::FlaskGunicorn
            | Peer::DjangoDrf
            | Peer::FastapiAiopg => Runtime::Python(Interpreter::CPython),
            Peer::FastapiAiopgPypy => Runtime::Python(Interpreter::PyPy),
            Peer::GoPgx => Runtime::Go,
            Peer::SpringJdbc => Runtime::Java {
                main_class: "bakeoff.springjdbc.Main",
            },
        }
    }

    /// Whether its `WORKERS` are processes (gunicorn's workers), each with its own pool, rather
    /// than threads of one process: the processes dimension of a run is then its `WORKERS`.
    pub fn workers_are_processes(self) -> bool {
        matches!(self.runtime(), Runtime::Python(_))
    }

    /// How long it must serve load before its figures count, when that is longer than a run's
    /// usual warm-up: the JVM and PyPy interpret until their JITs have compiled the hot paths.
    pub fn minimum_warmup(self) -> Duration {
        match self.runtime() {
            Runtime::Java { .. } => JVM_WARMUP,
            Runtime::Python(interpreter) => interpreter.minimum_warmup(),
            Runtime::Go => Duration::ZERO,
        }
    }

    /// Whether the project builds a container image of it: the CPython peers, in one image
    /// (`docker/peers/`, from wheels that the machine downloads first; `--profile peers`, and
    /// the Kubernetes peers component). The others are not in containers yet: the Go and Java
    /// ones would need their build tools or runtime in a local base, PyPy a base of its own
    /// (docker/README.md).
    pub fn has_image(self) -> bool {
        match self {
            Peer::FastapiAsyncpg
            | Peer::FastapiSqlalchemy
            | Peer::FlaskGunicorn
            | Peer::DjangoDrf
            | Peer::FastapiAiopg => true,
            Peer::GoPgx | Peer::SpringJdbc | Peer::FastapiAiopgPypy => false,
        }
    }

    /// A Python peer's environment's Python, the environment created first when it is missing.
    pub fn python(self) -> Result<PathBuf> {
        match self.runtime() {
            Runtime::Python(interpreter) => interpreter.python(),
            _ => bail!("{self} is not a Python peer"),
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
            Runtime::Python(interpreter) => Ok(Program {
                program: interpreter.python()?,
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
        // `all`, then every peer, from `Peer` itself.
        static CHOICES: LazyLock<Vec<PeerChoice>> = LazyLock::new(|| {
            [PeerChoice::All]
                .into_iter()
                .chain(Peer::value_variants().iter().copied().map(PeerChoice::Peer))
                .collect()
        });
        &CHOICES
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

/// The compiled peers' folder: `.bakeoff/peers` beside `peers/`.
pub fn build_directory() -> Result<PathBuf> {
    let peers = peers_directory()?;
    let project = peers.parent().unwrap_or(Path::new("."));
    Ok(project.join(ENVIRONMENTS_DIRECTORY))
}

/// Prepares every peer: the Python environments, then every compiled peer (rebuilt). When
/// Debian packages are missing, nothing is compiled and the error names them all in one
/// `apt-get` line.
pub fn install_all() -> Result<()> {
    install()?;
    let compiled: Vec<Peer> = Peer::all()
        .iter()
        .copied()
        .filter(|peer| !matches!(peer.runtime(), Runtime::Python(_)))
        .collect();
    let mut missing: Vec<String> = Vec::new();
    for peer in &compiled {
        for package in peer_builds::missing_packages(&peer_builds::needs_of(&peer.folder()?)?) {
            if !missing.contains(&package) {
                missing.push(package);
            }
        }
    }
    peer_builds::require_packages(&missing, "building the Go and Java peers")?;
    for peer in compiled {
        peer.prepare(true)?;
    }
    Ok(())
}

impl Interpreter {
    pub const ALL: [Interpreter; 2] = [Interpreter::CPython, Interpreter::PyPy];

    /// The interpreter that creates the environment, looked up on `PATH`.
    fn interpreter(self) -> &'static str {
        match self {
            Interpreter::CPython => "python3",
            Interpreter::PyPy => "pypy3",
        }
    }

    /// Its environment's folder name under `.bakeoff/peers/`.
    fn directory_name(self) -> &'static str {
        match self {
            Interpreter::CPython => "venv",
            Interpreter::PyPy => "pypy-venv",
        }
    }

    /// Its requirements file in `peers/`.
    fn requirements_name(self) -> &'static str {
        match self {
            Interpreter::CPython => "requirements.txt",
            Interpreter::PyPy => "requirements-pypy.txt",
        }
    }

    /// pip's options beyond the requirements file. PyPy's file pins every package, transitive
    /// ones included, and installs them without resolving: aiopg declares psycopg2-binary,
    /// which PyPy cannot load (psycopg2cffi stands in for it).
    fn pip_options(self) -> &'static [&'static str] {
        match self {
            Interpreter::CPython => &[],
            Interpreter::PyPy => &["--no-deps"],
        }
    }

    /// The load a server on this runtime needs before its figures are its steady state, at
    /// least, whatever `--warmup` says. PyPy's JIT compiles a request's hot paths only after
    /// thousands of requests per worker: fastapi-aiopg-pypy's CPU per sequential `/types`
    /// answer fell from 5 to 2.2 ms over its first 3,500 (and for `types` at 64 connections
    /// from 3.6 to 1.8 ms over its first 40 s, on a busy machine where it had a quarter of a
    /// CPU). A minute of the mixed warm-up is some 10,000 cold answers on a whole CPU, enough
    /// for every scenario's path. CPython needs nothing beyond the run's own warm-up.
    pub fn minimum_warmup(self) -> Duration {
        match self {
            Interpreter::CPython => Duration::ZERO,
            Interpreter::PyPy => Duration::from_secs(60),
        }
    }

    /// The environment's folder: `.bakeoff/peers/<name>` beside `peers/`.
    pub fn environment(self) -> Result<PathBuf> {
        let peers = peers_directory()?;
        let project = peers.parent().unwrap_or(Path::new("."));
        Ok(project
            .join(ENVIRONMENTS_DIRECTORY)
            .join(self.directory_name()))
    }

    fn requirements(self) -> Result<PathBuf> {
        Ok(peers_directory()?.join(self.requirements_name()))
    }

    /// The environment's Python, when the environment holds exactly the pinned packages of the
    /// current requirements file (its marker keeps a copy of the file it was installed from).
    pub fn installed_python(self) -> Option<PathBuf> {
        let environment = self.environment().ok()?;
        let python = environment.join("bin/python");
        let installed_from = std::fs::read(environment.join(INSTALLED_MARKER)).ok()?;
        let requirements = std::fs::read(self.requirements().ok()?).ok()?;
        // Made absolute without resolving links: the environment's python is a link to the base
        // interpreter, which outside the environment would not see its packages.
        (python.is_file() && installed_from == requirements)
            .then(|| std::path::absolute(&python).unwrap_or(python))
    }

    /// The environment's Python, creating the environment first when it is missing.
    pub fn python(self) -> Result<PathBuf> {
        match self.installed_python() {
            Some(python) => Ok(python),
            None => self.install(),
        }
    }

    /// The Debian packages that installing needs and the machine lacks, by what they provide:
    /// the interpreter, its `venv`, and for PyPy the headers and `pg_config` that building
    /// psycopg2cffi from source needs.
    pub fn missing_debian_packages(self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        match which(self.interpreter()) {
            None => missing.extend(match self {
                Interpreter::CPython => ["python3", "python3-venv"].as_slice(),
                Interpreter::PyPy => ["pypy3", "pypy3-venv", "pypy3-dev"].as_slice(),
            }),
            Some(program) => {
                if python_says(&program, "import ensurepip, venv").is_none() {
                    missing.push(match self {
                        Interpreter::CPython => "python3-venv",
                        Interpreter::PyPy => "pypy3-venv",
                    });
                }
                let include = "import sysconfig; print(sysconfig.get_paths()['include'])";
                if self == Interpreter::PyPy
                    && !python_says(&program, include)
                        .is_some_and(|folder| Path::new(folder.trim()).join("Python.h").is_file())
                {
                    missing.push("pypy3-dev");
                }
            }
        }
        if self == Interpreter::PyPy && which("pg_config").is_none() {
            missing.push("libpq-dev");
        }
        missing
    }

    /// Creates (or completes) the environment from PyPI with the pinned versions; returns its
    /// Python. Says what it does on stderr; a missing Debian package stops it with the line
    /// that installs it.
    pub fn install(self) -> Result<PathBuf> {
        let missing = self.missing_debian_packages();
        if !missing.is_empty() {
            bail!(
                "the {self} peers need Debian packages this machine lacks: `apt-get install {}`",
                missing.join(" ")
            );
        }
        let system_python = which(self.interpreter())
            .with_context(|| format!("{} is not on PATH", self.interpreter()))?;
        let requirements = self.requirements()?;
        let environment = self.environment()?;
        let environment = environment.as_path();
        std::fs::create_dir_all(environment)
            .with_context(|| format!("creating {}", environment.display()))?;
        // One installer at a time (tests start peers in parallel); the next finds it done.
        let lock = std::fs::File::create(environment.with_extension("lock"))
            .with_context(|| format!("creating the lock beside {}", environment.display()))?;
        let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, error)| anyhow::anyhow!("locking the peers' environment: {error}"))?;
        if let Some(python) = self.installed_python() {
            return Ok(python);
        }
        if !environment.join("bin/python").is_file() {
            eprintln!(
                "peers: creating a {self} environment in {}",
                environment.display()
            );
            let output = Command::new(&system_python)
                .args(["-m", "venv"])
                .arg(environment)
                .stdin(Stdio::null())
                .output()
                .with_context(|| format!("running {} -m venv", self.interpreter()))?;
            if !output.status.success() {
                bail!(
                    "{} -m venv failed: {}",
                    self.interpreter(),
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
        }
        eprintln!(
            "peers: installing the pinned packages of {} from PyPI (a minute or two the first time)",
            requirements.display()
        );
        let status = Command::new(environment.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--quiet",
                "--progress-bar",
                "off",
            ])
            .args(self.pip_options())
            .arg("-r")
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
        let marker = environment.join(INSTALLED_MARKER);
        std::fs::copy(&requirements, &marker)
            .with_context(|| format!("writing {}", marker.display()))?;
        eprintln!("peers: ready in {}", environment.display());
        self.installed_python()
            .context("the environment is incomplete after installing")
    }
}

impl fmt::Display for Interpreter {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Interpreter::CPython => "CPython",
            Interpreter::PyPy => "PyPy",
        })
    }
}

/// The file in an environment that says it is complete: a copy of the requirements it was
/// installed from.
const INSTALLED_MARKER: &str = ".bakeoff-installed";

/// Creates (or completes) every interpreter's environment; returns their Pythons.
pub fn install() -> Result<Vec<PathBuf>> {
    Interpreter::ALL
        .into_iter()
        .map(Interpreter::install)
        .collect()
}

/// What `program -c code` prints, when it succeeds.
fn python_says(program: &Path, code: &str) -> Option<String> {
    let output = Command::new(program)
        .args(["-c", code])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
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
    fn only_python_peers_count_processes_and_only_the_jits_need_a_long_warmup() {
        assert!(Peer::FlaskGunicorn.workers_are_processes());
        assert!(Peer::FastapiAiopgPypy.workers_are_processes());
        assert!(Peer::FastapiAiopgPypy.minimum_warmup() >= Duration::from_secs(30));
        assert_eq!(Peer::FastapiAiopg.minimum_warmup(), Duration::ZERO);
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
                Runtime::Python(_) => folder.join("serve.py"),
                Runtime::Go => folder.join("main.go"),
                Runtime::Java { main_class } => folder
                    .join("src/main/java")
                    .join(main_class.replace('.', "/"))
                    .with_extension("java"),
            };
            assert!(entry.is_file(), "{peer}: {} is missing", entry.display());
            if !matches!(peer.runtime(), Runtime::Python(_)) {
                assert!(
                    !peer_builds::needs_of(&folder).unwrap().is_empty(),
                    "{peer}"
                );
            }
        }
    }

    #[test]
    fn each_interpreter_has_its_own_environment_and_requirements() {
        assert_eq!(
            Peer::FastapiAiopgPypy.runtime(),
            Runtime::Python(Interpreter::PyPy)
        );
        assert_eq!(
            Peer::FastapiAiopg.runtime(),
            Runtime::Python(Interpreter::CPython)
        );
        let cpython = Interpreter::CPython.environment().unwrap();
        let pypy = Interpreter::PyPy.environment().unwrap();
        assert!(
            cpython.ends_with(".bakeoff/peers/venv"),
            "{}",
            cpython.display()
        );
        assert!(
            pypy.ends_with(".bakeoff/peers/pypy-venv"),
            "{}",
            pypy.display()
        );
        for interpreter in Interpreter::ALL {
            assert!(
                interpreter.requirements().unwrap().is_file(),
                "{interpreter}"
            );
        }
    }
}
