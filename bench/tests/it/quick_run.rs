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

    let mut old: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(directory.join("results.json")).unwrap())
            .unwrap();
    // A version 3 file (one block per cell, before rounds) is still read and rendered, and
    // ranks no server.
    old["format_version"] = 3.into();
    for server in old["servers"].as_array_mut().unwrap() {
        let server = server.as_object_mut().unwrap();
        server.remove("efficiency_cells");
        server.remove("group");
        for cell in server["cells"].as_array_mut().unwrap() {
            for run in cell["runs"].as_array_mut().unwrap() {
                for field in ["group", "round", "sequence"] {
                    run.as_object_mut().unwrap().remove(field);
                }
            }
        }
    }
    old.as_object_mut().unwrap().remove("rounds");
    old.as_object_mut().unwrap().remove("groups");
    let settings = old["settings"].as_object_mut().unwrap();
    for field in ["rounds", "cell_warmup_seconds", "efficiency_seconds"] {
        settings.remove(field);
    }
    let version_3 = tempfile::tempdir().unwrap();
    std::fs::write(
        version_3.path().join("results.json"),
        serde_json::to_string(&old).unwrap(),
    )
    .unwrap();
    std::fs::write(version_3.path().join("report.md"), "").unwrap();
    let version_3_report = render_report_again(version_3.path());
    assert!(
        version_3_report.contains("**Rounds:** none (a file from before rounds"),
        "{version_3_report}"
    );

    // A version 2 file (before series and fault cells) is still read and rendered.
    old["format_version"] = 2.into();
    for server in old["servers"].as_array_mut().unwrap() {
        for cell in server["cells"].as_array_mut().unwrap() {
            for run in cell["runs"].as_array_mut().unwrap() {
                run.as_object_mut().unwrap().remove("series");
            }
        }
    }
    let version_2 = tempfile::tempdir().unwrap();
    std::fs::write(
        version_2.path().join("results.json"),
        serde_json::to_string(&old).unwrap(),
    )
    .unwrap();
    std::fs::write(version_2.path().join("report.md"), "").unwrap();
    assert!(render_report_again(version_2.path()).contains("## Throughput at 8 connections"));

    // A version 1 file (before configurations existed) is still read and rendered.
    old["format_version"] = 1.into();
    let settings = old["settings"].as_object_mut().unwrap();
    settings.remove("dimensions");
    settings.insert("workers".into(), 1.into());
    settings.insert("db_pool_size".into(), 4.into());
    for server in old["servers"].as_array_mut().unwrap() {
        let server = server.as_object_mut().unwrap();
        for field in ["label", "configuration", "effective", "notes"] {
            server.remove(field);
        }
    }
    let old_directory = tempfile::tempdir().unwrap();
    std::fs::write(
        old_directory.path().join("results.json"),
        serde_json::to_string(&old).unwrap(),
    )
    .unwrap();
    std::fs::write(old_directory.path().join("report.md"), "").unwrap();
    let old_report = render_report_again(old_directory.path());
    assert!(
        old_report.contains("WORKERS=1 and DB_POOL_SIZE=4 for every variant"),
        "{old_report}"
    );
    // A version this bakeoff does not know is refused with a clear message.
    old["format_version"] = 99.into();
    std::fs::write(
        old_directory.path().join("results.json"),
        serde_json::to_string(&old).unwrap(),
    )
    .unwrap();
    let refused = bakeoff()
        .arg("report")
        .arg(old_directory.path())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("format version 99, this bakeoff reads versions 1 to 4"),
        "{message}"
    );
}
