//! `bakeoff compare A B`: what changed between two runs, cell by cell, with changes inside the
//! noise band marked as such.

use std::path::Path;

use anyhow::Result;

use crate::format::{Table, group_thousands};
use crate::results::ResultsFile;
use crate::results::run::{Cell, RunResults};
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
        // With repeats, each run measured its own spread; the band is the wider of the two.
        let measured = old.summary.spread_percent.max(cell.summary.spread_percent);
        let noise = if old.runs.len() > 1 || cell.runs.len() > 1 {
            measured.max(1.0)
        } else {
            default_noise
        };
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
    let before = RunResults::read(a)?;
    let after = RunResults::read(b)?;
    let changes = changes(&before, &after, noise);
    Ok(render(&before, &after, &changes))
}
