//! `bakeoff run` over two real variants in interleaved rounds: every cell is measured once per
//! round, the rounds and the order they ran in are recorded, the servers' runs carry their round
//! and place in that order, the speed reference is timed before every round, and the efficiency
//! cells load both servers at one rate.

use std::collections::BTreeSet;

use bakeoff::results::ResultsFile;
use bakeoff::results::run::{RunResults, Stage};
use bakeoff::results::vocabulary::{Scenario, Variant};
use bakeoff_testkit::server::workspace_binary;

use crate::support::run_bakeoff;

/// Two variants whose debug binaries are built.
fn two_variants() -> Vec<String> {
    let built: Vec<String> = Variant::all()
        .iter()
        .map(|variant| variant.name())
        .filter(|name| workspace_binary(name, false).is_ok())
        .take(2)
        .collect();
    assert_eq!(built.len(), 2, "two variants' debug binaries must be built");
    built
}

#[test]
fn a_run_records_every_round_and_the_order_it_ran_in() {
    let variants = two_variants().join(",");
    let (_out, directory) = run_bakeoff(&[
        "run",
        "--debug",
        "--variants",
        &variants,
        "--scenarios",
        "version,types",
        "--rounds",
        "3",
        "--duration",
        "900ms",
        "--warmup",
        "300ms",
        "--connections",
        "4",
    ]);
    let results = RunResults::read(&directory).unwrap();
    assert_eq!(results.settings.rounds, 3);
    assert_eq!(results.servers.len(), 2);
    // Both in one group, measured together.
    assert_eq!(results.groups.len(), 1);
    assert_eq!(results.groups[0].len(), 2);

    // Three closed-loop rounds, each with the four cells (2 servers x 2 scenarios) once, the
    // servers of a scenario one after the other; then (at most) three efficiency rounds.
    let closed: Vec<_> = results
        .rounds
        .iter()
        .filter(|round| round.stage == Stage::ClosedLoop)
        .collect();
    assert_eq!(closed.len(), 3);
    for (index, round) in closed.iter().enumerate() {
        assert_eq!(round.round, index);
        assert_eq!(round.order.len(), 4, "{:?}", round.order);
        assert!(round.reference_ms.is_some_and(|ms| ms > 0.0));
        let cells: BTreeSet<(String, Scenario)> = round
            .order
            .iter()
            .map(|cell| (cell.server.clone(), cell.scenario))
            .collect();
        assert_eq!(cells.len(), 4, "every cell once");
        assert_eq!(round.order[0].scenario, round.order[1].scenario);
        assert_eq!(round.order[2].scenario, round.order[3].scenario);
    }
    let efficiency = results
        .rounds
        .iter()
        .filter(|round| round.stage == Stage::Efficiency)
        .count();
    assert_eq!(efficiency, 3);

    // Every cell has one run per round; the runs' places in the order are those of the rounds'
    // records, and all twelve places are taken once.
    let mut places = BTreeSet::new();
    for server in &results.servers {
        assert_eq!(server.record.skipped, None);
        assert_eq!(server.cells.len(), 2);
        for cell in &server.cells {
            let rounds: Vec<usize> = cell.runs.iter().map(|run| run.round.unwrap()).collect();
            assert_eq!(rounds, vec![0, 1, 2], "{}", cell.scenario);
            assert!(cell.summary.interval.is_some());
            for run in &cell.runs {
                assert!(run.ok > 0);
                let sequence = run.sequence.unwrap();
                assert!(places.insert(sequence), "place {sequence} taken twice");
                let round = &closed[run.round.unwrap()];
                let position = sequence - 4 * run.round.unwrap();
                let recorded = &round.order[position];
                assert_eq!(
                    (recorded.server.as_str(), recorded.scenario),
                    (server.record.label.as_str(), cell.scenario)
                );
            }
        }
    }
    assert_eq!(places, (0..12).collect());

    // The efficiency cells: both servers at the same rate per scenario, half of the slower one's
    // closed-loop median, each with its CPU per request.
    for scenario in [Scenario::Version, Scenario::Types] {
        let rates: Vec<f64> = results
            .servers
            .iter()
            .map(|server| {
                let cell = server
                    .efficiency_cells
                    .iter()
                    .find(|cell| cell.scenario == scenario)
                    .unwrap();
                assert_eq!(cell.runs.len(), 3);
                assert!(cell.summary.cpu_ms_per_1k.is_some());
                cell.rate.unwrap()
            })
            .collect();
        assert_eq!(rates[0], rates[1]);
        let slowest = results
            .servers
            .iter()
            .map(|server| {
                let cell = server.cells.iter().find(|cell| cell.scenario == scenario);
                let mut rates: Vec<f64> = cell
                    .unwrap()
                    .runs
                    .iter()
                    .map(|run| run.ok_per_second)
                    .collect();
                rates.sort_by(f64::total_cmp);
                rates[1]
            })
            .fold(f64::INFINITY, f64::min);
        assert_eq!(rates[0], (slowest / 2.0).round());
    }

    let report = std::fs::read_to_string(directory.join("report.md")).unwrap();
    assert!(report.contains("**Rounds:** 3"), "{report}");
    assert!(report.contains("**Machine drift:**"), "{report}");
    assert!(report.contains("## Cost at equal load"), "{report}");
}
