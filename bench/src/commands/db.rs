//! `bakeoff db up|seed|url|down` and `bakeoff serve`: a persistent local PostgreSQL under a
//! project folder (`.bakeoff/` by default), the seeder, and one command that starts a server over
//! that database.
//!
//! The cluster runs detached (`pg_ctl`), so it outlives the command and serves until `db down`.
//! Its port is chosen once and kept in `.bakeoff/port`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bakeoff_testkit::postgres::{Cluster, free_port};
use bakeoff_testkit::seed::SeedSpec;
use clap::{Args, Subcommand};
use indicatif::MultiProgress;

use crate::harness::database::seed_with_progress;
use crate::results::vocabulary::Variant;

/// Where the local cluster lives unless `--dir` says otherwise.
pub const DEFAULT_DIRECTORY: &str = ".bakeoff";

#[derive(Debug, Args)]
pub struct DbArgs {
    #[command(subcommand)]
    pub command: DbCommand,
}

#[derive(Debug, Args)]
pub struct LocalDirectory {
    /// The folder that holds the local cluster.
    #[arg(long, default_value = DEFAULT_DIRECTORY, global = true)]
    pub dir: PathBuf,
}

#[derive(Debug, Args, Clone, Copy)]
pub struct SeedArgs {
    /// How many contacts to generate.
    #[arg(long, default_value_t = SeedSpec::default().contacts)]
    pub contacts: u32,
    /// The generator seed: the same contacts and seed give identical rows on any machine.
    #[arg(long, default_value_t = SeedSpec::default().seed)]
    pub seed: u64,
}

impl SeedArgs {
    pub fn spec(self) -> SeedSpec {
        SeedSpec {
            contacts: self.contacts,
            seed: self.seed,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Start (creating if needed) the local PostgreSQL, apply the schema, print its DATABASE_URL.
    Up(LocalDirectory),
    /// Replace the contact data: against DATABASE_URL if set, else the local cluster.
    Seed {
        #[command(flatten)]
        seed: SeedArgs,
        #[command(flatten)]
        local: LocalDirectory,
    },
    /// Print the local cluster's DATABASE_URL.
    Url(LocalDirectory),
    /// Stop the local cluster (`--purge` also deletes its data).
    Down {
        #[command(flatten)]
        local: LocalDirectory,
        /// Delete the cluster's folder after stopping it.
        #[arg(long)]
        purge: bool,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The server to run.
    #[arg(value_enum)]
    pub variant: Variant,
    #[command(flatten)]
    pub seed: SeedArgs,
    #[command(flatten)]
    pub local: LocalDirectory,
}

pub async fn db(args: DbArgs) -> Result<()> {
    match args.command {
        DbCommand::Up(local) => {
            let cluster = up(&local.dir).await?;
            println!("{}", cluster.app_url());
        }
        DbCommand::Seed {
            seed: seed_args,
            local,
        } => {
            let database_url = match std::env::var("DATABASE_URL") {
                Ok(url) if !url.trim().is_empty() => url,
                _ => running_cluster(&local.dir)?.admin_url(),
            };
            seed_reporting_time(&database_url, seed_args.spec()).await?;
        }
        DbCommand::Url(local) => println!("{}", existing_cluster(&local.dir)?.app_url()),
        DbCommand::Down { local, purge } => down(&local.dir, purge)?,
    }
    Ok(())
}

/// Starts the local cluster, seeds it if it holds no contacts, and replaces this process with the
/// server, with DATABASE_URL set (BIND, WORKERS and the rest pass through from the environment).
pub async fn serve(args: ServeArgs) -> Result<()> {
    let release = !cfg!(debug_assertions);
    let binary = bakeoff_testkit::server::workspace_binary(&args.variant.name(), release)?;
    let cluster = up(&args.local.dir).await?;
    let client = bakeoff_testkit::connect(&cluster.admin_url()).await?;
    let contacts: i64 = client
        .query_one("SELECT count(*) FROM contacts", &[])
        .await?
        .get(0);
    if contacts == 0 {
        seed_reporting_time(&cluster.admin_url(), args.seed.spec()).await?;
    } else {
        eprintln!("the local database holds {contacts} contacts; `bakeoff db seed` replaces them");
    }
    eprintln!("starting {} over {}", args.variant, cluster.app_url());
    let error = std::os::unix::process::CommandExt::exec(
        std::process::Command::new(&binary).env("DATABASE_URL", cluster.app_url()),
    );
    Err(error).with_context(|| format!("starting {}", binary.display()))
}

/// Creates the cluster if needed, starts it if stopped, and makes sure the database is prepared.
pub async fn up(directory: &Path) -> Result<Cluster> {
    fs::create_dir_all(directory).with_context(|| format!("creating {}", directory.display()))?;
    let directory = directory.canonicalize()?;
    let port_file = directory.join("port");
    let port = match fs::read_to_string(&port_file) {
        Ok(text) => text
            .trim()
            .parse()
            .with_context(|| format!("reading {}", port_file.display()))?,
        Err(_) => {
            let port = free_port()?;
            fs::write(&port_file, port.to_string())
                .with_context(|| format!("writing {}", port_file.display()))?;
            port
        }
    };
    let cluster = Cluster::new(directory.join("postgres"), port)?;
    if !cluster.is_initialized() {
        eprintln!(
            "creating a PostgreSQL cluster in {}",
            cluster.data_directory().display()
        );
        let init = cluster.clone();
        tokio::task::spawn_blocking(move || init.init()).await??;
    }
    if !cluster.is_running() {
        eprintln!("starting PostgreSQL on 127.0.0.1:{port}");
        let start = cluster.clone();
        tokio::task::spawn_blocking(move || start.start_detached()).await??;
    }
    cluster.prepare_database().await?;
    Ok(cluster)
}

fn existing_cluster(directory: &Path) -> Result<Cluster> {
    let port_file = directory.join("port");
    let Ok(text) = fs::read_to_string(&port_file) else {
        bail!(
            "no local database in {}; start one with `bakeoff db up`",
            directory.display()
        );
    };
    let port = text
        .trim()
        .parse()
        .with_context(|| format!("reading {}", port_file.display()))?;
    Cluster::new(directory.canonicalize()?.join("postgres"), port)
}

fn running_cluster(directory: &Path) -> Result<Cluster> {
    let cluster = existing_cluster(directory)?;
    if !cluster.is_running() {
        bail!(
            "the local database in {} is stopped; start it with `bakeoff db up`, or set DATABASE_URL",
            directory.display()
        );
    }
    Ok(cluster)
}

fn down(directory: &Path, purge: bool) -> Result<()> {
    let cluster = existing_cluster(directory)?;
    if cluster.is_running() {
        cluster.stop_detached()?;
        eprintln!("stopped PostgreSQL on 127.0.0.1:{}", cluster.port());
    } else {
        eprintln!("PostgreSQL in {} was not running", directory.display());
    }
    if purge {
        fs::remove_dir_all(directory)
            .with_context(|| format!("removing {}", directory.display()))?;
        eprintln!("removed {}", directory.display());
    }
    Ok(())
}

/// Seeds with a progress bar on stderr and a closing line with the time taken.
async fn seed_reporting_time(database_url: &str, spec: SeedSpec) -> Result<()> {
    let started = Instant::now();
    seed_with_progress(database_url, &spec, &MultiProgress::new()).await?;
    eprintln!(
        "seeded {} contacts (seed {}) in {:.1} s",
        spec.contacts,
        spec.seed,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
