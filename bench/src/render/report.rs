//! The report: side-by-side tables for the terminal and `report.md`, with the best figure of each
//! column marked and a one-line reading under each table.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use crate::format::{Style, Table, group_thousands};
use crate::results::run::{Cell, Level, Measurement, Percentiles, RunResults, ServerResult};
use crate::scenarios::Scenario;

/// Which direction is better for a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
    Neither,
}

/// A figure of a cell, or of its median run; `None` where it was not measured.
type Figure = dyn Fn(&Cell, &Measurement) -> Option<f64>;

/// A column of a scenario table: a figure of each server's cell, and how it is shown.
struct Column {
    header: String,
    better: Better,
    value: Box<Figure>,
    format: fn(f64) -> String,
}

impl Column {
    fn new(
        header: &str,
        better: Better,
        format: fn(f64) -> String,
        value: impl Fn(&Cell, &Measurement) -> Option<f64> + 'static,
    ) -> Column {
        Column {
            header: header.to_string(),
            better,
            value: Box::new(value),
            format,
        }
    }
}

fn milliseconds(micros: f64) -> String {
    let millis = micros / 1_000.0;
    if millis >= 100.0 {
        format!("{millis:.0}")
    } else if millis >= 10.0 {
        format!("{millis:.1}")
    } else {
        format!("{millis:.2}")
    }
}

fn whole(value: f64) -> String {
    group_thousands(value.round() as i64)
}

fn one_decimal(value: f64) -> String {
    format!("{value:.1}")
}

fn two_decimals(value: f64) -> String {
    format!("{value:.2}")
}

fn mebibytes(bytes: f64) -> String {
    format!("{:.1}", bytes / (1u64 << 20) as f64)
}

fn columns() -> Vec<Column> {
    let mut columns = vec![
        Column::new("req/s", Better::Higher, whole, |cell, _| {
            Some(cell.summary.ok_per_second)
        }),
        Column::new("±%", Better::Neither, one_decimal, |cell, _| {
            (cell.runs.len() > 1).then_some(cell.summary.spread_percent)
        }),
    ];
    columns.extend(Percentiles::SHOWN.iter().enumerate().map(|(index, name)| {
        Column::new(
            &format!("{name} ms"),
            Better::Lower,
            milliseconds,
            move |_, run| Some(run.latency_us.shown()[index] as f64),
        )
    }));
    columns.extend([
        Column::new("errors", Better::Lower, whole, |_, run| {
            Some(run.error_count() as f64)
        }),
        Column::new("CPU ms/1k", Better::Lower, one_decimal, |_, run| {
            run.server.as_ref()?.cpu_ms_per_1k
        }),
        Column::new("RSS MiB", Better::Lower, mebibytes, |_, run| {
            Some(run.server.as_ref()?.rss_peak_bytes as f64)
        }),
        Column::new("threads", Better::Neither, whole, |_, run| {
            Some(run.server.as_ref()?.threads_peak as f64)
        }),
        // Processes in the server's tree: 1 for a Rust variant, a peer's master and workers.
        Column::new("procs", Better::Neither, whole, |_, run| {
            let processes = run.server.as_ref()?.processes_peak;
            (processes > 0).then_some(processes as f64)
        }),
        Column::new("DB conns", Better::Neither, whole, |_, run| {
            run.server.as_ref()?.db_connections_peak.map(|v| v as f64)
        }),
        Column::new("stmts/req", Better::Neither, two_decimals, |_, run| {
            run.server.as_ref()?.statements_per_request
        }),
        Column::new(
            "engine %",
            Better::Neither,
            |value| format!("{value:.0}"),
            |_, run| run.engine_busy_percent,
        ),
    ]);
    columns
}

/// The servers that have cells at `level` for `scenario`, with the cell.
fn rows_of<'a>(
    results: &'a RunResults,
    level: &Level,
    scenario: Scenario,
) -> Vec<(&'a ServerResult, &'a Cell)> {
    results
        .servers
        .iter()
        .filter_map(|server| {
            let cell = server
                .cells
                .iter()
                .find(|cell| cell.scenario == scenario && level.matches(cell))?;
            Some((server, cell))
        })
        .collect()
}

/// The table of one scenario at one level, best per column marked.
pub fn scenario_table(
    results: &RunResults,
    level: &Level,
    scenario: Scenario,
    style: Style,
) -> Table {
    let columns = columns();
    let rows = rows_of(results, level, scenario);
    let mut headers = vec!["server"];
    headers.extend(columns.iter().map(|column| column.header.as_str()));
    let mut table = Table::new(&headers);
    let values: Vec<Vec<Option<f64>>> = rows
        .iter()
        .map(|(_, cell)| {
            columns
                .iter()
                .map(|column| cell.median().and_then(|run| (column.value)(cell, run)))
                .collect()
        })
        .collect();
    for (row_index, (server, _)) in rows.iter().enumerate() {
        let mut row = vec![row_name(server)];
        for (column_index, column) in columns.iter().enumerate() {
            let value = values[row_index][column_index];
            let text = value.map_or_else(|| "–".to_string(), |v| (column.format)(v));
            let best = best_value(&values, column_index, column.better);
            let is_best = rows.len() > 1
                && value.is_some()
                && best.is_some_and(|best| value.is_some_and(|v| v == best));
            row.push(if is_best { style.best(text) } else { text });
        }
        table.rows.push(row);
    }
    table
}

/// A server's name in the measurement tables, marked when it was measured without passing
/// verification (a lenient target) and when it is a Python peer beside the variants.
fn row_name(server: &ServerResult) -> String {
    server.record.marked_name()
}

/// A lenient target's 2xx answers under load whose compared body was not the contract's, over
/// every cell and repeat.
fn deviating_bodies(server: &ServerResult) -> u64 {
    server
        .cells
        .iter()
        .flat_map(|cell| cell.runs.iter())
        .map(|run| run.deviating_bodies)
        .sum()
}

/// The best value of a column; none when every row has the same value (nothing stands out).
fn best_value(values: &[Vec<Option<f64>>], column: usize, better: Better) -> Option<f64> {
    let present = values.iter().filter_map(|row| row[column]);
    let mut distinct = present.clone();
    let first = distinct.next()?;
    if distinct.all(|value| value == first) {
        return None;
    }
    match better {
        Better::Higher => present.max_by(f64::total_cmp),
        Better::Lower => present.min_by(f64::total_cmp),
        Better::Neither => None,
    }
}

/// Throughput of every server in every scenario at one level.
pub fn summary_table(results: &RunResults, level: &Level, style: Style) -> Table {
    let scenarios = results.scenarios();
    let mut headers = vec!["server".to_string()];
    headers.extend(scenarios.iter().map(ToString::to_string));
    let mut table = Table::new(&headers);
    let measured: Vec<&ServerResult> = results
        .servers
        .iter()
        .filter(|server| !server.cells.is_empty())
        .collect();
    let best: Vec<Option<f64>> = scenarios
        .iter()
        .map(|scenario| {
            rows_of(results, level, *scenario)
                .iter()
                .map(|(_, cell)| cell.summary.ok_per_second)
                .max_by(f64::total_cmp)
        })
        .collect();
    for server in measured {
        let mut row = vec![row_name(server)];
        for (index, scenario) in scenarios.iter().enumerate() {
            let cell = server
                .cells
                .iter()
                .find(|cell| &cell.scenario == scenario && level.matches(cell));
            row.push(match cell {
                None => "–".into(),
                Some(cell) => {
                    let text = whole(cell.summary.ok_per_second);
                    if results.servers.len() > 1 && best[index] == Some(cell.summary.ok_per_second)
                    {
                        style.best(text)
                    } else {
                        text
                    }
                }
            });
        }
        table.rows.push(row);
    }
    table
}

/// Verification, start-up and shutdown of every server.
pub fn servers_table(results: &RunResults) -> Table {
    let mut table = Table::new(&[
        "server",
        "kind",
        "workers",
        "pool",
        "check",
        "verified",
        "start s",
        "SIGTERM exit",
        "status",
    ]);
    for server in &results.servers {
        let verified = if !server.record.verification.ran {
            "not run".to_string()
        } else if server.record.verification.passed {
            format!("passed ({} checks)", server.record.verification.checks)
        } else if server.record.verification.lenient {
            format!(
                "unverified: {} deviations in {} checks",
                server.record.verification.failures.len(),
                server.record.verification.checks
            )
        } else {
            format!(
                "FAILED {} of {}",
                server.record.verification.failures.len(),
                server.record.verification.checks
            )
        };
        let shutdown = match &server.record.shutdown {
            None => "–".to_string(),
            Some(shutdown) if shutdown.clean => format!("clean in {:.2} s", shutdown.seconds),
            Some(shutdown) if shutdown.killed => {
                format!("killed after {:.1} s", shutdown.seconds)
            }
            Some(shutdown) => format!(
                "exit {} in {:.2} s",
                shutdown
                    .exit_code
                    .map_or_else(|| "by signal".to_string(), |code| code.to_string()),
                shutdown.seconds
            ),
        };
        // What the server reported running with, read back from it, not what the run asked for.
        let effective = server.record.effective.as_ref();
        let dash = || "–".to_string();
        table.rows.push(vec![
            server.record.shown_name().to_string(),
            server.record.kind.to_string(),
            effective.map_or_else(dash, |settings| settings.workers.to_string()),
            effective.map_or_else(dash, |settings| settings.db_pool_size.to_string()),
            effective
                .and_then(|settings| settings.db_recycle)
                .map_or_else(dash, |recycle| recycle.to_string()),
            verified,
            server
                .record
                .startup_seconds
                .map_or_else(|| "–".into(), |seconds| format!("{seconds:.2}")),
            shutdown,
            server
                .record
                .skipped
                .clone()
                .unwrap_or_else(|| "measured".to_string()),
        ]);
    }
    table
}

/// Above this share of its time busy, the engine may be what limits a cell.
pub const ENGINE_BOUND_PERCENT: f64 = 90.0;

/// One sentence about a scenario table: who leads, by how much, and what went wrong.
pub fn reading(results: &RunResults, level: &Level, scenario: Scenario) -> String {
    let rows = rows_of(results, level, scenario);
    let mut ranked: Vec<(&ServerResult, &Cell)> = rows.clone();
    ranked.sort_by(|a, b| {
        b.1.summary
            .ok_per_second
            .total_cmp(&a.1.summary.ok_per_second)
    });
    let Some((first, first_cell)) = ranked.first() else {
        return "No server was measured.".into();
    };
    let mut sentence = format!(
        "{} leads with {} req/s",
        first.record.shown_name(),
        whole(first_cell.summary.ok_per_second)
    );
    if let Some((last, last_cell)) = ranked.last().filter(|_| ranked.len() > 1) {
        let slowest = last_cell.summary.ok_per_second;
        if slowest > 0.0 {
            let _ = write!(
                sentence,
                ", {:.1}× {} (the slowest)",
                first_cell.summary.ok_per_second / slowest,
                last.record.shown_name()
            );
        } else {
            let _ = write!(
                sentence,
                "; {} answered nothing successfully",
                last.record.shown_name()
            );
        }
    }
    let p99s: Vec<(&str, u64)> = rows
        .iter()
        .filter_map(|(server, cell)| {
            Some((server.record.shown_name(), cell.median()?.latency_us.p99))
        })
        .collect();
    if let Some((name, p99)) = p99s
        .iter()
        .min_by_key(|(_, p99)| *p99)
        .filter(|_| p99s.len() > 1)
    {
        let _ = write!(
            sentence,
            "; lowest p99: {name} ({} ms)",
            milliseconds(*p99 as f64)
        );
    }
    let troubled: Vec<String> = rows
        .iter()
        .filter_map(|(server, cell)| {
            let run = cell.median()?;
            (run.error_count() > 0).then(|| {
                let kinds: Vec<String> = run
                    .errors
                    .iter()
                    .map(|(kind, count)| format!("{kind} ×{}", group_thousands(*count as i64)))
                    .collect();
                format!(
                    "{} had errors ({})",
                    server.record.shown_name(),
                    kinds.join(", ")
                )
            })
        })
        .collect();
    if !troubled.is_empty() {
        let _ = write!(sentence, "; {}", troubled.join("; "));
    }
    let engine_bound: Vec<&str> = rows
        .iter()
        .filter(|(_, cell)| {
            cell.median()
                .and_then(|run| run.engine_busy_percent)
                .is_some_and(|busy| busy >= ENGINE_BOUND_PERCENT)
        })
        .map(|(server, _)| server.record.shown_name())
        .collect();
    if !engine_bound.is_empty() {
        let _ = write!(
            sentence,
            "; the load engine was at least {ENGINE_BOUND_PERCENT:.0}% busy against {}, so that figure is the engine's limit, not the server's",
            engine_bound.join(", ")
        );
    }
    sentence.push('.');
    sentence
}

/// The whole report as Markdown.
pub fn markdown(results: &RunResults, charts: &[String]) -> String {
    let settings = &results.settings;
    let mut text = String::new();
    let _ = writeln!(text, "# bakeoff results, {}\n", results.started_at);
    let _ = writeln!(text, "- **Machine:** {}", results.machine.line());
    let _ = writeln!(text, "- **Command:** `{}`", settings.command);
    let rate = settings.rate.map_or_else(
        || "closed loop".to_string(),
        |rate| {
            format!(
                "open loop at {} req/s (a request that found its connection busy counts from its intended send time)",
                whole(rate)
            )
        },
    );
    let _ = writeln!(
        text,
        "- **Load:** {} s per cell after a {} s warm-up per server, {} run(s) per cell, {}; connections: {}",
        settings.duration_seconds,
        settings.warmup_seconds,
        settings.repeat,
        rate,
        settings
            .connections
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        text,
        "- **Servers:** {}; {} build",
        settings.servers_line(),
        settings.profile
    );
    let line_placement = if crate::render::db_latency::latency_dimensions(results).is_some() {
        match &settings.placement.engine_cpus {
            Some(cpus) => format!("; the delay line to PostgreSQL on the engine's CPUs ({cpus})"),
            None => "; the delay line to PostgreSQL unpinned".to_string(),
        }
    } else {
        String::new()
    };
    let _ = writeln!(
        text,
        "- **Placement:** {}{line_placement}",
        settings.placement.note
    );
    let contacts = settings.contacts.map_or_else(String::new, |count| {
        format!(", {} contacts", group_thousands(count))
    });
    let seed = settings
        .data_seed
        .map_or_else(String::new, |seed| format!(", seed {seed}"));
    let _ = writeln!(
        text,
        "- **Database:** {}{contacts}{seed}\n",
        settings.database
    );

    text.push_str(
        "How to read: `req/s` counts answers with status 2xx (and the expected body where it was \
         checked) per second of the measured window; latencies are percentiles of every answer in \
         the window; `errors` counts non-2xx answers, failed connections, timeouts, resets and \
         wrong bodies. `CPU ms/1k` is the server process's user+system CPU time per 1,000 answers, \
         `RSS MiB` its peak resident memory, `threads` its peak thread count and `procs` its processes,
         all read from /proc and summed over its process tree; \
         `DB conns` is the peak of its connections in pg_stat_activity and `stmts/req` its \
         statements (pg_stat_statements) per answer. `engine %` is how busy the load engine was: \
         near 100 the engine, not the server, limits that row. The best value of a column is in bold. `±%` \
         is the spread of throughput over repeats.\n\n",
    );

    text.push_str("## Servers\n\n");
    text.push_str(&servers_table(results).markdown());
    for server in &results.servers {
        if server.record.is_unverified() {
            let checked: u64 = server
                .cells
                .iter()
                .flat_map(|cell| cell.runs.iter())
                .map(|run| run.checked_bodies)
                .sum();
            let _ = writeln!(
                text,
                "\n{} was measured unverified (`--lenient`{}): its rows count every 2xx answer; \
                 of the bodies compared under load, {} matched the contract and {} deviated. \
                 Its deviations from the contract ({} in {} checks):\n",
                server.record.shown_name(),
                server
                    .record
                    .path_style
                    .map_or_else(String::new, |style| format!(", {style}")),
                group_thousands(checked as i64),
                group_thousands(deviating_bodies(server) as i64),
                server.record.verification.failures.len(),
                server.record.verification.checks
            );
        } else if server.record.verification.ran && !server.record.verification.passed {
            let _ = writeln!(
                text,
                "\n{} failed verification:\n",
                server.record.shown_name()
            );
        }
        if server.record.verification.ran && !server.record.verification.passed {
            for failure in server.record.verification.failures.iter().take(20) {
                let _ = writeln!(text, "- {failure}");
            }
            if server.record.verification.failures.len() > 20 {
                let _ = writeln!(
                    text,
                    "- … and {} more (see results.json)",
                    server.record.verification.failures.len() - 20
                );
            }
        }
    }
    text.push('\n');

    for level in results.levels() {
        let _ = writeln!(text, "## Throughput at {}\n", level.label());
        text.push_str(&summary_table(results, &level, Style::Markdown).markdown());
        text.push('\n');
        for scenario in results.scenarios() {
            let description = scenario.description();
            let _ = writeln!(text, "### {scenario} ({})\n", level.label());
            if !description.is_empty() {
                let _ = writeln!(text, "{description}.\n");
            }
            text.push_str(&scenario_table(results, &level, scenario, Style::Markdown).markdown());
            let _ = writeln!(text, "\n{}\n", reading(results, &level, scenario));
            if level.rate.is_some() {
                text.push_str(&uncorrected_note(results, &level, scenario));
            }
        }
    }

    text.push_str(&crate::render::db_latency::markdown(results, charts));
    if crate::render::processes::applies(results) {
        text.push_str(&crate::render::processes::markdown(results, charts));
    }
    text.push_str(&crate::render::fault_report::markdown(results));
    text.push_str(&crate::render::containers::markdown(results));

    // The latency and processes sections show their own charts.
    let general: Vec<&String> = charts
        .iter()
        .filter(|chart| !chart.starts_with("db-latency") && !chart.starts_with("processes-"))
        .collect();
    if !general.is_empty() {
        text.push_str("## Charts\n\n");
        for chart in general {
            let _ = writeln!(text, "![{chart}]({chart})\n");
        }
    }

    text.push_str(if crate::render::containers::applies(results) {
        "## Caveats\n\n\
         - Every container runs under its CPU quota and memory limit (the Containers section), not \
         on CPUs of its own: the server, the load engine and PostgreSQL compete for the same CPUs.\n\
         - The requests cross the compose network (veth pairs and a bridge on one machine), which \
         costs CPU and latency that loopback does not: compare container runs with container runs.\n\
         - Figures from different machines, or different placements, are not comparable; use \
         `bakeoff compare` between runs on the same machine.\n"
    } else {
        "## Caveats\n\n\
         - The server and the load engine run on disjoint CPUs, but PostgreSQL is not pinned: in the \
         database scenarios it competes with both for the same CPUs, and on a 2-CPU machine that \
         is most of what the figures show.\n\
         - Everything runs on one machine over loopback: no network latency but what a delay line \
         adds, and no other clients.\n\
         - Figures from different machines, or different placements, are not comparable; use \
         `bakeoff compare` between runs on the same machine.\n"
    });
    text
}

fn uncorrected_note(results: &RunResults, level: &Level, scenario: Scenario) -> String {
    let mut text =
        String::from("Uncorrected latency (from the actual send time), for comparison:\n\n");
    let mut table = Table::new(&["server", "p50 ms", "p99 ms", "p99.9 ms", "max ms"]);
    for (server, cell) in rows_of(results, level, scenario) {
        if let Some(latency) = cell.median().and_then(|run| run.uncorrected_latency_us) {
            table.rows.push(vec![
                server.record.shown_name().to_string(),
                milliseconds(latency.p50 as f64),
                milliseconds(latency.p99 as f64),
                milliseconds(latency.p99_9 as f64),
                milliseconds(latency.max as f64),
            ]);
        }
    }
    text.push_str(&table.markdown());
    text.push('\n');
    text
}

/// The whole report for the terminal: the servers, then each level's summary and scenarios.
pub fn terminal(results: &RunResults) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "\n{}", results.machine.line());
    let _ = writeln!(text, "{}\n", results.settings.placement.note);
    text.push_str(&servers_table(results).terminal());
    for level in results.levels() {
        let _ = writeln!(
            text,
            "\nThroughput (req/s) at {}; * marks the best\n",
            level.label()
        );
        text.push_str(&summary_table(results, &level, Style::Terminal).terminal());
        for scenario in results.scenarios() {
            let _ = writeln!(text, "\n{scenario} at {}\n", level.label());
            text.push_str(&scenario_table(results, &level, scenario, Style::Terminal).terminal());
            let _ = writeln!(text, "{}", reading(results, &level, scenario));
        }
    }
    text.push_str(&crate::render::fault_report::terminal(results));
    if crate::render::processes::applies(results) {
        text.push_str(&crate::render::processes::terminal(results));
    }
    text.push_str(&crate::render::containers::terminal(results));
    text
}

/// Writes `report.md` and the charts into `directory`.
pub fn write(results: &RunResults, directory: &Path) -> Result<Vec<String>> {
    let mut charts = crate::render::charts::write_all(results, directory)?;
    charts.extend(crate::render::timeline::write_all(results, directory)?);
    if crate::render::processes::applies(results) {
        charts.extend(crate::render::processes::write_charts(results, directory)?);
    }
    crate::results::write_file(directory, "report.md", markdown(results, &charts))?;
    Ok(charts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_value_of_a_column_is_marked_only_where_one_stands_out() {
        let values = vec![
            vec![Some(3.0)],
            vec![None],
            vec![Some(7.0)],
            vec![Some(5.0)],
        ];
        assert_eq!(best_value(&values, 0, Better::Higher), Some(7.0));
        assert_eq!(best_value(&values, 0, Better::Lower), Some(3.0));
        assert_eq!(best_value(&values, 0, Better::Neither), None);
        let level = vec![vec![Some(4.0)], vec![Some(4.0)], vec![None]];
        assert_eq!(best_value(&level, 0, Better::Higher), None);
        assert_eq!(
            best_value(&[vec![None], vec![None]], 0, Better::Lower),
            None
        );
    }
}
