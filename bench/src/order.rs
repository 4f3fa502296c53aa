//! Interleaved rounds, their order shuffled from a seed, and their defaults. `bakeoff run`
//! (`measure::rounds`), the concurrency study and `bakeoff load`'s shards (`harness::sharding`)
//! all order their rounds here, so that one seed gives one order wherever it is computed: every
//! shard of a load plan, on any host, measures the same cell at the same time.

use std::time::Duration;

use crate::engine::SplitMix64;
use crate::results::run::Stage;

/// The rounds of a run unless told: five rounds of 2 s make the same 10 s per cell as the
/// single block of earlier versions.
pub const DEFAULT_ROUNDS: usize = 5;
/// The shortest window of a cell in one round.
pub const MIN_ROUND: Duration = Duration::from_millis(200);
/// A cell's window in one round: `duration` over `rounds`, checked as every command that runs
/// rounds checks it (1 to 100 rounds, a window of at least [`MIN_ROUND`]).
pub fn round_window(duration: Duration, rounds: usize) -> anyhow::Result<Duration> {
    anyhow::ensure!(
        (1..=100).contains(&rounds),
        "--rounds must be from 1 to 100"
    );
    let window = duration / rounds as u32;
    anyhow::ensure!(
        window >= MIN_ROUND,
        "--duration {} over {rounds} rounds leaves {} ms per round; give each round at least {} ms",
        humantime::format_duration(duration),
        window.as_millis(),
        MIN_ROUND.as_millis()
    );
    Ok(window)
}

/// Load before each cell's window in a round: the server meets the cell's connections and
/// requests again after the other servers' cells.
pub const CELL_WARMUP: Duration = Duration::from_millis(100);

/// The salt of a stage's rounds, so that the stages of one seed are not shuffled alike.
pub fn salt(stage: Stage) -> u64 {
    match stage {
        Stage::ClosedLoop => 0x5eed_0001,
        Stage::Efficiency => 0x5eed_0002,
        Stage::Fault => 0x5eed_0003,
    }
}

/// The order of one round: the blocks in an order shuffled from `seed`, `salt` (one per kind of
/// round) and the round's number, and the items of each block (the servers measured at one
/// point) shuffled within it, so that they follow each other.
pub fn round_order<T>(mut blocks: Vec<Vec<T>>, seed: u64, salt: u64, round: usize) -> Vec<T> {
    let mut random = SplitMix64::new(seed ^ salt ^ ((round as u64) << 32));
    shuffle(&mut blocks, &mut random);
    for block in &mut blocks {
        shuffle(block, &mut random);
    }
    blocks.into_iter().flatten().collect()
}

/// Fisher-Yates.
fn shuffle<T>(items: &mut [T], random: &mut SplitMix64) {
    for index in (1..items.len()).rev() {
        let other = random.below(index + 1);
        items.swap(index, other);
    }
}
