//! The report's section on processes and the pooler (`--processes`, `--pooler`): per scenario a
//! table of every configuration (throughput and p99 beside the processes, threads and the
//! database connections each held, counted at PostgreSQL and at the pooler), a reading against
//! each server's one process without a pooler, and a chart of throughput, p99 and connections
//! against processes, one line per server and pooler. Configurations that do not apply (a
//! server that prepares named statements behind transaction pooling) are rows that say why.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;

use crate::format::{Table, group_thousands};
use crate::render::charts::{color, draw_legend, draw_line, drawing_error, titled_panels};
use crate::results::run::{Cell, Level, RunResults, ServerResult};
use crate::results::setup::Configuration;
use crate::results::vocabulary::{Pooler, Scenario};

/// Whether the run covered processes or a pooler, so that the section has something to show.
pub fn applies(results: &RunResults) -> bool {
    results
        .settings
        .dimensions
        .as_ref()
        .is_some_and(|dimensions| {
            !dimensions.processes.is_empty()
                || dimensions.poolers.iter().any(|p| *p != Pooler::None)
        })
}

/// One configuration of one server in a scenario: its cell, when it was measured.
struct Row<'a> {
    server: &'a ServerResult,
    processes: usize,
    pooler: Pooler,
    cell: Option<&'a Cell>,
}

impl Row<'_> {
    /// The server and every setting but the processes: what one line of the chart joins.
    fn line_key(&self) -> (String, Option<Configuration>) {
        let configuration = self.server.record.configuration.map(|mut configuration| {
            configuration.processes = None;
            configuration
        });
        (self.server.record.name.clone(), configuration)
    }

    fn line_label(&self) -> String {
        format!("{}, {}", self.server.record.name, self.pooler)
    }

    fn requests_per_second(&self) -> Option<f64> {
        self.cell.map(|cell| cell.summary.ok_per_second)
    }

    fn p99_ms(&self) -> Option<f64> {
        Some(self.cell?.median()?.latency_us.p99 as f64 / 1_000.0)
    }

    fn db_connections(&self) -> Option<u64> {
        self.cell?.median()?.server.as_ref()?.db_connections_peak
    }
}

fn rows<'a>(results: &'a RunResults, level: &Level, scenario: Scenario) -> Vec<Row<'a>> {
    results
        .servers
        .iter()
        .filter(|server| server.record.configuration.is_some())
        .map(|server| {
            let configuration = server.record.configuration;
            Row {
                server,
                processes: configuration
                    .and_then(|c| c.processes)
                    .map(|p| p.get())
                    .or_else(|| server.record.effective.as_ref().map(|e| e.processes))
                    .unwrap_or(1),
                pooler: configuration.map(|c| c.pooler).unwrap_or_default(),
                cell: server
                    .cells
                    .iter()
                    .find(|cell| cell.scenario == scenario && level.matches(cell)),
            }
        })
        .collect()
}

fn count(value: Option<u64>) -> String {
    value.map_or_else(|| "–".to_string(), |v| group_thousands(v as i64))
}

/// The table of one scenario at one level.
pub fn table(results: &RunResults, level: &Level, scenario: Scenario) -> Table {
    let mut table = Table::new(&[
        "server",
        "processes",
        "pooler",
        "req/s",
        "p99 ms",
        "threads",
        "DB conns (PostgreSQL)",
        "pooler clients",
        "pooler server conns",
        "status",
    ]);
    for row in rows(results, level, scenario) {
        let run = row.cell.and_then(Cell::median);
        let figures = run.and_then(|run| run.server.as_ref());
        let started = row.server.record.pooler.as_ref();
        let pooler = match (row.pooler, started) {
            (Pooler::None, _) => "none".to_string(),
            (pooler, Some(started)) => {
                format!("{pooler} (pool {})", started.default_pool_size)
            }
            (pooler, None) => pooler.to_string(),
        };
        let setting = started.and_then(|started| started.statements_setting.as_deref());
        let status = match (&row.server.record.skipped, row.cell, setting) {
            (Some(reason), _, _) => reason.clone(),
            (None, Some(_), Some(setting)) => format!("measured, with {setting}"),
            (None, Some(_), None) => "measured".to_string(),
            (None, None, _) => "not measured".to_string(),
        };
        table.rows.push(vec![
            row.server.record.name.clone(),
            row.processes.to_string(),
            pooler,
            row.requests_per_second()
                .map_or_else(|| "–".to_string(), |v| group_thousands(v.round() as i64)),
            row.p99_ms()
                .map_or_else(|| "–".to_string(), |v| format!("{v:.2}")),
            count(figures.map(|f| f.threads_peak)),
            count(row.db_connections()),
            count(figures.and_then(|f| f.pooler_clients_peak)),
            count(figures.and_then(|f| f.pooler_server_connections_peak)),
            status,
        ]);
    }
    table
}

/// Each measured configuration against its server's fewest processes without a pooler: the
/// throughput ratio, the p99 and the connections PostgreSQL saw.
pub fn reading(results: &RunResults, level: &Level, scenario: Scenario) -> String {
    let rows = rows(results, level, scenario);
    let mut sentences = Vec::new();
    let mut names: Vec<&str> = rows.iter().map(|r| r.server.record.name.as_str()).collect();
    names.dedup();
    for name in names {
        let own: Vec<&Row> = rows
            .iter()
            .filter(|row| row.server.record.name == name && row.cell.is_some())
            .collect();
        let Some(baseline) = own
            .iter()
            .filter(|row| row.pooler == Pooler::None)
            .min_by_key(|row| row.processes)
        else {
            continue;
        };
        let (Some(base_rate), Some(base_p99)) = (baseline.requests_per_second(), baseline.p99_ms())
        else {
            continue;
        };
        let mut parts = Vec::new();
        for row in own.iter().filter(|row| !std::ptr::eq(**row, *baseline)) {
            let (Some(rate), Some(p99)) = (row.requests_per_second(), row.p99_ms()) else {
                continue;
            };
            let ratio = if base_rate > 0.0 {
                format!("{:.2}×", rate / base_rate)
            } else {
                "–".to_string()
            };
            parts.push(format!(
                "{} process{}, {}: {ratio} the req/s, p99 {p99:.2} ms, {} DB connections",
                row.processes,
                if row.processes == 1 { "" } else { "es" },
                row.pooler,
                count(row.db_connections())
            ));
        }
        if !parts.is_empty() {
            sentences.push(format!(
                "{name} (1 process, no pooler: {} req/s, p99 {base_p99:.2} ms, {} DB connections) — {}",
                group_thousands(base_rate.round() as i64),
                count(baseline.db_connections()),
                parts.join("; ")
            ));
        }
    }
    if sentences.is_empty() {
        "Nothing to compare: no server was measured in more than one configuration.".to_string()
    } else {
        format!("{}.", sentences.join(". "))
    }
}

/// The section of `report.md`.
pub fn markdown(results: &RunResults, charts: &[String]) -> String {
    let mut text = String::from("## Processes and pooler\n\n");
    text.push_str(
        "Every configuration of processes and pooler, measured side by side. `processes` is \
         `PROCESSES` (a peer's worker processes); a variant of several processes also runs its \
         supervisor, counted in `threads`. `DB conns (PostgreSQL)` is the peak of the servers' \
         connections in pg_stat_activity (behind a pooler: the pooler's own connections); \
         `pooler clients` and `pooler server conns` are the peaks the pooler's console showed \
         (`SHOW CLIENTS`, `SHOW POOLS`). `pool` is PgBouncer's `default_pool_size`.\n\n",
    );
    for level in results.levels() {
        for scenario in results.scenarios() {
            let _ = writeln!(text, "### {scenario} ({})\n", level.label());
            text.push_str(&table(results, &level, scenario).markdown());
            let _ = writeln!(text, "\n{}\n", reading(results, &level, scenario));
        }
        let chart = chart_name(&level);
        if charts.contains(&chart) {
            let _ = writeln!(text, "![{chart}]({chart})\n");
        }
    }
    text
}

/// The section for the terminal.
pub fn terminal(results: &RunResults) -> String {
    let mut text = String::new();
    for level in results.levels() {
        for scenario in results.scenarios() {
            let _ = writeln!(
                text,
                "\n{scenario} at {}: processes and pooler\n",
                level.label()
            );
            text.push_str(&table(results, &level, scenario).terminal());
            let _ = writeln!(text, "{}", reading(results, &level, scenario));
        }
    }
    text
}

/// A figure of a row, drawn against its processes.
type Metric = fn(&Row) -> Option<f64>;

/// One server and pooler's points in a panel, in its colour.
struct Line {
    index: usize,
    label: String,
    points: Vec<(f64, f64)>,
}

fn chart_name(level: &Level) -> String {
    format!("processes-{}.svg", level.slug())
}

/// One chart per level: a row per scenario with throughput, p99 and PostgreSQL connections
/// against processes, a line per server and pooler.
pub fn write_charts(results: &RunResults, directory: &Path) -> Result<Vec<String>> {
    let scenarios = results.scenarios();
    let mut written = Vec::new();
    if scenarios.is_empty() {
        return Ok(written);
    }
    for level in results.levels() {
        let name = chart_name(&level);
        let path = directory.join(&name);
        let (root, panels) = titled_panels(
            &path,
            &format!(
                "Throughput, p99 and PostgreSQL connections against processes, {}",
                level.label()
            ),
            scenarios.len() * 3,
        )?;
        for (scenario_index, &scenario) in scenarios.iter().enumerate() {
            let rows = rows(results, &level, scenario);
            let mut keys: Vec<((String, Option<Configuration>), String)> = Vec::new();
            for row in &rows {
                if !keys.iter().any(|(key, _)| *key == row.line_key()) {
                    keys.push((row.line_key(), row.line_label()));
                }
            }
            let metrics: [(&str, Metric); 3] = [
                ("req/s", |row| row.requests_per_second()),
                ("p99 ms", |row| row.p99_ms()),
                ("DB conns", |row| row.db_connections().map(|v| v as f64)),
            ];
            for (metric_index, (metric, value)) in metrics.iter().enumerate() {
                let Some(panel) = panels.get(scenario_index * 3 + metric_index) else {
                    continue;
                };
                let lines: Vec<Line> = keys
                    .iter()
                    .enumerate()
                    .map(|(index, (key, label))| {
                        let mut points: Vec<(f64, f64)> = rows
                            .iter()
                            .filter(|row| row.line_key() == *key)
                            .filter_map(|row| Some((row.processes as f64, value(row)?)))
                            .collect();
                        points.sort_by(|a, b| a.0.total_cmp(&b.0));
                        Line {
                            index,
                            label: label.clone(),
                            points,
                        }
                    })
                    .filter(|line| !line.points.is_empty())
                    .collect();
                let most_processes = rows.iter().map(|row| row.processes).max().unwrap_or(1);
                let highest = lines
                    .iter()
                    .flat_map(|line| line.points.iter().map(|p| p.1))
                    .fold(0.0f64, f64::max);
                let top = if highest > 0.0 { highest * 1.15 } else { 1.0 };
                let mut chart = ChartBuilder::on(panel)
                    .caption(format!("{scenario}: {metric}"), ("sans-serif", 15))
                    .margin(8)
                    .x_label_area_size(28)
                    .y_label_area_size(55)
                    .build_cartesian_2d(0.5f64..most_processes as f64 + 0.5, 0f64..top)
                    .map_err(drawing_error)?;
                chart
                    .configure_mesh()
                    .x_desc("processes")
                    .x_labels(most_processes.min(8))
                    .x_label_formatter(&|x: &f64| format!("{x:.0}"))
                    .y_labels(5)
                    .draw()
                    .map_err(drawing_error)?;
                let labelled = scenario_index == 0 && metric_index == 0;
                for line in lines {
                    draw_line(
                        &mut chart,
                        line.points,
                        color(line.index),
                        labelled.then_some(line.label),
                    )?;
                }
                if labelled {
                    draw_legend(&mut chart, SeriesLabelPosition::LowerRight, 10)?;
                }
            }
        }
        root.present().map_err(drawing_error)?;
        written.push(name);
    }
    Ok(written)
}
