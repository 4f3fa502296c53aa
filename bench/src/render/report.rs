//! The report: side-by-side tables for the terminal and `report.md`, with the best figure of each
//! column marked and a one-line reading under each table.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use crate::format::{Style, Table, group_thousands};
use crate::render::verdicts::{self, Better, ENGINE_BOUND_PERCENT};
use crate::results::run::{Cell, Level, Measurement, Percentiles, RunResults, ServerResult};
use crate::results::vocabulary::Scenario;

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
        Column::new("req/s", Better::Higher, whole, |_, run| {
            Some(run.ok_per_second)
        }),
        // Half the width of the interval of the median over the rounds, in percent of it.
        Column::new("±%", Better::Neither, one_decimal, |cell, _| {
            let interval = cell.summary.interval?;
            let median = cell.summary.ok_per_second;
            (median > 0.0).then(|| (interval.high - interval.low) / 2.0 / median * 100.0)
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
    // A column's best value is marked only where its row is ahead of every other row by the
    // rule of `verdicts` (the interval of the per-round ratio excludes 1).
    let cells: Vec<&Cell> = rows.iter().map(|(_, cell)| *cell).collect();
    let leaders: Vec<Option<usize>> = columns
        .iter()
        .map(|column| leader_of(&cells, column))
        .collect();
    for (row_index, (server, _)) in rows.iter().enumerate() {
        let mut row = vec![row_name(server)];
        for (column_index, column) in columns.iter().enumerate() {
            let value = values[row_index][column_index];
            let text = value.map_or_else(|| "–".to_string(), |v| (column.format)(v));
            let is_best = leaders[column_index] == Some(row_index);
            row.push(if is_best { style.best(text) } else { text });
        }
        table.rows.push(row);
    }
    table
}

/// The row whose figure in `column` is better than every other row's, round by round. Only the
/// columns of a run's own figures are ranked (the ±% column is a cell's, and ranks nothing), so
/// the figure of a round is the column's value of that round's run.
fn leader_of(cells: &[&Cell], column: &Column) -> Option<usize> {
    let any_cell = cells.first()?;
    let figure = |run: &Measurement| (column.value)(any_cell, run);
    verdicts::leader(cells, &figure, column.better)
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
    // The best of a scenario is marked only where it is ahead of every other server.
    let leaders: Vec<Option<&ServerResult>> = scenarios
        .iter()
        .map(|scenario| {
            let rows = rows_of(results, level, *scenario);
            let cells: Vec<&Cell> = rows.iter().map(|(_, cell)| *cell).collect();
            verdicts::leader(&cells, &verdicts::throughput, Better::Higher)
                .map(|index| rows[index].0)
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
                    if leaders[index].is_some_and(|leader| std::ptr::eq(leader, server)) {
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

/// The servers warmed up for longer than the run's warm-up, as " (longer where ...: NAME S s,
/// ...)", or nothing.
fn longer_warmups(results: &RunResults) -> String {
    let longer: Vec<String> = results
        .servers
        .iter()
        .filter_map(|server| {
            let seconds = server.record.warmup_seconds?;
            (seconds > results.settings.warmup_seconds)
                .then(|| format!("{} {seconds} s", server.record.shown_name()))
        })
        .collect();
    if longer.is_empty() {
        String::new()
    } else {
        format!(
            " (longer where the runtime needs it, the JVM's JIT: {})",
            longer.join(", ")
        )
    }
}

/// Verification, start-up, warm-up and shutdown of every server.
pub fn servers_table(results: &RunResults) -> Table {
    let mut table = Table::new(&[
        "server",
        "kind",
        "workers",
        "pool",
        "check",
        "verified",
        "start s",
        "warm-up s",
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
            server
                .record
                .warmup_seconds
                .map_or_else(|| "–".into(), |seconds| format!("{seconds}")),
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

/// One sentence about a scenario table: who leads and by how much where the rounds carry it,
/// who is tied within the run's noise where they do not, and what went wrong.
pub fn reading(results: &RunResults, level: &Level, scenario: Scenario) -> String {
    let rows = rows_of(results, level, scenario);
    if rows.is_empty() {
        return "No server was measured.".into();
    }
    let cells: Vec<&Cell> = rows.iter().map(|(_, cell)| *cell).collect();
    let mut sentence = if verdicts::engine_bound(&cells, ENGINE_BOUND_PERCENT) {
        format!(
            "The load engine was at least {ENGINE_BOUND_PERCENT:.0}% busy in this table, so its \
             throughput is partly the engine's, so it is ranked by CPU per request instead. {}",
            ranking(
                &rows,
                &verdicts::cpu_per_request,
                Better::Lower,
                "ms of CPU per 1,000"
            )
        )
    } else {
        ranking(&rows, &verdicts::throughput, Better::Higher, "req/s")
    };
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
    sentence.push('.');
    sentence
}

/// Who is ahead by `figure`: the best by median, against the next and against the last, each
/// with the median of the per-round ratio and its interval, and a winner named only where the
/// interval excludes 1.
fn ranking(
    rows: &[(&ServerResult, &Cell)],
    figure: &dyn Fn(&Measurement) -> Option<f64>,
    better: Better,
    unit: &str,
) -> String {
    let median = |cell: &Cell| {
        let values: Vec<f64> = cell.runs.iter().filter_map(figure).collect();
        // The same median as the tables' (the upper one of an even count).
        (!values.is_empty()).then(|| crate::stats::median(&values))
    };
    let mut ranked: Vec<(&ServerResult, &Cell, f64)> = rows
        .iter()
        .filter_map(|(server, cell)| Some((*server, *cell, median(cell)?)))
        .collect();
    ranked.sort_by(|a, b| match better {
        Better::Lower => a.2.total_cmp(&b.2),
        _ => b.2.total_cmp(&a.2),
    });
    let Some(&(first, first_cell, first_value)) = ranked.first() else {
        return "no figures".to_string();
    };
    let value_text = |value: f64| {
        if value >= 100.0 {
            whole(value)
        } else {
            one_decimal(value)
        }
    };
    if ranked.len() == 1 {
        return format!(
            "{}: {} {unit}",
            first.record.shown_name(),
            value_text(first_value)
        );
    }
    let (second, second_cell, _) = ranked[1];
    let against = |other: &Cell| verdicts::paired(first_cell, other, figure);
    let ahead = |other: &Cell| verdicts::is_better(first_cell, other, figure, better);
    let describe = |other: &Cell| {
        against(other).map_or_else(|| "no paired rounds".to_string(), |ratio| ratio.describe())
    };
    type Row<'a> = (&'a ServerResult, &'a Cell, f64);
    let (beaten, tied): (Vec<&Row>, Vec<&Row>) =
        ranked[1..].iter().partition(|(_, cell, _)| ahead(cell));
    let names = |rows: &[&Row]| {
        rows.iter()
            .map(|(server, _, _)| server.record.shown_name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if tied.is_empty() {
        let mut sentence = format!(
            "{} leads with {} {unit}, {} {} (the next)",
            first.record.shown_name(),
            value_text(first_value),
            describe(second_cell),
            second.record.shown_name()
        );
        if ranked.len() > 2 {
            let (last, last_cell, _) = ranked[ranked.len() - 1];
            let _ = write!(
                sentence,
                "; {} {} (the last)",
                describe(last_cell),
                last.record.shown_name()
            );
        }
        return sentence;
    }
    let (closest, closest_cell, _) = *tied[0];
    let mut sentence = format!(
        "No server is ahead of every other: {} ({} {unit}) and {} are tied within this run's \
         noise ({} against {})",
        first.record.shown_name(),
        value_text(first_value),
        names(&tied),
        describe(closest_cell),
        closest.record.shown_name()
    );
    if !beaten.is_empty() {
        let _ = write!(
            sentence,
            "; {} is ahead of {}",
            first.record.shown_name(),
            names(&beaten)
        );
    }
    sentence
}

/// What the servers' records say about how each was measured (a longer warm-up, say), one
/// line each, named.
fn server_notes(results: &RunResults) -> Vec<String> {
    results
        .servers
        .iter()
        .flat_map(|server| {
            server
                .record
                .notes
                .iter()
                .map(|note| format!("{}: {note}", server.record.shown_name()))
        })
        .collect()
}

/// The charts of a report, by the section that shows them.
#[derive(Debug, Default)]
pub struct ReportCharts {
    /// Throughput, CPU, memory and latency per load level, and the timelines: the "Charts"
    /// section.
    pub general: Vec<String>,
    /// The database-latency section's.
    pub db_latency: Vec<String>,
    /// The processes-and-pooler section's.
    pub processes: Vec<String>,
}

impl ReportCharts {
    /// Every file name, for the caller to list.
    pub fn all(self) -> Vec<String> {
        // Destructured, so that a section's new field cannot be left out.
        let ReportCharts {
            general,
            db_latency,
            processes,
        } = self;
        [general, db_latency, processes].concat()
    }
}

/// The whole report as Markdown: its sections in order, then the other layers' sections (each
/// empty where it does not apply), the charts and the caveats.
pub fn markdown(results: &RunResults, charts: &ReportCharts) -> String {
    let mut text = header_markdown(results);
    text.push_str(HOW_TO_READ);
    text.push_str(&servers_markdown(results));
    text.push_str(&throughput_markdown(results));
    text.push_str(&efficiency_markdown(results));
    text.push_str(&crate::render::db_latency_report::markdown(
        results,
        &charts.db_latency,
    ));
    if crate::render::processes_report::applies(results) {
        text.push_str(&crate::render::processes_report::markdown(
            results,
            &charts.processes,
        ));
    }
    text.push_str(&crate::render::fault_report::markdown(results));
    text.push_str(&crate::render::shards::markdown(results));
    text.push_str(&crate::render::containers::markdown(results));
    text.push_str(&charts_markdown(&charts.general));
    text.push_str(caveats_markdown(results));
    text
}

/// The title and the run's settings, a bullet each: what a reader needs to reproduce the run.
fn header_markdown(results: &RunResults) -> String {
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
        "- **Load:** {}{}, {rate}",
        load_line(settings),
        longer_warmups(results)
    );
    for line in rounds_lines(results) {
        let _ = writeln!(text, "- {line}");
    }
    let _ = writeln!(
        text,
        "- **Servers:** {}; {} build",
        settings.servers_line(),
        settings.profile
    );
    let _ = writeln!(
        text,
        "- **Placement:** {}{}",
        settings.placement.note,
        delay_line_placement(results)
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
    text
}

/// Where the delay line ran, for the placement line; empty for a run without one.
fn delay_line_placement(results: &RunResults) -> String {
    if results.latency_dimensions().is_none() {
        return String::new();
    }
    match &results.settings.placement.engine_cpus {
        Some(cpus) => format!("; the delay line to PostgreSQL on the engine's CPUs ({cpus})"),
        None => "; the delay line to PostgreSQL unpinned".to_string(),
    }
}

/// How to read the tables, under the header.
const HOW_TO_READ: &str = "How to read: `req/s` counts answers with status 2xx (and the expected body where it was \
     checked) per second of the measured window; latencies are percentiles of every answer in \
     the window; `errors` counts non-2xx answers, failed connections, timeouts, resets and \
     wrong bodies. `CPU ms/1k` is the server process's user+system CPU time per 1,000 answers, \
     `RSS MiB` its peak resident memory, `threads` its peak thread count and `procs` its processes, \
     all read from /proc and summed over its process tree; \
     `DB conns` is the peak of its connections in pg_stat_activity and `stmts/req` its \
     statements (pg_stat_statements) per answer. `engine %` is how busy the load engine was: \
     near 100 the engine, not the server, limits that row. Every cell is the median of its \
     rounds; `±%` is half the width of the interval of that median (order statistics over the \
     rounds; its coverage is in the rounds line above). A value is in bold only where its server \
     is ahead of every other server by the rule of this report: the ratio of the two servers' \
     figures, round by round (the rounds measured them seconds apart), has an interval that \
     excludes 1; otherwise the servers are tied within this run's noise.\n\n";

/// The servers table, the notes of their records, and what each unverified or failing server
/// deviated in.
fn servers_markdown(results: &RunResults) -> String {
    let mut text = String::from("## Servers\n\n");
    text.push_str(&servers_table(results).markdown());
    for note in server_notes(results) {
        let _ = writeln!(text, "\n{note}");
    }
    for server in &results.servers {
        text.push_str(&verification_markdown(server));
    }
    text.push('\n');
    text
}

/// A server's verification where it did not simply pass: measured unverified (`--lenient`), or
/// failed, with its first failures; empty otherwise.
fn verification_markdown(server: &ServerResult) -> String {
    let mut text = String::new();
    let verification = &server.record.verification;
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
            verification.failures.len(),
            verification.checks
        );
    } else if verification.ran && !verification.passed {
        let _ = writeln!(
            text,
            "\n{} failed verification:\n",
            server.record.shown_name()
        );
    }
    if verification.ran && !verification.passed {
        for failure in verification.failures.iter().take(20) {
            let _ = writeln!(text, "- {failure}");
        }
        if verification.failures.len() > 20 {
            let _ = writeln!(
                text,
                "- … and {} more (see results.json)",
                verification.failures.len() - 20
            );
        }
    }
    text
}

/// Per load level: the summary table, then each scenario's table with its reading.
fn throughput_markdown(results: &RunResults) -> String {
    let mut text = String::new();
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
    text
}

/// The charts of no other section (the latency and processes sections show their own).
fn charts_markdown(general: &[String]) -> String {
    let mut text = String::new();
    if !general.is_empty() {
        text.push_str("## Charts\n\n");
        for chart in general {
            let _ = writeln!(text, "![{chart}]({chart})\n");
        }
    }
    text
}

/// What the figures cannot say, for the way the run was placed: shards over the network,
/// containers under quotas, or one machine over loopback.
fn caveats_markdown(results: &RunResults) -> &'static str {
    if crate::render::shards::applies(results) {
        "## Caveats\n\n\
         - The load came from several engines over the network to servers placed by their hosts \
         (not pinned by bakeoff): the figures include real network round trips, and the machine \
         line is the first shard's host.\n\
         - Figures from different machines, or different placements, are not comparable; use \
         `bakeoff compare` between runs on the same machines.\n"
    } else if crate::render::containers::applies(results) {
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
    }
}

/// The load line: time per cell, rounds, warm-ups, connections.
fn load_line(settings: &crate::results::run::Settings) -> String {
    let connections = settings
        .connections
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if settings.rounds >= 1 {
        format!(
            "{} s per cell in {} interleaved rounds of {:.2} s (each after {:.2} s of unrecorded load), \
             after a {} s warm-up per server; connections: {connections}",
            settings.duration_seconds,
            settings.rounds,
            settings.duration_seconds / settings.rounds as f64,
            settings.cell_warmup_seconds,
            settings.warmup_seconds
        )
    } else {
        format!(
            "{} s per cell after a {} s warm-up per server, {} run(s) per cell one after another; \
             connections: {connections}",
            settings.duration_seconds, settings.warmup_seconds, settings.repeat
        )
    }
}

/// What the rounds say about the run: the coverage of its intervals, the groups, and how much
/// the machine's speed moved (flagged past `drift::FLAG_PERCENT`).
pub fn rounds_lines(results: &RunResults) -> Vec<String> {
    let mut lines = Vec::new();
    let rounds = results.settings.rounds;
    if rounds == 0 {
        lines.push(
            "**Rounds:** none (a file from before rounds, or shards merged by an earlier bakeoff): \
             cells measured one after another, no intervals, and no server is ranked ahead of another"
                .to_string(),
        );
        return lines;
    }
    let coverage = crate::results::intervals::Interval::of_median(&vec![0.0; rounds])
        .map(|interval| format!("{:.1} %", interval.coverage * 100.0));
    lines.push(match coverage {
        Some(coverage) => format!(
            "**Rounds:** {rounds}; intervals are order statistics of the rounds with {coverage} \
             coverage of the median (exact, whatever the distribution)"
        ),
        None => "**Rounds:** 1: no intervals, so no server is ranked ahead of another".to_string(),
    });
    if results.groups.len() > 1 {
        let groups: Vec<String> = results
            .groups
            .iter()
            .map(|labels| format!("({})", labels.join(", ")))
            .collect();
        lines.push(format!(
            "**Groups:** {} groups, measured one after another, servers interleaved within each: \
             {}. Servers of different groups are compared by their medians only, never ranked",
            results.groups.len(),
            groups.join(" ")
        ));
    }
    let readings: Vec<f64> = results
        .rounds
        .iter()
        .filter_map(|round| round.reference_ms)
        .collect();
    if let Some(moved) = crate::measure::drift::moved_percent(&readings) {
        let smallest = readings.iter().copied().fold(f64::INFINITY, f64::min);
        let largest = readings.iter().copied().fold(0.0, f64::max);
        let flag = if moved > crate::measure::drift::FLAG_PERCENT {
            format!(
                " **More than {:.0} %: the machine's speed changed during the run; read its \
                 figures with care, and its ratios rather than its absolute figures.**",
                crate::measure::drift::FLAG_PERCENT
            )
        } else {
            String::new()
        };
        lines.push(format!(
            "**Machine drift:** a fixed piece of CPU work on the servers' CPUs took {smallest:.1} \
             to {largest:.1} ms over {} rounds: the machine's speed moved {moved:.1} %.{flag}",
            readings.len()
        ));
    }
    lines
}

/// The efficiency cells: every server at the same open-loop rate, its CPU per request and
/// latency at that rate, the cheapest named only where the rounds carry it.
fn efficiency_markdown(results: &RunResults) -> String {
    let scenarios = results.scenarios();
    let mut text = String::new();
    for scenario in scenarios {
        let rows: Vec<(&ServerResult, &Cell)> = results
            .servers
            .iter()
            .flat_map(|server| {
                server
                    .efficiency_cells
                    .iter()
                    .filter(move |cell| cell.scenario == scenario)
                    .map(move |cell| (server, cell))
            })
            .collect();
        if rows.is_empty() {
            continue;
        }
        if text.is_empty() {
            text.push_str(
                "## Cost at equal load

Every server at the same open-loop rate (half of the \
                 slowest server's closed-loop median unless `--rate` set it): what a capacity \
                 planner reads. The rate is below every server's limit, so the engine cannot \
                 limit these figures; latency counts from the intended send time. CPU time is \
                 read from /proc in 10 ms ticks: where a round used only a few ticks, read the \
                 interval, not the median.\n\n",
            );
        }
        let _ = writeln!(text, "### {scenario}\n");
        let mut table = Table::new(&[
            "server",
            "rate req/s",
            "achieved",
            "CPU ms/1k",
            "CPU interval",
            "p50 ms",
            "p99 ms",
            "errors",
        ]);
        let cells: Vec<&Cell> = rows.iter().map(|(_, cell)| *cell).collect();
        let coarse = coarse_cpu_ticks(&cells);
        let leader = if coarse.is_some() {
            None
        } else {
            verdicts::leader(&cells, &verdicts::cpu_per_request, Better::Lower)
        };
        for (index, (server, cell)) in rows.iter().enumerate() {
            let run = cell.median();
            let cpu = cell
                .summary
                .cpu_ms_per_1k
                .map_or_else(|| "–".into(), one_decimal);
            table.rows.push(vec![
                row_name(server),
                cell.rate.map_or_else(|| "–".into(), whole),
                whole(cell.summary.ok_per_second),
                if leader == Some(index) {
                    Style::Markdown.best(cpu)
                } else {
                    cpu
                },
                cell.summary
                    .cpu_interval
                    .map_or_else(|| "–".into(), |interval| interval.describe(1)),
                run.map_or_else(|| "–".into(), |run| milliseconds(run.latency_us.p50 as f64)),
                run.map_or_else(|| "–".into(), |run| milliseconds(run.latency_us.p99 as f64)),
                run.map_or_else(|| "–".into(), |run| whole(run.error_count() as f64)),
            ]);
        }
        text.push_str(&table.markdown());
        let reading = match coarse {
            Some(tick) => format!(
                "No server is ranked: at this rate one 10 ms tick of /proc's CPU time is {} ms per \
                 1,000 answers in a round, too coarse against figures of {} ms; a higher `--rate` \
                 (or the fast servers in a run of their own) measures their CPU",
                one_decimal(tick.ms_per_1k),
                one_decimal(tick.lowest_ms_per_1k)
            ),
            None => ranking(
                &rows,
                &verdicts::cpu_per_request,
                Better::Lower,
                "ms of CPU per 1,000",
            ),
        };
        let _ = writeln!(text, "\n{reading}.\n");
    }
    text
}

/// The CPU time of one clock tick per 1,000 answers of a round, against the lowest CPU figure
/// of the table, where the tick is more than a twentieth of it.
#[derive(Debug, Clone, Copy)]
struct CoarseTicks {
    ms_per_1k: f64,
    lowest_ms_per_1k: f64,
}

/// Whether /proc's 10 ms ticks are too coarse to rank these cells by CPU: a slow server in the
/// run sets a rate at which the fast ones use a handful of ticks per round, and a server "ahead"
/// by one tick is not ahead.
fn coarse_cpu_ticks(cells: &[&Cell]) -> Option<CoarseTicks> {
    const TICK_MS: f64 = 10.0;
    let ms_per_1k = cells
        .iter()
        .filter_map(|cell| cell.median())
        .map(|run| run.ok_per_second * run.seconds)
        .filter(|&answers| answers > 0.0)
        .map(|answers| TICK_MS * 1_000.0 / answers)
        .fold(0.0, f64::max);
    let lowest_ms_per_1k = cells
        .iter()
        .filter_map(|cell| cell.summary.cpu_ms_per_1k)
        .fold(f64::INFINITY, f64::min);
    (lowest_ms_per_1k.is_finite() && ms_per_1k > 0.05 * lowest_ms_per_1k).then_some(CoarseTicks {
        ms_per_1k,
        lowest_ms_per_1k,
    })
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
    let _ = writeln!(text, "{}", results.settings.placement.note);
    for line in rounds_lines(results) {
        let _ = writeln!(text, "{}", line.replace("**", ""));
    }
    text.push('\n');
    text.push_str(&servers_table(results).terminal());
    for note in server_notes(results) {
        let _ = writeln!(text, "{note}");
    }
    for level in results.levels() {
        let _ = writeln!(
            text,
            "\nThroughput (req/s, median of the rounds) at {}; * marks a server ahead of every other\n",
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
    if crate::render::processes_report::applies(results) {
        text.push_str(&crate::render::processes_report::terminal(results));
    }
    text.push_str(&crate::render::shards::terminal(results));
    text.push_str(&crate::render::containers::terminal(results));
    text
}

/// Writes `report.md` and the charts into `directory`.
pub fn write(results: &RunResults, directory: &Path) -> Result<Vec<String>> {
    let mut general = crate::render::charts::write_all(results, directory)?;
    general.extend(crate::render::timeline::write_all(results, directory)?);
    let processes = if crate::render::processes_report::applies(results) {
        crate::render::processes_report::write_charts(results, directory)?
    } else {
        Vec::new()
    };
    let charts = ReportCharts {
        general,
        db_latency: crate::render::db_latency_report::write_charts(results, directory)?,
        processes,
    };
    crate::results::write_file(directory, "report.md", markdown(results, &charts))?;
    Ok(charts.all())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::run::test_cell_in_rounds as cell;
    use crate::results::server::{ServerKind, ServerRecord};

    fn server(name: &str) -> ServerResult {
        ServerResult {
            record: ServerRecord::new(name.to_string(), name.to_string(), ServerKind::Variant),
            cells: Vec::new(),
            fault_cells: Vec::new(),
            efficiency_cells: Vec::new(),
            group: Some(0),
        }
    }

    #[test]
    fn a_server_leads_only_when_ahead_of_every_other_round_by_round() {
        let (a, b, c) = (server("a"), server("b"), server("c"));
        let fast = cell(&[150.0, 160.0, 155.0, 150.0, 158.0]);
        let slow = cell(&[100.0, 105.0, 98.0, 102.0, 101.0]);
        let slower = cell(&[80.0, 85.0, 78.0, 82.0, 81.0]);
        let rows = [(&a, &fast), (&b, &slow), (&c, &slower)];
        let sentence = ranking(&rows, &verdicts::throughput, Better::Higher, "req/s");
        assert!(
            sentence.starts_with("a leads with 155 req/s, 1.52x [1.47, 1.58] (94 %) b (the next)"),
            "{sentence}"
        );
        assert!(sentence.contains("(the last)"), "{sentence}");
        // c beats a in one round of five: a is ahead of b only, and says so.
        let close = cell(&[140.0, 165.0, 150.0, 145.0, 150.0]);
        let rows = [(&a, &fast), (&b, &slow), (&c, &close)];
        let sentence = ranking(&rows, &verdicts::throughput, Better::Higher, "req/s");
        assert!(
            sentence.starts_with("No server is ahead of every other: a (155 req/s) and c are tied"),
            "{sentence}"
        );
        assert!(sentence.ends_with("; a is ahead of b"), "{sentence}");
    }

    #[test]
    fn cpu_is_not_ranked_where_a_tick_is_too_coarse_for_it() {
        // 37 answers a round (a slow peer set the rate): one 10 ms tick is 270.3 ms per 1,000.
        let mut slow_rate = cell(&[37.0, 37.0, 37.0]);
        slow_rate.summary.cpu_ms_per_1k = Some(487.8);
        let coarse = coarse_cpu_ticks(&[&slow_rate]).unwrap();
        assert!((coarse.ms_per_1k - 270.27).abs() < 0.01, "{coarse:?}");
        assert_eq!(coarse.lowest_ms_per_1k, 487.8);
        // 11,510 answers a round: a tick is 0.87 ms per 1,000, under a twentieth of 22.9.
        let mut fast_rate = cell(&[11_510.0, 11_510.0, 11_510.0]);
        fast_rate.summary.cpu_ms_per_1k = Some(22.9);
        assert!(coarse_cpu_ticks(&[&fast_rate]).is_none());
        // The coarsest row decides for the table.
        assert!(coarse_cpu_ticks(&[&fast_rate, &slow_rate]).is_some());
    }
}
