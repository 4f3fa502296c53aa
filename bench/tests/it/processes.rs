//! The processes and pooler dimensions end to end: a short `bakeoff run --processes 1,2 --pooler
//! none,pgbouncer,pgbouncer:transaction` over one real variant behind a real PgBouncer, and the
//! bad values refused before anything starts.

use std::time::{Duration, Instant};

use bakeoff::results::ResultsFile;
use bakeoff::results::run::RunResults;
use bakeoff::results::vocabulary::{PoolMode, Pooler};

use crate::support::{assert_svg, bakeoff, built_variant, run_bakeoff};

/// PgBouncers this test's runs started that are still running.
fn leftover_poolers() -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let command = std::fs::read(entry.ok()?.path().join("cmdline")).ok()?;
            let command = String::from_utf8_lossy(&command).replace('\0', " ");
            (command.contains("pgbouncer") && command.contains("bakeoff-pgbouncer-"))
                .then_some(command)
        })
        .collect()
}

#[test]
fn a_run_over_processes_and_poolers_measures_each_and_reports_what_does_not_apply() {
    // The first built variant other than threaded-blocking, which can run unprepared (below).
    let variant = built_variant();
    let variant = if variant == "threaded-blocking" {
        "warp-diesel-async".to_string()
    } else {
        variant
    };
    let (_out, directory) = run_bakeoff(&[
        "run",
        "--debug",
        "--variants",
        &variant,
        "--scenarios",
        "types",
        "--duration",
        "1s",
        "--warmup",
        "500ms",
        "--connections",
        "8",
        "--processes",
        "1,2",
        "--pooler",
        "none,pgbouncer,pgbouncer:transaction",
    ]);
    let results = RunResults::read(&directory).unwrap();
    assert_eq!(results.servers.len(), 6, "2 process counts x 3 poolers");
    for server in &results.servers {
        let record = &server.record;
        let configuration = record.configuration.unwrap();
        let processes = configuration.processes.unwrap().get();
        if configuration.pooler == Pooler::PgBouncer(PoolMode::Transaction) {
            // The variant prepares named statements, which PgBouncer 1.18 cannot keep in
            // transaction mode: reported with the reason, not run, not failed.
            let reason = record.skipped.as_deref().unwrap_or_default();
            assert!(reason.starts_with("not applicable: "), "{reason}");
            assert!(reason.contains("PgBouncer 1.18"), "{reason}");
            assert!(server.cells.is_empty());
            continue;
        }
        assert!(
            record.verification.passed,
            "{}: {:?}",
            record.label, record.verification.failures
        );
        assert!(
            record.shutdown.as_ref().unwrap().clean,
            "{:?}",
            record.shutdown
        );
        assert_eq!(record.effective.as_ref().unwrap().processes, processes);
        let run = server.cells[0].median().unwrap();
        assert!(
            run.ok > 0 && run.error_count() == 0,
            "{}: {:?}",
            record.label,
            run.errors
        );
        let figures = run.server.as_ref().unwrap();
        // The supervisor and its copies, or the one process.
        let expected_processes = if processes == 1 { 1 } else { processes + 1 };
        assert_eq!(
            figures.processes_peak, expected_processes as u64,
            "{}",
            record.label
        );
        // The statement budget still holds, counted at PostgreSQL through the pooler too.
        let statements = figures.statements_per_request.unwrap();
        assert!(
            (0.9..=1.1).contains(&statements),
            "{}: {statements}",
            record.label
        );
        let connections = figures.db_connections_peak.unwrap();
        assert!(connections >= 1, "{}", record.label);
        match configuration.pooler {
            Pooler::None => {
                assert!(record.pooler.is_none());
                assert_eq!(figures.pooler_clients_peak, None);
            }
            Pooler::PgBouncer(mode) => {
                let pooler = record.pooler.as_ref().unwrap();
                assert_eq!(pooler.mode, mode);
                // Session mode: room for every process's pool.
                assert_eq!(pooler.default_pool_size, 4 * processes);
                let clients = figures.pooler_clients_peak.unwrap();
                let held = figures.pooler_server_connections_peak.unwrap();
                assert!(clients >= 1 && held >= 1, "{clients} clients, {held} held");
                assert!(held <= pooler.default_pool_size as u64);
            }
        }
    }
    // Each process has its own pool: two processes hold more connections than one.
    let connections = |processes: usize| {
        results
            .servers
            .iter()
            .find(|server| {
                let configuration = server.record.configuration.unwrap();
                configuration.pooler == Pooler::None
                    && configuration.processes.unwrap().get() == processes
            })
            .and_then(|server| {
                server.cells[0]
                    .median()?
                    .server
                    .as_ref()?
                    .db_connections_peak
            })
            .unwrap()
    };
    assert!(
        connections(2) > connections(1),
        "{} vs {}",
        connections(2),
        connections(1)
    );

    let report = std::fs::read_to_string(directory.join("report.md")).unwrap();
    assert!(report.contains("## Processes and pooler"), "{report}");
    assert!(
        report.contains("| server | processes | pooler | req/s | p99 ms |"),
        "{report}"
    );
    assert!(report.contains("not applicable: "), "{report}");
    assert!(report.contains("pgbouncer session (pool 8)"), "{report}");
    assert_svg(&directory.join("processes-c8.svg"));
    assert!(report.contains("processes-c8.svg"));
    assert!(leftover_poolers().is_empty(), "{:?}", leftover_poolers());
}

#[test]
fn transaction_pooling_caps_the_connections_of_two_processes_at_one_pool() {
    let (_out, directory) = run_bakeoff(&[
        "run",
        "--debug",
        "--variants",
        "threaded-blocking",
        "--scenarios",
        "types",
        "--duration",
        "1s",
        "--warmup",
        "500ms",
        "--connections",
        "16",
        "--processes",
        "2",
        "--pooler",
        "pgbouncer:transaction",
    ]);
    let results = RunResults::read(&directory).unwrap();
    let [server] = results.servers.as_slice() else {
        panic!("one configuration: {:?}", results.servers.len());
    };
    let record = &server.record;
    assert!(
        record.verification.passed,
        "{:?}",
        record.verification.failures
    );
    let pooler = record.pooler.as_ref().unwrap();
    assert_eq!(pooler.mode, PoolMode::Transaction);
    assert_eq!(pooler.default_pool_size, 4);
    assert!(
        pooler
            .statements_setting
            .as_deref()
            .unwrap()
            .starts_with("DB_STATEMENTS=unprepared"),
        "{pooler:?}"
    );
    let run = server.cells[0].median().unwrap();
    assert!(run.ok > 0 && run.error_count() == 0, "{:?}", run.errors);
    let figures = run.server.as_ref().unwrap();
    // Two processes' pools of 4 are 8 clients at the pooler, and PostgreSQL sees one pool.
    assert!(figures.pooler_clients_peak.unwrap() > 4, "{figures:?}");
    assert!(
        figures.pooler_server_connections_peak.unwrap() <= 4,
        "{figures:?}"
    );
    assert!(figures.db_connections_peak.unwrap() <= 4, "{figures:?}");
    let statements = figures.statements_per_request.unwrap();
    assert!((0.9..=1.1).contains(&statements), "{statements}");
    let report = std::fs::read_to_string(directory.join("report.md")).unwrap();
    assert!(
        report.contains("measured, with DB_STATEMENTS=unprepared"),
        "{report}"
    );
}

#[test]
fn bad_process_counts_and_poolers_are_refused_before_anything_starts() {
    let limit = std::thread::available_parallelism().unwrap().get() * 8;
    let too_many = (limit + 1).to_string();
    let cases: [(&[&str], String); 3] = [
        (
            &["--processes", "0"],
            format!("\"0\" is not a process count from 1 to {limit} (CPUs x 8)"),
        ),
        (
            &["--processes", &too_many],
            format!("\"{too_many}\" is not a process count from 1 to {limit} (CPUs x 8)"),
        ),
        (
            &["--pooler", "none,odyssey"],
            "\"odyssey\" is not a pooler: none, pgbouncer:session, pgbouncer:transaction"
                .to_string(),
        ),
    ];
    for (arguments, message) in cases {
        let started = Instant::now();
        let output = bakeoff().arg("run").args(arguments).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{arguments:?} was accepted");
        assert!(stderr.contains(&message), "{arguments:?}: {stderr}");
        // Refused by the flags' parser: no database was started.
        assert!(started.elapsed() < Duration::from_secs(5), "{arguments:?}");
    }
}
