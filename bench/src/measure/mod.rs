//! The measurement layer between the commands and the harness: a plan in, cells out.
//!
//! - [`cell`]: the one function that measures a cell, normal or under a fault: the engine, the
//!   monitor, the delay line's CPU, body deviations, the fault beside the load.
//! - [`rounds`]: a group of running servers measured in interleaved rounds: every cell once per
//!   round, in an order shuffled per round from the run's seed, so that a slow minute of the
//!   machine falls on every server alike and per-round ratios pair figures taken close together.
//! - [`drift`]: the machine's speed, timed on the servers' CPUs between rounds.
//! - [`sides`]: the load engine's and the database's CPU read around every cell.
//! - [`study`]: the concurrency study's bursts, in the same interleaved rounds.
//!
//! It knows nothing of flags or reports: `bakeoff run` and `bakeoff concurrency` build its plans.

pub mod cell;
pub mod drift;
pub mod merge;
pub mod rounds;
pub mod sides;
pub mod study;
pub mod summary;
