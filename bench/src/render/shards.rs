//! The load shards of a merged run (`bakeoff merge`): for every cell, what each shard sent and
//! how busy its engine was, and how far apart the shards' windows began. A run of one engine has
//! no such section.

use std::fmt::Write as _;

use crate::format::{Table, group_thousands};
use crate::render::verdicts::ENGINE_BOUND_PERCENT;
use crate::results::run::{RunResults, ShardLoad};
use crate::stats::median;

/// Whether the run merges shards.
pub fn applies(results: &RunResults) -> bool {
    results
        .cells()
        .flat_map(|(_, cell)| cell.runs.iter())
        .any(|run| !run.shards.is_empty())
}

/// One row per cell and shard: over the cell's rounds (or runs, in a file from before rounds),
/// the shard's median answers per second, its median and busiest engine load, and the latest
/// its window began after the first shard's.
pub fn table(results: &RunResults) -> Table {
    let mut table = Table::new(&[
        "server",
        "scenario",
        "connections",
        "shard",
        "host",
        "its conns",
        "req/s",
        "engine %",
        "engine % max",
        "start ms max",
    ]);
    for (server, cell) in results.cells() {
        let Some(first) = cell.runs.first() else {
            continue;
        };
        for (index, shard) in first.shards.iter().enumerate() {
            let parts: Vec<&ShardLoad> = cell
                .runs
                .iter()
                .filter_map(|run| run.shards.get(index))
                .collect();
            let rates: Vec<f64> = parts.iter().map(|part| part.ok_per_second).collect();
            let busy: Vec<f64> = parts
                .iter()
                .filter_map(|part| part.engine_busy_percent)
                .collect();
            let latest = parts
                .iter()
                .map(|part| part.start_offset_ms)
                .fold(0.0, f64::max);
            table.rows.push(vec![
                server.record.shown_name().to_string(),
                cell.scenario.to_string(),
                cell.connections.to_string(),
                shard.shard.to_string(),
                shard.host.clone(),
                shard.connections.to_string(),
                group_thousands(median(&rates).round() as i64),
                shown_percent((!busy.is_empty()).then(|| median(&busy))),
                shown_percent(busy.iter().copied().reduce(f64::max)),
                format!("{latest:+.1}"),
            ]);
        }
    }
    table
}

fn shown_percent(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_string(), |busy| format!("{busy:.0}"))
}

/// The busiest shard engine, the shards at or above the engine-bound mark, and the widest gap
/// between the shards' starts, in one sentence.
pub fn reading(results: &RunResults) -> String {
    let shards: Vec<(&str, String, f64, f64)> = results
        .cells()
        .flat_map(|(server, cell)| {
            cell.runs.iter().flat_map(move |run| {
                run.shards.iter().map(move |shard| {
                    (
                        server.record.shown_name(),
                        format!("{} at {} connections", cell.scenario, cell.connections),
                        shard.engine_busy_percent.unwrap_or(0.0),
                        shard.start_offset_ms,
                    )
                })
            })
        })
        .collect();
    let Some((server, cell, busiest, _)) =
        shards.iter().max_by(|a, b| a.2.total_cmp(&b.2)).cloned()
    else {
        return String::new();
    };
    let bound = shards
        .iter()
        .filter(|shard| shard.2 >= ENGINE_BOUND_PERCENT)
        .count();
    let widest = shards.iter().map(|shard| shard.3).fold(0.0, f64::max);
    let mut sentence =
        format!("The busiest shard engine was {busiest:.0} % busy ({server}, {cell})");
    if bound == 0 {
        let _ = write!(
            sentence,
            "; every shard stayed below {ENGINE_BOUND_PERCENT:.0} %, so no cell is limited by its load"
        );
    } else {
        let _ = write!(
            sentence,
            "; {bound} shard windows (a shard in a round) were at least \
             {ENGINE_BOUND_PERCENT:.0} % busy: those cells may show their shards' limit, not the \
             server's (run more shards)"
        );
    }
    let _ = write!(
        sentence,
        ". The shards' windows began at most {widest:.1} ms apart."
    );
    sentence
}

/// The section of report.md.
pub fn markdown(results: &RunResults) -> String {
    if !applies(results) {
        return String::new();
    }
    let mut text = String::from("## Load shards\n\n");
    text.push_str(
        "The load came from several engines (`bakeoff load --shard K/N`), each sending its share \
         of the connections with the same requests and starting each cell of each round at the \
         same wall-clock time; the tables above merge them round by round: counts summed, \
         latency percentiles of every request of every shard (their histograms added), \
         `engine %` the busiest shard's. Per cell and shard, over its rounds: its connections, \
         its median answers per second, how busy its engine threads were (median and most), \
         and the latest its window began after the first shard's.\n\n",
    );
    text.push_str(&table(results).markdown());
    let _ = writeln!(text, "\n{}\n", reading(results));
    text
}

/// The section for the terminal.
pub fn terminal(results: &RunResults) -> String {
    if !applies(results) {
        return String::new();
    }
    format!(
        "\nLoad shards\n\n{}{}\n",
        table(results).terminal(),
        reading(results)
    )
}
