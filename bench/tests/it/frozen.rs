//! Old results files, real ones: `bench/tests/frozen/` keeps a `results.json`,
//! `concurrency.json` and `cost.json` of every format version this bakeoff still reads, each
//! written by the commit that wrote that version and never edited (see its README). Each is
//! rendered by this build's `bakeoff report`, and the report must show figures read by hand from
//! the file; every field of the file must survive reading it; every version the readers accept
//! must have a folder; and a version above the newest is refused.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use bakeoff::results::ResultsFile;
use bakeoff::results::cost::CostResults;
use bakeoff::results::run::RunResults;
use bakeoff::results::study::StudyResults;
use serde::Serialize;
use serde_json::Value;

use crate::support::{assert_svg, bakeoff};

/// A frozen results folder and what its report must show.
struct Frozen {
    /// The folder under `bench/tests/frozen/`: `<kind>-v<format version>`.
    folder: &'static str,
    /// Text the rendered `report.md` must contain: the servers' names and figures as the report
    /// formats them, each read by hand from the frozen file (not computed from it here).
    report: &'static [&'static str],
    /// Charts the report must draw from the file's figures (a timeline needs the series).
    charts: &'static [&'static str],
    /// Fields of the file (`/`-separated paths, `[]` for an array's elements) that reading it
    /// does not keep where they were, with where their content went: any other field lost on
    /// reading is a field the reader no longer knows (renamed or moved without an alias).
    moved: &'static [&'static str],
}

const FROZEN: &[Frozen] = &[
    Frozen {
        folder: "run-v1",
        report: &[
            // Version 1 set WORKERS and DB_POOL_SIZE for the whole run (settings.workers,
            // settings.db_pool_size).
            "WORKERS=1 and DB_POOL_SIZE=4 for every variant",
            "2 run(s) per cell one after another",
            "| axum-tokio-postgres | variant |",
            "passed (87 checks)",
            // The median of two repeats is the upper one: version 42,696 and 42,659, types
            // 20,620 and 13,296 ...
            "| axum-tokio-postgres | 42,696 | 20,620 |",
            // ... and types 1,166 then 5,620.
            "| threaded-blocking | 10,492 | 5,620 |",
            // version p50, p90, p99 (605, 4,571 and 9,095 µs) of the median run.
            "| 0.60 | 4.57 | 9.10 |",
        ],
        charts: &["throughput-c64.svg", "latency-c64.svg"],
        moved: &[],
    },
    Frozen {
        folder: "run-v2",
        report: &[
            // Two configurations (--db-pool-size 2,4), each server's own from its record.
            "| axum-tokio-postgres (pool 2) | variant | 1 | 2 | fast | passed (105 checks) |",
            "| threaded-blocking (pool 4) | variant | 3 | 4 | fast | passed (105 checks) |",
            "| axum-tokio-postgres (pool 2) | 29,936 | 14,220 |",
            "| axum-tokio-postgres (pool 4) | 32,566 | 14,161 |",
            "| threaded-blocking (pool 2) | 8,139 | 10,721 |",
            "| threaded-blocking (pool 4) | 7,289 | 6,692 |",
        ],
        charts: &["throughput-c64.svg"],
        moved: &[],
    },
    Frozen {
        folder: "run-v3",
        report: &[
            "**Rounds:** none (a file from before rounds",
            "| axum-tokio-postgres | 38,308 | 17,818 |",
            // 9,068.86 and 7,831.43 req/s.
            "| threaded-blocking | 9,069 | 7,831 |",
            // The db-restart fault cell of types: 1,253.375 ms longest, the first 2xx 0.5817 s
            // after the database returned; 8,928.9 req/s before the fault.
            "### db-restart: types",
            "| threaded-blocking | 1 | 0 | 0 | 0 | 1,253 | 0.58 | - |",
            "| threaded-blocking | 8,929 |",
        ],
        charts: &[
            "timeline-types-c64.svg",
            "timeline-db-restart-types-c64.svg",
        ],
        moved: &[],
    },
    Frozen {
        folder: "run-v4",
        report: &[
            "**Rounds:** 2;",
            // Medians of two rounds (32,956.5 and 30,183; 16,264 and 11,268), ranked.
            "| axum-tokio-postgres | **32,957** | **16,264** |",
            "| threaded-blocking | 8,219 | 9,136 |",
            // The efficiency cells of types at 4,568 req/s (half of 9,135.5).
            "| axum-tokio-postgres | 4,568 | 4,570 |",
            "| threaded-blocking | 4,568 | 4,551 |",
            // The fault round of types against its reference cell: 15,353.3 before, 24,390.5
            // after, the lower the level, 64 requests waiting.
            "| axum-tokio-postgres | 15,353 | 24,391 | 1.59 | 15,353 | 64 |",
        ],
        charts: &[
            "timeline-types-c64.svg",
            "timeline-db-restart-types-c64.svg",
        ],
        moved: &[],
    },
    Frozen {
        folder: "concurrency-v1",
        report: &[
            "WORKERS: each variant's default",
            // Calibration: workers 2 and 5 (each server's `workers`), threads at start, RSS
            // (9,961,472 bytes), the mean of 10 calls (11.64 ms).
            "| axum-tokio-postgres | 2 | 3 | 9.5 | 11.64 |",
            "| threaded-blocking | 5 | 15 | 14.1 | 9.97 |",
            "| threaded-blocking | 5 | 0 | 1 | >= 4 | >= 4 |",
            // sync-cpubound at N = 4: 0.4289 and 0.3762 s, against T = 0.1 s and the waves of
            // both servers' workers.
            "| 4 | 0.429 | 0.376 | 0.100 | 0.200 | 0.100 | 0.200 |",
        ],
        charts: &["burst-sync-cpubound.svg"],
        // Version 1 kept the workers a server reported beside its record; they are read into
        // the record's `effective`, with the rest of its /test/resmon answer (`idle`).
        moved: &["/servers[]/workers"],
    },
    Frozen {
        folder: "concurrency-v2",
        report: &[
            "| axum-tokio-postgres | 2 | 3 | 9.9 | 10.04 |",
            "| threaded-blocking | 5 | 15 | 14.4 | 13.04 |",
            "| axum-tokio-postgres | 2 | 0 | 1 | >= 4 | 2 |",
            "| 4 | 0.890 | 0.310 | 0.100 | 0.200 | 0.100 | 0.200 |",
        ],
        charts: &["burst-sync-cpubound.svg"],
        moved: &[],
    },
    Frozen {
        folder: "concurrency-v3",
        report: &[
            "2 burst(s) per point, median kept",
            "| axum-tokio-postgres | 2 | 3 | 9.7 | 9.68 |",
            "| threaded-blocking | 5 | 15 | 14.8 | 8.90 |",
            "| threaded-blocking | 5 | 1 | 1 | >= 4 | >= 4 |",
            "| 4 | 0.535 | 0.486 | 0.100 | 0.200 | 0.100 | 0.200 |",
        ],
        charts: &["burst-sync-cpubound.svg"],
        moved: &[],
    },
    Frozen {
        folder: "cost-v1",
        report: &[
            "in each of 2 start(s)",
            // Instructions of the two starts' batches of 200 requests: version 3,027,838 and
            // 3,020,035, types 7,191,602 and 7,189,043 ...
            "| axum-tokio-postgres | 15,120 (±0.13 %) | 35,952 (±0.02 %) |",
            // ... version 5,339,368 and 5,334,530, types 7,770,211 and 7,800,614.
            "| threaded-blocking | 26,685 (±0.05 %) | 38,927 (±0.20 %) |",
        ],
        charts: &["cost-split.svg"],
        moved: &[],
    },
];

fn frozen_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/frozen")
}

/// A copy of a frozen folder in a new temporary folder: the report writes into its directory.
fn copy_of(folder: &str) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(frozen_root().join(folder)).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, copy.path().join(path.file_name().unwrap())).unwrap();
    }
    copy
}

/// The one JSON file of a frozen folder.
fn json_file(folder: &str) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(frozen_root().join(folder))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "json")
        })
        .collect();
    assert_eq!(files.len(), 1, "{folder}: {files:?}");
    files.into_iter().next().unwrap()
}

#[test]
fn every_frozen_results_file_renders_with_the_figures_it_holds() {
    let mut failures = Vec::new();
    for frozen in FROZEN {
        let copy = copy_of(frozen.folder);
        let output = bakeoff().arg("report").arg(copy.path()).output().unwrap();
        if !output.status.success() {
            failures.push(format!(
                "{}: bakeoff report: {}\n{}",
                frozen.folder,
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
            continue;
        }
        let report = std::fs::read_to_string(copy.path().join("report.md")).unwrap();
        for expected in frozen.report {
            if !report.contains(expected) {
                failures.push(format!("{}: report.md lacks {expected:?}", frozen.folder));
            }
        }
        for chart in frozen.charts {
            assert_svg(&copy.path().join(chart));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every path of a JSON document that holds something: null and empty arrays and objects are
/// what an absent optional field reads and writes as.
fn paths(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let path = format!("{prefix}/{key}");
                if !is_empty(child) {
                    out.insert(path.clone());
                }
                paths(child, &path, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                paths(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

/// The fields of the file at `path` that reading it as `T` and writing it again loses.
fn lost_on_reading<T: ResultsFile + Serialize>(path: &Path) -> BTreeSet<String> {
    let original: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let read = serde_json::to_value(T::read(path).unwrap()).unwrap();
    let (mut before, mut after) = (BTreeSet::new(), BTreeSet::new());
    paths(&original, "", &mut before);
    paths(&read, "", &mut after);
    before.difference(&after).cloned().collect()
}

#[test]
fn no_field_of_a_frozen_file_is_lost_on_reading() {
    let mut failures = Vec::new();
    for frozen in FROZEN {
        let path = json_file(frozen.folder);
        let lost = match path.file_name().unwrap().to_str().unwrap() {
            "results.json" => lost_on_reading::<RunResults>(&path),
            "concurrency.json" => lost_on_reading::<StudyResults>(&path),
            "cost.json" => lost_on_reading::<CostResults>(&path),
            other => panic!("{}: unknown results file {other}", frozen.folder),
        };
        let moved: BTreeSet<String> = frozen.moved.iter().map(|p| p.to_string()).collect();
        if lost != moved {
            failures.push(format!(
                "{}: lost on reading {lost:?}, expected only {moved:?}",
                frozen.folder
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every format version from the oldest read to the newest written has its frozen folder, and
/// there is no folder of a version no longer read: a version added or dropped without its real
/// file fails here.
#[test]
fn every_readable_format_version_has_a_frozen_file() {
    let mut expected = BTreeSet::new();
    for (kind, oldest, newest) in [
        (
            "run",
            RunResults::OLDEST_FORMAT_VERSION,
            RunResults::FORMAT_VERSION,
        ),
        (
            "concurrency",
            StudyResults::OLDEST_FORMAT_VERSION,
            StudyResults::FORMAT_VERSION,
        ),
        (
            "cost",
            CostResults::OLDEST_FORMAT_VERSION,
            CostResults::FORMAT_VERSION,
        ),
    ] {
        for version in oldest..=newest {
            expected.insert(format!("{kind}-v{version}"));
        }
    }
    let tested: BTreeSet<String> = FROZEN.iter().map(|f| f.folder.to_string()).collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(frozen_root())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .map(|path| path.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    assert_eq!(tested, expected, "the table of frozen.rs");
    assert_eq!(on_disk, expected, "the folders of bench/tests/frozen");
    // Each file is of the version its folder names.
    for frozen in FROZEN {
        let file: Value =
            serde_json::from_str(&std::fs::read_to_string(json_file(frozen.folder)).unwrap())
                .unwrap();
        let version = file["format_version"].as_u64().unwrap();
        assert!(
            frozen.folder.ends_with(&format!("-v{version}")),
            "{} holds format version {version}",
            frozen.folder
        );
    }
}

/// A file of a version newer than this bakeoff writes is refused with a message naming the
/// versions it reads, rather than read wrong: the newest frozen file of each kind, its version
/// raised by one.
#[test]
fn a_results_file_of_a_newer_format_version_is_refused() {
    for (folder, newer, message) in [
        (
            "run-v4",
            5,
            "has format version 5, this bakeoff reads versions 1 to 4",
        ),
        (
            "concurrency-v3",
            4,
            "has format version 4, this bakeoff reads versions 1 to 3",
        ),
        (
            "cost-v1",
            2,
            "has format version 2, this bakeoff reads versions 1 to 1",
        ),
    ] {
        let copy = copy_of(folder);
        let path = copy.path().join(json_file(folder).file_name().unwrap());
        let mut file: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        file["format_version"] = newer.into();
        std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
        let output = bakeoff().arg("report").arg(copy.path()).output().unwrap();
        assert!(!output.status.success(), "{folder}: version {newer} read");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{folder}: {stderr}");
        assert!(!copy.path().join("report.md").exists(), "{folder}");
    }
}
