//! One shard of a load plan (`bakeoff load`): the load of a benchmark split over several engine
//! processes, on one host or many, each sending its share of the connections (and of the rate)
//! with the same scenarios, levels and rounds, every cell starting at the same wall-clock time
//! in every shard, so that together they load each server as one engine would, and their files
//! merge into one run (`results::shard`).
//!
//! The plan is a list of [`Slot`]s laid end to end from `--start-at`, each as long as its load
//! plus a gap, computed alike by every shard from the same flags: a shard never waits for
//! another, it waits for the clock. After each target's warm-ups come interleaved rounds as in
//! `bakeoff run`: each round measures every cell once, for its share of the cell's time, in the
//! order [`crate::order`] shuffles from the seed (the targets of one scenario at one level one
//! after the other), so that a slow minute of the machines falls on every target alike. A shard
//! that reaches a slot late (a server answering slowly past the end of the previous cell, up to
//! the timeout) starts it late, and its window's start is recorded, so the merge shows how far
//! apart the shards were.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use jiff::{SignedDuration, Timestamp};

use crate::engine::{self, LiveCounters, LoadOutcome, LoadSpec, PlannedRequest};
use crate::harness::lifecycle::{resource_snapshot, wait_until_ready};
use crate::harness::servers::TargetSpec;
use crate::order;
use crate::results::run::Stage;
use crate::results::server::EffectiveSettings;
use crate::results::setup::{CpuList, ShardIndex};
use crate::results::shard::{EncodedHistogram, ShardCell, SharedPlan};
use crate::results::vocabulary::Scenario;
use crate::scenarios::Pools;

impl ShardIndex {
    /// The shard of an indexed Kubernetes Job's pod: JOB_COMPLETION_INDEX counts from 0.
    pub fn from_completion_index(completion_index: usize, count: usize) -> Result<ShardIndex> {
        ShardIndex::new(completion_index + 1, count)
    }

    fn new(index: usize, count: usize) -> Result<ShardIndex> {
        anyhow::ensure!(count >= 1, "a plan has at least one shard");
        anyhow::ensure!(
            (1..=count).contains(&index),
            "shard {index} of {count}: the shard is from 1 to {count}"
        );
        Ok(ShardIndex { index, count })
    }

    /// This shard's part of `total` (connections): an equal share, the first shards taking one
    /// more each while the remainder lasts, so that the shares add up to `total`.
    pub fn share(self, total: usize) -> usize {
        total / self.count + usize::from(self.index <= total % self.count)
    }

    /// For file names: `shard-2-of-3`.
    pub fn slug(self) -> String {
        format!("shard-{}-of-{}", self.index, self.count)
    }
}

impl fmt::Display for ShardIndex {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.index, self.count)
    }
}

impl FromStr for ShardIndex {
    type Err = String;

    fn from_str(text: &str) -> Result<ShardIndex, String> {
        let (index, count) = text
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not a shard such as 2/3"))?;
        let number = |part: &str| {
            part.trim()
                .parse::<usize>()
                .map_err(|_| format!("{text:?} is not a shard such as 2/3"))
        };
        ShardIndex::new(number(index)?, number(count)?).map_err(|error| error.to_string())
    }
}

/// Everything one shard does, resolved from the flags before anything starts. Every field but
/// `shard`, `threads` and `cpus` must be the same in every shard of a run.
#[derive(Debug, Clone)]
pub struct ShardPlan {
    pub shard: ShardIndex,
    pub targets: Vec<TargetSpec>,
    pub scenarios: Vec<Scenario>,
    /// Connection levels, all shards together.
    pub connections: Vec<usize>,
    /// Open-loop rate, all shards together.
    pub rate: Option<f64>,
    /// Measured time per cell, over all its rounds.
    pub duration: Duration,
    /// Warm-up before the first level of each target (a shorter one before the next levels).
    pub warmup: Duration,
    /// Unrecorded load before each cell's window, as in `bakeoff run`.
    pub cell_warmup: Duration,
    /// Between two slots: room for answers still in flight when a cell ends.
    pub gap: Duration,
    pub rounds: usize,
    pub timeout: Duration,
    pub check_every: u64,
    /// Seeds the requests drawn from the database (the same in every shard).
    pub seed: u64,
    /// Answers counted by their status only, bodies not compared.
    pub statuses_only: bool,
    pub start_at: Timestamp,
    pub threads: usize,
    pub cpus: Option<CpuList>,
    pub allow_remote: bool,
    /// Where the database scenarios' requests are drawn from, for targets without their own.
    pub database_url: Option<String>,
}

/// What a slot does.
#[derive(Debug, Clone, PartialEq)]
pub enum SlotKind {
    /// Every scenario mixed at a level, not recorded.
    Warmup,
    /// One round of one scenario at one level, recorded after the cell's warm-up.
    Cell { scenario: Scenario, round: usize },
}

/// A stretch of the plan's time: what every shard does from `start`, for `length`.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub start: Timestamp,
    pub length: Duration,
    /// Index into the plan's targets.
    pub target: usize,
    /// Connections, all shards together.
    pub connections: usize,
    pub kind: SlotKind,
}

impl ShardPlan {
    /// Checks what can be checked before anything starts.
    pub fn check(&self, now: Timestamp) -> Result<()> {
        anyhow::ensure!(
            !self.targets.is_empty(),
            "give the servers with --target NAME=URL"
        );
        anyhow::ensure!(!self.scenarios.is_empty(), "no scenario to run");
        order::round_window(self.duration, self.rounds)?;
        for &connections in &self.connections {
            if connections < self.shard.count || connections > engine::MAX_CONNECTIONS {
                bail!(
                    "--connections {connections}: every one of {} shards needs a connection, and \
                     a level is at most {}",
                    self.shard.count,
                    engine::MAX_CONNECTIONS
                );
            }
        }
        if let Some(rate) = self.rate {
            anyhow::ensure!(
                rate.is_finite() && rate > 0.0,
                "--rate must be a positive number of requests per second"
            );
        }
        let mut names: Vec<&str> = self.targets.iter().map(|t| t.name.as_str()).collect();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            bail!("--target {} is given twice", pair[0]);
        }
        let late = now.duration_since(self.start_at);
        anyhow::ensure!(
            late <= SignedDuration::from_secs(1),
            "--start-at {} is {:.1} s in the past: the shards start together at a time still to \
             come",
            self.start_at,
            late.as_secs_f64()
        );
        if let Some(target) = self.targets.iter().find(|target| {
            self.uses_database() && target.database_url.is_none() && self.database_url.is_none()
        }) {
            bail!(
                "the database scenarios draw their requests from the database: give DATABASE_URL \
                 (or --database-url), or NAME=URL,DATABASE_URL for {}",
                target.name
            );
        }
        Ok(())
    }

    /// The warm-up before the `level_index`-th level of a target, as `bakeoff run` warms up.
    fn warmup_before_level(&self, level_index: usize) -> Duration {
        if level_index == 0 {
            self.warmup
        } else {
            self.warmup.min(Duration::from_secs(1))
        }
    }

    /// Whether a scenario of the plan draws its requests from the database.
    pub fn uses_database(&self) -> bool {
        self.scenarios
            .iter()
            .any(|scenario| scenario.uses_database())
    }

    /// A cell's window in one round.
    pub fn round_duration(&self) -> Duration {
        self.duration / self.rounds.max(1) as u32
    }

    /// Every slot of the plan, in order: each target's warm-up at each level, then the rounds,
    /// each cell once per round in the round's shuffled order.
    pub fn schedule(&self) -> Result<Vec<Slot>> {
        let mut slots = Vec::new();
        let mut start = self.start_at;
        let mut push = |length: Duration, target, connections, kind| -> Result<()> {
            slots.push(Slot {
                start,
                length,
                target,
                connections,
                kind,
            });
            start = start
                .checked_add(length + self.gap)
                .context("the plan ends too far in the future")?;
            Ok(())
        };
        for target in 0..self.targets.len() {
            for (level_index, &connections) in self.connections.iter().enumerate() {
                let warmup = self.warmup_before_level(level_index);
                if !warmup.is_zero() {
                    push(warmup, target, connections, SlotKind::Warmup)?;
                }
            }
        }
        // The blocks as `bakeoff run` builds them: one per level and scenario, every target in it.
        let blocks: Vec<Vec<(usize, Scenario, usize)>> = self
            .connections
            .iter()
            .flat_map(|&connections| {
                self.scenarios.iter().map(move |&scenario| {
                    (0..self.targets.len())
                        .map(|target| (target, scenario, connections))
                        .collect()
                })
            })
            .collect();
        let salt = order::salt(Stage::ClosedLoop);
        for round in 0..self.rounds {
            for (target, scenario, connections) in
                order::round_order(blocks.clone(), self.seed, salt, round)
            {
                push(
                    self.cell_warmup + self.round_duration(),
                    target,
                    connections,
                    SlotKind::Cell { scenario, round },
                )?;
            }
        }
        Ok(slots)
    }

    /// This shard's part of an open-loop rate at `connections`: in proportion to its
    /// connections, so that every connection of every shard sends at the same pace.
    pub fn rate_share(&self, connections: usize) -> Option<f64> {
        self.rate
            .map(|rate| rate * self.shard.share(connections) as f64 / connections as f64)
    }
}

/// A target as reached before the run: where it is, what it answers on `/version`, what it
/// says it runs with, and its requests.
pub struct ReachedTarget {
    pub spec: TargetSpec,
    pub address: SocketAddr,
    pub version: Bytes,
    pub effective: Option<EffectiveSettings>,
    pools: Pools,
}

/// Reaches every target (waiting a little for one that is still starting) and draws the
/// requests of the scenarios: everything that can fail before the first slot.
pub async fn prepare(plan: &ShardPlan) -> Result<Vec<ReachedTarget>> {
    let mut reached = Vec::new();
    for spec in &plan.targets {
        let address = spec.address()?;
        let version = wait_until_ready(address, "/version")
            .await
            .with_context(|| format!("reaching {} at {}", spec.name, spec.url))?;
        let effective = resource_snapshot(address)
            .await
            .map(|snapshot| EffectiveSettings {
                processes: snapshot.processes,
                workers: snapshot.workers,
                db_pool_size: snapshot.db_pool_size,
                db_recycle: snapshot.db_recycle,
            });
        // A plan of scenarios without the database never connects to one, whatever
        // DATABASE_URL says.
        let database_url = spec
            .database_url
            .as_ref()
            .or(plan.database_url.as_ref())
            .filter(|_| plan.uses_database());
        let pools = match database_url {
            Some(url) => Pools::build(url, &plan.scenarios, plan.seed)
                .await
                .with_context(|| {
                    format!("drawing the requests of {} from its database", spec.name)
                })?,
            None => Pools::build_without_database(&plan.scenarios)?,
        };
        let pools = if plan.statuses_only {
            pools.without_bodies()
        } else {
            pools
        };
        reached.push(ReachedTarget {
            spec: spec.clone(),
            address,
            version,
            effective,
            pools,
        });
    }
    Ok(reached)
}

/// What one recorded slot measured in this shard.
pub struct CellRun<'a> {
    pub slot: &'a Slot,
    pub target: &'a ReachedTarget,
    /// This shard's connections and rate.
    pub connections: usize,
    pub rate: Option<f64>,
    /// The open-loop rate of all shards together.
    pub level_rate: Option<f64>,
    /// When the plan begins its measured window (the slot's start after the cell's warm-up),
    /// and when it began on the wall clock.
    pub planned_window_start: Timestamp,
    pub window_start: Timestamp,
    pub outcome: LoadOutcome,
}

/// Sets the engine's stop flag when the shard ends for any reason (Ctrl-C drops it).
struct StopOnDrop(Arc<LiveCounters>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Relaxed);
    }
}

/// Runs every slot of the plan at its time and hands each recorded cell to `record` as soon as
/// it ends (its histograms are kept in their compact form there, not all in memory).
pub async fn run(
    plan: &ShardPlan,
    targets: &[ReachedTarget],
    mut record: impl FnMut(CellRun<'_>) -> Result<()>,
) -> Result<()> {
    let live = Arc::new(LiveCounters::default());
    let _stop = StopOnDrop(Arc::clone(&live));
    for slot in &plan.schedule()? {
        let target = &targets[slot.target];
        let wait = Timestamp::now().duration_until(slot.start);
        if wait.is_positive() {
            tokio::time::sleep(wait.unsigned_abs()).await;
        }
        let (requests, seed) = match &slot.kind {
            SlotKind::Warmup => (mixed_requests(plan, target)?, plan.seed),
            SlotKind::Cell { scenario, round } => (
                target.pools.mix(*scenario, &target.version)?,
                plan.seed.wrapping_add(*round as u64),
            ),
        };
        // A cell's own warm-up is unrecorded load at the head of its slot.
        let warmup = match slot.kind {
            SlotKind::Warmup => Duration::ZERO,
            SlotKind::Cell { .. } => plan.cell_warmup,
        };
        let connections = plan.shard.share(slot.connections);
        let rate = plan.rate_share(slot.connections);
        let spec = LoadSpec {
            address: target.address,
            requests,
            connections,
            threads: plan.threads,
            warmup,
            duration: slot.length - warmup,
            rate,
            timeout: plan.timeout,
            check_every: plan.check_every,
            cpus: plan.cpus.clone(),
            // Shards send different sequences of the same requests.
            seed: seed ^ (plan.shard.index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            allow_remote: plan.allow_remote,
            mark: None,
        };
        let engine_live = Arc::clone(&live);
        let outcome = tokio::task::spawn_blocking(move || engine::run(&spec, &engine_live))
            .await
            .context("the load engine stopped")??;
        if slot.kind == SlotKind::Warmup {
            continue;
        }
        let window_start = wall_clock_of(outcome.window_start)?;
        let planned_window_start = slot
            .start
            .checked_add(warmup)
            .context("the plan ends too far in the future")?;
        record(CellRun {
            slot,
            target,
            connections,
            rate,
            level_rate: plan.rate,
            planned_window_start,
            window_start,
            outcome,
        })?;
    }
    Ok(())
}

/// Every scenario's requests mixed: what the warm-up sends.
fn mixed_requests(plan: &ShardPlan, target: &ReachedTarget) -> Result<Arc<Vec<PlannedRequest>>> {
    let mut mixed = Vec::new();
    for &scenario in &plan.scenarios {
        mixed.extend(target.pools.mix(scenario, &target.version)?.iter().cloned());
    }
    Ok(Arc::new(mixed))
}

/// The wall-clock time of a moment of the monotonic clock in the past.
pub fn wall_clock_of(moment: Instant) -> Result<Timestamp> {
    let (now, wall) = (Instant::now(), Timestamp::now());
    let ago = SignedDuration::try_from(now.saturating_duration_since(moment))
        .context("a moment too far in the past")?;
    wall.checked_sub(ago)
        .context("a moment too far in the past")
}

impl SharedPlan {
    pub fn of(plan: &ShardPlan) -> SharedPlan {
        SharedPlan {
            start_at: plan.start_at.to_string(),
            scenarios: plan.scenarios.clone(),
            connections: plan.connections.clone(),
            rate: plan.rate,
            duration_seconds: plan.duration.as_secs_f64(),
            warmup_seconds: plan.warmup.as_secs_f64(),
            cell_warmup_seconds: plan.cell_warmup.as_secs_f64(),
            gap_seconds: plan.gap.as_secs_f64(),
            rounds: plan.rounds,
            timeout_seconds: plan.timeout.as_secs_f64(),
            check_every: plan.check_every,
            seed: plan.seed,
            statuses_only: plan.statuses_only,
            database: plan.uses_database()
                && (plan.database_url.is_some()
                    || plan.targets.iter().any(|t| t.database_url.is_some())),
        }
    }
}

impl ShardCell {
    /// The cell of a finished slot.
    pub fn of(run: &CellRun<'_>) -> Result<ShardCell> {
        let SlotKind::Cell { scenario, round } = run.slot.kind else {
            bail!("a warm-up is not recorded");
        };
        let outcome = &run.outcome;
        let interval_latency = outcome
            .interval_latency
            .iter()
            .map(|histogram| histogram.as_ref().map(EncodedHistogram::encode).transpose())
            .collect::<Result<Vec<_>>>()?;
        Ok(ShardCell {
            target: run.target.spec.name.clone(),
            scenario,
            connections: run.slot.connections,
            rate: run.level_rate,
            round,
            shard_connections: run.connections,
            shard_rate: run.rate,
            scheduled_start: run.planned_window_start.to_string(),
            window_start: run.window_start.to_string(),
            seconds: outcome.measured.as_secs_f64(),
            ok: outcome.ok,
            responses: outcome.responses,
            body_bytes: outcome.body_bytes,
            checked_bodies: outcome.checked_bodies,
            errors: outcome
                .errors
                .iter()
                .map(|(kind, count)| (kind.name(), *count))
                .collect(),
            engine_cpu_seconds: outcome.engine_cpu.as_secs_f64(),
            latency: EncodedHistogram::encode(&outcome.latency)?,
            uncorrected_latency: outcome
                .uncorrected
                .as_ref()
                .map(EncodedHistogram::encode)
                .transpose()?,
            series: outcome.series.clone(),
            interval_latency,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn plan(shard: &str) -> ShardPlan {
        ShardPlan {
            shard: shard.parse().unwrap(),
            targets: vec![
                TargetSpec::parse("a=http://127.0.0.1:1").unwrap(),
                TargetSpec::parse("b=http://127.0.0.1:2").unwrap(),
            ],
            scenarios: vec![Scenario::Version, Scenario::Fibonacci],
            connections: vec![8, 64],
            rate: Some(1_000.0),
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            cell_warmup: Duration::from_millis(100),
            gap: Duration::from_secs(1),
            rounds: 2,
            timeout: Duration::from_secs(5),
            check_every: 16,
            seed: 1,
            statuses_only: false,
            start_at: "2030-01-01T00:00:00Z".parse().unwrap(),
            threads: 1,
            cpus: None,
            allow_remote: false,
            database_url: None,
        }
    }

    #[test]
    fn shards_parse_and_their_shares_add_up_to_the_whole() {
        assert_eq!(
            "2/3".parse::<ShardIndex>().unwrap(),
            ShardIndex { index: 2, count: 3 }
        );
        for bad in ["0/3", "4/3", "1/0", "2", "a/b", "-1/2"] {
            assert!(bad.parse::<ShardIndex>().is_err(), "{bad}");
        }
        assert_eq!(
            ShardIndex::from_completion_index(0, 3).unwrap(),
            ShardIndex { index: 1, count: 3 }
        );
        assert!(ShardIndex::from_completion_index(3, 3).is_err());
        let shares: Vec<usize> = (1..=3)
            .map(|index| ShardIndex { index, count: 3 }.share(64))
            .collect();
        assert_eq!(shares, [22, 21, 21]);
        // Rates follow the connections: 22/64 of 1,000 requests per second.
        assert_eq!(plan("1/3").rate_share(64), Some(343.75));
    }

    #[test]
    fn every_shard_computes_the_same_schedule_of_interleaved_rounds() {
        let first = plan("1/3").schedule().unwrap();
        assert_eq!(first, plan("3/3").schedule().unwrap());
        // 2 targets x 2 levels of warm-ups, then 2 rounds x (2 levels x 2 scenarios x 2 targets).
        assert_eq!(first.len(), 4 + 2 * 8);
        let warmups: Vec<(usize, usize, u64)> = first[..4]
            .iter()
            .map(|slot| {
                assert_eq!(slot.kind, SlotKind::Warmup);
                (slot.target, slot.connections, slot.length.as_secs())
            })
            .collect();
        // The next level's warm-up is shorter, as in `bakeoff run`.
        assert_eq!(warmups, [(0, 8, 2), (0, 64, 1), (1, 8, 2), (1, 64, 1)]);
        // Each slot is its load and a 1 s gap: 3 + 2 + 3 + 2 s of warm-ups.
        let at = |text: &str| text.parse::<Timestamp>().unwrap();
        assert_eq!(first[4].start, at("2030-01-01T00:00:10Z"));
        // A cell's slot: 100 ms of its own warm-up, then 10 s over 2 rounds.
        assert_eq!(first[4].length, Duration::from_millis(5_100));
        assert_eq!(first[5].start, at("2030-01-01T00:00:16.1Z"));
        for (round, cells) in first[4..].chunks(8).enumerate() {
            let mut seen: Vec<(usize, Scenario, usize)> = cells
                .iter()
                .map(|slot| match slot.kind {
                    SlotKind::Cell { scenario, round: r } if r == round => {
                        (slot.target, scenario, slot.connections)
                    }
                    ref other => panic!("round {round} holds {other:?}"),
                })
                .collect();
            // The two targets of a scenario at a level follow each other.
            for pair in seen.chunks(2) {
                assert_eq!((pair[0].1, pair[0].2), (pair[1].1, pair[1].2));
                assert_ne!(pair[0].0, pair[1].0);
            }
            // Every cell once per round.
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), 8);
        }
    }

    #[test]
    fn plans_are_checked_before_anything_starts() {
        let now: Timestamp = "2029-12-31T23:59:00Z".parse().unwrap();
        assert!(plan("1/3").check(now).is_ok());
        let late: Timestamp = "2030-01-01T00:00:05Z".parse().unwrap();
        assert!(
            plan("1/3")
                .check(late)
                .unwrap_err()
                .to_string()
                .contains("in the past")
        );
        let mut too_few = plan("1/3");
        too_few.connections = vec![2];
        assert!(too_few.check(now).is_err());
        let mut short = plan("1/3");
        short.rounds = 100;
        assert!(
            short
                .check(now)
                .unwrap_err()
                .to_string()
                .contains("100 ms per round")
        );
        let mut twice = plan("1/3");
        twice.targets.push(twice.targets[0].clone());
        assert!(twice.check(now).unwrap_err().to_string().contains("twice"));
        let mut database = plan("1/3");
        database.scenarios.push(Scenario::Contact);
        assert!(
            database
                .check(now)
                .unwrap_err()
                .to_string()
                .contains("DATABASE_URL")
        );
    }
}
