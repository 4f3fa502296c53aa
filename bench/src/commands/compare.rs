//! `bakeoff compare A B`: what changed between two runs, cell by cell. A cell changed where the
//! rank test (Mann-Whitney, two-sided, exact for the few rounds of a run) tells its rounds in A
//! from its rounds in B at the 5 % level, both as measured and with each round's figure scaled by
//! the machine's speed before that round (the speed reference of `measure::drift`), and both the
//! same way. Why both: rounds a few seconds apart share the machine's mood, two runs minutes
//! apart need not; on a quiet machine, three runs of the same binaries in a row moved two cells
//! by 4 to 6 % that the rank test alone called changed, and that the machine's speed explained
//! (docs/rounds.md). A cell measured in one round in either run gets no verdict, since one figure
//! says nothing of the run's noise. Two `bakeoff cost` runs are compared by instructions per
//! request instead, within a band of 1 % (`results::cost`).

use std::path::Path;

use anyhow::Result;

use crate::format::{Table, group_thousands};
use crate::results::ResultsFile;
use crate::results::cost::CostResults;
use crate::results::run::{Cell, RunResults, ServerResult};
use crate::results::setup::{Machine, RoundTrip};
use crate::results::vocabulary::Scenario;
use crate::stats::{SIGNIFICANCE, mann_whitney_p, median};

/// One cell present in both runs.
#[derive(Debug, Clone)]
pub struct Change {
    pub server: String,
    pub scenario: Scenario,
    pub connections: usize,
    pub rate: Option<f64>,
    pub before: f64,
    pub after: f64,
    /// Relative change of the median throughput in percent.
    pub percent: f64,
    /// The rank test's p-value over the two runs' rounds; `None` where either has one round.
    pub p_value: Option<f64>,
    /// The same test over the rounds' figures scaled by the machine's speed before each round,
    /// and whether those scaled figures say faster; `None` where a round has no reference.
    pub speed_adjusted: Option<SpeedAdjusted>,
    pub p99_before: u64,
    pub p99_after: u64,
}

/// The rank test over figures scaled by the machine's speed: throughput times the reference's
/// milliseconds, the throughput of a machine whose reference took one millisecond.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpeedAdjusted {
    pub p_value: f64,
    /// Whether the median of the scaled figures rose from A to B.
    pub faster: bool,
}

/// What the figures say about one cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Faster,
    Slower,
    /// The rounds of the two runs are not told apart at the test's level.
    NoChangeShown,
    /// One round in either run: no test.
    OneRound,
}

impl Change {
    pub fn decision(&self) -> Decision {
        let faster = self.after > self.before;
        // Where the machine's speed was recorded, it must not explain the change.
        let speed_explains = self
            .speed_adjusted
            .is_some_and(|adjusted| adjusted.p_value >= SIGNIFICANCE || adjusted.faster != faster);
        match self.p_value {
            None => Decision::OneRound,
            Some(p) if p >= SIGNIFICANCE || speed_explains => Decision::NoChangeShown,
            Some(_) if faster => Decision::Faster,
            Some(_) => Decision::Slower,
        }
    }

    pub fn changed(&self) -> bool {
        matches!(self.decision(), Decision::Faster | Decision::Slower)
    }

    fn verdict(&self) -> &'static str {
        match self.decision() {
            Decision::Faster => "faster",
            Decision::Slower => "SLOWER",
            Decision::NoChangeShown => "~ no change shown",
            Decision::OneRound => "no verdict: one round",
        }
    }
}

/// The cells of `before` and `after` matched by server, scenario and level.
pub fn changes(before: &RunResults, after: &RunResults) -> Vec<Change> {
    let mut changes = Vec::new();
    for (server, cell) in after.cells() {
        let Some(old) = before.cells().find_map(|(old_server, old_cell)| {
            (old_server.record.shown_name() == server.record.shown_name()
                && db_latency_of(old_server) == db_latency_of(server)
                && same_cell(old_cell, cell))
            .then_some(old_cell)
        }) else {
            continue;
        };
        let (Some(old_run), Some(new_run)) = (old.median(), cell.median()) else {
            continue;
        };
        let before_rate = old.summary.ok_per_second;
        let after_rate = cell.summary.ok_per_second;
        let percent = if before_rate > 0.0 {
            (after_rate - before_rate) / before_rate * 100.0
        } else {
            0.0
        };
        changes.push(Change {
            server: server.record.shown_name().to_string(),
            scenario: cell.scenario,
            connections: cell.connections,
            rate: cell.rate,
            before: before_rate,
            after: after_rate,
            percent,
            p_value: p_value(old, cell),
            speed_adjusted: speed_adjusted((before, old), (after, cell)),
            p99_before: old_run.latency_us.p99,
            p99_after: new_run.latency_us.p99,
        });
    }
    changes
}

/// The rank test over the two cells' rounds (or repeats, in files from before rounds).
fn p_value(before: &Cell, after: &Cell) -> Option<f64> {
    if before.runs.len() < 2 || after.runs.len() < 2 {
        return None;
    }
    let rates =
        |cell: &Cell| -> Vec<f64> { cell.runs.iter().map(|run| run.ok_per_second).collect() };
    mann_whitney_p(&rates(before), &rates(after))
}

/// The rank test over the two cells' rounds scaled by the machine's speed before each round;
/// `None` where a round has no reference (files from before version 4, one round).
fn speed_adjusted(
    before: (&RunResults, &Cell),
    after: (&RunResults, &Cell),
) -> Option<SpeedAdjusted> {
    let scaled = |(results, cell): (&RunResults, &Cell)| -> Option<Vec<f64>> {
        cell.runs
            .iter()
            .map(|run| {
                let reference = results.closed_loop_reference_ms(run.group?, run.round?)?;
                Some(run.ok_per_second * reference)
            })
            .collect()
    };
    let (old, new) = (scaled(before)?, scaled(after)?);
    if old.len() < 2 || new.len() < 2 {
        return None;
    }
    Some(SpeedAdjusted {
        p_value: mann_whitney_p(&old, &new)?,
        faster: median(&new) > median(&old),
    })
}

/// The round trip added to the server's database: figures at different levels are never
/// compared, even where the labels agree (a run at one level does not name it in every label).
fn db_latency_of(server: &ServerResult) -> RoundTrip {
    server
        .record
        .configuration
        .map(|configuration| configuration.db_latency)
        .unwrap_or_default()
}

fn same_cell(a: &Cell, b: &Cell) -> bool {
    a.scenario == b.scenario && a.connections == b.connections && a.rate == b.rate
}

/// The comparison as text for the terminal.
pub fn render(before: &RunResults, after: &RunResults, changes: &[Change]) -> String {
    let mut text = Machine::compared(
        (&before.started_at, &before.machine),
        (&after.started_at, &after.machine),
    );
    if before.machine.cpu_model != after.machine.cpu_model
        || before.machine.cpu_count != after.machine.cpu_count
        || before.settings.placement != after.settings.placement
    {
        text.push_str("warning: the runs were made on different machines or placements; their figures are not comparable\n");
    }
    text.push('\n');
    let mut table = Table::new(&[
        "server",
        "scenario",
        "conns",
        "A req/s",
        "B req/s",
        "change",
        "p",
        "p speed-adj.",
        "A p99 ms",
        "B p99 ms",
        "verdict",
    ]);
    for change in changes {
        table.rows.push(vec![
            change.server.clone(),
            change.scenario.to_string(),
            change.connections.to_string(),
            group_thousands(change.before.round() as i64),
            group_thousands(change.after.round() as i64),
            format!("{:+.1}%", change.percent),
            change
                .p_value
                .map_or_else(|| "–".to_string(), |p| format!("{p:.3}")),
            change.speed_adjusted.map_or_else(
                || "–".to_string(),
                |adjusted| format!("{:.3}", adjusted.p_value),
            ),
            format!("{:.2}", change.p99_before as f64 / 1_000.0),
            format!("{:.2}", change.p99_after as f64 / 1_000.0),
            change.verdict().to_string(),
        ]);
    }
    if changes.is_empty() {
        text.push_str("The runs have no cell in common (same server, scenario and connections).\n");
    } else {
        text.push_str(&table.terminal());
        let changed = changes.iter().filter(|change| change.changed()).count();
        let untested = changes
            .iter()
            .filter(|change| change.decision() == Decision::OneRound)
            .count();
        text.push_str(&format!(
            "\n{} of {} cells changed (Mann-Whitney rank test over each cell's rounds, two-sided, p < {SIGNIFICANCE}, \
             as measured and scaled by the machine's speed before each round){}.\n",
            changed,
            changes.len(),
            if untested > 0 {
                format!("; {untested} with one round in a run have no verdict")
            } else {
                String::new()
            }
        ));
    }
    text
}

/// `bakeoff compare A B`.
pub fn compare(a: &Path, b: &Path) -> Result<String> {
    // Two cost runs are compared by instructions, within their own band.
    if is_cost_results(a) && is_cost_results(b) {
        let (before, after) = (CostResults::read(a)?, CostResults::read(b)?);
        let changes = crate::results::cost::changes(&before, &after);
        return Ok(crate::render::cost_report::comparison(
            &before, &after, &changes,
        ));
    }
    let before = RunResults::read(a)?;
    let after = RunResults::read(b)?;
    let changes = changes(&before, &after);
    Ok(render(&before, &after, &changes))
}

/// A `bakeoff cost` directory, or its `cost.json`.
fn is_cost_results(path: &Path) -> bool {
    if path.is_dir() {
        path.join(CostResults::FILE_NAME).is_file()
    } else {
        path.file_name()
            .is_some_and(|name| name == CostResults::FILE_NAME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::run::test_measurement;

    fn cell(rates: &[f64]) -> Cell {
        let runs = rates
            .iter()
            .map(|&rate| test_measurement(rate, 1_000))
            .collect();
        Cell::new(Scenario::Types, 64, None, runs)
    }

    fn change(before: &[f64], after: &[f64]) -> Change {
        let (old, new) = (cell(before), cell(after));
        Change {
            server: "s".into(),
            scenario: Scenario::Types,
            connections: 64,
            rate: None,
            before: old.summary.ok_per_second,
            after: new.summary.ok_per_second,
            percent: 0.0,
            p_value: p_value(&old, &new),
            speed_adjusted: None,
            p99_before: 1,
            p99_after: 1,
        }
    }

    #[test]
    fn a_cell_changed_only_where_the_rank_test_tells_its_rounds_apart() {
        // Five rounds each, fully separated: p = 2/252, changed.
        let slower = change(
            &[100.0, 101.0, 102.0, 103.0, 104.0],
            &[90.0, 91.0, 92.0, 93.0, 94.0],
        );
        assert_eq!(slower.decision(), Decision::Slower);
        assert_eq!(slower.verdict(), "SLOWER");
        let faster = change(
            &[90.0, 91.0, 92.0, 93.0, 94.0],
            &[100.0, 101.0, 102.0, 103.0, 104.0],
        );
        assert_eq!(faster.decision(), Decision::Faster);
        // A 10 % gap in the medians that the rounds overlap across: no change shown.
        let noisy = change(
            &[100.0, 80.0, 120.0, 95.0, 105.0],
            &[110.0, 90.0, 130.0, 100.0, 118.0],
        );
        assert_eq!(noisy.decision(), Decision::NoChangeShown);
        assert!(!noisy.changed());
        // Three rounds each can never reach 5 % (the most extreme is 2/20): no change shown.
        let three = change(&[100.0, 101.0, 102.0], &[50.0, 51.0, 52.0]);
        assert_eq!(three.decision(), Decision::NoChangeShown);
        // One round in either run: no verdict at all, however large the change.
        let once = change(&[100.0], &[50.0, 51.0, 52.0]);
        assert_eq!(once.decision(), Decision::OneRound);
        assert_eq!(once.verdict(), "no verdict: one round");
    }

    #[test]
    fn a_change_the_machines_speed_explains_is_no_change() {
        let mut change = change(
            &[100.0, 101.0, 102.0, 103.0, 104.0],
            &[105.0, 106.0, 107.0, 108.0, 109.0],
        );
        assert_eq!(change.decision(), Decision::Faster);
        // Scaled by the machine's speed, the rounds overlap: the machine was faster in B.
        change.speed_adjusted = Some(SpeedAdjusted {
            p_value: 0.31,
            faster: true,
        });
        assert_eq!(change.decision(), Decision::NoChangeShown);
        // Scaled, they still separate, but the other way: no change shown either.
        change.speed_adjusted = Some(SpeedAdjusted {
            p_value: 0.008,
            faster: false,
        });
        assert_eq!(change.decision(), Decision::NoChangeShown);
        // Scaled, the same way: changed.
        change.speed_adjusted = Some(SpeedAdjusted {
            p_value: 0.008,
            faster: true,
        });
        assert_eq!(change.decision(), Decision::Faster);
    }
}
