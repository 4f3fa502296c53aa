//! Shards merged into one run: every shard of a plan checked present once, counts and errors
//! summed, latency histograms added (so percentiles are those of all requests), series laid on
//! one wall clock, each round's cells in the order they ran. `bakeoff merge` writes the result
//! as a run's `results.json`, one group measured in interleaved rounds as `bakeoff run` writes it.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use jiff::Timestamp;

use crate::engine::new_histogram;
use crate::results::run::{
    Cell, CellRef, Measurement, Percentiles, RoundRecord, RunResults, Stage,
};
use crate::results::series::{IntervalFigures, Series};
use crate::results::server::{EffectiveSettings, ServerKind, ServerRecord};
use crate::results::setup::Placement;
use crate::results::shard::{ShardCell, ShardFile};
use crate::results::vocabulary::DatabaseKind;
use crate::results::{ServerResult, Settings, ShardLoad};

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
    let ordered = planned_order(&first.cells)?;
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
            cells: merged_cells(&shards, &ordered, &target.name)?,
            fault_cells: Vec::new(),
            efficiency_cells: Vec::new(),
            group: Some(0),
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
            repeat: 1,
            rounds: plan.rounds,
            cell_warmup_seconds: plan.cell_warmup_seconds,
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
        rounds: round_records(&ordered, plan.rounds),
        groups: vec![first.targets.iter().map(|t| t.name.clone()).collect()],
        containers: None,
    })
}

/// The rounds as they ran: each round's cells in the order of their planned starts (the same
/// in every shard). No shard times the machine's speed: the servers' CPUs are not theirs.
fn round_records(ordered: &[&ShardCell], rounds: usize) -> Vec<RoundRecord> {
    (0..rounds)
        .map(|round| RoundRecord {
            group: 0,
            stage: Stage::ClosedLoop,
            round,
            reference_ms: None,
            order: ordered
                .iter()
                .filter(|cell| cell.round == round)
                .map(|cell| CellRef {
                    server: cell.target.clone(),
                    scenario: cell.scenario,
                    connections: cell.connections,
                    rate: cell.rate,
                    fault: None,
                })
                .collect(),
        })
        .collect()
}

/// One target's cells, each round's shards merged into one run of that round.
fn merged_cells(shards: &[ShardFile], ordered: &[&ShardCell], target: &str) -> Result<Vec<Cell>> {
    let plan = &shards[0].plan;
    let mut cells = Vec::new();
    for &connections in &plan.connections {
        for &scenario in &plan.scenarios {
            let mut runs = Vec::new();
            for round in 0..plan.rounds {
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
                                    && cell.round == round
                            })
                            .map(|cell| (shard, cell))
                            .with_context(|| {
                                format!(
                                    "shard {} has no cell {target} {scenario} at {connections} \
                                     connections, round {}",
                                    shard.shard,
                                    round + 1
                                )
                            })
                    })
                    .collect::<Result<_>>()?;
                let mut run = merged_measurement(&parts)?;
                run.group = Some(0);
                run.round = Some(round);
                run.sequence = sequence_of(ordered, parts[0].1);
                runs.push(run);
            }
            cells.push(Cell::new(scenario, connections, plan.rate, runs));
        }
    }
    Ok(cells)
}

/// A shard's cells in the order the plan ran them, the same in every shard.
fn planned_order(cells: &[ShardCell]) -> Result<Vec<&ShardCell>> {
    let mut timed = cells
        .iter()
        .map(|cell| {
            let start = cell.scheduled_start.parse::<Timestamp>().with_context(|| {
                format!(
                    "a planned start that is not an RFC 3339 time: {}",
                    cell.scheduled_start
                )
            })?;
            Ok((start, cell))
        })
        .collect::<Result<Vec<_>>>()?;
    timed.sort_by_key(|(start, _)| *start);
    Ok(timed.into_iter().map(|(_, cell)| cell).collect())
}

/// Where a cell ran in the whole plan: its place in the planned order.
fn sequence_of(ordered: &[&ShardCell], cell: &ShardCell) -> Option<usize> {
    ordered.iter().position(|other| {
        (
            &other.target,
            other.scenario,
            other.connections,
            other.round,
        ) == (&cell.target, cell.scenario, cell.connections, cell.round)
    })
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
    use crate::results::setup::Machine;
    use crate::results::shard::EncodedHistogram;
    use crate::results::vocabulary::Scenario;

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
            round: 0,
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
                "duration_seconds": 0.3, "warmup_seconds": 0.0, "cell_warmup_seconds": 0.0,
                "gap_seconds": 0.0, "rounds": 1,
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
