//! Shard files (`shard-K-of-N.json`, written by `bakeoff load`) and their merge into one run's
//! results (`bakeoff merge`).
//!
//! A shard file keeps everything needed to merge exactly: every cell's counts and errors, its
//! engine's CPU time, its latency histograms in HdrHistogram's own lossless encoding (V2 with
//! deflate, as base64, the form of HdrHistogram's interval logs) and its series with each
//! interval's histogram. Merging sums the counts, adds the histograms (so the percentiles are
//! those of every request of every shard, not averages of percentiles) and lays the shards'
//! series on one wall clock; each shard's own engine load stays in the merged run
//! ([`ShardLoad`]), for the report to show.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::engine::{IntervalFigures, Series, new_histogram};
use crate::harness::database::DatabaseKind;
use crate::harness::record::{EffectiveSettings, ServerRecord};
use crate::harness::servers::ServerKind;
use crate::harness::sharding::{CellRun, ShardIndex, ShardPlan, SlotKind};
use crate::machine::Machine;
use crate::placement::Placement;
use crate::results::run::{
    Cell, Measurement, Percentiles, RunResults, ServerResult, Settings, ShardLoad,
};
use crate::scenarios::Scenario;

/// Bumped when the shard file's shape changes; `bakeoff merge` reads only its own version, as
/// the shards of one run are written by one build.
pub const SHARD_FORMAT_VERSION: u32 = 1;

/// One shard's file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardFile {
    pub format_version: u32,
    pub shard: ShardIndex,
    /// Where the shard ran: the node (`NODE_NAME`, set from the pod's spec in Kubernetes) or
    /// the host name.
    pub host: String,
    /// The command line, as typed.
    pub command: String,
    pub started_at: String,
    pub finished_at: String,
    pub machine: Machine,
    /// What every shard of the run must share.
    pub plan: SharedPlan,
    /// This shard's engine threads.
    pub engine_threads: usize,
    pub targets: Vec<ShardTarget>,
    pub cells: Vec<ShardCell>,
}

/// The plan as every shard of a run has it: merging refuses shards whose plans differ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedPlan {
    pub start_at: String,
    pub scenarios: Vec<Scenario>,
    /// Levels, all shards together.
    pub connections: Vec<usize>,
    /// All shards together.
    pub rate: Option<f64>,
    pub duration_seconds: f64,
    pub warmup_seconds: f64,
    pub gap_seconds: f64,
    pub repeat: usize,
    pub timeout_seconds: f64,
    pub check_every: u64,
    pub seed: u64,
    pub statuses_only: bool,
    /// Whether the requests were drawn from a database.
    pub database: bool,
}

impl SharedPlan {
    pub fn of(plan: &ShardPlan) -> SharedPlan {
        SharedPlan {
            start_at: plan.start_at.to_string(),
            scenarios: plan.scenarios.clone(),
            connections: plan.connections.clone(),
            rate: plan.rate,
            duration_seconds: plan.duration.as_secs_f64(),
            warmup_seconds: plan.warmup.as_secs_f64(),
            gap_seconds: plan.gap.as_secs_f64(),
            repeat: plan.repeat,
            timeout_seconds: plan.timeout.as_secs_f64(),
            check_every: plan.check_every,
            seed: plan.seed,
            statuses_only: plan.statuses_only,
            database: plan.database_url.is_some()
                || plan.targets.iter().any(|t| t.database_url.is_some()),
        }
    }
}

/// A server of the plan, as this shard reached it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardTarget {
    pub name: String,
    pub url: String,
    /// What it reported running with (`/test/resmon`), where it has the endpoint.
    pub effective: Option<EffectiveSettings>,
}

/// One recorded cell in one shard.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardCell {
    pub target: String,
    pub scenario: Scenario,
    /// The level, all shards together.
    pub connections: usize,
    pub rate: Option<f64>,
    /// From 0.
    pub repeat: usize,
    /// This shard's part of the level.
    pub shard_connections: usize,
    pub shard_rate: Option<f64>,
    /// When the plan starts the cell, and when this shard's measured window began (RFC 3339).
    pub scheduled_start: String,
    pub window_start: String,
    pub seconds: f64,
    pub ok: u64,
    pub responses: u64,
    pub body_bytes: u64,
    pub checked_bodies: u64,
    pub errors: BTreeMap<String, u64>,
    /// CPU time of this shard's engine threads in the window.
    pub engine_cpu_seconds: f64,
    pub latency: EncodedHistogram,
    pub uncorrected_latency: Option<EncodedHistogram>,
    pub series: Series,
    /// The histogram of each interval of `series` (`None` without answers).
    pub interval_latency: Vec<Option<EncodedHistogram>>,
}

/// A histogram in HdrHistogram's V2 deflate encoding, as base64: lossless, and readable by any
/// HdrHistogram implementation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EncodedHistogram(pub String);

impl EncodedHistogram {
    pub fn encode(histogram: &Histogram<u64>) -> Result<EncodedHistogram> {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(histogram, &mut bytes)
            .map_err(|error| anyhow::anyhow!("encoding a histogram: {error:?}"))?;
        Ok(EncodedHistogram(BASE64.encode(bytes)))
    }

    pub fn decode(&self) -> Result<Histogram<u64>> {
        let bytes = BASE64
            .decode(&self.0)
            .context("a histogram that is not base64")?;
        Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|error| anyhow::anyhow!("decoding a histogram: {error:?}"))
    }
}

impl ShardCell {
    /// The cell of a finished slot.
    pub fn of(run: &CellRun<'_>) -> Result<ShardCell> {
        let SlotKind::Cell { scenario, repeat } = run.slot.kind else {
            bail!("a warm-up is not recorded");
        };
        let outcome = &run.outcome;
        let interval_latency = outcome
            .interval_latency
            .iter()
            .map(|histogram| histogram.as_ref().map(EncodedHistogram::encode).transpose())
            .collect::<Result<Vec<_>>>()?;
        Ok(ShardCell {
            target: run.target.spec.name.clone(),
            scenario,
            connections: run.slot.connections,
            rate: run.level_rate,
            repeat,
            shard_connections: run.connections,
            shard_rate: run.rate,
            scheduled_start: run.slot.start.to_string(),
            window_start: run.window_start.to_string(),
            seconds: outcome.measured.as_secs_f64(),
            ok: outcome.ok,
            responses: outcome.responses,
            body_bytes: outcome.body_bytes,
            checked_bodies: outcome.checked_bodies,
            errors: outcome
                .errors
                .iter()
                .map(|(kind, count)| (kind.name(), *count))
                .collect(),
            engine_cpu_seconds: outcome.engine_cpu.as_secs_f64(),
            latency: EncodedHistogram::encode(&outcome.latency)?,
            uncorrected_latency: outcome
                .uncorrected
                .as_ref()
                .map(EncodedHistogram::encode)
                .transpose()?,
            series: outcome.series.clone(),
            interval_latency,
        })
    }

    /// How busy this shard's engine was in the cell, in percent of its threads' time.
    pub fn engine_busy_percent(&self, engine_threads: usize) -> Option<f64> {
        (self.seconds > 0.0 && engine_threads > 0).then(|| {
            (self.engine_cpu_seconds / (self.seconds * engine_threads as f64) * 100.0).min(100.0)
        })
    }
}

impl ShardFile {
    /// The file's name in its folder: `shard-2-of-3.json`.
    pub fn file_name(&self) -> String {
        format!("{}.json", self.shard.slug())
    }

    /// Writes the file into `directory` (created if needed); returns its path.
    pub fn write(&self, directory: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(directory)
            .with_context(|| format!("creating {}", directory.display()))?;
        let text = serde_json::to_string_pretty(self).context("serializing the shard")?;
        crate::results::write_file(directory, &self.file_name(), text)?;
        Ok(directory.join(self.file_name()))
    }

    pub fn read(path: &Path) -> Result<ShardFile> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        #[derive(Deserialize)]
        struct Versioned {
            format_version: u32,
        }
        let version = serde_json::from_str::<Versioned>(&text)
            .with_context(|| format!("{} is not a bakeoff shard file", path.display()))?
            .format_version;
        anyhow::ensure!(
            version == SHARD_FORMAT_VERSION,
            "{} has shard format version {version}, this bakeoff reads version {SHARD_FORMAT_VERSION}",
            path.display()
        );
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a bakeoff shard file", path.display()))
    }

    /// The shard files given: files as they are, folders for the `shard-*.json` in them.
    pub fn read_all(paths: &[PathBuf]) -> Result<Vec<ShardFile>> {
        let mut files = Vec::new();
        for path in paths {
            if path.is_dir() {
                let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                    .with_context(|| format!("reading {}", path.display()))?
                    .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                    .filter(|file| {
                        file.file_name()
                            .and_then(|name| name.to_str())
                            .is_some_and(|name| {
                                name.starts_with("shard-") && name.ends_with(".json")
                            })
                    })
                    .collect();
                anyhow::ensure!(
                    !found.is_empty(),
                    "{} holds no shard-*.json",
                    path.display()
                );
                found.sort();
                files.extend(found);
            } else {
                files.push(path.clone());
            }
        }
        files.iter().map(|file| ShardFile::read(file)).collect()
    }
}

/// The shards of one run, checked: the same plan and targets, every index once.
fn check_complete(shards: &[ShardFile]) -> Result<()> {
    let Some(first) = shards.first() else {
        bail!("no shard to merge");
    };
    let count = first.shard.count;
    for shard in shards {
        anyhow::ensure!(
            shard.plan == first.plan,
            "shard {} was run with another plan than shard {} (its scenarios, levels, times or \
             start differ): shards of different runs cannot be merged",
            shard.shard,
            first.shard
        );
        let names = |file: &ShardFile| -> Vec<(String, String)> {
            file.targets
                .iter()
                .map(|target| (target.name.clone(), target.url.clone()))
                .collect()
        };
        anyhow::ensure!(
            names(shard) == names(first),
            "shard {} loaded other targets than shard {}",
            shard.shard,
            first.shard
        );
        anyhow::ensure!(
            shard.shard.count == count,
            "shard {} is one of {}, shard {} one of {count}",
            shard.shard,
            shard.shard.count,
            first.shard
        );
    }
    for index in 1..=count {
        match shards.iter().filter(|s| s.shard.index == index).count() {
            1 => {}
            0 => bail!("shard {index} of {count} is missing"),
            n => bail!("shard {index} of {count} is given {n} times"),
        }
    }
    Ok(())
}

/// Merges the shards of one run into the run's results, as `bakeoff report` renders them.
pub fn merge(mut shards: Vec<ShardFile>, merge_command: &str) -> Result<RunResults> {
    check_complete(&shards)?;
    shards.sort_by_key(|shard| shard.shard.index);
    let first = &shards[0];
    let mut servers = Vec::new();
    for target in &first.targets {
        let mut record =
            ServerRecord::new(target.name.clone(), target.name.clone(), ServerKind::Target);
        record.effective = target.effective.clone();
        record.notes.push(format!(
            "loaded at {} by {} shards (bakeoff load), merged",
            target.url,
            shards.len()
        ));
        servers.push(ServerResult {
            record,
            cells: merged_cells(&shards, &target.name)?,
            fault_cells: Vec::new(),
            efficiency_cells: Vec::new(),
            group: None,
        });
    }
    let hosts: Vec<&str> = shards.iter().map(|shard| shard.host.as_str()).collect();
    let effective: Vec<&EffectiveSettings> = first
        .targets
        .iter()
        .filter_map(|t| t.effective.as_ref())
        .collect();
    let common = |value: fn(&EffectiveSettings) -> usize| {
        let values: Vec<usize> = effective.iter().map(|settings| value(settings)).collect();
        (values.len() == first.targets.len() && values.windows(2).all(|pair| pair[0] == pair[1]))
            .then(|| values.first().copied())
            .flatten()
    };
    let plan = &first.plan;
    Ok(RunResults {
        format_version: crate::results::run::FORMAT_VERSION,
        started_at: first.started_at.clone(),
        finished_at: shards
            .iter()
            .map(|shard| shard.finished_at.clone())
            .max()
            .unwrap_or_default(),
        machine: first.machine.clone(),
        settings: Settings {
            command: format!(
                "{} (shard {} of {}; merged by `{merge_command}`)",
                first.command, first.shard.index, first.shard.count
            ),
            scenarios: plan.scenarios.clone(),
            connections: plan.connections.clone(),
            rate: plan.rate,
            duration_seconds: plan.duration_seconds,
            warmup_seconds: plan.warmup_seconds,
            repeat: plan.repeat,
            // The shards' repeats run one after another, not in interleaved rounds.
            rounds: 0,
            cell_warmup_seconds: 0.0,
            efficiency_seconds: None,
            fault_rounds: 0,
            fault_reference_seconds: None,
            quick: false,
            timeout_seconds: plan.timeout_seconds,
            check_every: plan.check_every,
            dimensions: None,
            workers: common(|settings| settings.workers),
            db_pool_size: common(|settings| settings.db_pool_size),
            placement: Placement {
                server_cpus: None,
                engine_cpus: None,
                engine_threads: first.engine_threads,
                note: format!(
                    "load from {} shards (bakeoff load --shard K/{}) on {}, {} engine thread(s) \
                     each; the servers placed by their own hosts, not pinned by bakeoff",
                    shards.len(),
                    first.shard.count,
                    hosts.join(", "),
                    first.engine_threads
                ),
            },
            database: if plan.database {
                DatabaseKind::External
            } else {
                DatabaseKind::None
            },
            contacts: None,
            data_seed: None,
            profile: "the servers' own".to_string(),
        },
        servers,
        rounds: Vec::new(),
        groups: Vec::new(),
        containers: None,
    })
}

/// One target's cells, each repeat's shards merged into one run.
fn merged_cells(shards: &[ShardFile], target: &str) -> Result<Vec<Cell>> {
    let plan = &shards[0].plan;
    let mut cells = Vec::new();
    for &connections in &plan.connections {
        for &scenario in &plan.scenarios {
            let mut runs = Vec::new();
            for repeat in 0..plan.repeat {
                let parts: Vec<(&ShardFile, &ShardCell)> = shards
                    .iter()
                    .map(|shard| {
                        shard
                            .cells
                            .iter()
                            .find(|cell| {
                                cell.target == target
                                    && cell.scenario == scenario
                                    && cell.connections == connections
                                    && cell.repeat == repeat
                            })
                            .map(|cell| (shard, cell))
                            .with_context(|| {
                                format!(
                                    "shard {} has no cell {target} {scenario} at {connections} \
                                     connections, run {}",
                                    shard.shard,
                                    repeat + 1
                                )
                            })
                    })
                    .collect::<Result<_>>()?;
                runs.push(merged_measurement(&parts)?);
            }
            cells.push(Cell::new(scenario, connections, plan.rate, runs));
        }
    }
    Ok(cells)
}

/// The shards' runs of one cell as one run: counts summed, histograms added, series aligned.
fn merged_measurement(parts: &[(&ShardFile, &ShardCell)]) -> Result<Measurement> {
    let mut latency = new_histogram();
    let mut uncorrected: Option<Histogram<u64>> = None;
    for (_, cell) in parts {
        add(&mut latency, &cell.latency.decode()?)?;
        if let Some(encoded) = &cell.uncorrected_latency {
            add(
                uncorrected.get_or_insert_with(new_histogram),
                &encoded.decode()?,
            )?;
        }
    }
    let starts: Vec<Timestamp> = parts
        .iter()
        .map(|(_, cell)| cell.window_start.parse::<Timestamp>())
        .collect::<Result<_, _>>()
        .context("a shard's window start is not an RFC 3339 time")?;
    let origin = starts.iter().min().copied().unwrap_or_default();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for (_, cell) in parts {
        for (kind, count) in &cell.errors {
            *errors.entry(kind.clone()).or_insert(0) += count;
        }
    }
    let shards = parts
        .iter()
        .zip(&starts)
        .map(|((shard, cell), start)| ShardLoad {
            shard: shard.shard,
            host: shard.host.clone(),
            connections: cell.shard_connections,
            engine_threads: shard.engine_threads,
            ok_per_second: per_second(cell.ok, cell.seconds),
            engine_busy_percent: cell.engine_busy_percent(shard.engine_threads),
            start_offset_ms: origin.duration_until(*start).as_secs_f64() * 1_000.0,
        })
        .collect::<Vec<_>>();
    let sum = |figure: fn(&ShardCell) -> u64| parts.iter().map(|(_, cell)| figure(cell)).sum();
    Ok(Measurement {
        seconds: parts
            .iter()
            .map(|(_, cell)| cell.seconds)
            .fold(0.0, f64::max),
        ok: sum(|cell| cell.ok),
        responses: sum(|cell| cell.responses),
        // Each shard's rate over its own window: the windows are as long, and nearly the same.
        ok_per_second: parts.iter().map(|(_, c)| per_second(c.ok, c.seconds)).sum(),
        body_bytes_per_second: parts
            .iter()
            .map(|(_, cell)| per_second(cell.body_bytes, cell.seconds))
            .sum(),
        checked_bodies: sum(|cell| cell.checked_bodies),
        deviating_bodies: 0,
        latency_us: Percentiles::of(&latency),
        uncorrected_latency_us: uncorrected.as_ref().map(Percentiles::of),
        errors,
        server: None,
        // The busiest shard's: the one that would limit the cell.
        engine_busy_percent: shards
            .iter()
            .filter_map(|shard| shard.engine_busy_percent)
            .reduce(f64::max),
        delay_line_cpu_seconds: None,
        series: Some(merged_series(parts, &starts, origin)?),
        group: None,
        round: None,
        sequence: None,
        engine_cpu_seconds: None,
        engine_container_cpu_seconds: None,
        database_cpu_seconds: None,
        fault: None,
        shards,
    })
}

fn per_second(count: u64, seconds: f64) -> f64 {
    count as f64 / seconds.max(1e-9)
}

fn add(total: &mut Histogram<u64>, part: &Histogram<u64>) -> Result<()> {
    total
        .add(part)
        .map_err(|error| anyhow::anyhow!("adding a shard's histogram: {error:?}"))
}

/// The shards' series on one wall clock: each shard's intervals shifted by its start after the
/// earliest one's (in whole intervals), counts summed, percentiles from the intervals' merged
/// histograms.
fn merged_series(
    parts: &[(&ShardFile, &ShardCell)],
    starts: &[Timestamp],
    origin: Timestamp,
) -> Result<Series> {
    let interval_ms = parts.first().map_or(0, |(_, cell)| cell.series.interval_ms);
    anyhow::ensure!(
        parts
            .iter()
            .all(|(_, cell)| cell.series.interval_ms == interval_ms),
        "the shards' series have different intervals"
    );
    let mut tallies: Vec<IntervalFigures> = Vec::new();
    let mut histograms: Vec<Option<Histogram<u64>>> = Vec::new();
    for ((_, cell), start) in parts.iter().zip(starts) {
        let offset_ms = origin.duration_until(*start).as_secs_f64() * 1_000.0;
        let shift = (offset_ms / interval_ms.max(1) as f64).round() as usize;
        for (index, figures) in cell.series.intervals.iter().enumerate() {
            let at = shift + index;
            if tallies.len() <= at {
                tallies.resize(at + 1, IntervalFigures::default());
                histograms.resize(at + 1, None);
            }
            let tally = &mut tallies[at];
            tally.ok += figures.ok;
            tally.unavailable += figures.unavailable;
            tally.other_status += figures.other_status;
            for (kind, count) in &figures.errors {
                *tally.errors.entry(kind.clone()).or_insert(0) += count;
            }
            tally.max_us = tally.max_us.max(figures.max_us);
            if let Some(Some(encoded)) = cell.interval_latency.get(index) {
                let part = encoded.decode()?;
                match &mut histograms[at] {
                    Some(histogram) => add(histogram, &part)?,
                    slot @ None => *slot = Some(part),
                }
            }
        }
    }
    for (tally, histogram) in tallies.iter_mut().zip(&histograms) {
        if let Some(histogram) = histogram {
            tally.p50_us = histogram.value_at_quantile(0.5);
            tally.p99_us = histogram.value_at_quantile(0.99);
            tally.max_us = histogram.max();
        }
    }
    Ok(Series {
        interval_ms,
        intervals: tallies,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_survives_its_encoding_exactly() {
        let mut histogram = new_histogram();
        for value in [1, 2, 3, 250, 1_000, 65_000, 3_000_000] {
            histogram.record_n(value, value % 7 + 1).unwrap();
        }
        let decoded = EncodedHistogram::encode(&histogram)
            .unwrap()
            .decode()
            .unwrap();
        assert_eq!(decoded, histogram);
        assert_eq!(Percentiles::of(&decoded), Percentiles::of(&histogram));
        assert!(EncodedHistogram("not base64!".into()).decode().is_err());
    }

    fn interval(ok: u64, latencies: &[u64]) -> (IntervalFigures, Option<EncodedHistogram>) {
        let mut histogram = new_histogram();
        for &latency in latencies {
            histogram.record(latency).unwrap();
        }
        let figures = IntervalFigures {
            ok,
            max_us: latencies.iter().copied().max().unwrap_or(0),
            ..IntervalFigures::default()
        };
        let encoded =
            (!latencies.is_empty()).then(|| EncodedHistogram::encode(&histogram).unwrap());
        (figures, encoded)
    }

    fn cell(intervals: Vec<(IntervalFigures, Option<EncodedHistogram>)>) -> ShardCell {
        let (figures, histograms): (Vec<_>, Vec<_>) = intervals.into_iter().unzip();
        ShardCell {
            target: "a".into(),
            scenario: Scenario::Version,
            connections: 2,
            rate: None,
            repeat: 0,
            shard_connections: 1,
            shard_rate: None,
            scheduled_start: String::new(),
            window_start: String::new(),
            seconds: 0.3,
            ok: figures.iter().map(|f| f.ok).sum(),
            responses: figures.iter().map(|f| f.ok).sum(),
            body_bytes: 0,
            checked_bodies: 0,
            errors: BTreeMap::new(),
            engine_cpu_seconds: 0.0,
            latency: EncodedHistogram::encode(&new_histogram()).unwrap(),
            uncorrected_latency: None,
            series: Series {
                interval_ms: 100,
                intervals: figures,
            },
            interval_latency: histograms,
        }
    }

    #[test]
    fn series_are_laid_on_one_clock_and_their_intervals_merged_exactly() {
        let file: ShardFile = serde_json::from_value(serde_json::json!({
            "format_version": 1,
            "shard": {"index": 1, "count": 2},
            "host": "h", "command": "", "started_at": "", "finished_at": "",
            "machine": Machine::default(),
            "plan": {
                "start_at": "", "scenarios": [], "connections": [], "rate": null,
                "duration_seconds": 0.3, "warmup_seconds": 0.0, "gap_seconds": 0.0, "repeat": 1,
                "timeout_seconds": 5.0, "check_every": 16, "seed": 1, "statuses_only": false,
                "database": false
            },
            "engine_threads": 1, "targets": [], "cells": []
        }))
        .unwrap();
        let early = cell(vec![
            interval(2, &[100, 300]),
            interval(1, &[200]),
            interval(0, &[]),
        ]);
        // Began 120 ms later: one interval further on.
        let late = cell(vec![
            interval(3, &[1_000, 1_500, 2_000]),
            interval(1, &[50]),
        ]);
        let starts: Vec<Timestamp> = ["2030-01-01T00:00:00Z", "2030-01-01T00:00:00.120Z"]
            .iter()
            .map(|start| start.parse().unwrap())
            .collect();
        let series = merged_series(&[(&file, &early), (&file, &late)], &starts, starts[0]).unwrap();
        let oks: Vec<u64> = series.intervals.iter().map(|i| i.ok).collect();
        assert_eq!(oks, [2, 4, 1]);
        // The second interval holds 200 (early) and 1,000, 1,500, 2,000 (late).
        let second = &series.intervals[1];
        assert_eq!((second.p50_us, second.max_us), (1_000, 2_000));
        assert_eq!(series.intervals[2].max_us, 50);
    }
}
