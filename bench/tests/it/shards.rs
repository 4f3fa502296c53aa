//! Load from several processes, merged exactly: three `bakeoff load` shards, each a process of
//! the built binary, load one real variant's `/version` together in two rounds (one wall-clock
//! start, a third of the connections each), and `bakeoff merge` makes one run of them. Each
//! round's merged totals must be the shards' sums, and its percentiles those of one histogram
//! holding every request of every shard in that round, decoded here from the shard files with
//! HdrHistogram itself.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use bakeoff::results::ResultsFile;
use bakeoff::results::run::{Measurement, Percentiles, RunResults};
use bakeoff::results::vocabulary::DatabaseKind;
use bakeoff_testkit::server::{ServerEnvironment, ServerProcess, workspace_binary};
use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;

use crate::support::{bakeoff, built_variant, render_report_again};

/// A shard file's histogram, decoded without bakeoff's code.
fn decode(encoded: &serde_json::Value) -> Histogram<u64> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.as_str().unwrap())
        .unwrap();
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .unwrap()
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn succeeded(output: Output, what: &str) -> Output {
    assert!(
        output.status.success(),
        "{what}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Starts a variant whose `/version` the shards load (no database needed: an address where
/// none listens will do), runs three `bakeoff load` processes against it, one wall-clock start
/// for all, each writing its shard file into `out`.
fn load_three_shards(out: &Path) {
    let variant = built_variant();
    let mut command = Command::new(workspace_binary(&variant, false).unwrap());
    let mut environment = ServerEnvironment::new("postgres://bakeoff@127.0.0.1:1/none");
    environment.log_filter = "off".to_string();
    environment.apply_to(&mut command);
    let server = ServerProcess::spawn(command).unwrap();
    let target = format!("{variant}={}", server.base_url());
    // Late enough for three processes to start on a busy machine.
    let start_at = jiff::Timestamp::now()
        .checked_add(Duration::from_secs(3))
        .unwrap()
        .to_string();
    let children: Vec<_> = (1..=3)
        .map(|index| {
            bakeoff()
                .args(["load", "--target", &target, "--scenarios", "version"])
                .args([
                    "--connections",
                    "6",
                    "--duration",
                    "2s",
                    "--rounds",
                    "2",
                    "--warmup",
                    "500ms",
                ])
                .args(["--gap", "500ms", "--threads", "1", "--start-at", &start_at])
                // A database no shard may need: `/version` draws nothing from one.
                .env("DATABASE_URL", "postgres://bakeoff@127.0.0.1:1/none")
                .arg(format!("--shard={index}/3"))
                .arg("--out")
                .arg(out)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (index, child) in children.into_iter().enumerate() {
        succeeded(
            child.wait_with_output().unwrap(),
            &format!("shard {}", index + 1),
        );
    }
    server.terminate(Duration::from_secs(5)).unwrap();
}

#[test]
fn three_shards_merge_into_the_run_of_all_their_requests() {
    let shards = tempfile::tempdir().unwrap();
    load_three_shards(shards.path());
    let files: Vec<serde_json::Value> = (1..=3)
        .map(|index| read_json(&shards.path().join(format!("shard-{index}-of-3.json"))))
        .collect();

    // A run with a shard missing is not merged.
    let out = tempfile::tempdir().unwrap();
    let incomplete = bakeoff()
        .arg("merge")
        .arg(shards.path().join("shard-1-of-3.json"))
        .arg(shards.path().join("shard-2-of-3.json"))
        .arg("--out")
        .arg(out.path().join("incomplete"))
        .output()
        .unwrap();
    assert!(!incomplete.status.success());
    let message = String::from_utf8_lossy(&incomplete.stderr);
    assert!(message.contains("shard 3 of 3 is missing"), "{message}");

    let merged = out.path().join("merged");
    succeeded(
        bakeoff()
            .arg("merge")
            .arg(shards.path())
            .arg("--out")
            .arg(&merged)
            .output()
            .unwrap(),
        "bakeoff merge",
    );
    let results = RunResults::read(&merged).unwrap();
    assert_eq!(results.servers.len(), 1);
    let cells = &results.servers[0].cells;
    assert_eq!(cells.len(), 1);
    assert_eq!(cells[0].runs.len(), 2);
    assert_eq!(results.settings.rounds, 2);
    assert_eq!(results.settings.database, DatabaseKind::None);
    for (round, run) in cells[0].runs.iter().enumerate() {
        assert_eq!(run.round, Some(round));
        // Every shard's cell of this round.
        let parts: Vec<&serde_json::Value> = files
            .iter()
            .map(|file| {
                let cells = file["cells"].as_array().unwrap();
                assert_eq!(cells.len(), 2);
                cells.iter().find(|cell| cell["round"] == round).unwrap()
            })
            .collect();
        check_round_is_the_shards_sum(run, &parts);
    }

    let report = std::fs::read_to_string(merged.join("report.md")).unwrap();
    assert!(report.contains("## Load shards"), "{report}");
    assert!(report.contains("The busiest shard engine was"), "{report}");
    assert!(report.contains("**Rounds:** 2;"), "{report}");
    assert_eq!(render_report_again(&merged), report);
}

/// One round's merged run against the shards' cells of that round: totals summed, percentiles
/// of all their requests, every shard's part shown, one clock.
fn check_round_is_the_shards_sum(run: &Measurement, cells: &[&serde_json::Value]) {
    let sum = |field: &str| {
        cells
            .iter()
            .map(|cell| cell[field].as_u64().unwrap())
            .sum::<u64>()
    };
    assert!(run.ok > 0);
    assert_eq!(run.ok, sum("ok"));
    assert_eq!(run.responses, sum("responses"));
    assert_eq!(run.checked_bodies, sum("checked_bodies"));
    let errors: u64 = cells
        .iter()
        .flat_map(|cell| cell["errors"].as_object().unwrap().values())
        .map(|count| count.as_u64().unwrap())
        .sum();
    assert_eq!(run.error_count(), errors);
    assert_eq!(errors, 0, "{:?}", run.errors);

    // Percentiles: those of one histogram holding every shard's requests.
    let mut all: Histogram<u64> = Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap();
    for cell in cells {
        for bucket in decode(&cell["latency"]).iter_recorded() {
            all.record_n(bucket.value_iterated_to(), bucket.count_at_value())
                .unwrap();
        }
    }
    assert_eq!(all.len(), run.responses);
    assert_eq!(run.latency_us, Percentiles::of(&all));
    assert_eq!(run.latency_us.p99, all.value_at_quantile(0.99));

    // Every shard's part and engine load, their windows begun together.
    assert_eq!(run.shards.len(), 3);
    for (index, shard) in run.shards.iter().enumerate() {
        assert_eq!(shard.shard.index, index + 1);
        assert_eq!(shard.connections, 2);
        assert!(shard.engine_busy_percent.is_some_and(|busy| busy > 0.0));
        assert!(
            (0.0..500.0).contains(&shard.start_offset_ms),
            "shard {} began {} ms after the first",
            shard.shard,
            shard.start_offset_ms
        );
    }
    // The merged series counts every answer once, on one clock.
    let series = run.series.as_ref().unwrap();
    assert_eq!(series.interval_ms, 100);
    assert_eq!(series.intervals.iter().map(|i| i.ok).sum::<u64>(), run.ok);
}
