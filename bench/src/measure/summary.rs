//! A cell from its runs: the median run, the spread and the intervals of its throughput and CPU
//! cost; and a fault cell's recovery over its rounds. Every command that measures cells (run,
//! merge) builds them here.

use crate::results::intervals::Interval;
use crate::results::recovery::{FaultRecord, Recovery};
use crate::results::run::{Cell, Measurement, Summary};
use crate::results::vocabulary::Scenario;
use crate::stats::median_of_all;

impl Cell {
    pub fn new(
        scenario: Scenario,
        connections: usize,
        rate: Option<f64>,
        runs: Vec<Measurement>,
    ) -> Cell {
        let summary = Summary::of(&runs);
        Cell {
            scenario,
            connections,
            rate,
            runs,
            summary,
            fault: None,
            recovery: None,
        }
    }

    /// A fault cell from its rounds, each run with its fault record: the recovery over the
    /// rounds, and the round with the median time back as the one shown (not the one with the
    /// median throughput, which a fault cell's is not about).
    pub fn of_fault_rounds(scenario: Scenario, connections: usize, runs: Vec<Measurement>) -> Cell {
        let mut cell = Cell::new(scenario, connections, None, runs);
        let records: Vec<&FaultRecord> = cell
            .runs
            .iter()
            .filter_map(|run| run.fault.as_ref())
            .collect();
        if records.len() == cell.runs.len() && !records.is_empty() {
            let shown = Recovery::shown_round(&records);
            cell.recovery = Recovery::of(&records);
            cell.fault = Some(records[shown].clone());
            cell.summary.median_run = shown;
        }
        cell
    }
}

impl Summary {
    pub fn of(runs: &[Measurement]) -> Summary {
        let mut order: Vec<usize> = (0..runs.len()).collect();
        order.sort_by(|&a, &b| runs[a].ok_per_second.total_cmp(&runs[b].ok_per_second));
        let median_run = order.get(order.len() / 2).copied().unwrap_or(0);
        let value = |index: Option<&usize>| index.map_or(0.0, |&i| runs[i].ok_per_second);
        let median = value(order.get(order.len() / 2));
        let min = value(order.first());
        let max = value(order.last());
        let rates: Vec<f64> = runs.iter().map(|run| run.ok_per_second).collect();
        let cpu: Vec<f64> = runs.iter().filter_map(Measurement::cpu_ms_per_1k).collect();
        Summary {
            interval: Interval::of_median(&rates),
            cpu_ms_per_1k: (!cpu.is_empty()).then(|| median_of_all(&cpu)),
            cpu_interval: Interval::of_median(&cpu),
            median_run,
            ok_per_second: median,
            min_ok_per_second: min,
            max_ok_per_second: max,
            spread_percent: if median > 0.0 {
                (max - min) / median * 100.0
            } else {
                0.0
            },
        }
    }
}
