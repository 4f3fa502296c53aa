//! Who is ahead, said only where the data carries it. Two servers of a run are compared by the
//! ratio of their figures round by round (the same round measured both seconds apart, so the
//! machine's slow minutes fall on both); a server is ahead of another only where the interval of
//! that ratio excludes 1 (`stats::PairedRatio`), and otherwise the two are tied within the run's
//! noise. The report's sentences, its marks of the best value and its tables of ratios all ask
//! here.

use std::collections::BTreeMap;

use crate::results::run::{Cell, Measurement, ServerResult};

/// Above this share of its time busy, the engine may be what limits a cell.
pub const ENGINE_BOUND_PERCENT: f64 = 90.0;
use crate::results::intervals::{PairedRatio, Verdict};

/// Which direction is better for a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
    Neither,
}

/// A cell's figure in each round, by group and round (servers of different groups are never
/// paired). Runs without a round (files before rounds, whose repeats ran one after another)
/// give nothing here.
pub fn per_round(
    cell: &Cell,
    figure: &dyn Fn(&Measurement) -> Option<f64>,
) -> BTreeMap<(usize, usize), f64> {
    cell.runs
        .iter()
        .filter_map(|run| Some(((run.group?, run.round?), figure(run)?)))
        .collect()
}

/// The ratio `a / b` of a figure, round by round, over the rounds both measured; `None` where
/// the two were not measured in the same rounds (different groups of the run).
pub fn paired(
    a: &Cell,
    b: &Cell,
    figure: &dyn Fn(&Measurement) -> Option<f64>,
) -> Option<PairedRatio> {
    let (a, b) = (per_round(a, figure), per_round(b, figure));
    let rounds: Vec<(usize, usize)> = a
        .keys()
        .filter(|round| b.contains_key(round))
        .copied()
        .collect();
    let first: Vec<f64> = rounds.iter().map(|round| a[round]).collect();
    let second: Vec<f64> = rounds.iter().map(|round| b[round]).collect();
    PairedRatio::of(&first, &second)
}

/// Whether `a` is better than `b` by the rule: the interval of their paired ratio excludes 1 on
/// the better side.
pub fn is_better(
    a: &Cell,
    b: &Cell,
    figure: &dyn Fn(&Measurement) -> Option<f64>,
    better: Better,
) -> bool {
    let Some(ratio) = paired(a, b, figure) else {
        return false;
    };
    matches!(
        (better, ratio.verdict()),
        (Better::Higher, Verdict::Ahead) | (Better::Lower, Verdict::Behind)
    )
}

/// The row that is better than every other row by the rule, if one is. Candidates are tried in
/// the order of their medians, best first.
pub fn leader(
    cells: &[&Cell],
    figure: &dyn Fn(&Measurement) -> Option<f64>,
    better: Better,
) -> Option<usize> {
    if cells.len() < 2 || better == Better::Neither {
        return None;
    }
    let median = |cell: &Cell| {
        let values: Vec<f64> = per_round(cell, figure).into_values().collect();
        (!values.is_empty()).then(|| crate::stats::median_of_all(&values))
    };
    let mut order: Vec<(usize, f64)> = cells
        .iter()
        .enumerate()
        .filter_map(|(index, cell)| Some((index, median(cell)?)))
        .collect();
    order.sort_by(|a, b| match better {
        Better::Lower => a.1.total_cmp(&b.1),
        _ => b.1.total_cmp(&a.1),
    });
    let (candidate, _) = *order.first()?;
    let ahead_of_all = cells
        .iter()
        .enumerate()
        .filter(|(index, _)| *index != candidate)
        .all(|(_, other)| is_better(cells[candidate], other, figure, better));
    ahead_of_all.then_some(candidate)
}

/// Throughput per round.
pub fn throughput(run: &Measurement) -> Option<f64> {
    Some(run.ok_per_second)
}

/// The server's CPU time per 1,000 answers per round.
pub fn cpu_per_request(run: &Measurement) -> Option<f64> {
    run.cpu_ms_per_1k()
}

/// Whether the load engine was at least `limit` percent busy in the median round of any of
/// these cells: their throughput is then (partly) the engine's, and they are ranked by CPU per
/// request instead.
pub fn engine_bound(cells: &[&Cell], limit: f64) -> bool {
    cells.iter().any(|cell| {
        cell.median()
            .and_then(|run| run.engine_busy_percent)
            .is_some_and(|busy| busy >= limit)
    })
}

/// One line comparing two servers' cells: `1.42x [1.31, 1.55] (94 %): ahead`.
pub fn describe(
    a: &Cell,
    b: &Cell,
    figure: &dyn Fn(&Measurement) -> Option<f64>,
) -> Option<(PairedRatio, &'static str)> {
    let ratio = paired(a, b, figure)?;
    let word = match ratio.verdict() {
        Verdict::Ahead => "ahead",
        Verdict::Behind => "behind",
        Verdict::Tied => "tied within this run's noise",
    };
    Some((ratio, word))
}

/// The servers' names joined for a sentence.
pub fn names(servers: &[&ServerResult]) -> String {
    servers
        .iter()
        .map(|server| server.record.shown_name())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::run::{test_cell_in_rounds as cell, test_measurement};
    use crate::results::vocabulary::Scenario;

    #[test]
    fn a_leader_must_be_ahead_of_every_other_server_in_every_sense_of_the_rule() {
        let fast = cell(&[150.0, 140.0, 160.0, 150.0, 145.0]);
        let slow = cell(&[100.0, 110.0, 105.0, 95.0, 100.0]);
        // Ahead of a server that is itself ahead in one round of five: no leader.
        let close = cell(&[140.0, 145.0, 165.0, 145.0, 140.0]);
        assert_eq!(
            leader(&[&slow, &fast], &throughput, Better::Higher),
            Some(1)
        );
        assert_eq!(
            leader(&[&fast, &close, &slow], &throughput, Better::Higher),
            None
        );
        // For a figure where lower is better, the lowest leads.
        assert_eq!(leader(&[&slow, &fast], &throughput, Better::Lower), Some(0));
        assert_eq!(leader(&[&slow, &fast], &throughput, Better::Neither), None);
        // Cells without rounds (a version 3 file's repeats) give no verdict.
        let old = Cell::new(Scenario::Types, 64, None, vec![test_measurement(500.0, 1)]);
        assert_eq!(leader(&[&old, &slow], &throughput, Better::Higher), None);
    }

    #[test]
    fn servers_measured_in_different_rounds_are_not_paired() {
        let a = cell(&[100.0, 100.0]);
        let mut b = cell(&[50.0, 50.0]);
        for run in &mut b.runs {
            run.group = Some(1);
        }
        assert_eq!(paired(&a, &b, &throughput), None);
        assert!(!is_better(&a, &b, &throughput, Better::Higher));
    }
}
