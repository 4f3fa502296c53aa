//! One SVG chart per workload (plotters, in the style of the run's charts): the burst time against
//! N, a line per server, and the two reference lines: T (every request served at once) and
//! T x ceil(N / W) (W workers taking the requests in waves), one for each worker count present.
//! The CPU workloads get a third: N x T / C, the least C CPUs need for the work itself.

use std::path::Path;

use anyhow::Result;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::render::charts::{SIZE, color, draw_legend, draw_line, drawing_error, svg_canvas};
use crate::results::study::StudyResults;
use crate::results::vocabulary::Workload;

const REFERENCE: RGBColor = RGBColor(90, 90, 90);

/// A server's line: its colour index, name and (N, seconds) points.
type Line<'a> = (usize, &'a str, Vec<(f64, f64)>);

/// The chart's file name for a workload.
pub fn file_name(workload: Workload) -> String {
    format!("burst-{workload}.svg")
}

/// Writes one chart per workload that has figures; returns their file names.
pub fn write_all(results: &StudyResults, directory: &Path) -> Result<Vec<String>> {
    let mut written = Vec::new();
    for workload in results.workloads() {
        let has_points = results.servers.iter().any(|server| {
            server
                .workload(workload)
                .is_some_and(|w| !w.points.is_empty())
        });
        if has_points {
            let name = file_name(workload);
            burst_chart(results, workload, &directory.join(&name))?;
            written.push(name);
        }
    }
    Ok(written)
}

/// The worker counts of the studied servers, each once, in increasing order.
pub fn worker_counts(results: &StudyResults) -> Vec<usize> {
    let mut counts: Vec<usize> = results
        .servers
        .iter()
        .filter(|server| !server.workloads.is_empty())
        .filter_map(|server| server.record.workers())
        .collect();
    counts.sort_unstable();
    counts.dedup();
    counts
}

/// A reference line of the chart: its legend label and (N, seconds) points.
type Reference = (String, Vec<(f64, f64)>);

/// The chart of one workload, written to `path`.
fn burst_chart(results: &StudyResults, workload: Workload, path: &Path) -> Result<()> {
    let t = results.settings.seconds;
    let k = results.settings.max_concurrency;
    let lines = server_lines(results, workload);
    let workers = worker_counts(results);
    let references = wave_references(&workers, t, k);
    let cpu_floor = cpu_floor(results, workload);
    let highest = lines
        .iter()
        .flat_map(|(_, _, points)| points.iter().map(|&(_, y)| y))
        .chain(
            references
                .iter()
                .flat_map(|(_, p)| p.iter().map(|&(_, y)| y)),
        )
        .chain(cpu_floor.iter().flatten().map(|&(_, y)| y))
        .fold(t, f64::max);
    let root = svg_canvas(path, SIZE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "{}: {} (T = {t} s), {}",
                workload,
                workload.description(),
                workers_label(&workers)
            ),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.5f64..k as f64 + 0.5, 0f64..highest * 1.1)
        .map_err(drawing_error)?;
    chart
        .configure_mesh()
        .x_labels(k.min(24))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .x_desc("N concurrent requests in the burst")
        .y_desc("time until the last answer, s (median)")
        .draw()
        .map_err(drawing_error)?;
    draw_references(&mut chart, results, references, cpu_floor)?;
    for (index, name, points) in lines {
        draw_line(&mut chart, points, color(index), Some(name.to_string()))?;
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft, 13)?;
    root.present().map_err(drawing_error)?;
    Ok(())
}

/// Each server's burst times in `workload`, in the servers' order (their colours); servers
/// without points are left out.
fn server_lines(results: &StudyResults, workload: Workload) -> Vec<Line<'_>> {
    results
        .servers
        .iter()
        .enumerate()
        .filter_map(|(index, server)| {
            let points: Vec<(f64, f64)> = server
                .workload(workload)?
                .points
                .iter()
                .map(|point| (point.concurrency as f64, point.median_seconds))
                .collect();
            (!points.is_empty()).then_some((index, server.record.shown_name(), points))
        })
        .collect()
}

/// T x ceil(N / W) for each worker count W, N from 1 to `k`: the workers taking the requests
/// in waves.
fn wave_references(workers: &[usize], t: f64, k: usize) -> Vec<Reference> {
    workers
        .iter()
        .map(|&w| {
            (
                format!("T x ceil(N / {w}): {w} worker(s) in waves"),
                (1..=k)
                    .map(|n| (n as f64, t * n.div_ceil(w) as f64))
                    .collect(),
            )
        })
        .collect()
}

/// N x T / C for a CPU workload, `None` for the others: CPU work shares the CPUs whatever the
/// threads, so N requests of T need that at least.
fn cpu_floor(results: &StudyResults, workload: Workload) -> Option<Vec<(f64, f64)>> {
    let t = results.settings.seconds;
    let k = results.settings.max_concurrency;
    let cpus = results.settings.server_cpus.max(1);
    workload.is_cpu().then(|| {
        (1..=k)
            .map(|n| (n as f64, t * n as f64 / cpus as f64))
            .collect()
    })
}

/// The worker counts for the caption.
fn workers_label(workers: &[usize]) -> String {
    match workers {
        [] => "WORKERS unknown".to_string(),
        [only] => format!("WORKERS={only}"),
        several => format!(
            "WORKERS={}",
            several
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("/")
        ),
    }
}

/// The dashed reference lines: T, the waves of each worker count and the CPU floor.
fn draw_references(
    chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    results: &StudyResults,
    references: Vec<Reference>,
    cpu_floor: Option<Vec<(f64, f64)>>,
) -> Result<()> {
    let t = results.settings.seconds;
    let k = results.settings.max_concurrency;
    let dashed = |stroke: RGBColor, width: u32| ShapeStyle {
        color: stroke.to_rgba(),
        filled: false,
        stroke_width: width,
    };
    chart
        .draw_series(DashedLineSeries::new(
            [(0.5, t), (k as f64 + 0.5, t)],
            8,
            6,
            dashed(REFERENCE, 1),
        ))
        .map_err(drawing_error)?
        .label("T: every request served at once")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], REFERENCE.stroke_width(1)));
    for (index, (label, points)) in references.into_iter().enumerate() {
        // Each worker count gets its own dash pattern, so that the references stay apart.
        let (dash, gap) = [(3, 4), (12, 4), (2, 8), (16, 8)][index % 4];
        chart
            .draw_series(DashedLineSeries::new(
                points,
                dash,
                gap,
                dashed(REFERENCE, 2),
            ))
            .map_err(drawing_error)?
            .label(label)
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 14, y)], REFERENCE.stroke_width(2))
            });
    }
    if let Some(points) = cpu_floor {
        let cpus = results.settings.server_cpus.max(1);
        chart
            .draw_series(DashedLineSeries::new(points, 1, 4, dashed(REFERENCE, 2)))
            .map_err(drawing_error)?
            .label(format!("N x T / {cpus}: the work shared by {cpus} CPU(s)"))
            .legend(|(x, y)| {
                PathElement::new(
                    vec![(x, y), (x + 14, y)],
                    REFERENCE.mix(0.5).stroke_width(2),
                )
            });
    }
    Ok(())
}
