//! The report's fault section: per fault, level and scenario, how every server rode it out
//! (failed requests, 503s, the longest answer, the time back to the first 2xx and to 90 % of its
//! throughput before the fault), and a reading in words. Only the fault cells are read here; the
//! normal tables never see them.

use std::fmt::Write as _;

use crate::format::{Style, Table, group_thousands};
use crate::harness::faults::{FaultKind, FaultRecord, RECOVERED_SHARE};
use crate::render::timeline::fault_groups;
use crate::results::run::{Cell, Level, RunResults, ServerResult};
use crate::scenarios::Scenario;

fn cells_of(
    results: &RunResults,
    kind: FaultKind,
    level: Level,
    scenario: Scenario,
) -> Vec<(&ServerResult, &Cell, &FaultRecord)> {
    results
        .servers
        .iter()
        .filter_map(|server| {
            let cell = server.fault_cells.iter().find(|cell| {
                level.matches(cell)
                    && cell.scenario == scenario
                    && cell.fault.as_ref().is_some_and(|fault| fault.kind == kind)
            })?;
            Some((server, cell, cell.fault.as_ref()?))
        })
        .collect()
}

fn seconds(value: Option<f64>) -> String {
    value.map_or_else(|| "never".to_string(), |seconds| format!("{seconds:.1}"))
}

/// The table of one fault at one level and scenario.
pub fn fault_table(
    results: &RunResults,
    kind: FaultKind,
    level: Level,
    scenario: Scenario,
    style: Style,
) -> Table {
    let mut table = Table::new(&[
        "server",
        "failed",
        "503s",
        "longest ms",
        "first 2xx s",
        "90% back s",
        "req/s before",
        "failures",
    ]);
    for (server, _, fault) in cells_of(results, kind, level, scenario) {
        let figures = &fault.figures;
        let failures = figures
            .failed_by_kind
            .iter()
            .map(|(kind, count)| format!("{kind} {count}"))
            .collect::<Vec<_>>()
            .join(", ");
        let failed = group_thousands(figures.failed as i64);
        let recovered = match figures.recovered_after_seconds {
            Some(seconds) => format!("{seconds:.1}"),
            None if style == Style::Markdown => "**never recovered**".to_string(),
            None => "never recovered".to_string(),
        };
        table.rows.push(vec![
            server.record.shown_name().to_string(),
            failed,
            group_thousands(figures.unavailable as i64),
            format!("{:.0}", figures.longest_ms),
            seconds(figures.first_ok_after_seconds),
            recovered,
            group_thousands(figures.before_ok_per_second.round() as i64),
            if failures.is_empty() {
                "-".to_string()
            } else {
                failures
            },
        ]);
    }
    table
}

/// One sentence on a fault table: who failed requests, who came back and how fast, who did not.
pub fn fault_reading(
    results: &RunResults,
    kind: FaultKind,
    level: Level,
    scenario: Scenario,
) -> String {
    let cells = cells_of(results, kind, level, scenario);
    let name = |server: &ServerResult| server.record.shown_name().to_string();
    let clean: Vec<String> = cells
        .iter()
        .filter(|(_, _, fault)| fault.figures.failed == 0)
        .map(|(server, _, _)| name(server))
        .collect();
    let failing: Vec<String> = cells
        .iter()
        .filter(|(_, _, fault)| fault.figures.failed > 0)
        .map(|(server, _, fault)| format!("{} ({})", name(server), fault.figures.failed))
        .collect();
    let stuck: Vec<String> = cells
        .iter()
        .filter(|(_, _, fault)| !fault.figures.recovered())
        .map(|(server, _, _)| name(server))
        .collect();
    let fastest = cells
        .iter()
        .filter_map(|(server, _, fault)| {
            Some((name(server), fault.figures.recovered_after_seconds?))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let mut sentence = String::from("Reading: ");
    if failing.is_empty() {
        sentence.push_str("no server failed a request");
    } else {
        let _ = write!(sentence, "failed requests: {}", failing.join(", "));
        if !clean.is_empty() {
            let _ = write!(sentence, "; none failed by {}", clean.join(", "));
        }
    }
    if let Some((server, seconds)) = fastest {
        let _ = write!(
            sentence,
            "; back to {:.0}% of its throughput first: {server}, {seconds:.1} s after the database returned",
            RECOVERED_SHARE * 100.0
        );
    }
    if !stuck.is_empty() {
        let _ = write!(
            sentence,
            "; never recovered within the cell: {}",
            stuck.join(", ")
        );
    }
    sentence.push('.');
    sentence
}

/// The Markdown section, empty when the run injected no fault.
pub fn markdown(results: &RunResults) -> String {
    let groups = fault_groups(results);
    if groups.is_empty() {
        return String::new();
    }
    let mut text = String::from("## Faults\n\n");
    text.push_str(
        "Each fault cell is a scenario measured once more with a fault injected into the \
         database during it; its figures are not in the tables above. `failed` counts every \
         request that ended in anything but a 2xx or a 503 with `Retry-After` (connection errors, \
         timeouts, resets, 500s, 503s without it), over the whole cell; `503s` those with it; \
         `longest ms` is the longest answer from the fault's start until throughput was back; \
         `first 2xx s` and `90% back s` are the time from the database's return to the end of \
         the first interval (100 ms) with a 2xx, and with throughput averaging 90 % of its level \
         before the fault over the next half second.\n\n",
    );
    for (kind, level, scenario) in groups {
        let window = cells_of(results, kind, level, scenario)
            .first()
            .map(|(_, _, fault)| {
                format!(
                    "{} s into the cell for {} s",
                    fault.at_seconds, fault.for_seconds
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            text,
            "### {kind}: {scenario} ({}; {window})\n\n{}.\n",
            level.label(),
            kind.description()
        );
        text.push_str(&fault_table(results, kind, level, scenario, Style::Markdown).markdown());
        let _ = writeln!(
            text,
            "\n{}\n",
            fault_reading(results, kind, level, scenario)
        );
    }
    text
}

/// The terminal's version of the section.
pub fn terminal(results: &RunResults) -> String {
    let mut text = String::new();
    for (kind, level, scenario) in fault_groups(results) {
        let _ = writeln!(text, "\n{kind}: {scenario} at {}\n", level.label());
        text.push_str(&fault_table(results, kind, level, scenario, Style::Terminal).terminal());
        let _ = writeln!(text, "{}", fault_reading(results, kind, level, scenario));
    }
    text
}
