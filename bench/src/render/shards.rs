//! The load shards of a merged run (`bakeoff merge`): for every cell, what each shard sent and
//! how busy its engine was, and how far apart the shards' windows began. A run of one engine has
//! no such section.

use std::fmt::Write as _;

use crate::format::{Table, group_thousands};
use crate::render::verdicts::ENGINE_BOUND_PERCENT;
use crate::results::run::RunResults;

/// Whether the run merges shards.
pub fn applies(results: &RunResults) -> bool {
    results
        .cells()
        .flat_map(|(_, cell)| cell.runs.iter())
        .any(|run| !run.shards.is_empty())
}

/// One row per shard of every measured run.
pub fn table(results: &RunResults) -> Table {
    let mut table = Table::new(&[
        "server",
        "scenario",
        "connections",
        "run",
        "shard",
        "host",
        "its conns",
        "req/s",
        "engine %",
        "start ms",
    ]);
    for (server, cell) in results.cells() {
        for (index, run) in cell.runs.iter().enumerate() {
            for shard in &run.shards {
                table.rows.push(vec![
                    server.record.shown_name().to_string(),
                    cell.scenario.to_string(),
                    cell.connections.to_string(),
                    (index + 1).to_string(),
                    shard.shard.to_string(),
                    shard.host.clone(),
                    shard.connections.to_string(),
                    group_thousands(shard.ok_per_second.round() as i64),
                    shard
                        .engine_busy_percent
                        .map_or_else(|| "–".to_string(), |busy| format!("{busy:.0}")),
                    format!("{:+.1}", shard.start_offset_ms),
                ]);
            }
        }
    }
    table
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
            "; {bound} shard runs were at least {ENGINE_BOUND_PERCENT:.0} % busy: those cells may \
             show their shards' limit, not the server's (run more shards)"
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
         of the connections with the same requests and starting each cell at the same wall-clock \
         time; the tables above merge them: counts summed, latency percentiles of every request \
         of every shard (their histograms added), `engine %` the busiest shard's. Per shard: its \
         connections, its answers per second, how busy its engine threads were, and when its \
         window began after the first shard's.\n\n",
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
