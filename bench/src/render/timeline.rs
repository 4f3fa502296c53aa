//! Timeline charts: a cell over time, one line per server, from the series the engine records.
//! One chart per scenario and level: 2xx answers per second above, p99 latency below (log
//! scale: a fault moves it by orders of magnitude). Fault cells get a chart of their own per
//! fault (the round with the median time back), with the fault's window shaded and, per server,
//! the level its recovery was judged against (dashed) above the band that counts as
//! back (tinted), from the database's return on.

use std::path::Path;

use anyhow::Result;
use plotters::coord::CoordTranslate;
use plotters::prelude::*;

use crate::recovery::RECOVERED_SHARE;
use crate::render::charts::{SIZE, color, draw_legend, draw_line, drawing_error, svg_canvas};
use crate::results::run::{Cell, Level, RunResults, ServerResult};
use crate::results::series::Series;
use crate::results::vocabulary::{FaultKind, Scenario};

/// One server's line in a timeline.
struct Line {
    server_index: usize,
    name: String,
    series: Series,
    /// In a fault chart: the level its recovery was judged against, drawn from the database's
    /// return (seconds into the cell, 2xx per second).
    level: Option<(f64, f64)>,
}

/// Writes the timeline of every scenario at every level, and of every fault cell; returns the
/// file names.
pub fn write_all(results: &RunResults, directory: &Path) -> Result<Vec<String>> {
    let mut written = Vec::new();
    for level in results.levels() {
        for scenario in results.scenarios() {
            let lines = lines_of(results, |server| {
                server
                    .cells
                    .iter()
                    .find(|cell| level.matches(cell) && cell.scenario == scenario)
            });
            if lines.is_empty() {
                continue;
            }
            let name = format!("timeline-{scenario}-{}.svg", level.slug());
            let title = format!("{scenario} over time, {}", level.label());
            draw(&directory.join(&name), &title, &lines, None)?;
            written.push(name);
        }
    }
    written.extend(write_faults(results, directory)?);
    Ok(written)
}

/// The timelines of the fault cells, one per fault, scenario and level.
fn write_faults(results: &RunResults, directory: &Path) -> Result<Vec<String>> {
    let mut written = Vec::new();
    for (kind, level, scenario) in fault_groups(results) {
        let matching = |cell: &&Cell| {
            level.matches(cell)
                && cell.scenario == scenario
                && cell.fault.as_ref().is_some_and(|fault| fault.kind == kind)
        };
        let mut lines = lines_of(results, |server| server.fault_cells.iter().find(matching));
        if lines.is_empty() {
            continue;
        }
        for line in &mut lines {
            line.level = results.servers[line.server_index]
                .fault_cells
                .iter()
                .find(matching)
                .and_then(|cell| cell.fault.as_ref())
                .map(|fault| (fault.returned_seconds, fault.figures.level()));
        }
        // The window shaded spans every server's: they differ by the time a restart took.
        let windows: Vec<(f64, f64)> = results
            .servers
            .iter()
            .filter_map(|server| server.fault_cells.iter().find(matching))
            .filter_map(|cell| cell.fault.as_ref())
            .map(|fault| (fault.started_seconds, fault.returned_seconds))
            .collect();
        let window = windows
            .iter()
            .copied()
            .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)));
        let name = format!("timeline-{kind}-{scenario}-{}.svg", level.slug());
        let title = format!(
            "{scenario} through {kind} (shaded: the database away; dashed: the level judged against, tinted: back), {}",
            level.label()
        );
        draw(&directory.join(&name), &title, &lines, window)?;
        written.push(name);
    }
    Ok(written)
}

/// Every (fault, level, scenario) that has fault cells, in order.
pub fn fault_groups(results: &RunResults) -> Vec<(FaultKind, Level, Scenario)> {
    let mut groups: Vec<(FaultKind, Level, Scenario)> = Vec::new();
    for server in &results.servers {
        for cell in &server.fault_cells {
            let Some(fault) = &cell.fault else { continue };
            let group = (
                fault.kind,
                Level {
                    connections: cell.connections,
                    rate: cell.rate,
                },
                cell.scenario,
            );
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
    }
    groups.sort_by_key(|group| (group.0, group.1.connections, group.2));
    groups
}

fn lines_of<'a>(
    results: &'a RunResults,
    cell_of: impl Fn(&'a ServerResult) -> Option<&'a Cell>,
) -> Vec<Line> {
    results
        .servers
        .iter()
        .enumerate()
        .filter_map(|(server_index, server)| {
            let series = cell_of(server)?.median()?.series.clone()?;
            (!series.intervals.is_empty()).then(|| Line {
                server_index,
                name: server.record.shown_name().to_string(),
                series,
                level: None,
            })
        })
        .collect()
}

fn draw(path: &Path, title: &str, lines: &[Line], window: Option<(f64, f64)>) -> Result<()> {
    let root = svg_canvas(path, (SIZE.0, 640))?
        .titled(title, ("sans-serif", 20))
        .map_err(drawing_error)?;
    let panels = root.split_evenly((2, 1));
    let end = lines
        .iter()
        .map(|line| line.series.start_seconds(line.series.intervals.len()))
        .fold(0.0f64, f64::max)
        .max(0.1);
    let throughput: Vec<Vec<(f64, f64)>> = lines
        .iter()
        .map(|line| {
            let per_second = 1_000.0 / line.series.interval_ms.max(1) as f64;
            midpoints(&line.series)
                .zip(&line.series.intervals)
                .map(|(x, figures)| (x, figures.ok as f64 * per_second))
                .collect()
        })
        .collect();
    let latency: Vec<Vec<(f64, f64)>> = lines
        .iter()
        .map(|line| {
            midpoints(&line.series)
                .zip(&line.series.intervals)
                .filter(|(_, figures)| figures.p99_us > 0)
                .map(|(x, figures)| (x, figures.p99_us as f64 / 1_000.0))
                .collect()
        })
        .collect();

    let top = throughput
        .iter()
        .flatten()
        .map(|point| point.1)
        .chain(
            lines
                .iter()
                .filter_map(|line| line.level.map(|level| level.1)),
        )
        .fold(0.0f64, f64::max)
        .max(1.0)
        * 1.1;
    let mut chart = ChartBuilder::on(&panels[0])
        .caption("2xx answers per second", ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..end, 0f64..top)
        .map_err(drawing_error)?;
    chart
        .configure_mesh()
        .x_desc("seconds into the cell")
        .draw()
        .map_err(drawing_error)?;
    shade(&mut chart, window, (0.0, top))?;
    for line in lines {
        if let Some((from, level)) = line.level {
            draw_level(&mut chart, (from, end), level, color(line.server_index))?;
        }
    }
    for (line, points) in lines.iter().zip(throughput) {
        draw_plain_line(
            &mut chart,
            points,
            color(line.server_index),
            Some(line.name.clone()),
        )?;
    }
    draw_legend(&mut chart, SeriesLabelPosition::LowerRight, 11)?;

    let (low, high) = log_bounds(latency.iter().flatten().map(|point| point.1));
    let mut chart = ChartBuilder::on(&panels[1])
        .caption(
            "p99 latency of each interval, ms (log scale)",
            ("sans-serif", 15),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..end, (low..high).log_scale())
        .map_err(drawing_error)?;
    chart
        .configure_mesh()
        .x_desc("seconds into the cell")
        .y_label_formatter(&|y: &f64| format!("{y}"))
        .draw()
        .map_err(drawing_error)?;
    shade(&mut chart, window, (low, high))?;
    for (line, points) in lines.iter().zip(latency) {
        draw_plain_line(&mut chart, points, color(line.server_index), None)?;
    }
    root.present().map_err(drawing_error)?;
    Ok(())
}

/// The bounds of a log axis for `values`: a factor of two beyond either end (the top at least
/// eight times the bottom), or 0.01 to 10 without any.
fn log_bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (low, high) = values.fold((f64::MAX, 0.0f64), |(low, high), v| {
        (low.min(v), high.max(v))
    });
    if high <= 0.0 {
        (0.01, 10.0)
    } else {
        ((low / 2.0).max(0.001), (high * 2.0).max(low * 4.0))
    }
}

/// Shades the fault's window (seconds into the cell) from `low` to `high`.
fn shade<CT>(
    chart: &mut ChartContext<'_, SVGBackend<'_>, CT>,
    window: Option<(f64, f64)>,
    (low, high): (f64, f64),
) -> Result<()>
where
    CT: CoordTranslate<From = (f64, f64)>,
{
    if let Some((from, to)) = window {
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(from, low), (to, high)],
                BLACK.mix(0.12).filled(),
            )))
            .map_err(drawing_error)?;
    }
    Ok(())
}

/// The level a server's recovery was judged against, from the database's return to the cell's
/// end, dashed, above the band that counts as back (from [`RECOVERED_SHARE`] of it up to it),
/// tinted in its colour.
fn draw_level<CT>(
    chart: &mut ChartContext<'_, SVGBackend<'_>, CT>,
    (from, to): (f64, f64),
    level: f64,
    stroke: RGBColor,
) -> Result<()>
where
    CT: CoordTranslate<From = (f64, f64)>,
{
    if level <= 0.0 || from >= to {
        return Ok(());
    }
    chart
        .draw_series(std::iter::once(Rectangle::new(
            [(from.max(0.0), level * RECOVERED_SHARE), (to, level)],
            stroke.mix(0.15).filled(),
        )))
        .map_err(drawing_error)?;
    chart
        .draw_series(DashedLineSeries::new(
            [(from.max(0.0), level), (to, level)],
            6,
            4,
            stroke.stroke_width(1),
        ))
        .map_err(drawing_error)?;
    Ok(())
}

/// The middle of each interval, in seconds from the window's start.
fn midpoints(series: &Series) -> impl Iterator<Item = f64> + '_ {
    let half = series.interval_ms as f64 / 2_000.0;
    (0..series.intervals.len()).map(move |index| series.start_seconds(index) + half)
}

/// A line without markers: a timeline has a point every 100 ms, and dots would hide it. Long
/// cells get the markers of [`draw_line`] only when they are few.
fn draw_plain_line<CT>(
    chart: &mut ChartContext<'_, SVGBackend<'_>, CT>,
    points: Vec<(f64, f64)>,
    stroke: RGBColor,
    label: Option<String>,
) -> Result<()>
where
    CT: CoordTranslate<From = (f64, f64)>,
{
    if points.len() <= 20 {
        return draw_line(chart, points, stroke, label);
    }
    let line = chart
        .draw_series(LineSeries::new(points, stroke.stroke_width(2)))
        .map_err(drawing_error)?;
    if let Some(label) = label {
        line.label(label).legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 14, y)], stroke.stroke_width(2))
        });
    }
    Ok(())
}
