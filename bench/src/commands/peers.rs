//! `bakeoff peers install`: the Python environments of the peers (CPython's and PyPy's), created
//! under `.bakeoff/peers/` from PyPI with the pinned versions (the harness also creates a peer's
//! on first use).

use anyhow::Result;

use crate::harness::peers;

#[derive(Debug, clap::Args)]
pub struct PeersArgs {
    #[command(subcommand)]
    pub command: PeersCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum PeersCommand {
    /// Create (or complete) both environments and install the pinned packages.
    Install,
    /// List the peers, the Python each runs on, and whether its environment is installed.
    List,
}

pub fn peers(args: PeersArgs) -> Result<()> {
    match args.command {
        PeersCommand::Install => {
            for python in peers::install()? {
                println!("{}", python.display());
            }
        }
        PeersCommand::List => {
            for peer in peers::Peer::all() {
                println!("{peer}\t{}", peer.runtime());
            }
            for runtime in peers::Runtime::ALL {
                eprintln!(
                    "{runtime} environment ({}): {}",
                    runtime.environment()?.display(),
                    if runtime.installed_python().is_some() {
                        "installed"
                    } else {
                        "not installed (`bakeoff peers install`, or it is created on first use)"
                    }
                );
            }
        }
    }
    Ok(())
}
