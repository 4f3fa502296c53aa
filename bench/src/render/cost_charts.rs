//! The chart of `bakeoff cost`: for each scenario, a horizontal bar per server of its
//! instructions per request, split by component of the request path.

use std::path::Path;

use anyhow::Result;
use plotters::coord::ranged1d::SegmentedCoord;
use plotters::coord::types::{RangedCoordf64, RangedCoordusize};
use plotters::prelude::*;

use crate::render::charts::{Canvas, color, draw_legend, drawing_error, short_number, svg_canvas};
use crate::results::cost::{CostResults, ServerCost};
use crate::results::vocabulary::{Component, Scenario};

/// The chart's file name.
pub const SPLIT_CHART: &str = "cost-split.svg";
/// Pixels per server bar, and around each scenario's panel.
const BAR_HEIGHT: u32 = 34;
const PANEL_EXTRA: u32 = 70;

/// Writes the split chart; `None` when nothing was counted.
pub fn write_split(results: &CostResults, directory: &Path) -> Result<Option<String>> {
    let scenarios = results.scenarios();
    let servers: Vec<_> = results
        .servers
        .iter()
        .filter(|server| !server.cells.is_empty())
        .collect();
    if scenarios.is_empty() || servers.is_empty() {
        return Ok(None);
    }
    let panel_height = PANEL_EXTRA + BAR_HEIGHT * servers.len() as u32;
    let path = directory.join(SPLIT_CHART);
    let root = svg_canvas(&path, (1100, 50 + panel_height * scenarios.len() as u32))?
        .titled(
            "Instructions per request, by component (callgrind)",
            ("sans-serif", 22),
        )
        .map_err(drawing_error)?;
    let panels = root.split_evenly((scenarios.len(), 1));
    let names: Vec<String> = servers.iter().map(|s| s.record.marked_name()).collect();
    for (index, (panel, &scenario)) in panels.iter().zip(&scenarios).enumerate() {
        let bars = component_bars(&servers, scenario);
        draw_panel(panel, scenario, &names, &bars, index == 0)?;
    }
    root.present().map_err(drawing_error)?;
    Ok(Some(SPLIT_CHART.to_string()))
}

/// A server's bar: its components, in order, as (start, end) along the axis.
type Bar = Vec<(Component, f64, f64)>;

/// The coordinates of a scenario's panel: instructions along x, a segment per server along y.
type PanelCoordinates = Cartesian2d<RangedCoordf64, SegmentedCoord<RangedCoordusize>>;

/// Each server's bar in `scenario`; empty for a server without a counted cell there.
fn component_bars(servers: &[&ServerCost], scenario: Scenario) -> Vec<Bar> {
    servers
        .iter()
        .map(|server| {
            let Some(batch) = server
                .cells
                .iter()
                .find(|cell| cell.scenario == scenario)
                .and_then(|cell| cell.representative())
            else {
                return Vec::new();
            };
            let mut start = 0.0;
            Component::ALL
                .iter()
                .map(|&component| {
                    let end = start + batch.component_per_request(component);
                    let segment = (component, start, end);
                    start = end;
                    segment
                })
                .collect()
        })
        .collect()
}

/// One scenario's panel: a bar per server, named on the y axis; the first panel carries the
/// legend.
fn draw_panel(
    panel: &Canvas<'_>,
    scenario: Scenario,
    names: &[String],
    bars: &[Bar],
    first_panel: bool,
) -> Result<()> {
    let widest = bars
        .iter()
        .filter_map(|bar| bar.last().map(|segment| segment.2))
        .fold(0.0_f64, f64::max);
    let right = if widest > 0.0 { widest * 1.12 } else { 1.0 };
    let rows = bars.len();
    let mut chart = ChartBuilder::on(panel)
        .caption(scenario.to_string(), ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(24)
        .y_label_area_size(200)
        .build_cartesian_2d(0f64..right, (0..rows).into_segmented())
        .map_err(drawing_error)?;
    let row_name = |value: &SegmentValue<usize>| match value {
        SegmentValue::CenterOf(segment) if *segment < rows => {
            names[segment_of(rows, *segment)].clone()
        }
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_labels(8)
        .x_label_formatter(&|value: &f64| short_number(*value))
        .y_labels(rows)
        .y_label_formatter(&row_name)
        .draw()
        .map_err(drawing_error)?;
    for row in 0..rows {
        draw_bar(&mut chart, bars, row, first_panel)?;
    }
    if first_panel {
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight, 11)?;
    }
    Ok(())
}

/// The segment of a row: rows are drawn top-down, the first server in the top segment (and
/// the mapping is its own inverse).
fn segment_of(rows: usize, row: usize) -> usize {
    rows - 1 - row
}

/// The bar of `row`, a rectangle per component and its total at the end; on the first panel,
/// each component's legend entry is made at the first bar that has it.
fn draw_bar(
    chart: &mut ChartContext<'_, SVGBackend<'_>, PanelCoordinates>,
    bars: &[Bar],
    row: usize,
    first_panel: bool,
) -> Result<()> {
    let bar = &bars[row];
    let segment = segment_of(bars.len(), row);
    for &(component, start, end) in bar {
        if end <= start {
            continue;
        }
        let fill = color(component_index(component));
        let mut rectangle = Rectangle::new(
            [
                (start, SegmentValue::Exact(segment)),
                (end, SegmentValue::Exact(segment + 1)),
            ],
            fill.filled(),
        );
        rectangle.set_margin(5, 5, 0, 0);
        let drawn = chart
            .draw_series(std::iter::once(rectangle))
            .map_err(drawing_error)?;
        if first_panel && row == first_row_with(bars, component) {
            drawn
                .label(component.name())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], fill.filled()));
        }
    }
    if let Some(&(_, _, total)) = bar.last() {
        chart
            .draw_series(std::iter::once(Text::new(
                format!(" {}", short_number(total)),
                (total, SegmentValue::CenterOf(segment)),
                ("sans-serif", 12).into_font(),
            )))
            .map_err(drawing_error)?;
    }
    Ok(())
}

fn component_index(component: Component) -> usize {
    Component::ALL
        .iter()
        .position(|&c| c == component)
        .unwrap_or(0)
}

/// The first row whose bar has a segment of `component` (where its legend entry is made).
fn first_row_with(bars: &[Vec<(Component, f64, f64)>], component: Component) -> usize {
    bars.iter()
        .position(|bar| {
            bar.iter()
                .any(|&(c, start, end)| c == component && end > start)
        })
        .unwrap_or(0)
}
