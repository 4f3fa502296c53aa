//! A group of running servers measured in interleaved rounds.
//!
//! Each round measures every cell of the group (server x scenario x load level) once, for its
//! share of the cell's time. The order is shuffled per round from the run's seed: the blocks of
//! one scenario at one level in a random order, and the servers in a random order within each
//! block, so that the servers compared in a block are measured one after the other (seconds
//! apart) while no server is always first or last. A slow minute of the machine then falls on
//! every server of a block alike, and the per-round ratio of two servers cancels it.
//!
//! The stages of a group: a warm-up per server; the closed-loop rounds; the efficiency rounds,
//! every server at the same open-loop rate; the fault rounds, after all the others so that no
//! fault's aftermath is in their figures. A fault hits the database every server shares, so
//! fault cells run one at a time like every cell, in rounds and shuffled like the others: each
//! round measures every server's fault cell of a scenario, level and fault one after the other,
//! each followed at once by its reference cell (the same server, scenario and level without a
//! fault, for [`crate::recovery`] to judge "back" against a level that shares the machine's
//! state). Between rounds the machine's speed is timed on the servers' CPUs ([`drift`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::engine::PlannedRequest;
use crate::harness::faults::FaultSpec;
use crate::measure::cell::{self, Bench, CellLoad, LoadTarget};
use crate::measure::drift;
use crate::order;
use crate::results::recovery::FaultRecord;
use crate::results::run::{Cell, CellRef, Measurement, RoundRecord, Stage};
use crate::results::setup::CpuList;
use crate::results::vocabulary::Scenario;

/// The most rounds of efficiency cells.
pub const EFFICIENCY_ROUNDS: usize = 3;

/// The open-loop rate of the efficiency cells.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EfficiencyRate {
    /// No efficiency cells.
    Off,
    /// Half of the slowest server's closed-loop median in each scenario (at the highest level):
    /// a load every server carries, so that none is measured past its limit.
    HalfOfSlowest,
    /// This many requests per second in every scenario.
    Fixed(f64),
}

/// What a group's measurement does, resolved from a command's flags.
#[derive(Debug, Clone)]
pub struct RoundsPlan {
    pub scenarios: Vec<Scenario>,
    /// Connection levels, ascending.
    pub connections: Vec<usize>,
    pub rounds: usize,
    /// Each cell's window in one round.
    pub round_duration: Duration,
    /// Load before each cell's window, not recorded.
    pub cell_warmup: Duration,
    /// Every scenario mixed, per server, before its first cell at the lowest level.
    pub warmup: Duration,
    pub efficiency: EfficiencyRate,
    /// Each efficiency cell's window in one round.
    pub efficiency_duration: Duration,
    pub faults: Vec<FaultSpec>,
    /// A fault cell's window.
    pub fault_duration: Duration,
    /// Rounds of the fault cells.
    pub fault_rounds: usize,
    /// The window of the reference cell after each fault cell.
    pub fault_reference: Duration,
    pub seed: u64,
    /// Where the speed reference is timed: the servers' CPUs.
    pub server_cpus: Option<CpuList>,
}

impl RoundsPlan {
    /// The warm-up at the `index`-th connection level: the whole warm-up before the first, a
    /// shorter one at each higher level (pools and threads grow to it before its figures count).
    fn warmup_at_level(&self, index: usize, server_minimum: Duration) -> Duration {
        if index == 0 {
            self.warmup.max(server_minimum)
        } else {
            self.warmup.min(Duration::from_secs(1))
        }
    }

    /// The efficiency cells' rounds: at most [`EFFICIENCY_ROUNDS`], since they only need to
    /// pair the servers' CPU per request at one rate (and the default run must stay short).
    pub fn efficiency_rounds(&self) -> usize {
        self.rounds.min(EFFICIENCY_ROUNDS)
    }

    /// How many cells one server is measured in, rounds counted apart.
    pub fn cells_per_server(&self) -> usize {
        let levels = self.scenarios.len() * self.connections.len();
        let efficiency = match self.efficiency {
            EfficiencyRate::Off => 0,
            _ => self.scenarios.len() * self.efficiency_rounds(),
        };
        levels * self.rounds + efficiency + levels * self.faults.len() * self.fault_rounds
    }
}

/// Told what the measurement is doing, for a progress line.
pub trait Progress {
    /// What runs now.
    fn phase(&self, text: String);
    /// A cell's window is over: one line about it.
    fn cell_done(&self, line: String);
}

/// Every figure of one server of the group.
#[derive(Debug, Default)]
pub struct ServerCells {
    pub cells: Vec<Cell>,
    pub efficiency_cells: Vec<Cell>,
    pub fault_cells: Vec<Cell>,
    /// The warm-up it was given before its first cell.
    pub warmup_seconds: Option<f64>,
}

/// What a group's measurement came to: each server's cells (in the order of the targets, an
/// error where its measurement failed) and the rounds as they ran.
pub struct GroupMeasurement {
    pub servers: Vec<Result<ServerCells>>,
    pub rounds: Vec<RoundRecord>,
}

/// One cell of the group in a round: which server, which scenario at which level, under which
/// fault (an index into the plan's faults).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Slot {
    server: usize,
    scenario: Scenario,
    connections: usize,
    rate: Option<f64>,
    fault: Option<usize>,
}

/// Measures a group of servers (already started and verified) in rounds; `group` numbers it in
/// the run's record.
pub async fn measure_group(
    bench: &Bench<'_>,
    targets: &[LoadTarget<'_>],
    plan: &RoundsPlan,
    group: usize,
    progress: &dyn Progress,
) -> GroupMeasurement {
    let mut runs = RunsByCell::new();
    let mut failures: Vec<Option<anyhow::Error>> = targets.iter().map(|_| None).collect();
    let mut rounds = Vec::new();
    let mut sequence = 0;

    for (index, target) in targets.iter().enumerate() {
        if let Err(error) = warm_up(bench, target, plan, progress).await {
            failures[index] = Some(error);
        }
    }
    let closed: Vec<Slot> = plan
        .connections
        .iter()
        .flat_map(|&connections| {
            plan.scenarios.iter().flat_map(move |&scenario| {
                (0..targets.len()).map(move |server| Slot {
                    server,
                    scenario,
                    connections,
                    rate: None,
                    fault: None,
                })
            })
        })
        .collect();
    run_stage(
        bench,
        targets,
        plan,
        StageRun {
            group,
            stage: Stage::ClosedLoop,
            slots: &closed,
            duration: plan.round_duration,
            rounds: plan.rounds,
        },
        progress,
        (&mut runs, &mut failures, &mut rounds, &mut sequence),
    )
    .await;
    let efficiency = efficiency_slots(plan, targets.len(), &runs);
    if !efficiency.is_empty() {
        run_stage(
            bench,
            targets,
            plan,
            StageRun {
                group,
                stage: Stage::Efficiency,
                slots: &efficiency,
                duration: plan.efficiency_duration,
                rounds: plan.efficiency_rounds(),
            },
            progress,
            (&mut runs, &mut failures, &mut rounds, &mut sequence),
        )
        .await;
    }
    let faulted = fault_slots(plan, targets);
    if !faulted.is_empty() {
        run_stage(
            bench,
            targets,
            plan,
            StageRun {
                group,
                stage: Stage::Fault,
                slots: &faulted,
                duration: plan.fault_duration,
                rounds: plan.fault_rounds,
            },
            progress,
            (&mut runs, &mut failures, &mut rounds, &mut sequence),
        )
        .await;
    }
    let servers = failures
        .into_iter()
        .enumerate()
        .map(|(index, failure)| match failure {
            Some(error) => Err(error),
            None => {
                let mut cells = collect_cells(index, plan, &mut runs);
                cells.warmup_seconds = Some(
                    plan.warmup_at_level(0, targets[index].minimum_warmup)
                        .as_secs_f64(),
                );
                Ok(cells)
            }
        })
        .collect();
    GroupMeasurement { servers, rounds }
}

/// One stage of rounds to run.
struct StageRun<'a> {
    group: usize,
    stage: Stage,
    slots: &'a [Slot],
    duration: Duration,
    rounds: usize,
}

/// A cell's key: server, scenario, connections, rate (its bits), fault (its index).
type CellKey = (usize, Scenario, usize, Option<u64>, Option<usize>);
type RunsByCell = BTreeMap<CellKey, Vec<Measurement>>;

/// Runs the rounds of one stage: per round, the speed reference, then every slot once in the
/// round's order. A server whose cell fails is left out of the rest of the run.
async fn run_stage(
    bench: &Bench<'_>,
    targets: &[LoadTarget<'_>],
    plan: &RoundsPlan,
    stage: StageRun<'_>,
    progress: &dyn Progress,
    (runs, failures, rounds, sequence): (
        &mut RunsByCell,
        &mut Vec<Option<anyhow::Error>>,
        &mut Vec<RoundRecord>,
        &mut usize,
    ),
) {
    for round in 0..stage.rounds {
        let order = shuffled(stage.slots, plan.seed, stage.stage, round);
        let reference_ms = drift::reference_ms(plan.server_cpus.clone()).await.ok();
        let mut record = RoundRecord {
            group: stage.group,
            stage: stage.stage,
            round,
            reference_ms,
            order: Vec::new(),
        };
        for slot in order {
            if failures[slot.server].is_some() {
                continue;
            }
            let target = &targets[slot.server];
            let fault = slot.fault.and_then(|index| plan.faults.get(index));
            progress.phase(format!(
                "{}: {} at {} connections{}{}, round {}/{}",
                target.label,
                slot.scenario,
                slot.connections,
                rate_text(slot.rate),
                fault
                    .map(|fault| format!(", {}", fault.label()))
                    .unwrap_or_default(),
                round + 1,
                stage.rounds
            ));
            let load = CellLoad {
                scenario: slot.scenario,
                connections: slot.connections,
                rate: slot.rate,
                warmup: plan.cell_warmup,
                duration: stage.duration,
                seed: plan.seed.wrapping_add(round as u64),
            };
            let measured = match fault {
                None => cell::measure(bench, target, &load, None)
                    .await
                    .map(|(measurement, _)| measurement),
                Some(fault) => measure_fault(bench, target, plan, &load, fault).await,
            };
            match measured {
                Ok(mut measurement) => {
                    measurement.group = Some(stage.group);
                    measurement.round = Some(round);
                    measurement.sequence = Some(*sequence);
                    *sequence += 1;
                    progress.cell_done(cell_line(&target.label, &slot, &measurement));
                    record.order.push(CellRef {
                        server: target.label.clone(),
                        scenario: slot.scenario,
                        connections: slot.connections,
                        rate: slot.rate,
                        fault: fault.map(|fault| fault.kind),
                    });
                    runs.entry(key(&slot)).or_default().push(measurement);
                }
                Err(error) => failures[slot.server] = Some(error),
            }
        }
        rounds.push(record);
    }
}

/// A fault cell and its reference cell right after it: the same server, scenario and level
/// without a fault, whose level "back" is judged against (measured seconds after the recovery,
/// it shares the machine's state with it). The fault's record, judged, goes with the fault
/// cell's figures.
async fn measure_fault(
    bench: &Bench<'_>,
    target: &LoadTarget<'_>,
    plan: &RoundsPlan,
    load: &CellLoad,
    fault: &FaultSpec,
) -> Result<Measurement> {
    let faulted = CellLoad {
        // Earlier faults closed its idle connections too: it meets the load again before the
        // window.
        warmup: plan.cell_warmup.max(Duration::from_secs(1)),
        ..*load
    };
    let (mut measurement, window) = cell::measure(bench, target, &faulted, Some(fault)).await?;
    let window = window.context("a fault cell places its fault in its window")?;
    let reference = CellLoad {
        duration: plan.fault_reference,
        ..*load
    };
    let (reference, _) = cell::measure(bench, target, &reference, None)
        .await
        .context("measuring the reference cell after a fault cell")?;
    let series = measurement.series.clone().unwrap_or_default();
    measurement.fault = Some(FaultRecord::of(
        fault,
        &window,
        &measurement.errors,
        &series,
        Some(reference.ok_per_second),
    ));
    Ok(measurement)
}

fn key(slot: &Slot) -> CellKey {
    (
        slot.server,
        slot.scenario,
        slot.connections,
        slot.rate.map(f64::to_bits),
        slot.fault,
    )
}

/// The slots in the order of one round: blocks of one scenario at one level shuffled, servers
/// shuffled within each block. The same seed, stage and round give the same order.
fn shuffled(slots: &[Slot], seed: u64, stage: Stage, round: usize) -> Vec<Slot> {
    let mut blocks: Vec<Vec<Slot>> = Vec::new();
    for slot in slots {
        match blocks.iter_mut().find(|block| {
            block[0].scenario == slot.scenario
                && block[0].connections == slot.connections
                && block[0].rate == slot.rate
                && block[0].fault == slot.fault
        }) {
            Some(block) => block.push(*slot),
            None => blocks.push(vec![*slot]),
        }
    }
    order::round_order(blocks, seed, order::salt(stage), round)
}

/// Every scenario mixed, at each connection level, before the rounds.
async fn warm_up(
    bench: &Bench<'_>,
    target: &LoadTarget<'_>,
    plan: &RoundsPlan,
    progress: &dyn Progress,
) -> Result<()> {
    let mut mixed: Vec<PlannedRequest> = Vec::new();
    for &scenario in &plan.scenarios {
        mixed.extend(target.requests(scenario)?.iter().cloned());
    }
    let mixed = Arc::new(mixed);
    for (index, &connections) in plan.connections.iter().enumerate() {
        let warmup = plan.warmup_at_level(index, target.minimum_warmup);
        if warmup.is_zero() {
            continue;
        }
        progress.phase(format!(
            "{}: warm-up, {connections} connections",
            target.label
        ));
        let spec = crate::engine::LoadSpec {
            address: target.server.address,
            requests: Arc::clone(&mixed),
            connections,
            threads: bench.placement.engine_threads,
            warmup: Duration::ZERO,
            duration: warmup,
            rate: None,
            timeout: bench.timeout,
            check_every: bench.check_every,
            cpus: bench.placement.engine_cpus.clone(),
            seed: plan.seed,
            allow_remote: bench.allow_remote,
            mark: None,
        };
        cell::run_engine(spec, bench.live).await?;
    }
    Ok(())
}

/// The efficiency slots: every server and scenario at one open-loop rate per scenario, at the
/// highest connection level.
fn efficiency_slots(plan: &RoundsPlan, servers: usize, runs: &RunsByCell) -> Vec<Slot> {
    let Some(&connections) = plan.connections.last() else {
        return Vec::new();
    };
    let mut slots = Vec::new();
    for &scenario in &plan.scenarios {
        let rate = match plan.efficiency {
            EfficiencyRate::Off => return Vec::new(),
            EfficiencyRate::Fixed(rate) => rate,
            EfficiencyRate::HalfOfSlowest => {
                let medians: Vec<f64> = (0..servers)
                    .filter_map(|server| {
                        let measured = runs.get(&(server, scenario, connections, None, None))?;
                        let rates: Vec<f64> = measured.iter().map(|m| m.ok_per_second).collect();
                        Some(crate::stats::median(&rates))
                    })
                    .filter(|&median| median > 0.0)
                    .collect();
                let slowest = medians.iter().copied().fold(f64::INFINITY, f64::min);
                if !slowest.is_finite() {
                    continue;
                }
                // A whole number of requests per second, so that labels and files read plainly.
                (slowest / 2.0).round().max(1.0)
            }
        };
        slots.extend((0..servers).map(|server| Slot {
            server,
            scenario,
            connections,
            rate: Some(rate),
            fault: None,
        }));
    }
    slots
}

/// The fault slots: every scenario at every level under every fault, for each server the
/// faults reach.
fn fault_slots(plan: &RoundsPlan, targets: &[LoadTarget<'_>]) -> Vec<Slot> {
    let mut slots = Vec::new();
    for &connections in &plan.connections {
        for &scenario in &plan.scenarios {
            for fault in 0..plan.faults.len() {
                slots.extend(
                    (0..targets.len())
                        .filter(|&server| targets[server].faults_apply)
                        .map(|server| Slot {
                            server,
                            scenario,
                            connections,
                            rate: None,
                            fault: Some(fault),
                        }),
                );
            }
        }
    }
    slots
}

/// One server's cells from the runs of every round, in the plan's order.
fn collect_cells(server: usize, plan: &RoundsPlan, runs: &mut RunsByCell) -> ServerCells {
    let mut cells = Vec::new();
    let mut fault_cells = Vec::new();
    for &connections in &plan.connections {
        for &scenario in &plan.scenarios {
            if let Some(measured) = runs.remove(&(server, scenario, connections, None, None)) {
                cells.push(Cell::new(scenario, connections, None, measured));
            }
            for fault in 0..plan.faults.len() {
                let key = (server, scenario, connections, None, Some(fault));
                if let Some(measured) = runs.remove(&key) {
                    fault_cells.push(Cell::of_fault_rounds(scenario, connections, measured));
                }
            }
        }
    }
    let keys: Vec<_> = runs
        .keys()
        .filter(|(owner, _, _, rate, _)| *owner == server && rate.is_some())
        .copied()
        .collect();
    let mut efficiency_cells = Vec::new();
    for key in keys {
        if let Some(measured) = runs.remove(&key) {
            let rate = key.3.map(f64::from_bits);
            efficiency_cells.push(Cell::new(key.1, key.2, rate, measured));
        }
    }
    efficiency_cells.sort_by_key(|cell| cell.scenario);
    ServerCells {
        cells,
        efficiency_cells,
        fault_cells,
        warmup_seconds: None,
    }
}

fn rate_text(rate: Option<f64>) -> String {
    rate.map(|rate| {
        format!(
            ", {} req/s",
            crate::format::group_thousands(rate.round() as i64)
        )
    })
    .unwrap_or_default()
}

fn cell_line(label: &str, slot: &Slot, measurement: &Measurement) -> String {
    if let Some(fault) = &measurement.fault {
        return fault_line(label, slot, fault);
    }
    let cpu = measurement
        .server
        .as_ref()
        .and_then(|figures| figures.cpu_ms_per_1k)
        .map(|ms| format!("  cpu {ms:.1} ms/1k"))
        .unwrap_or_default();
    let level = match slot.rate {
        Some(rate) => format!(
            "c={} at {} req/s",
            slot.connections,
            crate::format::group_thousands(rate.round() as i64)
        ),
        None => format!("c={}", slot.connections),
    };
    format!(
        "{label:<22} {:<16} {level:<20} {:>9} req/s  p99 {:>8.2} ms  errors {}{cpu}",
        slot.scenario.to_string(),
        crate::format::group_thousands(measurement.ok_per_second.round() as i64),
        measurement.latency_us.p99 as f64 / 1_000.0,
        measurement.error_count()
    )
}

fn fault_line(label: &str, slot: &Slot, fault: &FaultRecord) -> String {
    let figures = &fault.figures;
    let backlog = match (figures.backlog, figures.drained_after_seconds) {
        (Some(backlog), Some(drained)) => format!("  backlog {backlog} drained in {drained:.2} s"),
        _ => String::new(),
    };
    let recovery = match figures.recovered_after_seconds {
        Some(seconds) => format!("back in {seconds:.1} s"),
        None => "not back within the cell".to_string(),
    };
    format!(
        "{label:<22} {:<16} c={:<4} {:<13} failed {}  503 {}  longest {:.0} ms{backlog}  {recovery} (level {} req/s)",
        slot.scenario.to_string(),
        slot.connections,
        fault.kind.to_string(),
        figures.failed,
        figures.unavailable,
        figures.longest_ms,
        crate::format::group_thousands(figures.level().round() as i64),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots() -> Vec<Slot> {
        let mut slots = Vec::new();
        for scenario in [Scenario::Types, Scenario::Contact] {
            for server in 0..4 {
                slots.push(Slot {
                    server,
                    scenario,
                    connections: 64,
                    rate: None,
                    fault: None,
                });
            }
        }
        slots
    }

    #[test]
    fn a_round_keeps_a_block_together_and_shuffles_from_the_seed() {
        let slots = slots();
        let first = shuffled(&slots, 7, Stage::ClosedLoop, 0);
        // Every slot once.
        assert_eq!(first.len(), slots.len());
        for slot in &slots {
            assert_eq!(first.iter().filter(|s| *s == slot).count(), 1);
        }
        // The four servers of a scenario follow each other.
        assert!(first[..4].iter().all(|s| s.scenario == first[0].scenario));
        assert!(first[4..].iter().all(|s| s.scenario == first[4].scenario));
        // The same seed and round give the same order; other rounds give others.
        assert_eq!(first, shuffled(&slots, 7, Stage::ClosedLoop, 0));
        let orders: Vec<Vec<Slot>> = (0..6)
            .map(|round| shuffled(&slots, 7, Stage::ClosedLoop, round))
            .collect();
        assert!(orders.iter().skip(1).any(|order| order != &orders[0]));
        // No server is first in every round.
        assert!(
            orders
                .iter()
                .any(|order| order[0].server != orders[0][0].server)
        );
    }
}
