//! The Python peers (`peers/`): the studies' own stacks on the same contract, started and measured
//! like the variants. Their one virtual environment lives in `.bakeoff/peers/venv` beside the
//! `peers/` folder, created from PyPI with the pinned `peers/requirements.txt` by
//! `bakeoff peers install`, or on first use. Nothing is installed system-wide.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use clap::builder::PossibleValue;
use serde::{Deserialize, Serialize};

/// Where the environment is created, relative to the folder that holds `peers/`.
pub const VENV_DIRECTORY: &str = ".bakeoff/peers/venv";

/// A Python peer: a folder of `peers/` with a `serve.py`.
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
}

impl Peer {
    pub fn all() -> &'static [Peer] {
        Peer::value_variants()
    }

    /// The folder name, which is also what its `/version` answers.
    pub fn name(self) -> String {
        crate::names::name_of(&self)
    }

    /// Its `serve.py`, the whole command line of the peer (run by the environment's Python).
    pub fn script(self) -> Result<PathBuf> {
        let script = peers_directory()?.join(self.name()).join("serve.py");
        anyhow::ensure!(script.is_file(), "{} is missing", script.display());
        Ok(script)
    }
}

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

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|directory| Path::new(directory).join(program))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_choices_resolve() {
        assert!(chosen_peers(&[]).is_empty());
        assert_eq!(chosen_peers(&[PeerChoice::All]).len(), 3);
        assert_eq!(
            chosen_peers(&[
                PeerChoice::Peer(Peer::FlaskGunicorn),
                PeerChoice::Peer(Peer::FastapiAsyncpg),
                PeerChoice::Peer(Peer::FlaskGunicorn),
            ]),
            [Peer::FastapiAsyncpg, Peer::FlaskGunicorn]
        );
        assert_eq!(Peer::FastapiSqlalchemy.to_string(), "fastapi-sqlalchemy");
    }
}
