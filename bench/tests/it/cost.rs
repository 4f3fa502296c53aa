//! `bakeoff cost` over one real variant, counted in two server processes (`--starts 2`): the
//! instructions per request of one scenario agree within 1 % between them, `bakeoff compare`
//! says so of the two counts written as two cost files, and the report and chart are written
//! and render again.

use bakeoff::results::ResultsFile;
use bakeoff::results::cost::CostResults;
use bakeoff::results::vocabulary::{Component, Scenario};
use bakeoff_testkit::server::workspace_binary;

use crate::support::{assert_svg, bakeoff, render_report_again, run_bakeoff};

/// The variant counted: pooled checkout on single-threaded event loops, whose count is the
/// steadiest of the four (a variant with more threads spins and allocates a little differently
/// from one process to the next; the docs measure every variant).
const VARIANT: &str = "actix-deadpool";

#[test]
fn two_server_processes_count_the_same_instructions_per_request_within_one_percent() {
    workspace_binary(VARIANT, false).unwrap();
    let (_out, directory) = run_bakeoff(&[
        "cost",
        "--debug",
        "--variants",
        VARIANT,
        "--scenarios",
        "types",
        "--requests",
        "100",
        "--warmup",
        "20",
        "--starts",
        "2",
        "--contacts",
        "200",
    ]);
    let results = CostResults::read(&directory).unwrap();
    assert_eq!(results.servers.len(), 1);
    let server = &results.servers[0];
    assert!(
        server.record.verification.passed,
        "{:?}",
        server.record.verification.failures
    );
    assert_eq!(server.cells.len(), 1, "{:?}", server.record);
    let cell = &server.cells[0];
    assert_eq!(cell.scenario, Scenario::Types);
    assert_eq!(cell.batches.len(), 2);
    for batch in &cell.batches {
        assert_eq!((batch.requests, batch.ok, batch.failed()), (100, 100, 0));
        assert_eq!(batch.counts.processes, 1);
        // A request reads and writes its socket at least once each.
        assert!(batch.system_calls_per_request() >= 2.0, "{batch:?}");
        // Every instruction is in some component, and a debug build runs its own crate.
        let split: u64 = batch.counts.components.values().sum();
        assert_eq!(split, batch.counts.instructions);
        assert!(batch.counts.components[&Component::Server] > 0);
    }
    // One statement per /types, as the contract says.
    let database = cell.database.unwrap();
    assert!((database.statements - 1.0).abs() < 1e-9, "{database:?}");

    let counts = cell.per_start();
    // A request of a debug build runs tens of thousands of instructions at least.
    assert!(counts[0] > 20_000.0, "{counts:?}");
    let percent = (counts[1] - counts[0]).abs() / counts[0] * 100.0;
    assert!(percent <= 1.0, "{counts:?}: {percent:.2} % apart");

    // Each start as a cost file of its own, compared.
    let files = tempfile::tempdir().unwrap();
    for start in [1, 2] {
        let mut one = results.clone();
        one.servers[0].cells[0]
            .batches
            .retain(|batch| batch.start == start);
        let folder = files.path().join(format!("start{start}"));
        std::fs::create_dir(&folder).unwrap();
        one.write(&folder).unwrap();
    }
    let output = bakeoff()
        .arg("compare")
        .arg(files.path().join("start1"))
        .arg(files.path().join("start2"))
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("0 of 1 cells changed by more than 1 %"),
        "{text}"
    );

    let report = std::fs::read_to_string(directory.join("report.md")).unwrap();
    assert!(report.contains(&format!("| {VARIANT} |")), "{report}");
    assert!(report.contains("cost-split.svg"));
    assert_svg(&directory.join("cost-split.svg"));
    assert_eq!(render_report_again(&directory), report);
}
