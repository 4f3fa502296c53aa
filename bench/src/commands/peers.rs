//! `bakeoff peers install`: the Python environment of the peers, created under `.bakeoff/peers/`
//! from PyPI with the pinned versions (the harness also does it on first use).

use anyhow::Result;

use crate::harness::peers;

#[derive(Debug, clap::Args)]
pub struct PeersArgs {
    #[command(subcommand)]
    pub command: PeersCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum PeersCommand {
    /// Create (or complete) the environment and install the pinned packages.
    Install,
    /// List the peers and whether the environment is installed.
    List,
}

pub fn peers(args: PeersArgs) -> Result<()> {
    match args.command {
        PeersCommand::Install => {
            let python = peers::install()?;
            println!("{}", python.display());
        }
        PeersCommand::List => {
            let installed = peers::installed_python().is_some();
            for peer in peers::Peer::all() {
                println!("{peer}");
            }
            eprintln!(
                "environment ({}): {}",
                peers::venv_directory()?.display(),
                if installed {
                    "installed"
                } else {
                    "not installed (`bakeoff peers install`, or it is created on first use)"
                }
            );
        }
    }
    Ok(())
}
