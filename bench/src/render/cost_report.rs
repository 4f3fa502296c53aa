//! The report of `bakeoff cost`: instructions per request per server and scenario (beside a
//! run's CPU time per request when one was given), the split by component, PostgreSQL's side,
//! the functions that cost the most, and the comparison of two cost runs by instructions.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use crate::format::{Table, group_thousands};
use crate::results::cost::{BAND_PERCENT, CostCell, CostChange, CostResults, ServerCost};
use crate::results::setup::Machine;
use crate::results::vocabulary::{Component, Scenario};

/// Functions listed per server and scenario in the report.
const FUNCTIONS_SHOWN: usize = 10;

/// Writes `report.md` and the chart of the split into `directory`.
pub fn write(results: &CostResults, directory: &Path) -> Result<()> {
    let chart = crate::render::cost_charts::write_split(results, directory)?;
    crate::results::write_file(directory, "report.md", markdown(results, chart.as_deref()))
}

/// The table of instructions per request, for the terminal.
pub fn terminal(results: &CostResults) -> String {
    let mut text = summary_table(results).terminal();
    for server in results
        .servers
        .iter()
        .filter(|s| s.record.skipped.is_some())
    {
        let _ = writeln!(
            text,
            "{}: not counted: {}",
            server.record.shown_name(),
            server.record.skipped.as_deref().unwrap_or_default()
        );
    }
    text
}

/// `76,512`, and the spread of the batches when there are several.
fn count_with_spread(cell: &CostCell) -> String {
    let Some(count) = cell.instructions_per_request() else {
        return "-".to_string();
    };
    let mut text = group_thousands(count.round() as i64);
    if cell.batches.len() > 1 {
        let _ = write!(text, " (±{:.2} %)", cell.spread_percent() / 2.0);
    }
    if cell.failed() > 0 {
        let _ = write!(text, " [{} failed]", cell.failed());
    }
    text
}

/// Servers as rows, scenarios as columns: instructions per request.
fn summary_table(results: &CostResults) -> Table {
    let scenarios = results.scenarios();
    let mut headers = vec!["instructions per request".to_string()];
    headers.extend(scenarios.iter().map(ToString::to_string));
    let mut table = Table::new(&headers);
    for server in results.servers.iter().filter(|s| !s.cells.is_empty()) {
        let mut row = vec![server.record.marked_name()];
        row.extend(scenarios.iter().map(|scenario| {
            cell_of(server, *scenario).map_or_else(|| "-".to_string(), count_with_spread)
        }));
        table.rows.push(row);
    }
    table
}

fn cell_of(server: &ServerCost, scenario: Scenario) -> Option<&CostCell> {
    server.cells.iter().find(|cell| cell.scenario == scenario)
}

/// One scenario: each server's count, system calls, split, PostgreSQL's side and the run's CPU.
fn scenario_table(results: &CostResults, scenario: Scenario) -> Table {
    let beside = results.settings.beside.is_some();
    let mut headers: Vec<String> = [
        "server",
        "instructions/req",
        "syscalls/req",
        "clock reads/req",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    headers.extend(Component::ALL.iter().map(|c| format!("{c} %")));
    headers.extend(["PG stmts/req", "PG rows/req", "PG buffers/req"].map(String::from));
    if beside {
        headers.extend(["run CPU µs/req", "instructions per CPU ns"].map(String::from));
    }
    let mut table = Table::new(&headers);
    for server in &results.servers {
        let Some(cell) = cell_of(server, scenario) else {
            continue;
        };
        let Some(batch) = cell.representative() else {
            continue;
        };
        let per_request = batch.instructions_per_request();
        let mut row = vec![
            server.record.marked_name(),
            count_with_spread(cell),
            format!("{:.2}", batch.system_calls_per_request()),
            format!("{:.2}", batch.clock_reads_per_request()),
        ];
        row.extend(
            Component::ALL
                .iter()
                .map(|&component| percent(batch.component_per_request(component), per_request)),
        );
        match &cell.database {
            Some(database) => row.extend([
                format!("{:.2}", database.statements),
                format!("{:.1}", database.rows),
                format!("{:.1}", database.buffers),
            ]),
            None => row.extend(["-", "-", "-"].map(String::from)),
        }
        if beside {
            match &cell.run_cpu {
                Some(cpu) => row.extend([
                    format!("{:.1} (c{})", cpu.cpu_us_per_request, cpu.connections),
                    format!("{:.2}", per_request / (cpu.cpu_us_per_request * 1_000.0)),
                ]),
                None => row.extend(["-", "-"].map(String::from)),
            }
        }
        table.rows.push(row);
    }
    table
}

fn percent(part: f64, whole: f64) -> String {
    if whole > 0.0 {
        format!("{:.1}", part / whole * 100.0)
    } else {
        "-".to_string()
    }
}

/// The functions that executed the most instructions themselves, for one server and scenario.
fn functions_table(cell: &CostCell) -> Option<Table> {
    let batch = cell.representative()?;
    let mut table = Table::new(&["function", "source", "instructions/req", "syscalls/req"]);
    for function in batch.counts.functions.iter().take(FUNCTIONS_SHOWN) {
        let per = |value: u64| value as f64 / batch.requests.max(1) as f64;
        table.rows.push(vec![
            format!("`{}`", function.function.replace('|', "\\|")),
            function.source.clone(),
            group_thousands(per(function.instructions).round() as i64),
            format!("{:.2}", per(function.system_calls)),
        ]);
    }
    Some(table)
}

/// System calls per request by the C library function that made them.
fn system_calls_line(cell: &CostCell) -> String {
    let Some(batch) = cell.representative() else {
        return String::new();
    };
    let mut calls: Vec<(&String, &u64)> = batch.counts.system_calls_by_function.iter().collect();
    calls.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    let listed: Vec<String> = calls
        .iter()
        .map(|(function, count)| {
            format!(
                "`{function}` {:.2}",
                **count as f64 / batch.requests.max(1) as f64
            )
        })
        .collect();
    format!(
        "System calls per request, by the function that made them (clock reads are vDSO calls natively): {}.",
        if listed.is_empty() {
            "none".to_string()
        } else {
            listed.join(", ")
        }
    )
}

fn settings_paragraph(results: &CostResults) -> String {
    let settings = &results.settings;
    let mut text = format!(
        "{} requests per batch, {} batch(es) per scenario in each of {} start(s) of every server \
         (a new process each; every server verified once before, natively), after {} uncounted \
         warm-up requests; one \
         request at a time on each of {} connection(s). Each server ran under Valgrind's \
         callgrind ({}), counting only while its batches ran, over its whole process tree; \
         {} builds; {}. Database: {}",
        group_thousands(settings.requests as i64),
        settings.batches,
        settings.starts,
        group_thousands(settings.warmup_requests as i64),
        if settings.connection_per_request {
            format!(
                "{} (a new connection for every request)",
                settings.connections
            )
        } else {
            format!("{} keep-alive", settings.connections)
        },
        settings.valgrind,
        settings.profile,
        settings.placement.note,
        settings.database,
    );
    if let Some(contacts) = settings.contacts {
        let _ = write!(text, ", {} contacts", group_thousands(contacts));
    }
    if let Some(seed) = settings.data_seed {
        let _ = write!(text, ", seed {seed}");
    }
    text.push_str("; PostgreSQL runs natively, its side read from pg_stat_statements. Servers: ");
    text.push_str(&settings.dimensions.describe());
    text.push_str(".\n");
    text
}

/// The whole `report.md`.
pub fn markdown(results: &CostResults, chart: Option<&str>) -> String {
    let mut text = String::from("# bakeoff cost: instructions per request\n\n");
    let _ = writeln!(
        text,
        "Counted {} to {} on {}.\n\n`{}`\n",
        results.started_at,
        results.finished_at,
        results.machine.line(),
        results.settings.command
    );
    text.push_str(&settings_paragraph(results));
    text.push_str(
        "\nAn instruction count does not move with the machine's load, frequency or caches: \
         two runs of the same binaries over the same requests agree within 1 %. It is not a \
         time: a request of fewer instructions can still take longer (waiting on PostgreSQL, \
         cache misses, a CPU shared with others).\n\n## Instructions per request\n\n",
    );
    text.push_str(&summary_table(results).markdown());
    text.push_str(
        "\nEach figure is the mean over the starts of the server of its batches' mean; ±: half \
         the spread of all its batches, in percent of it.\n",
    );
    if let Some(chart) = chart {
        let _ = writeln!(text, "\n![the split of the instructions]({chart})");
    }
    text.push_str("\nComponents:\n\n");
    for component in Component::ALL {
        let _ = writeln!(text, "- `{component}`: {}", component.description());
    }
    if let Some(beside) = &results.settings.beside {
        let _ = writeln!(
            text,
            "\nCPU time beside: the run in `{}` ({}, {}); instructions per CPU ns is the count \
             over that time, what the machine executed per nanosecond of the server's CPU time.",
            beside.directory, beside.started_at, beside.machine
        );
    }
    for scenario in results.scenarios() {
        let _ = writeln!(
            text,
            "\n## {scenario}\n\n{}\n\n{}",
            scenario.description(),
            scenario_table(results, scenario).markdown()
        );
        for server in &results.servers {
            let Some(cell) = cell_of(server, scenario) else {
                continue;
            };
            if let Some(table) = functions_table(cell) {
                let _ = writeln!(
                    text,
                    "<details><summary>{}: where the instructions go</summary>\n\n{}\n{}\n</details>\n",
                    server.record.marked_name(),
                    table.markdown(),
                    system_calls_line(cell)
                );
            }
        }
    }
    let skipped: Vec<&ServerCost> = results
        .servers
        .iter()
        .filter(|server| server.record.skipped.is_some())
        .collect();
    if !skipped.is_empty() {
        text.push_str("\n## Not counted\n\n");
        for server in skipped {
            let _ = writeln!(
                text,
                "- {}: {}",
                server.record.shown_name(),
                server.record.skipped.as_deref().unwrap_or_default()
            );
        }
    }
    text
}

/// Two cost runs compared by instructions per request, changes within the band marked.
pub fn comparison(before: &CostResults, after: &CostResults, changes: &[CostChange]) -> String {
    let mut text = Machine::compared(
        (&before.started_at, &before.machine),
        (&after.started_at, &after.machine),
    );
    if before.settings.profile != after.settings.profile
        || before.settings.valgrind != after.settings.valgrind
        || before.settings.connections != after.settings.connections
        || before.settings.connection_per_request != after.settings.connection_per_request
    {
        text.push_str(
            "warning: the runs differ in build profile, valgrind or connections; their counts are not comparable\n",
        );
    }
    text.push('\n');
    if changes.is_empty() {
        text.push_str("The runs have no cell in common (same server and scenario).\n");
        return text;
    }
    let mut table = Table::new(&[
        "server",
        "scenario",
        "A instr/req",
        "B instr/req",
        "change",
        "verdict",
    ]);
    for change in changes {
        let verdict = if change.within_band() {
            "~ same cost"
        } else if change.percent > 0.0 {
            "COSTLIER"
        } else {
            "cheaper"
        };
        table.rows.push(vec![
            change.server.clone(),
            change.scenario.to_string(),
            group_thousands(change.before.round() as i64),
            group_thousands(change.after.round() as i64),
            format!("{:+.2}%", change.percent),
            verdict.to_string(),
        ]);
    }
    text.push_str(&table.terminal());
    let beyond = changes.iter().filter(|c| !c.within_band()).count();
    let _ = writeln!(
        text,
        "\n{beyond} of {} cells changed by more than {BAND_PERCENT} % in instructions per request.",
        changes.len()
    );
    text
}
