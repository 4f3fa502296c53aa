//! `bakeoff run --quick` over one real variant (the first whose debug binary is built), shortened
//! to one second per cell: the whole pipeline from a throwaway database to the written report.

use bakeoff::results::ResultsFile;
use bakeoff::results::run::RunResults;
use bakeoff::results::vocabulary::Scenario;

use crate::support::{assert_svg, bakeoff, built_variant, render_report_again, run_bakeoff};

#[test]
fn a_quick_run_writes_results_report_and_charts() {
    let variant = built_variant();
    let (_out, directory) = run_bakeoff(&[
        "run",
        "--quick",
        "--debug",
        "--variants",
        &variant,
        "--duration",
        "1s",
        "--rounds",
        "2",
        // Half-second rounds of a debug build on a busy machine answer few requests per
        // connection: every body is checked, so that each cell checks some.
        "--check-every",
        "1",
        "--warmup",
        "500ms",
        "--connections",
        "8",
    ]);
    let directory = directory.as_path();
    let results = RunResults::read(directory).unwrap();
    assert_eq!(results.servers.len(), 1);
    let server = &results.servers[0];
    assert!(
        server.record.verification.passed,
        "{:?}",
        server.record.verification.failures
    );
    assert!(
        server.record.shutdown.as_ref().unwrap().clean,
        "{:?}",
        server.record.shutdown
    );
    assert_eq!(server.cells.len(), Scenario::all().len());
    for cell in &server.cells {
        let run = cell.median().unwrap();
        assert!(run.ok > 0, "{} answered nothing", cell.scenario);
        assert_eq!(run.error_count(), 0, "{}: {:?}", cell.scenario, run.errors);
        assert!(run.checked_bodies > 0);
        let figures = run.server.as_ref().unwrap();
        assert!(
            figures.cpu_seconds > 0.0 && figures.rss_peak_bytes > 0 && figures.threads_peak > 0
        );
        let statements = figures.statements_per_request.unwrap();
        let expected = match cell.scenario {
            Scenario::Version | Scenario::Fibonacci => 0.0..=0.0,
            Scenario::Types => 0.9..=1.1,
            Scenario::Contact | Scenario::ContactsPage | Scenario::ContactsSearch => 1.9..=3.1,
        };
        assert!(
            expected.contains(&statements),
            "{}: {statements} statements per request",
            cell.scenario
        );
        // Around the server: the engine's threads, and the throwaway cluster's processes (the
        // database does work in the scenarios that query it); no container outside compose.
        assert!(run.engine_cpu_seconds.unwrap() > 0.0);
        let database = run.database_cpu_seconds.unwrap();
        if cell.scenario == Scenario::Contact {
            assert!(database > 0.0, "contact: no database CPU time");
        }
        assert_eq!(run.engine_container_cpu_seconds, None);
    }
    assert!(results.machine.postgres_version.is_some());
    assert!(results.containers.is_none() && server.record.container.is_none());

    let report = std::fs::read_to_string(directory.join("report.md")).unwrap();
    assert!(report.contains("## Servers") && report.contains("| server | req/s |"));
    assert!(report.contains("## CPU per 1,000 answers") && !report.contains("## Containers"));
    for kind in ["throughput", "latency", "cpu", "memory"] {
        assert_svg(&directory.join(format!("{kind}-c8.svg")));
        assert!(report.contains(&format!("{kind}-c8.svg")));
    }

    // The report renders again from results.json alone, to the same text, and a run compared
    // with itself changed nowhere.
    assert_eq!(render_report_again(directory), report);
    let output = bakeoff()
        .arg("compare")
        .arg(directory)
        .arg(directory)
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("0 of 6 cells changed (Mann-Whitney rank test"),
        "{text}"
    );

    // Every round keeps its series: one interval per 100 ms of its half of the 1 s cell.
    for cell in &server.cells {
        assert_eq!(cell.runs.len(), 2, "{}: one run per round", cell.scenario);
        for run in &cell.runs {
            let series = run.series.as_ref().unwrap();
            assert_eq!((series.interval_ms, series.intervals.len()), (100, 5));
        }
    }
    assert!(report.contains("timeline-types-c8.svg"));
}
