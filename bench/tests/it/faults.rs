//! Every fault against one real variant under load (`bakeoff run --fault`), and the bad input
//! that must be refused before anything starts.

use bakeoff::results::ResultsFile;
use bakeoff::results::recovery::Reference;
use bakeoff::results::run::{RunResults, Stage};
use bakeoff::results::vocabulary::FaultKind;

use crate::support::{assert_svg, bakeoff, built_variant, run_bakeoff};

/// The contract: a server serves again within 2 s of the database's return.
const RECOVERY_SECONDS: f64 = 2.0;

#[test]
fn every_fault_is_ridden_out_without_a_failed_request() {
    let variant = built_variant();
    // Three seconds away: longer than the servers' DB_WAIT_TIMEOUT_MS (2 s), so the outage shows
    // as 503s and not only as slow answers.
    let (_out, directory) = run_bakeoff(&[
        "run",
        "--debug",
        "--variants",
        &variant,
        "--scenarios",
        "types",
        "--connections",
        "8",
        "--duration",
        "6s",
        "--warmup",
        "500ms",
        "--rounds",
        "2",
        "--no-efficiency",
        "--fault",
        "db-restart:at=1s,for=3s",
        "--fault",
        "db-stall:at=1s,for=3s",
        "--fault",
        "backend-kill:at=1s,for=1s",
    ]);
    let results = RunResults::read(&directory).unwrap();
    let server = &results.servers[0];
    assert!(
        server.record.skipped.is_none(),
        "{:?}",
        server.record.skipped
    );
    // The normal cell stays apart and clean.
    assert_eq!(server.cells.len(), 1);
    assert!(server.cells[0].fault.is_none());
    assert_eq!(server.cells[0].median().unwrap().error_count(), 0);
    assert_eq!(server.fault_cells.len(), 3);
    // The fault cells ran in two rounds of their own, every fault once per round.
    assert_eq!(results.settings.fault_rounds, 2);
    let fault_rounds: Vec<_> = results
        .rounds
        .iter()
        .filter(|round| round.stage == Stage::Fault)
        .collect();
    assert_eq!(fault_rounds.len(), 2);
    for round in &fault_rounds {
        let mut kinds: Vec<_> = round.order.iter().filter_map(|cell| cell.fault).collect();
        kinds.sort();
        assert_eq!(
            kinds,
            [
                FaultKind::DbRestart,
                FaultKind::DbStall,
                FaultKind::BackendKill
            ]
        );
    }
    for cell in &server.fault_cells {
        assert_eq!(cell.runs.len(), 2);
        assert_eq!(cell.recovery.as_ref().unwrap().rounds, 2);
        let fault = cell.fault.as_ref().unwrap();
        let kind = fault.kind;
        for run in &cell.runs {
            let figures = &run.fault.as_ref().unwrap().figures;
            // Judged against the lower of the level before and the reference cell measured
            // after it; at most one request per connection was waiting when the database
            // returned, and all were answered within the servers' 2 s wait for a connection.
            let after = figures.reference_ok_per_second.unwrap();
            let lower = after.min(figures.before_ok_per_second);
            // The level is kept per interval and converted back: equal up to rounding.
            assert!(
                lower > 0.0 && (figures.level() - lower).abs() <= lower * 1e-9,
                "{kind}: {figures:?}"
            );
            let from_after = figures.reference == Reference::CellAfter;
            assert_eq!(from_after, after < figures.before_ok_per_second, "{kind}");
            let backlog = figures.backlog.unwrap();
            assert!(backlog <= 8, "{kind}: {backlog} waiting");
            if kind != FaultKind::BackendKill {
                assert!(backlog > 0, "{kind}: nothing was waiting");
            }
            let drained = figures.drained_after_seconds.unwrap();
            assert!(
                drained <= RECOVERY_SECONDS + 0.5,
                "{kind}: drained in {drained} s"
            );
        }
        let figures = &fault.figures;
        assert_eq!(figures.failed, 0, "{kind}: {:?}", figures.failed_by_kind);
        // The contract's bound is on serving again (the first 2xx). Getting back to 90 % of the
        // reference is a figure of the benchmark, not of the contract: on a 2-CPU machine with
        // a debug server and another test beside it, two rounds are too few to assert on; the
        // throughput at the end of the cell is checked against half the level before below.
        let first_ok = figures.first_ok_after_seconds;
        assert!(
            first_ok.is_some_and(|seconds| seconds <= RECOVERY_SECONDS),
            "{kind}: first 2xx after {first_ok:?}"
        );
        assert!(
            (0.9..1.3).contains(&fault.started_seconds),
            "{kind}: {fault:?}"
        );
        let series = cell.median().unwrap().series.as_ref().unwrap();
        let interval = series.interval_ms as f64 / 1_000.0;
        let during = |index: usize| {
            let start = series.start_seconds(index);
            start >= fault.started_seconds && start + interval <= fault.returned_seconds
        };
        if matches!(kind, FaultKind::DbRestart | FaultKind::DbStall) {
            // Away for 3 s: no 2xx in the middle of it, and 503s once the servers' wait ran out.
            let middle = series.intervals.iter().enumerate().filter(|(index, _)| {
                *index >= 5 && during(*index) && during(index + 5) && during(index - 5)
            });
            assert!(middle.clone().all(|(_, i)| i.ok == 0), "{kind}: {series:?}");
            let unavailable: u64 = (0..series.intervals.len())
                .filter(|&index| during(index))
                .map(|index| series.intervals[index].unavailable)
                .sum();
            assert!(unavailable > 0, "{kind}: no 503 during the fault");
            assert!(figures.unavailable >= unavailable);
            assert!(figures.longest_ms >= 1_900.0, "{kind}: {figures:?}");
        }
        // The last second is back near the level before the fault, in at least one of the two
        // rounds: a server that stayed degraded (a pool that lost its connections) is slow in
        // both, while a slow second of the machine (other tests beside this one on 2 CPUs have
        // halved a second's throughput) falls on one round only.
        let ends: Vec<(f64, f64)> = cell
            .runs
            .iter()
            .map(|run| {
                let series = run.series.as_ref().unwrap();
                let per_second = (1_000 / series.interval_ms) as usize;
                let last_second: u64 = series
                    .intervals
                    .iter()
                    .rev()
                    .take(per_second)
                    .map(|i| i.ok)
                    .sum();
                let before = run.fault.as_ref().unwrap().figures.before_ok_per_second;
                (last_second as f64, before)
            })
            .collect();
        assert!(
            ends.iter().any(|&(end, before)| end >= 0.5 * before),
            "{kind}: (req/s in the last second, req/s before) per round: {ends:?}"
        );
    }
    // The PostgreSQL the run restarted and paused served the server to the end: it exited
    // cleanly, and the report has the faults' tables and timelines.
    assert!(server.record.shutdown.as_ref().unwrap().clean);
    let report = std::fs::read_to_string(directory.join("report.md")).unwrap();
    assert!(report.contains("## Faults"), "{report}");
    assert!(report.contains("in 2 rounds interleaved"), "{report}");
    for kind in ["db-restart", "db-stall", "backend-kill"] {
        assert!(report.contains(&format!("### {kind}: types")), "{report}");
        assert_svg(&directory.join(format!("timeline-{kind}-types-c8.svg")));
    }
    assert_svg(&directory.join("timeline-types-c8.svg"));
}

#[test]
fn bad_faults_are_refused_before_anything_starts() {
    for (arguments, message) in [
        (
            vec!["--fault", "db-melt"],
            "unknown fault \"db-melt\"; the faults are db-restart, db-stall, backend-kill",
        ),
        (
            vec!["--fault", "db-restart:at=3s,for=4s", "--duration", "8s"],
            "longer than --duration 8 s",
        ),
        (
            vec!["--fault-rounds", "3"],
            "--fault-rounds sets the rounds of the fault cells: add --fault",
        ),
        (
            vec!["--fault", "db-stall", "--fault-rounds", "0"],
            "--fault-rounds must be from 1 to 100",
        ),
        (
            vec![
                "--fault",
                "db-stall",
                "--database-url",
                "postgres://nobody@127.0.0.1:1/none",
            ],
            "not an external database (DATABASE_URL)",
        ),
    ] {
        let output = bakeoff()
            .args(["run", "--debug", "--out", "/nonexistent/never-written"])
            .args(&arguments)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{arguments:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{arguments:?}: {stderr}");
        // Refused before a database was started or seeded.
        assert!(!stderr.contains("starting a throwaway"), "{stderr}");
    }
}
