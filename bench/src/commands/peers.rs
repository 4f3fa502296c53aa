//! `bakeoff peers install`: everything the peers run with, under `.bakeoff/peers/`: the Python
//! environments (CPython's and PyPy's) from PyPI with the pinned versions, the Go and Java peers
//! built from Debian's packages (the harness also prepares a missing one on first use).

use anyhow::Result;

use crate::harness::peer_builds;
use crate::harness::peers::{self, Runtime};
use crate::results::server::Interpreter;
use crate::results::vocabulary::Peer;

#[derive(Debug, clap::Args)]
pub struct PeersArgs {
    #[command(subcommand)]
    pub command: PeersCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum PeersCommand {
    /// Create (or complete) the Python environments and (re)build the Go and Java peers; names
    /// the Debian packages to install when some are missing.
    Install,
    /// List the peers, how each runs and whether what it needs is there.
    List,
}

pub fn peers(args: PeersArgs) -> Result<()> {
    match args.command {
        PeersCommand::Install => {
            peers::install_all()?;
            for &peer in Peer::all() {
                let program = peer.program()?;
                println!("{peer}: {}", command_line(&program));
            }
        }
        PeersCommand::List => {
            for &peer in Peer::all() {
                let (runtime, state) = match peer.runtime() {
                    Runtime::Python(interpreter) => (
                        match interpreter {
                            Interpreter::CPython => "CPython",
                            Interpreter::PyPy => "PyPy",
                        },
                        if interpreter.installed_python().is_some() {
                            "environment installed".to_string()
                        } else {
                            "environment not installed".to_string()
                        },
                    ),
                    Runtime::Go | Runtime::Java { .. } => {
                        let missing =
                            peer_builds::missing_packages(&peer_builds::needs_of(&peer.folder()?)?);
                        let runtime = if peer.runtime() == Runtime::Go {
                            "Go"
                        } else {
                            "Java"
                        };
                        let state = if missing.is_empty() {
                            "Debian packages present".to_string()
                        } else {
                            format!("missing Debian packages: {}", missing.join(" "))
                        };
                        (runtime, state)
                    }
                };
                println!("{:<20} {runtime:<8} {state}", peer.to_string());
            }
            eprintln!(
                "prepared in {} by `bakeoff peers install`, or on first use",
                peers::build_directory()?.display()
            );
        }
    }
    Ok(())
}

fn command_line(program: &peers::Program) -> String {
    std::iter::once(program.program.as_os_str())
        .chain(
            program
                .arguments
                .iter()
                .map(|argument| argument.as_os_str()),
        )
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
