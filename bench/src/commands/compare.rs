//! `bakeoff compare A B`: what changed between two runs, cell by cell, with changes inside the
//! noise band marked as such. Two `bakeoff cost` runs are compared by instructions per request
//! instead, within a band of 1 % (`results::cost`).

use std::path::Path;

use anyhow::Result;

use crate::delay_line::RoundTrip;
use crate::format::{Table, group_thousands};
use crate::results::ResultsFile;
use crate::results::cost::CostResults;
use crate::results::run::{Cell, RunResults, ServerResult};
use crate::scenarios::Scenario;

/// The noise band when neither run has repeats to measure its own spread: run-to-run differences
/// of a few percent are usual on a shared machine.
pub const DEFAULT_NOISE_PERCENT: f64 = 5.0;

/// One cell present in both runs.
#[derive(Debug, Clone)]
pub struct Change {
    pub server: String,
    pub scenario: Scenario,
    pub connections: usize,
    pub rate: Option<f64>,
    pub before: f64,
    pub after: f64,
    /// Relative change of throughput in percent.
    pub percent: f64,
    /// The band within which a change is not told from noise, in percent.
    pub noise: f64,
    pub p99_before: u64,
    pub p99_after: u64,
}

impl Change {
    pub fn within_noise(&self) -> bool {
        self.percent.abs() <= self.noise
    }

    fn verdict(&self) -> &'static str {
        if self.within_noise() {
            "~ within noise"
        } else if self.percent > 0.0 {
            "faster"
        } else {
            "SLOWER"
        }
    }
}

/// The cells of `before` and `after` matched by server, scenario and level.
pub fn changes(before: &RunResults, after: &RunResults, default_noise: f64) -> Vec<Change> {
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
        let noise = noise_band(old, cell, default_noise);
        changes.push(Change {
            server: server.record.shown_name().to_string(),
            scenario: cell.scenario,
            connections: cell.connections,
            rate: cell.rate,
            before: before_rate,
            after: after_rate,
            percent,
            noise,
            p99_before: old_run.latency_us.p99,
            p99_after: new_run.latency_us.p99,
        });
    }
    changes
}

/// The band within which a change of a cell is not told from noise, in percent. With repeats,
/// each run measured its own spread, and the band is the wider of the two (at least 1 %);
/// without, the default.
fn noise_band(before: &Cell, after: &Cell, default_noise: f64) -> f64 {
    if before.runs.len() > 1 || after.runs.len() > 1 {
        before
            .summary
            .spread_percent
            .max(after.summary.spread_percent)
            .max(1.0)
    } else {
        default_noise
    }
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
    let mut text = format!(
        "A: {} ({})\nB: {} ({})\n",
        before.started_at,
        before.machine.line(),
        after.started_at,
        after.machine.line()
    );
    if before.machine.cpu_model != after.machine.cpu_model
        || before.machine.cpu_count != after.machine.cpu_count
        || before.settings.placement != after.settings.placement
    {
        text.push_str("warning: the runs were made on different machines or placements; their figures are not comparable\n");
    }
    text.push('\n');
    let mut table = Table::new(&[
        "server", "scenario", "conns", "A req/s", "B req/s", "change", "noise ±", "A p99 ms",
        "B p99 ms", "verdict",
    ]);
    for change in changes {
        table.rows.push(vec![
            change.server.clone(),
            change.scenario.to_string(),
            change.connections.to_string(),
            group_thousands(change.before.round() as i64),
            group_thousands(change.after.round() as i64),
            format!("{:+.1}%", change.percent),
            format!("{:.1}%", change.noise),
            format!("{:.2}", change.p99_before as f64 / 1_000.0),
            format!("{:.2}", change.p99_after as f64 / 1_000.0),
            change.verdict().to_string(),
        ]);
    }
    if changes.is_empty() {
        text.push_str("The runs have no cell in common (same server, scenario and connections).\n");
    } else {
        text.push_str(&table.terminal());
        let significant = changes
            .iter()
            .filter(|change| !change.within_noise())
            .count();
        text.push_str(&format!(
            "\n{} of {} cells changed beyond the noise band.\n",
            significant,
            changes.len()
        ));
    }
    text
}

/// `bakeoff compare A B`.
pub fn compare(a: &Path, b: &Path, noise: f64) -> Result<String> {
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
    let changes = changes(&before, &after, noise);
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

    #[test]
    fn the_noise_band_is_the_default_without_repeats_and_the_wider_spread_with_them() {
        assert_eq!(noise_band(&cell(&[100.0]), &cell(&[150.0]), 5.0), 5.0);
        // 90..110 around 100 is a 20 % spread; 99..101 a 2 % one.
        let wide = cell(&[90.0, 100.0, 110.0]);
        let narrow = cell(&[99.0, 100.0, 101.0]);
        assert!((noise_band(&narrow, &wide, 5.0) - 20.0).abs() < 1e-9);
        assert!((noise_band(&narrow, &cell(&[100.0]), 5.0) - 2.0).abs() < 1e-9);
        // Identical repeats still leave a band of 1 %.
        let steady = cell(&[100.0, 100.0]);
        assert_eq!(noise_band(&steady, &steady, 5.0), 1.0);
    }

    #[test]
    fn a_change_is_noise_up_to_the_band_and_a_verdict_beyond() {
        let change = |percent: f64| Change {
            server: "s".into(),
            scenario: Scenario::Types,
            connections: 64,
            rate: None,
            before: 100.0,
            after: 100.0 + percent,
            percent,
            noise: 5.0,
            p99_before: 1,
            p99_after: 1,
        };
        assert!(change(5.0).within_noise());
        assert!(change(-5.0).within_noise());
        assert_eq!(change(5.1).verdict(), "faster");
        assert_eq!(change(-5.1).verdict(), "SLOWER");
        assert_eq!(change(0.0).verdict(), "~ within noise");
    }
}
