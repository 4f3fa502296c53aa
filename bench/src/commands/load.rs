//! `bakeoff load`: one shard of a load plan against servers given by URL. Its flags become a
//! `harness::sharding::ShardPlan`; the harness reaches the servers, waits for each slot's time
//! and runs the engine; each cell goes into the shard file (`results::shard`) as it ends. Run
//! alone (`--shard 1/1`, the default) it is the engine against running servers; run N times
//! with `--shard K/N` and one `--start-at`, on one host or many, its files merge into one run
//! (`bakeoff merge`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use jiff::Timestamp;

use crate::format::group_thousands;
use crate::harness::flags::parse_duration;
use crate::harness::servers::TargetSpec;
use crate::harness::sharding::{self, ShardPlan};
use crate::machine::utc_now;
use crate::order::{CELL_WARMUP, DEFAULT_ROUNDS};
use crate::results::setup::{CpuList, Machine, ShardIndex};
use crate::results::shard::{SHARD_FORMAT_VERSION, ShardCell, ShardFile, ShardTarget, SharedPlan};
use crate::results::vocabulary::Scenario;

/// The options of `bakeoff load`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// A running server on the contract: NAME=URL, or NAME=URL,DATABASE_URL when it serves
    /// another database than DATABASE_URL; repeat for several (measured in interleaved rounds).
    #[arg(long = "target", value_name = "NAME=URL[,DATABASE_URL]", value_parser = TargetSpec::parse, required = true)]
    pub targets: Vec<TargetSpec>,
    /// Scenarios, comma-separated (default: all).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub scenarios: Vec<Scenario>,
    /// Connection levels, comma-separated: all shards together (each takes its share).
    #[arg(long, value_delimiter = ',', default_value = "64")]
    pub connections: Vec<usize>,
    /// Open loop at this many requests per second, all shards together.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Measured time per cell over all its rounds (10s over 5 rounds: 2 s per round).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Warm-up before each target's first level (at most 1 s before the next levels).
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub warmup: Duration,
    /// Pause between two cells: room for answers still in flight when a cell ends.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub gap: Duration,
    /// Interleaved rounds, as in `bakeoff run`: each measures every cell once, for its share
    /// of --duration, the targets of a scenario one after the other in an order shuffled from
    /// --seed (the same in every shard).
    #[arg(long, alias = "repeat", default_value_t = DEFAULT_ROUNDS)]
    pub rounds: usize,
    /// This shard of how many: 2/3 is the second of three (default 1/1).
    #[arg(long, conflicts_with = "shards")]
    pub shard: Option<ShardIndex>,
    /// The number of shards, this one's index taken from JOB_COMPLETION_INDEX (from 0), as a pod
    /// of an indexed Kubernetes Job has it.
    #[arg(long)]
    pub shards: Option<usize>,
    #[arg(long, env = "JOB_COMPLETION_INDEX", hide = true)]
    pub job_completion_index: Option<usize>,
    /// When the first cell starts, the same for every shard (RFC 3339, 2026-05-01T12:00:00Z);
    /// default: in two seconds.
    #[arg(long)]
    pub start_at: Option<Timestamp>,
    /// Where the shard file (shard-K-of-N.json) is written.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// Engine threads (default: this process's CPUs).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Pin the engine threads to these CPUs (`0-1`, `2,3`).
    #[arg(long)]
    pub engine_cpus: Option<CpuList>,
    /// A request not answered within this counts as a timeout.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub timeout: Duration,
    /// Check the body of every N-th answer of each connection (1: all).
    #[arg(long, default_value_t = 16)]
    pub check_every: u64,
    /// Count answers by status only, without comparing bodies (a server whose JSON is not
    /// bakeoff's bytes).
    #[arg(long)]
    pub statuses_only: bool,
    /// The database the requests of the database scenarios are drawn from (the same data the
    /// servers serve).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Seed of the request choice and of the rounds' order (the same in every shard).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Allow targets that are not on a loopback address.
    #[arg(long)]
    pub allow_remote: bool,
}

impl LoadArgs {
    fn plan(&self) -> Result<ShardPlan> {
        let shard = match (self.shard, self.shards) {
            (Some(shard), _) => shard,
            (None, Some(count)) => {
                let index = self.job_completion_index.context(
                    "--shards N takes this shard's index from JOB_COMPLETION_INDEX, which is not \
                     set: give --shard K/N",
                )?;
                ShardIndex::from_completion_index(index, count)?
            }
            (None, None) => ShardIndex { index: 1, count: 1 },
        };
        let mut connections = self.connections.clone();
        connections.sort_unstable();
        connections.dedup();
        let start_at = match self.start_at {
            Some(start_at) => start_at,
            None => Timestamp::now()
                .checked_add(Duration::from_secs(2))
                .context("the clock is out of range")?,
        };
        let threads = self
            .threads
            .unwrap_or_else(|| bakeoff_core::config::available_cpus().get());
        anyhow::ensure!(threads >= 1, "--threads must be at least 1");
        Ok(ShardPlan {
            shard,
            targets: self.targets.clone(),
            scenarios: crate::names::chosen_or_all(&self.scenarios),
            connections,
            rate: self.rate,
            duration: self.duration,
            warmup: self.warmup,
            cell_warmup: CELL_WARMUP,
            gap: self.gap,
            rounds: self.rounds,
            timeout: self.timeout,
            check_every: self.check_every,
            seed: self.seed,
            statuses_only: self.statuses_only,
            start_at,
            threads,
            cpus: self.engine_cpus.clone(),
            allow_remote: self.allow_remote,
            database_url: self.database_url.clone(),
        })
    }
}

/// `bakeoff load`: runs this shard of the plan and writes its file; returns the file's path.
pub async fn load(args: LoadArgs, command_line: String) -> Result<PathBuf> {
    let plan = args.plan()?;
    plan.check(Timestamp::now())?;
    for target in &plan.targets {
        let address = target.address()?;
        anyhow::ensure!(
            address.ip().is_loopback() || plan.allow_remote,
            "{} ({address}) is not on a loopback address: add --allow-remote",
            target.name
        );
    }
    // Where the file goes is known to be writable before the load starts.
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let (started_at, _) = utc_now();
    let reached = sharding::prepare(&plan).await?;
    eprintln!(
        "shard {}: {} target(s), the first cell at {}",
        plan.shard,
        reached.len(),
        plan.start_at
    );
    let mut cells = Vec::new();
    sharding::run(&plan, &reached, |run| {
        let cell = ShardCell::of(&run)?;
        eprintln!(
            "shard {} round {}/{} {:<22} {:<16} c={:<4} ({} here) {:>9} req/s  p99 {:>8.2} ms  errors {}  engine {}  started {:+.1} ms",
            plan.shard,
            cell.round + 1,
            plan.rounds,
            cell.target,
            cell.scenario.to_string(),
            cell.connections,
            cell.shard_connections,
            group_thousands((cell.ok as f64 / cell.seconds.max(1e-9)).round() as i64),
            run.outcome.latency.value_at_quantile(0.99) as f64 / 1_000.0,
            cell.errors.values().sum::<u64>(),
            cell.engine_busy_percent(plan.threads)
                .map_or_else(|| "–".to_string(), |busy| format!("{busy:.0} %")),
            run.planned_window_start
                .duration_until(run.window_start)
                .as_secs_f64()
                * 1_000.0,
        );
        cells.push(cell);
        Ok(())
    })
    .await?;
    let (finished_at, _) = utc_now();
    let file = ShardFile {
        format_version: SHARD_FORMAT_VERSION,
        shard: plan.shard,
        host: host_name(),
        command: command_line,
        started_at,
        finished_at,
        machine: Machine::describe(),
        plan: SharedPlan::of(&plan),
        engine_threads: plan.threads,
        targets: reached
            .iter()
            .map(|target| ShardTarget {
                name: target.spec.name.clone(),
                url: target.spec.url.clone(),
                effective: target.effective.clone(),
            })
            .collect(),
        cells,
    };
    let path = file.write(&args.out)?;
    println!("shard {}: {}", plan.shard, path.display());
    Ok(path)
}

/// The node the shard ran on where Kubernetes says it (`NODE_NAME` from the pod's spec), else
/// this host's name.
fn host_name() -> String {
    std::env::var("NODE_NAME")
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|name| name.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}
