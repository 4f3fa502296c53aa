//! The flags every command that drives servers shares, parsed by clap and resolved here into the
//! harness's own types: which servers, which database, which dimensions. A new dimension's flag
//! is added to [`DimensionArgs`] once and every command has it.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use bakeoff_testkit::seed::SeedSpec;

use crate::harness::containers::Containers;
use crate::harness::database::DatabaseChoice;
use crate::harness::peers::{PeerChoice, chosen_peers};
use crate::harness::servers::{
    ServerSpec, TargetPaths, TargetSpec, VariantChoice, chosen_variants, servers,
};
use crate::results::server::{BuildProfile, TargetConformance};
use clap::builder::TypedValueParser as _;

use crate::harness::settings::{DbRecycle, DimensionLists};
use crate::results::setup::{Dimensions, RoundTrip};
use crate::results::vocabulary::Pooler;

/// The servers a command drives.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerArgs {
    /// Variants, comma-separated (default: every variant); `none` runs only the --target servers.
    #[arg(long, value_delimiter = ',', value_enum)]
    pub variants: Vec<VariantChoice>,
    /// Peers (the studies' own stacks) to run beside the variants, comma-separated, or `all`
    /// (default: none). Their Python environment and Go and Java builds are made under
    /// .bakeoff/peers/ on first use (`bakeoff peers install`).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub peers: Vec<PeerChoice>,
    /// Also a running server that implements the contract: NAME=URL, or
    /// NAME=URL,DATABASE_URL when it serves another database than the run's.
    #[arg(long = "target", value_name = "NAME=URL[,DATABASE_URL]", value_parser = TargetSpec::parse)]
    pub targets: Vec<TargetSpec>,
    /// Measure the --target servers even where they deviate from the contract: the deviations
    /// are listed in the report, their rows are marked unverified, and under load only answers
    /// with the contract's exact body count as checked bodies (statuses are counted as ever).
    #[arg(long, requires = "targets")]
    pub lenient: bool,
    /// How the --target servers' paths are written: `detect` (a slash after every path when
    /// `/version` redirects to `/version/`), `bare` (the contract's) or `slash`.
    #[arg(long, value_enum, default_value_t = TargetPaths::Detect, requires = "targets")]
    pub target_paths: TargetPaths,
    /// Run the debug builds of the variants instead of the release builds.
    #[arg(long)]
    pub debug: bool,
    /// Allow targets that are not on a loopback address.
    #[arg(long)]
    pub allow_remote: bool,
    /// The host's cgroup hierarchy (its /sys/fs/cgroup), mounted here read-only: in a compose
    /// run, each --target that is a container on this container's network, the database's
    /// container and this one (the load engine's) are measured from their cgroups: CPU time,
    /// memory, threads and limits.
    #[arg(long, value_name = "DIR")]
    pub container_cgroups: Option<PathBuf>,
}

impl ServerArgs {
    /// The servers, variants first; an empty selection is an error naming the fix.
    pub fn servers(&self) -> Result<Vec<ServerSpec>> {
        let variants = chosen_variants(&self.variants).map_err(anyhow::Error::msg)?;
        let peers = chosen_peers(&self.peers);
        if variants.is_empty() && peers.is_empty() && self.targets.is_empty() {
            anyhow::bail!(
                "--variants none leaves nothing to run: add --peers, or servers with --target NAME=URL"
            );
        }
        let conformance = if self.lenient {
            TargetConformance::Lenient
        } else {
            TargetConformance::Strict
        };
        let targets: Vec<TargetSpec> = self
            .targets
            .iter()
            .map(|target| TargetSpec {
                conformance,
                paths: self.target_paths,
                ..target.clone()
            })
            .collect();
        Ok(servers(&variants, &peers, &targets))
    }

    /// The containers of `--container-cgroups`, checked now: a path that is not a cgroup
    /// hierarchy is an error before anything starts.
    pub fn containers(&self) -> Result<Option<Containers>> {
        self.container_cgroups
            .as_deref()
            .map(Containers::open)
            .transpose()
    }

    pub fn profile(&self) -> BuildProfile {
        if self.debug {
            BuildProfile::Debug
        } else {
            BuildProfile::Release
        }
    }
}

/// How every server is configured: each flag takes a list, and every combination is run.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DimensionArgs {
    /// WORKERS for every variant, comma-separated for several (default: each variant's own
    /// default for the CPUs it is pinned to: a runtime thread or event loop per CPU, 2 x CPUs + 1
    /// request threads for the thread-per-request variant).
    #[arg(long, value_delimiter = ',')]
    pub workers: Vec<NonZeroUsize>,
    /// DB_POOL_SIZE for every variant, comma-separated for several (default 4).
    #[arg(long, value_delimiter = ',')]
    pub db_pool_size: Vec<NonZeroUsize>,
    /// DB_RECYCLE, the connection check on checkout, comma-separated for both (default fast);
    /// applies to the variants that check connections out of a pool.
    #[arg(
        long,
        value_delimiter = ',',
        value_parser = clap::builder::PossibleValuesParser::new(DbRecycle::ALL.map(DbRecycle::as_str))
            .try_map(|text| DbRecycle::parse(&text))
    )]
    pub recycle: Vec<DbRecycle>,
    /// Round trips added between the servers and PostgreSQL, comma-separated: 0 (direct), 0.5ms,
    /// 2ms, 500us, at most 1s. Each level above 0 puts a delay line in front of PostgreSQL, pinned
    /// with the engine; its added time is measured and reported (default: 0).
    #[arg(long, value_delimiter = ',', value_name = "ROUND_TRIPS")]
    pub db_latency: Vec<RoundTrip>,
    /// Processes per server, comma-separated for several (default 1): PROCESSES copies of a
    /// variant sharing its port with SO_REUSEPORT, each with its own DB_POOL_SIZE; a peer's
    /// WORKERS (gunicorn's worker processes). From 1 to CPUs x 8.
    #[arg(long, value_delimiter = ',', value_parser = parse_processes)]
    pub processes: Vec<NonZeroUsize>,
    // What stands between the servers and PostgreSQL: the help lists `Pooler::ALL`.
    #[arg(long, value_delimiter = ',', value_parser = Pooler::parse, help = Pooler::help())]
    pub pooler: Vec<Pooler>,
}

/// A process count from 1 to CPUs x 8: more copies than that only measure the scheduler.
fn parse_processes(text: &str) -> Result<NonZeroUsize, String> {
    let limit = bakeoff_core::config::available_cpus().get() * 8;
    text.trim()
        .parse::<usize>()
        .ok()
        .filter(|count| (1..=limit).contains(count))
        .and_then(NonZeroUsize::new)
        .ok_or_else(|| format!("{text:?} is not a process count from 1 to {limit} (CPUs x 8)"))
}

/// DB_POOL_SIZE when none is given: the same for every variant.
pub const DEFAULT_POOL_SIZE: NonZeroUsize = NonZeroUsize::new(4).expect("4 is not zero");

impl DimensionArgs {
    pub fn dimensions(&self) -> Dimensions {
        Dimensions::new(
            &DimensionLists {
                workers: self.workers.clone(),
                db_pool_sizes: self.db_pool_size.clone(),
                recycle: self.recycle.clone(),
                db_latencies: self.db_latency.clone(),
                processes: self.processes.clone(),
                poolers: self.pooler.clone(),
            },
            DEFAULT_POOL_SIZE,
        )
    }
}

/// The database the variants are given.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DatabaseArgs {
    /// Use this database instead of a throwaway one (its data is used as it is unless --seed-data).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// With DATABASE_URL: replace its data with the generated data set first.
    #[arg(long)]
    pub seed_data: bool,
    /// Contacts in the generated data set.
    #[arg(long, default_value_t = SeedSpec::default().contacts)]
    pub contacts: u32,
    /// Seed of the generated data set (and of the request choice).
    #[arg(long, default_value_t = SeedSpec::default().seed)]
    pub seed: u64,
}

impl DatabaseArgs {
    /// The choice, seeding a throwaway cluster (and an external one with --seed-data).
    pub fn choice(&self) -> Result<DatabaseChoice> {
        let data = SeedSpec {
            contacts: self.contacts,
            seed: self.seed,
        };
        match &self.database_url {
            Some(url) => {
                bakeoff_core::config::DatabaseUrl::parse(url)
                    .map_err(|problem| anyhow::anyhow!("DATABASE_URL: {problem}"))?;
                Ok(DatabaseChoice::External {
                    url: url.clone(),
                    data: self.seed_data.then_some(data),
                })
            }
            None => {
                anyhow::ensure!(
                    !self.seed_data,
                    "--seed-data replaces the data of DATABASE_URL; without it the throwaway database is seeded anyway"
                );
                Ok(DatabaseChoice::Throwaway { data: Some(data) })
            }
        }
    }
}

/// Parses a duration as humantime writes them (`10s`, `500ms`, `1m 30s`), or a plain number of
/// seconds (`0.5`); at most an hour.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let duration = match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds >= 0.0 => Duration::from_secs_f64(seconds),
        Ok(_) => return Err(format!("{text:?} is not a duration such as 10s or 500ms")),
        Err(_) => humantime::parse_duration(text).map_err(|error| {
            format!("{text:?} is not a duration such as 10s or 500ms ({error})")
        })?,
    };
    if duration > Duration::from_secs(3_600) {
        return Err(format!("{text:?} must be at most an hour"));
    }
    Ok(duration)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_or_as_seconds() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m 30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("0.5").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("5h").is_err());
    }
}
