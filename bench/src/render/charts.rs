//! SVG charts of a run (plotters): throughput, latency percentiles, CPU per 1,000 requests and
//! memory, one set per load level, each comparing the servers scenario by scenario. The canvas,
//! colours, server lines and legend are drawn here for the concurrency study's charts too, so
//! that both look alike.

use std::path::Path;

use anyhow::Result;
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;

use crate::results::run::{Cell, Level, Measurement, Percentiles, RunResults, ServerResult};
use crate::results::vocabulary::Scenario;

pub(crate) const SIZE: (u32, u32) = (1100, 520);
const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

pub(crate) fn color(index: usize) -> RGBColor {
    COLORS[index % COLORS.len()]
}

pub(crate) fn drawing_error(error: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing a chart: {error}")
}

/// An area of an SVG chart: the whole canvas, or a panel of it.
pub(crate) type Canvas<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// A white SVG canvas of `size` pixels at `path`: what every chart starts from.
pub(crate) fn svg_canvas(path: &Path, size: (u32, u32)) -> Result<Canvas<'_>> {
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(drawing_error)?;
    Ok(root)
}

/// A canvas titled `title` with `count` panels under the title, three to a row, each 300 pixels
/// high; returns the titled area (to present when done) and the panels.
pub(crate) fn titled_panels<'a>(
    path: &'a Path,
    title: &str,
    count: usize,
) -> Result<(Canvas<'a>, Vec<Canvas<'a>>)> {
    let columns = 3usize.min(count).max(1);
    let rows = count.div_ceil(columns);
    let root = svg_canvas(path, (SIZE.0, 60 + 300 * rows as u32))?
        .titled(title, ("sans-serif", 22))
        .map_err(drawing_error)?;
    let panels = root.split_evenly((rows, columns));
    Ok((root, panels))
}

/// A server's line: `points` joined in its colour and marked with dots, in the legend as `label`
/// when given (charts of several panels label only the first).
pub(crate) fn draw_line<CT>(
    chart: &mut ChartContext<'_, SVGBackend<'_>, CT>,
    points: Vec<(f64, f64)>,
    stroke: RGBColor,
    label: Option<String>,
) -> Result<()>
where
    CT: CoordTranslate<From = (f64, f64)>,
{
    let line = chart
        .draw_series(LineSeries::new(points.clone(), stroke.stroke_width(2)))
        .map_err(drawing_error)?;
    if let Some(label) = label {
        line.label(label).legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 14, y)], stroke.stroke_width(2))
        });
    }
    chart
        .draw_series(
            points
                .into_iter()
                .map(|point| Circle::new(point, 3, stroke.filled())),
        )
        .map_err(drawing_error)?;
    Ok(())
}

/// The legend of the labelled series, boxed on a translucent white ground.
pub(crate) fn draw_legend<'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
    position: SeriesLabelPosition,
    font_size: u32,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font(("sans-serif", font_size))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(drawing_error)
}

/// One series of a chart: a server and its value per category (absent where not measured).
struct ChartSeries {
    name: String,
    values: Vec<Option<f64>>,
}

/// Writes every chart of `results` into `directory`; returns their file names.
pub fn write_all(results: &RunResults, directory: &Path) -> Result<Vec<String>> {
    let mut written = Vec::new();
    let scenarios = results.scenarios();
    let scenario_names: Vec<String> = scenarios.iter().map(ToString::to_string).collect();
    if scenario_names.is_empty() {
        return Ok(written);
    }
    for level in results.levels() {
        written.extend(write_bar_charts(
            results,
            &level,
            &scenarios,
            &scenario_names,
            directory,
        )?);
        if results.latency_dimensions().is_none() {
            written.push(write_latency_chart(results, &level, &scenarios, directory)?);
        }
    }
    Ok(written)
}

/// Each server's `value` per scenario at one load level: a series of a bar chart. Servers
/// without cells are left out.
fn level_series(
    results: &RunResults,
    level: &Level,
    scenarios: &[Scenario],
    value: fn(&Cell, &Measurement) -> Option<f64>,
) -> Vec<ChartSeries> {
    results
        .servers
        .iter()
        .filter(|server| !server.cells.is_empty())
        .map(|server| ChartSeries {
            name: server.record.marked_name(),
            values: scenarios
                .iter()
                .map(|scenario| {
                    let cell = server.cells.iter().find(|cell| {
                        cell.scenario == *scenario
                            && cell.connections == level.connections
                            && cell.rate == level.rate
                    })?;
                    value(cell, cell.median()?)
                })
                .collect(),
        })
        .collect()
}

/// The bar charts of one load level: throughput, CPU per 1,000 requests and memory, each left
/// out where no server has a figure; returns their file names.
fn write_bar_charts(
    results: &RunResults,
    level: &Level,
    scenarios: &[Scenario],
    scenario_names: &[String],
    directory: &Path,
) -> Result<Vec<String>> {
    let series_of = |value| level_series(results, level, scenarios, value);
    let slug = level.slug();
    let charts: [(&str, String, &str, Vec<ChartSeries>); 3] = [
        (
            "throughput",
            format!("Throughput, {}", level.label()),
            "2xx answers per second",
            series_of(|cell, _| Some(cell.summary.ok_per_second)),
        ),
        (
            "cpu",
            format!("Server CPU per 1,000 requests, {}", level.label()),
            "user + system CPU ms",
            series_of(|_, run| run.server.as_ref()?.cpu_ms_per_1k),
        ),
        (
            "memory",
            format!("Server peak memory, {}", level.label()),
            "peak RSS, MiB",
            series_of(|_, run| {
                Some(run.server.as_ref()?.rss_peak_bytes as f64 / (1u64 << 20) as f64)
            }),
        ),
    ];
    let mut written = Vec::new();
    for (kind, title, axis, series) in charts {
        if series.iter().all(|s| s.values.iter().all(Option::is_none)) {
            continue;
        }
        let name = format!("{kind}-{slug}.svg");
        grouped_bars(
            &directory.join(&name),
            &title,
            axis,
            scenario_names,
            &series,
        )?;
        written.push(name);
    }
    Ok(written)
}

/// The latency chart of one load level: the percentiles of every server (a run over database
/// latency levels draws its own, one per level, in its section); returns its file name.
fn write_latency_chart(
    results: &RunResults,
    level: &Level,
    scenarios: &[Scenario],
    directory: &Path,
) -> Result<String> {
    let name = format!("latency-{}.svg", level.slug());
    latency_panels(
        results,
        level,
        scenarios,
        &|_| true,
        "",
        &directory.join(&name),
    )?;
    Ok(name)
}

/// One panel per category (scenario), each with its own scale, and one bar per series (server)
/// in it: scenarios differ by orders of magnitude, and a shared axis would flatten the slow ones.
fn grouped_bars(
    path: &Path,
    title: &str,
    axis: &str,
    categories: &[String],
    series: &[ChartSeries],
) -> Result<()> {
    let (root, panels) = titled_panels(path, &format!("{title} ({axis})"), categories.len())?;
    let bars = series.len().max(1) as f64;
    for (index, (panel, category)) in panels.iter().zip(categories).enumerate() {
        let highest = series
            .iter()
            .filter_map(|one| one.values.get(index).copied().flatten())
            .fold(0.0f64, f64::max);
        let top = if highest > 0.0 { highest * 1.15 } else { 1.0 };
        let mut chart = ChartBuilder::on(panel)
            .caption(category, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(10)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..bars, 0f64..top)
            .map_err(drawing_error)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .disable_x_axis()
            .y_labels(6)
            .y_label_formatter(&|value: &f64| short_number(*value))
            .draw()
            .map_err(drawing_error)?;
        for (series_index, one) in series.iter().enumerate() {
            let Some(value) = one.values.get(index).copied().flatten() else {
                continue;
            };
            let fill = color(series_index);
            let left = series_index as f64 + 0.1;
            let drawn = chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(left, 0.0), (left + 0.8, value)],
                    fill.filled(),
                )))
                .map_err(drawing_error)?;
            // The first panel carries the legend for all.
            if index == 0 {
                drawn.label(one.name.clone()).legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], fill.filled())
                });
            }
            chart
                .draw_series(std::iter::once(Text::new(
                    short_number(value),
                    (left + 0.4, value),
                    TextStyle::from(("sans-serif", 11).into_font()).pos(
                        plotters::style::text_anchor::Pos::new(
                            plotters::style::text_anchor::HPos::Center,
                            plotters::style::text_anchor::VPos::Bottom,
                        ),
                    ),
                )))
                .map_err(drawing_error)?;
        }
        if index == 0 {
            draw_legend(&mut chart, SeriesLabelPosition::UpperRight, 11)?;
        }
    }
    root.present().map_err(drawing_error)?;
    Ok(())
}

/// `123456` as `123k`, `1234` as `1.2k`, small values with one decimal.
pub(crate) fn short_number(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 1_000_000.0 {
        format!("{:.1}M", value / 1_000_000.0)
    } else if magnitude >= 10_000.0 {
        format!("{:.0}k", value / 1_000.0)
    } else if magnitude >= 1_000.0 {
        format!("{:.1}k", value / 1_000.0)
    } else if magnitude >= 10.0 || magnitude == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// One panel per scenario: p50, p90, p99, p99.9 and max of each server `shown` picks, on a log
/// scale.
pub(crate) fn latency_panels(
    results: &RunResults,
    level: &Level,
    scenarios: &[Scenario],
    shown: &dyn Fn(&ServerResult) -> bool,
    title_suffix: &str,
    path: &Path,
) -> Result<()> {
    let (root, panels) = titled_panels(
        path,
        &format!(
            "Latency percentiles (ms, log scale), {}{title_suffix}",
            level.label()
        ),
        scenarios.len(),
    )?;
    for (panel_index, (panel, scenario)) in panels.iter().zip(scenarios).enumerate() {
        let lines: Vec<(usize, String, [f64; 5])> = results
            .servers
            .iter()
            .enumerate()
            .filter(|(_, server)| shown(server))
            .filter_map(|(index, server)| {
                let cell = server.cells.iter().find(|cell| {
                    cell.scenario == *scenario
                        && cell.connections == level.connections
                        && cell.rate == level.rate
                })?;
                let latency = cell.median()?.latency_us;
                if latency.count == 0 {
                    return None;
                }
                let millis = |micros: u64| (micros.max(1) as f64) / 1_000.0;
                Some((
                    index,
                    server.record.marked_name(),
                    latency.shown().map(millis),
                ))
            })
            .collect();
        let values = lines
            .iter()
            .flat_map(|(_, _, points)| points.iter().copied());
        let (low, high) = values.fold((f64::MAX, 0.0f64), |(low, high), v| {
            (low.min(v), high.max(v))
        });
        let (low, high) = if lines.is_empty() {
            (0.01, 10.0)
        } else {
            ((low / 2.0).max(0.001), (high * 2.0).max(low * 4.0))
        };
        let mut chart = ChartBuilder::on(panel)
            .caption(scenario.to_string(), ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(25)
            .y_label_area_size(55)
            .build_cartesian_2d(
                -0.3f64..Percentiles::SHOWN.len() as f64 - 0.7,
                (low..high).log_scale(),
            )
            .map_err(drawing_error)?;
        chart
            .configure_mesh()
            .x_labels(1)
            .x_label_formatter(&|_| String::new())
            .y_label_formatter(&|y: &f64| format!("{y}"))
            .draw()
            .map_err(drawing_error)?;
        let labels: Vec<(f64, String)> = Percentiles::SHOWN
            .iter()
            .enumerate()
            .map(|(index, name)| (index as f64, (*name).to_string()))
            .collect();
        label_x_axis(panel, &chart, low, &labels, 12)?;
        for (index, name, points) in &lines {
            let coordinates: Vec<(f64, f64)> = points
                .iter()
                .enumerate()
                .map(|(i, v)| (i as f64, *v))
                .collect();
            // The first panel carries the legend for all.
            let label = (panel_index == 0).then(|| name.clone());
            draw_line(&mut chart, coordinates, color(*index), label)?;
        }
        if panel_index == 0 && !lines.is_empty() {
            draw_legend(&mut chart, SeriesLabelPosition::UpperLeft, 11)?;
        }
    }
    root.present().map_err(drawing_error)?;
    Ok(())
}

/// Writes category names under the x axis at data positions: plotters' own tick placement does
/// not put labels on arbitrary category centres.
fn label_x_axis<DB, Y>(
    area: &DrawingArea<DB, Shift>,
    chart: &ChartContext<'_, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    axis_y: Y::ValueType,
    labels: &[(f64, String)],
    font_size: u32,
) -> Result<()>
where
    DB: DrawingBackend,
    Y: Ranged,
    Y::ValueType: Clone,
{
    let (area_x, area_y) = area.get_base_pixel();
    let style = TextStyle::from(("sans-serif", font_size).into_font()).pos(
        plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Top,
        ),
    );
    for (x, text) in labels {
        let (pixel_x, pixel_y) = chart.backend_coord(&(*x, axis_y.clone()));
        area.draw(&Text::new(
            text.clone(),
            (pixel_x - area_x, pixel_y - area_y + 6),
            style.clone(),
        ))
        .map_err(drawing_error)?;
    }
    Ok(())
}
