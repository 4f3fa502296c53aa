//! The study's tables, for the terminal and `report.md`: the calibration, one table of burst times
//! per workload beside its reference lines, the concurrency ceilings, and the threads and memory
//! idle and during the largest burst.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use crate::format::{Table, human_duration};
use crate::render::study_charts::{self as charts, worker_counts};
use crate::results::study::{Point, StudyResults, StudyServer};
use crate::results::vocabulary::Workload;

fn mebibytes(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1u64 << 20) as f64)
}

fn or_dash<T>(value: Option<T>, format: impl Fn(T) -> String) -> String {
    value.map_or_else(|| "-".to_string(), format)
}

/// Servers that have figures.
fn studied(results: &StudyResults) -> impl Iterator<Item = &StudyServer> {
    results
        .servers
        .iter()
        .filter(|server| server.calibration.is_some())
}

/// The study's calibration step, one row per server.
pub fn calibration_table(results: &StudyResults) -> Table {
    let samples = results.settings.calibration_samples;
    let mut table = Table::new(&[
        "server",
        "workers",
        "threads at start",
        "RSS at start (MiB)",
        &format!("one iteration, mean of {samples} (ms)"),
        "min (ms)",
        "max (ms)",
        &format!("iterations for T = {} s", results.settings.seconds),
        "one request of those (s)",
        "iterations used",
        "one request (s)",
    ]);
    for server in studied(results) {
        let Some(calibration) = &server.calibration else {
            continue;
        };
        table.rows.push(vec![
            server.record.shown_name().to_string(),
            or_dash(server.record.workers(), |w| w.to_string()),
            or_dash(server.idle.as_ref(), |s| s.threads.to_string()),
            or_dash(server.idle.as_ref(), |s| mebibytes(s.rss_bytes)),
            format!("{:.2}", calibration.mean_seconds * 1_000.0),
            format!("{:.2}", calibration.min_seconds * 1_000.0),
            format!("{:.2}", calibration.max_seconds * 1_000.0),
            calibration.calibrated_iterations.to_string(),
            format!("{:.3}", calibration.calibrated_baseline_seconds),
            calibration.iterations.to_string(),
            format!("{:.3}", calibration.work_seconds),
        ]);
    }
    table
}

/// A reference column of a burst table: its header, and the seconds it gives a burst of N.
struct Reference {
    header: String,
    seconds: Box<dyn Fn(usize) -> f64>,
}

/// The reference lines of a workload: T (every request served at once), T x ceil(N / W) for
/// each worker count W (the workers take the requests in waves) and, for CPU work, N x T / C
/// (C CPUs share the work).
fn references(results: &StudyResults, workload: Workload) -> Vec<Reference> {
    let t = results.settings.seconds;
    let mut references = vec![Reference {
        header: "T".to_string(),
        seconds: Box::new(move |_| t),
    }];
    references.extend(worker_counts(results).into_iter().map(|w| Reference {
        header: format!("T x ceil(N/{w})"),
        seconds: Box::new(move |n| t * n.div_ceil(w) as f64),
    }));
    if workload.is_cpu() {
        let cpus = results.settings.server_cpus.max(1);
        references.push(Reference {
            header: format!("N x T/{cpus}"),
            seconds: Box::new(move |n| t * n as f64 / cpus as f64),
        });
    }
    references
}

/// A table of one workload with a row per N: a column per server that studied it, holding
/// `figure` of its burst of N (`-` where there is none), then the `references` at N.
fn burst_table(
    results: &StudyResults,
    workload: Workload,
    figure: impl Fn(&Point) -> Option<String>,
    references: &[Reference],
) -> Table {
    let servers: Vec<&StudyServer> = studied(results)
        .filter(|server| server.workload(workload).is_some())
        .collect();
    let mut headers = vec!["N".to_string()];
    headers.extend(
        servers
            .iter()
            .map(|server| server.record.shown_name().to_string()),
    );
    headers.extend(references.iter().map(|reference| reference.header.clone()));
    let mut table = Table::new(&headers);
    for n in 1..=results.settings.max_concurrency {
        let mut row = vec![n.to_string()];
        for server in &servers {
            let point = server
                .workload(workload)
                .and_then(|w| w.points.iter().find(|p| p.concurrency == n));
            row.push(point.and_then(&figure).unwrap_or_else(|| "-".to_string()));
        }
        row.extend(
            references
                .iter()
                .map(|reference| format!("{:.3}", (reference.seconds)(n))),
        );
        table.rows.push(row);
    }
    table
}

/// Burst times of one workload: a row per N, a column per server, then the reference lines.
pub fn workload_table(results: &StudyResults, workload: Workload) -> Table {
    let burst_time = |point: &Point| {
        let failed = point.runs.iter().any(|run| !run.failures.is_empty());
        Some(format!(
            "{:.3}{}",
            point.median_seconds,
            if failed { " !" } else { "" }
        ))
    };
    burst_table(
        results,
        workload,
        burst_time,
        &references(results, workload),
    )
}

/// The time each request spent inside the server (the mean of a burst, median of the runs): at
/// T when requests wait their turn, above T when they share the CPUs.
pub fn server_time_table(results: &StudyResults, workload: Workload) -> Table {
    let server_time = |point: &Point| point.median_server_seconds.map(|s| format!("{s:.3}"));
    burst_table(results, workload, server_time, &[])
}

/// The largest N each server serves within the ceiling factor of T, per workload.
pub fn ceiling_table(results: &StudyResults) -> Table {
    let workloads = results.workloads();
    let mut headers = vec!["server".to_string(), "workers".to_string()];
    headers.extend(workloads.iter().map(ToString::to_string));
    let mut table = Table::new(&headers);
    let k = results.settings.max_concurrency;
    for server in studied(results) {
        let mut row = vec![
            server.record.shown_name().to_string(),
            or_dash(server.record.workers(), |w| w.to_string()),
        ];
        for &workload in &workloads {
            row.push(or_dash(server.workload(workload), |w| {
                if w.ceiling >= k {
                    format!(">= {k}")
                } else {
                    w.ceiling.to_string()
                }
            }));
        }
        table.rows.push(row);
    }
    table
}

/// Threads and memory just before and during the largest burst, and how long `/test/resmon`
/// took to answer while that burst was in flight.
pub fn resources_table(results: &StudyResults) -> Table {
    let mut table = Table::new(&[
        "server",
        "workload",
        "threads before",
        "threads in burst",
        "RSS before (MiB)",
        "RSS in burst (MiB)",
        "/test/resmon answered after (s)",
    ]);
    for server in studied(results) {
        for workload in &server.workloads {
            let peak = workload.peak.as_ref();
            table.rows.push(vec![
                server.record.shown_name().to_string(),
                workload.workload.to_string(),
                or_dash(peak.and_then(|p| p.threads_before), |t| t.to_string()),
                or_dash(peak.and_then(|p| p.threads()), |t| t.to_string()),
                or_dash(peak.and_then(|p| p.rss_before_bytes), mebibytes),
                or_dash(peak.and_then(|p| p.rss_bytes()), mebibytes),
                or_dash(peak, |p| match (&p.resmon_error, p.resmon_answered_after) {
                    (Some(error), _) => format!("failed: {error}"),
                    (None, Some(seconds)) => format!("{seconds:.3}"),
                    (None, None) => "-".to_string(),
                }),
            ]);
        }
    }
    table
}

/// Servers not studied and why, then what went wrong without stopping a server's study.
pub fn notes(results: &StudyResults) -> Vec<String> {
    let mut lines = Vec::new();
    for server in &results.servers {
        if let Some(reason) = &server.record.skipped {
            lines.push(format!(
                "{}: not studied: {reason}",
                server.record.shown_name()
            ));
        }
        for note in &server.record.notes {
            lines.push(format!("{}: {note}", server.record.shown_name()));
        }
    }
    lines
}

/// Every failed request, one line per point, or an empty list.
pub fn failures(results: &StudyResults) -> Vec<String> {
    let mut lines = Vec::new();
    for server in &results.servers {
        for workload in &server.workloads {
            for point in &workload.points {
                for (index, run) in point.runs.iter().enumerate() {
                    if !run.failures.is_empty() {
                        lines.push(format!(
                            "{} {} N={} run {}: {} ok, {:?}",
                            server.record.shown_name(),
                            workload.workload,
                            point.concurrency,
                            index + 1,
                            run.ok,
                            run.failures
                        ));
                    }
                }
            }
        }
    }
    lines
}

fn settings_lines(results: &StudyResults) -> Vec<String> {
    let settings = &results.settings;
    vec![
        format!(
            "T = {} s of server work per request; bursts of N = 1..={} concurrent requests; {} burst(s) per point, median kept",
            settings.seconds, settings.max_concurrency, settings.repeat
        ),
        format!("servers: {}", settings.servers_line()),
        format!(
            "calibration: mean of {} calls to /test/calibrate per server",
            settings.calibration_samples
        ),
        format!("placement: {}", settings.placement.note),
        format!(
            "{} binaries; database: {}",
            settings.profile, settings.database
        ),
        format!(
            "took {} (estimated {} to {})",
            human_duration(settings.elapsed_seconds),
            human_duration(settings.estimated_seconds[0]),
            human_duration(settings.estimated_seconds[1])
        ),
    ]
}

const READING: &str = "\
Each point is one burst: N connections are opened, then N identical requests are released \
together, and the time until the last answer is recorded (the median of the repeats). Two \
reference lines frame it: T, what a server that serves every request at once achieves, and \
T x ceil(N / W), what W workers taking the requests in waves of W achieve. CPU work cannot go \
below what the CPUs can do either: N requests of T on C CPUs need at least N x T / C, the third \
line of the CPU workloads. The ceiling is the \
largest N whose burst (and every smaller one) stays within the ceiling factor times T. \
`!` marks a point where a request failed (see Failures).";

const CALIBRATION: &str = "\
As in the study: the mean of the calls to /test/calibrate (one iteration each, timed by the \
server) gives the iterations for T, and one request of those iterations is then timed (median of \
three, server-side). One iteration timed alone costs more than the same iteration in a loop \
(fresh memory, cold caches), so when that request is more than a tenth off T the iterations are \
corrected once by the ratio; the bursts use the corrected count. Threads and memory at start are \
/test/resmon before any request.";

/// `report.md`.
pub fn markdown(results: &StudyResults, charts: &[String]) -> String {
    let mut text = String::from("# bakeoff concurrency study\n\n");
    let _ = writeln!(
        text,
        "{} to {}, on {}.\n",
        results.started_at,
        results.finished_at,
        results.machine.line()
    );
    for line in settings_lines(results) {
        let _ = writeln!(text, "- {line}");
    }
    let _ = writeln!(text, "- command: `{}`\n", results.settings.command);
    let _ = writeln!(text, "{READING}\n");

    let notes = notes(results);
    if !notes.is_empty() {
        text.push_str("## Not studied, and notes\n\n");
        for line in notes {
            let _ = writeln!(text, "- {line}");
        }
        text.push('\n');
    }

    let _ = writeln!(
        text,
        "## Calibration\n\n{CALIBRATION}\n\n{}",
        calibration_table(results).markdown()
    );
    let _ = writeln!(
        text,
        "## Concurrency ceilings\n\nThe largest N served within {} x T.\n\n{}",
        results.settings.ceiling_factor,
        ceiling_table(results).markdown()
    );
    for workload in results.workloads() {
        let _ = writeln!(text, "## {}: {}\n", workload, workload.description());
        let chart = charts::file_name(workload);
        if charts.contains(&chart) {
            let _ = writeln!(text, "![{}]({chart})\n", workload);
        }
        let _ = writeln!(
            text,
            "Time until the last answer, seconds.\n\n{}",
            workload_table(results, workload).markdown()
        );
        if workload.is_cpu() {
            let _ = writeln!(
                text,
                "Time each request spent in the server, seconds (mean of the burst): it stays \
                 near T while requests wait their turn, and grows when they share the CPUs.\n\n{}",
                server_time_table(results, workload).markdown()
            );
        }
    }
    let _ = writeln!(
        text,
        "## Threads and memory\n\nJust before and during the first burst at N = {} ({} s after the release; \
         /proc for the variants, /test/resmon for targets), with how long /test/resmon took to answer while that \
         burst was in flight. Threads a pool started for an earlier workload may still be there before the next \
         one (tokio keeps idle blocking threads for 10 s); the calibration table has the figures at start.\n\n{}",
        results.settings.max_concurrency,
        results.settings.seconds / 2.0,
        resources_table(results).markdown()
    );
    let failures = failures(results);
    if !failures.is_empty() {
        text.push_str("## Failures\n\n");
        for line in failures {
            let _ = writeln!(text, "- {line}");
        }
    }
    text
}

/// The tables for the terminal.
pub fn terminal(results: &StudyResults) -> String {
    let mut text = String::new();
    for line in settings_lines(results) {
        let _ = writeln!(text, "{line}");
    }
    let _ = writeln!(
        text,
        "\nCalibration\n{}",
        calibration_table(results).terminal()
    );
    for workload in results.workloads() {
        let _ = writeln!(
            text,
            "{} ({}): time until the last answer, s\n{}",
            workload,
            workload.description(),
            workload_table(results, workload).terminal()
        );
        if workload.is_cpu() {
            let _ = writeln!(
                text,
                "{}: time each request spent in the server, s (mean of the burst)\n{}",
                workload,
                server_time_table(results, workload).terminal()
            );
        }
    }
    let _ = writeln!(
        text,
        "Concurrency ceiling (largest N within {} x T)\n{}",
        results.settings.ceiling_factor,
        ceiling_table(results).terminal()
    );
    let _ = writeln!(
        text,
        "Threads and memory, just before and during the largest burst\n{}",
        resources_table(results).terminal()
    );
    let notes = notes(results);
    if !notes.is_empty() {
        text.push_str("Not studied, and notes\n");
        for line in notes {
            let _ = writeln!(text, "  {line}");
        }
    }
    let failures = failures(results);
    if !failures.is_empty() {
        text.push_str("Failures\n");
        for line in failures {
            let _ = writeln!(text, "  {line}");
        }
    }
    text
}

/// Writes the charts and `report.md` of `results` into `directory` (`bakeoff report` on a study
/// directory); returns the charts.
pub fn write(results: &StudyResults, directory: &Path) -> Result<Vec<String>> {
    let charts = charts::write_all(results, directory)?;
    crate::results::write_file(directory, "report.md", markdown(results, &charts))?;
    Ok(charts)
}
