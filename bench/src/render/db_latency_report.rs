//! The report's section on database latency (`--db-latency`): what each level's delay line
//! measured of itself, each server's throughput against the added round trip, the fraction of
//! its direct-connection throughput it kept, and the smallest pool that kept 90 % of it.
//!
//! A server's configurations that differ only in latency are one *line*: its label less the
//! latency (`Dimensions::label_at_any_latency`). Lines that differ only in pool size are one
//! *family*, where the smallest sufficient pool is looked for.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;

use crate::format::{Table, group_thousands};
use crate::harness::db_latency::TOLERANCE_PERCENT;
use crate::render::charts::{
    color, draw_legend, draw_line, drawing_error, latency_panels, short_number, titled_panels,
};
use crate::results::run::{Cell, Level, RunResults, ServerResult};
use crate::results::setup::{Configuration, Dimensions, Placement, RoundTrip};
use crate::results::vocabulary::Scenario;

/// The share of its direct-connection throughput a pool must keep to count as enough.
pub const ENOUGH_PERCENT: f64 = 90.0;

/// One line of the chart: a server in one configuration less its latency, and its cell per level.
pub struct LatencyLine<'a> {
    pub label: String,
    pub name: &'a str,
    pub configuration: Configuration,
    /// `(level, cell)` for every level it was measured at, lowest first.
    pub points: Vec<(RoundTrip, &'a Cell)>,
}

impl LatencyLine<'_> {
    fn at(&self, level: RoundTrip) -> Option<&Cell> {
        self.points
            .iter()
            .find(|(at, _)| *at == level)
            .map(|(_, cell)| *cell)
    }

    /// The reference: its throughput at the run's lowest level (0 when the run has it); `None`
    /// when it was not measured there (it failed verification at that level, say).
    fn reference(&self, dimensions: &Dimensions) -> Option<(RoundTrip, f64)> {
        let lowest = *dimensions.db_latencies.first()?;
        self.at(lowest)
            .map(|cell| (lowest, cell.summary.ok_per_second))
    }
}

/// The lines of one scenario at one connection level, in the order of the run's servers.
pub fn lines<'a>(
    results: &'a RunResults,
    dimensions: &Dimensions,
    level: &Level,
    scenario: Scenario,
) -> Vec<LatencyLine<'a>> {
    let mut lines: Vec<LatencyLine<'a>> = Vec::new();
    for server in &results.servers {
        let Some(configuration) = server.record.configuration else {
            continue;
        };
        let Some(cell) = cell_of(server, level, scenario) else {
            continue;
        };
        let label = dimensions.label_at_any_latency(&server.record.name, Some(&configuration));
        let point = (configuration.db_latency, cell);
        match lines.iter_mut().find(|line| line.label == label) {
            Some(line) => line.points.push(point),
            None => lines.push(LatencyLine {
                label,
                name: &server.record.name,
                configuration,
                points: vec![point],
            }),
        }
    }
    for line in &mut lines {
        line.points.sort_by_key(|(level, _)| *level);
    }
    lines
}

fn cell_of<'a>(server: &'a ServerResult, level: &Level, scenario: Scenario) -> Option<&'a Cell> {
    server
        .cells
        .iter()
        .find(|cell| cell.scenario == scenario && level.matches(cell))
}

/// The whole section, in Markdown; empty for a run without latency levels.
pub fn markdown(results: &RunResults, charts: &[String]) -> String {
    let Some(dimensions) = results.latency_dimensions() else {
        return String::new();
    };
    let mut text = String::from("## The database across a network\n\n");
    text.push_str(&checks_markdown(results, dimensions));
    text.push_str(&off_setting_markdown(results));
    text.push_str(&saturated_markdown(results));
    text.push_str(&targets_markdown(results));
    text.push_str(&scenarios_markdown(results, dimensions));
    for chart in charts {
        let _ = writeln!(text, "![{chart}]({chart})\n");
    }
    text.push_str(
        "The delay line is user-space code on the engine's CPUs: on a small machine the CPU it \
         costs (`line CPU ms/1k` above) is taken from the load engine and, through PostgreSQL's \
         unpinned processes, from the database; a real network costs the server's machine \
         nothing for the wait.\n\n",
    );
    text
}

/// The levels of the delay line and how its checks measured them, with their table.
fn checks_markdown(results: &RunResults, dimensions: &Dimensions) -> String {
    let levels: Vec<String> = dimensions
        .db_latencies
        .iter()
        .map(|level| {
            if level.is_zero() {
                "0 (a direct connection)".to_string()
            } else {
                format!("+{level}")
            }
        })
        .collect();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "Each server reached PostgreSQL through a delay line adding {} per round trip (half each \
         way), a separate process pinned with the load engine. Before \
         each server started, {} timed `SELECT 1` round trips through the line and around it \
         measured what it added.\n",
        levels.join(", "),
        results
            .servers
            .iter()
            .find_map(|server| server.record.latency_check.map(|check| check.probes))
            .unwrap_or(0),
    );
    text.push_str(&checks_table(results).markdown());
    text
}

/// Whether every level's measured added time was within tolerance of its setting, else which
/// were off.
fn off_setting_markdown(results: &RunResults) -> String {
    let off: Vec<String> = results
        .servers
        .iter()
        .filter_map(|server| {
            let check = server.record.latency_check?;
            (!check.within_tolerance()).then(|| {
                format!(
                    "{} (set +{:.2} ms, measured +{:.2} ms, {:+.0} %)",
                    server.record.shown_name(),
                    check.set_ms,
                    check.added_ms(),
                    check.off_by_percent()
                )
            })
        })
        .collect();
    if off.is_empty() {
        format!(
            "\nEvery level's measured added time was within {TOLERANCE_PERCENT:.0} % of its setting.\n\n"
        )
    } else {
        format!(
            "\n**Off by more than {TOLERANCE_PERCENT:.0} %:** {}. Either the line or a busy machine \
             (both sides of the check are slow then) missed the setting: read those rows as at \
             the measured latency.\n\n",
            off.join("; ")
        )
    }
}

/// The servers whose engine CPUs the load engine and the delay line kept saturated; empty when
/// none.
fn saturated_markdown(results: &RunResults) -> String {
    let saturated: Vec<String> = results
        .servers
        .iter()
        .filter_map(|server| {
            let (busy, scenario) = busiest_engine_cpus(server, &results.settings.placement)?;
            (busy >= SATURATED_PERCENT)
                .then(|| format!("{} on {scenario} ({busy:.0} %)", server.record.shown_name()))
        })
        .collect();
    if saturated.is_empty() {
        return String::new();
    }
    format!(
        "**The engine's CPUs were {SATURATED_PERCENT:.0} % busy or more** with the load \
         engine and the delay line together: {}. There the line, not the server, may be what \
         limits the throughput: read those rows as a floor.\n\n",
        saturated.join("; ")
    )
}

/// The targets measured at zero added latency only; empty when none.
fn targets_markdown(results: &RunResults) -> String {
    let targets: Vec<&str> = results
        .servers
        .iter()
        .filter(|server| server.record.configuration.is_none() && !server.cells.is_empty())
        .map(|server| server.record.shown_name())
        .collect();
    if targets.is_empty() {
        return String::new();
    }
    format!(
        "{} ran as started, on its own database connection: the run cannot point it at the \
         delay line, so it was measured at zero added latency only.\n\n",
        targets.join(", ")
    )
}

/// Per load level and scenario: the throughput each line kept across the levels, and its
/// reading.
fn scenarios_markdown(results: &RunResults, dimensions: &Dimensions) -> String {
    let mut text = String::new();
    for level in results.levels() {
        for scenario in results.scenarios() {
            let lines = lines(results, dimensions, &level, scenario);
            if lines.is_empty() {
                continue;
            }
            let _ = writeln!(
                text,
                "### {scenario} against database latency ({})\n",
                level.label()
            );
            text.push_str(&kept_table(&lines, dimensions).markdown());
            let _ = writeln!(text, "\n{}\n", reading(&lines, dimensions));
        }
    }
    text
}

/// What each level's line measured of itself, and what it cost.
pub fn checks_table(results: &RunResults) -> Table {
    let mut table = Table::new(&[
        "server",
        "set ms",
        "direct µs",
        "through µs",
        "added ms",
        "off %",
        "line CPU ms/1k",
        "engine CPUs busy %",
    ]);
    for server in &results.servers {
        let Some(check) = server.record.latency_check else {
            continue;
        };
        let busiest = busiest_engine_cpus(server, &results.settings.placement)
            .map_or_else(|| "–".to_string(), |(busy, _)| format!("{busy:.0}"));
        let mut costs: Vec<f64> = server
            .cells
            .iter()
            .filter_map(|cell| cell.median()?.delay_line_cpu_ms_per_thousand())
            .collect();
        costs.sort_by(f64::total_cmp);
        let cost = costs
            .get(costs.len() / 2)
            .map_or_else(|| "–".to_string(), |cost| format!("{cost:.1}"));
        table.rows.push(vec![
            server.record.shown_name().to_string(),
            format!("{:.2}", check.set_ms),
            format!("{:.0}", check.around_us),
            format!("{:.0}", check.through_us),
            format!("{:.2}", check.added_ms()),
            format!("{:+.1}", check.off_by_percent()),
            cost,
            busiest,
        ]);
    }
    table
}

/// The server's cell in which the engine's CPUs (the engine and the delay line) were busiest:
/// `(percent, scenario)`.
fn busiest_engine_cpus(server: &ServerResult, placement: &Placement) -> Option<(f64, Scenario)> {
    server
        .cells
        .iter()
        .filter_map(|cell| {
            let busy = cell.median()?.engine_cpus_busy_percent(placement)?;
            Some((busy, cell.scenario))
        })
        .max_by(|(one, _), (other, _)| one.total_cmp(other))
}

/// Above this share of their time the engine's CPUs, which the delay line shares, may be what
/// limits a cell rather than the server.
pub const SATURATED_PERCENT: f64 = 90.0;

/// Per line: throughput and p99 at every level, and the share of the reference kept.
pub fn kept_table(lines: &[LatencyLine<'_>], dimensions: &Dimensions) -> Table {
    let mut headers = vec!["server".to_string()];
    for (index, level) in dimensions.db_latencies.iter().enumerate() {
        headers.push(format!("req/s +{level}"));
        if index > 0 {
            headers.push(format!("kept +{level}"));
        }
        headers.push(format!("p99 ms +{level}"));
    }
    let mut table = Table::new(&headers);
    let dash = || "–".to_string();
    for line in lines {
        let reference = line.reference(dimensions).map(|(_, throughput)| throughput);
        let mut row = vec![line.label.clone()];
        for (index, &level) in dimensions.db_latencies.iter().enumerate() {
            let cell = line.at(level);
            row.push(cell.map_or_else(dash, |cell| {
                group_thousands(cell.summary.ok_per_second.round() as i64)
            }));
            if index > 0 {
                row.push(match (cell, reference) {
                    (Some(cell), Some(reference)) if reference > 0.0 => {
                        format!("{:.0} %", cell.summary.ok_per_second / reference * 100.0)
                    }
                    _ => dash(),
                });
            }
            row.push(cell.and_then(Cell::median).map_or_else(dash, |run| {
                format!("{:.2}", run.latency_us.p99 as f64 / 1e3)
            }));
        }
        table.rows.push(row);
    }
    table
}

/// In words, one item per server (its lines that differ only in pool size together): the share
/// of its throughput at the reference level it kept at each level above it, and, where the run
/// covered several pool sizes, the smallest pool that kept [`ENOUGH_PERCENT`] of its best there
/// or, where none did, the pool that came closest.
pub fn reading(lines: &[LatencyLine<'_>], dimensions: &Dimensions) -> String {
    let [reference_level, _, ..] = dimensions.db_latencies[..] else {
        return "Only one latency level was measured.".to_string();
    };
    let mut items = Vec::new();
    let mut families_done = BTreeSet::new();
    for line in lines {
        let family = family_key(line);
        if !families_done.insert(family.clone()) {
            continue;
        }
        let members: Vec<&LatencyLine<'_>> = lines
            .iter()
            .filter(|other| family_key(other) == family)
            .collect();
        let item = if members.len() > 1 {
            pool_reading(&members, reference_level, dimensions)
        } else {
            kept_reading(line, reference_level)
        };
        items.extend(item);
    }
    if items.is_empty() {
        return format!("No server was measured at +{reference_level} and above it.");
    }
    items
        .iter()
        .map(|item| format!("- {item}."))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One line's share of its reference throughput at each level above it.
fn kept_reading(line: &LatencyLine<'_>, reference_level: RoundTrip) -> Option<String> {
    let reference = line.at(reference_level)?.summary.ok_per_second;
    let kept: Vec<String> = line
        .points
        .iter()
        .filter(|(level, _)| *level != reference_level)
        .map(|(level, cell)| {
            format!(
                "{:.0} % at +{level}",
                share_percent(cell.summary.ok_per_second, reference)
            )
        })
        .collect();
    (!kept.is_empty()).then(|| {
        format!(
            "{} kept {} of its throughput at +{reference_level} ({} req/s)",
            line.label,
            kept.join(", "),
            group_thousands(reference.round() as i64)
        )
    })
}

/// A family's best throughput at the reference level, and per level above it the smallest pool
/// that kept [`ENOUGH_PERCENT`] of it, or the one that came closest.
fn pool_reading(
    members: &[&LatencyLine<'_>],
    reference_level: RoundTrip,
    dimensions: &Dimensions,
) -> Option<String> {
    let (best_pool, best_reference) = members
        .iter()
        .filter_map(|member| {
            let cell = member.at(reference_level)?;
            Some((
                member.configuration.db_pool_size.get(),
                cell.summary.ok_per_second,
            ))
        })
        .max_by(|(_, one), (_, other)| one.total_cmp(other))?;
    if best_reference <= 0.0 {
        return None;
    }
    let enough = best_reference * ENOUGH_PERCENT / 100.0;
    let mut at_levels = Vec::new();
    for &level in dimensions.db_latencies.iter().skip(1) {
        let mut pools: Vec<(usize, f64)> = members
            .iter()
            .filter_map(|member| {
                let cell = member.at(level)?;
                Some((
                    member.configuration.db_pool_size.get(),
                    cell.summary.ok_per_second,
                ))
            })
            .collect();
        pools.sort_by_key(|(pool, _)| *pool);
        let sufficient = pools.iter().find(|(_, throughput)| *throughput >= enough);
        let closest = pools
            .iter()
            .max_by(|(_, one), (_, other)| one.total_cmp(other));
        let phrase = match (sufficient, closest) {
            (Some((pool, throughput)), _) => format!(
                "at +{level} a pool of {pool} kept {:.0} %",
                share_percent(*throughput, best_reference)
            ),
            (None, Some((pool, throughput))) => format!(
                "at +{level} none did (closest: a pool of {pool}, {:.0} %)",
                share_percent(*throughput, best_reference)
            ),
            (None, None) => continue,
        };
        at_levels.push(phrase);
    }
    let name = members.first()?.name;
    let tried: Vec<String> = {
        let mut pools: Vec<usize> = members
            .iter()
            .map(|member| member.configuration.db_pool_size.get())
            .collect();
        pools.sort_unstable();
        pools.iter().map(usize::to_string).collect()
    };
    Some(format!(
        "{name} reached {} req/s at +{reference_level} (pool {best_pool}); of the pools tried \
         ({}), the smallest to keep {ENOUGH_PERCENT:.0} % of that: {}",
        group_thousands(best_reference.round() as i64),
        tried.join(", "),
        at_levels.join("; ")
    ))
}

fn share_percent(throughput: f64, reference: f64) -> f64 {
    if reference > 0.0 {
        throughput / reference * 100.0
    } else {
        0.0
    }
}

/// A server with its settings other than pool size and latency.
fn family_key(line: &LatencyLine<'_>) -> String {
    let configuration = &line.configuration;
    format!(
        "{}|{:?}|{:?}|{:?}|{:?}",
        line.name,
        configuration.workers,
        configuration.recycle,
        configuration.processes,
        configuration.pooler
    )
}

/// The section's charts, per load level: throughput against the added latency, and the
/// percentiles at each latency level; returns their file names (none for a run without latency
/// levels).
pub fn write_charts(results: &RunResults, directory: &Path) -> Result<Vec<String>> {
    let Some(dimensions) = results.latency_dimensions() else {
        return Ok(Vec::new());
    };
    let scenarios = results.scenarios();
    let mut written = Vec::new();
    for level in results.levels() {
        written.extend(write_level_charts(
            results, dimensions, &level, &scenarios, directory,
        )?);
    }
    Ok(written)
}

fn write_level_charts(
    results: &RunResults,
    dimensions: &Dimensions,
    level: &Level,
    scenarios: &[Scenario],
    directory: &Path,
) -> Result<Vec<String>> {
    let slug = level.slug();
    let mut written = Vec::new();
    let name = format!("db-latency-throughput-{slug}.svg");
    throughput_against_latency(results, level, scenarios, &directory.join(&name))?;
    written.push(name);
    // One percentile chart per latency level: every server's lines at once would be
    // unreadable.
    for &round_trip in &dimensions.db_latencies {
        let name = format!("db-latency-percentiles-{slug}-{}.svg", round_trip.slug());
        let at_level = move |server: &ServerResult| {
            server
                .record
                .configuration
                .map_or(round_trip.is_zero(), |c| c.db_latency == round_trip)
        };
        latency_panels(
            results,
            level,
            scenarios,
            &at_level,
            &format!(", database +{round_trip}"),
            &directory.join(&name),
        )?;
        written.push(name);
    }
    Ok(written)
}

/// One panel per scenario: each server's throughput (a line per configuration less its
/// latency) against the round trip added to the database.
fn throughput_against_latency(
    results: &RunResults,
    level: &Level,
    scenarios: &[Scenario],
    path: &Path,
) -> Result<()> {
    let Some(dimensions) = results.latency_dimensions() else {
        return Ok(());
    };
    let (root, panels) = titled_panels(
        path,
        &format!(
            "Throughput (2xx/s) against added database round trip (ms), {}",
            level.label()
        ),
        scenarios.len(),
    )?;
    let widest = dimensions
        .db_latencies
        .iter()
        .map(|level| level.milliseconds())
        .fold(0.0_f64, f64::max)
        .max(0.1);
    for (panel_index, (panel, scenario)) in panels.iter().zip(scenarios).enumerate() {
        let lines = lines(results, dimensions, level, *scenario);
        let highest = lines
            .iter()
            .flat_map(|line| {
                line.points
                    .iter()
                    .map(|(_, cell)| cell.summary.ok_per_second)
            })
            .fold(0.0_f64, f64::max);
        let top = if highest > 0.0 { highest * 1.15 } else { 1.0 };
        let mut chart = ChartBuilder::on(panel)
            .caption(scenario.to_string(), ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..widest * 1.05, 0f64..top)
            .map_err(drawing_error)?;
        chart
            .configure_mesh()
            .x_labels(6)
            .y_labels(6)
            .x_label_formatter(&|value: &f64| format!("{value}"))
            .y_label_formatter(&|value: &f64| short_number(*value))
            .draw()
            .map_err(drawing_error)?;
        for (index, line) in lines.iter().enumerate() {
            let points = line
                .points
                .iter()
                .map(|(round_trip, cell)| (round_trip.milliseconds(), cell.summary.ok_per_second))
                .collect();
            let label = (panel_index == 0).then(|| line.label.clone());
            draw_line(&mut chart, points, color(index), label)?;
        }
        if panel_index == 0 && !lines.is_empty() {
            draw_legend(&mut chart, SeriesLabelPosition::UpperRight, 11)?;
        }
    }
    root.present().map_err(drawing_error)?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::num::NonZeroUsize;
    use std::str::FromStr as _;

    use super::*;
    use crate::harness::settings::{DbRecycle, DimensionLists};
    use crate::results::run::test_measurement;
    use crate::results::setup::Workers;
    use crate::results::vocabulary::Pooler;

    fn cell(ok_per_second: f64) -> Cell {
        Cell::new(
            Scenario::Types,
            64,
            None,
            vec![test_measurement(ok_per_second, 2_000)],
        )
    }

    #[test]
    fn the_reading_names_the_share_kept_and_the_smallest_pool_that_keeps_ninety_percent() {
        let two = RoundTrip::from_str("2ms").unwrap();
        let pools = [
            NonZeroUsize::new(4).unwrap(),
            NonZeroUsize::new(16).unwrap(),
        ];
        let dimensions = Dimensions::new(
            &DimensionLists {
                db_pool_sizes: pools.to_vec(),
                db_latencies: vec![RoundTrip::ZERO, two],
                ..DimensionLists::default()
            },
            pools[0],
        );
        let configuration = |pool| Configuration {
            workers: Workers::OwnDefault,
            db_pool_size: pool,
            recycle: Some(DbRecycle::Fast),
            db_latency: RoundTrip::ZERO,
            processes: None,
            pooler: Pooler::None,
        };
        let cells = [cell(10_000.0), cell(5_000.0), cell(9_800.0), cell(9_100.0)];
        // actix-deadpool at one pool size, with its cells at +0 and at +2ms.
        let line = |pool: NonZeroUsize, at_zero, at_two| LatencyLine {
            label: format!("actix-deadpool (pool {pool})"),
            name: "actix-deadpool",
            configuration: configuration(pool),
            points: vec![(RoundTrip::ZERO, at_zero), (two, at_two)],
        };
        let lines = vec![
            line(pools[0], &cells[0], &cells[1]),
            line(pools[1], &cells[2], &cells[3]),
        ];
        assert_eq!(
            reading(&lines, &dimensions),
            "- actix-deadpool reached 10,000 req/s at +0 (pool 4); of the pools tried (4, 16), \
             the smallest to keep 90 % of that: at +2ms a pool of 16 kept 91 %."
        );
        // No pool enough: the closest is named; one pool alone: its share at each level.
        let short = cell(8_000.0);
        let mut short_lines = vec![
            line(pools[0], &cells[0], &cells[1]),
            line(pools[1], &cells[2], &short),
        ];
        assert_eq!(
            reading(&short_lines, &dimensions),
            "- actix-deadpool reached 10,000 req/s at +0 (pool 4); of the pools tried (4, 16), \
             the smallest to keep 90 % of that: at +2ms none did (closest: a pool of 16, 80 %)."
        );
        short_lines.truncate(1);
        assert_eq!(
            reading(&short_lines, &dimensions),
            "- actix-deadpool (pool 4) kept 50 % at +2ms of its throughput at +0 (10,000 req/s)."
        );
        let table = kept_table(&lines, &dimensions);
        assert_eq!(
            table.rows[0],
            [
                "actix-deadpool (pool 4)",
                "10,000",
                "2.00",
                "5,000",
                "50 %",
                "2.00"
            ]
        );
    }
}
