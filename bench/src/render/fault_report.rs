//! The report's fault section: per fault, level and scenario, how every server rode it out over
//! the fault cell's rounds. First the exact figures (failed requests, 503s with and without
//! `Retry-After`, the longest answer, the time to the first 2xx), counted request by request;
//! then the recovery, judged against the lower of the level before the fault and the reference
//! cell measured right after each fault cell (the backlog, its drain, and the time until
//! throughput held the band); a reading in words.
//! Every figure is a median over the rounds with the interval of the median. Only the fault
//! cells are read here; the normal tables never see them.

use std::fmt::Write as _;

use crate::format::{Style, Table, group_thousands};
use crate::recovery::{RECOVERED_SHARE, SUSTAINED};
use crate::render::timeline::fault_groups;
use crate::results::recovery::{MedianFigure, MedianTime, Recovery};
use crate::results::run::{Cell, Level, RunResults, ServerResult};
use crate::results::vocabulary::{FaultKind, Scenario};

fn cells_of(
    results: &RunResults,
    kind: FaultKind,
    level: Level,
    scenario: Scenario,
) -> Vec<(&ServerResult, &Cell, Recovery)> {
    results
        .servers
        .iter()
        .filter_map(|server| {
            let cell = server.fault_cells.iter().find(|cell| {
                level.matches(cell)
                    && cell.scenario == scenario
                    && cell.fault.as_ref().is_some_and(|fault| fault.kind == kind)
            })?;
            Some((server, cell, cell.recovery()?))
        })
        .collect()
}

/// `12` or `12 [3, 40]`: a median and its interval, with `digits` decimals.
fn figure(value: &MedianFigure, digits: usize, grouped: bool) -> String {
    let number = |value: f64| {
        if grouped {
            group_thousands(value.round() as i64)
        } else {
            format!("{value:.digits$}")
        }
    };
    match value.interval {
        Some(interval) if interval.low != interval.high => format!(
            "{} [{}, {}]",
            number(value.median),
            number(interval.low),
            number(interval.high)
        ),
        _ => number(value.median),
    }
}

/// `0.4 [0.2, never]`: a time that may not have come within the cell.
fn time(value: &MedianTime, style: Style) -> String {
    let seconds = |value: Option<f64>| value.map_or("never".to_string(), |s| format!("{s:.1}"));
    let median = match value.median {
        Some(median) => format!("{median:.1}"),
        None if style == Style::Markdown => "**never**".to_string(),
        None => "never".to_string(),
    };
    match value.coverage {
        Some(_) if value.low != value.high => {
            format!("{median} [{}, {}]", seconds(value.low), seconds(value.high))
        }
        _ => median,
    }
}

/// The exact figures of one fault at one level and scenario: counted request by request.
pub fn exact_table(
    results: &RunResults,
    kind: FaultKind,
    level: Level,
    scenario: Scenario,
    style: Style,
) -> Table {
    let mut table = Table::new(&[
        "server",
        "rounds",
        "failed",
        "503s",
        "503s without Retry-After",
        "longest ms",
        "first 2xx s",
        "failures, all rounds",
    ]);
    for (server, cell, recovery) in cells_of(results, kind, level, scenario) {
        let mut kinds = std::collections::BTreeMap::<&str, u64>::new();
        for record in cell.fault_records() {
            for (name, count) in &record.figures.failed_by_kind {
                *kinds.entry(name.as_str()).or_insert(0) += count;
            }
        }
        let failures: Vec<String> = kinds
            .iter()
            .filter(|(_, count)| **count > 0)
            .map(|(name, count)| format!("{name} {count}"))
            .collect();
        table.rows.push(vec![
            server.record.shown_name().to_string(),
            recovery.rounds.to_string(),
            figure(&recovery.failed, 0, true),
            figure(&recovery.unavailable, 0, true),
            figure(&recovery.unavailable_without_retry_after, 0, true),
            figure(&recovery.longest_ms, 0, true),
            time_plain(&recovery.first_ok_after_seconds, style),
            if failures.is_empty() {
                "-".to_string()
            } else {
                failures.join(", ")
            },
        ]);
    }
    table
}

/// The first 2xx comes within milliseconds: two decimals.
fn time_plain(value: &MedianTime, style: Style) -> String {
    let seconds = |value: Option<f64>| value.map_or("never".to_string(), |s| format!("{s:.2}"));
    match (value.median, value.coverage) {
        (None, _) if style == Style::Markdown => "**never**".to_string(),
        (median, Some(_)) if value.low != value.high => format!(
            "{} [{}, {}]",
            seconds(median),
            seconds(value.low),
            seconds(value.high)
        ),
        (median, _) => seconds(median),
    }
}

/// The recovery of one fault at one level and scenario, against each round's level.
pub fn recovery_table(
    results: &RunResults,
    kind: FaultKind,
    level: Level,
    scenario: Scenario,
    style: Style,
) -> Table {
    let mut table = Table::new(&[
        "server",
        "req/s before",
        "reference req/s",
        "reference / before",
        "level req/s",
        "backlog",
        "drained s",
        "back s",
        "back in",
    ]);
    for (server, _, recovery) in cells_of(results, kind, level, scenario) {
        let optional = |value: Option<MedianFigure>, digits: usize, grouped: bool| {
            value.map_or("-".to_string(), |value| figure(&value, digits, grouped))
        };
        table.rows.push(vec![
            server.record.shown_name().to_string(),
            figure(&recovery.before_ok_per_second, 0, true),
            optional(recovery.reference_ok_per_second, 0, true),
            optional(recovery.reference_over_before, 2, false),
            figure(&recovery.level_ok_per_second, 0, true),
            optional(recovery.backlog, 0, true),
            optional(recovery.drained_after_seconds, 2, false),
            time(&recovery.back_after_seconds, style),
            format!("{} of {}", recovery.rounds_back, recovery.rounds),
        ]);
    }
    table
}

/// One sentence on a fault group: the exact figures first (who failed requests, who served
/// again and how fast), then who came back within the cell, and who did not.
pub fn fault_reading(
    results: &RunResults,
    kind: FaultKind,
    level: Level,
    scenario: Scenario,
) -> String {
    let cells = cells_of(results, kind, level, scenario);
    let name = |server: &ServerResult| server.record.shown_name().to_string();
    let failing: Vec<String> = cells
        .iter()
        .filter(|(_, _, recovery)| recovery.failed_total > 0)
        .map(|(server, _, recovery)| {
            format!(
                "{} ({} in {} of {} rounds)",
                name(server),
                group_thousands(recovery.failed_total as i64),
                recovery.rounds_failed,
                recovery.rounds
            )
        })
        .collect();
    let mut sentence = String::from("Reading: ");
    if failing.is_empty() {
        sentence.push_str("no server failed a request in any round");
    } else {
        let _ = write!(sentence, "failed requests: {}", failing.join(", "));
    }
    let mut back: Vec<(String, f64, Option<f64>)> = cells
        .iter()
        .filter_map(|(server, _, recovery)| {
            let time = recovery.back_after_seconds;
            Some((name(server), time.median?, time.high))
        })
        .collect();
    back.sort_by(|a, b| a.1.total_cmp(&b.1));
    if !back.is_empty() {
        let listed: Vec<String> = back
            .iter()
            .map(|(server, median, _)| format!("{server} {median:.1} s"))
            .collect();
        let _ = write!(
            sentence,
            "; back to {:.0} % of its level within the cell (median of the rounds): {}",
            RECOVERED_SHARE * 100.0,
            listed.join(", ")
        );
    }
    if let Some(first) = first_beyond_the_spread(&cells) {
        let _ = write!(sentence, "; back first, beyond the rounds' spread: {first}");
    }
    let stuck: Vec<String> = cells
        .iter()
        .filter(|(_, _, recovery)| !recovery.back_after_seconds.came())
        .map(|(server, _, recovery)| {
            format!(
                "{} (back in {} of {} rounds)",
                name(server),
                recovery.rounds_back,
                recovery.rounds
            )
        })
        .collect();
    if !stuck.is_empty() {
        let _ = write!(sentence, "; not back within the cell: {}", stuck.join(", "));
    }
    let slower: Vec<String> = cells
        .iter()
        .filter_map(|(server, _, recovery)| {
            let ratio = recovery.reference_over_before?;
            (ratio.interval?.high < RECOVERED_SHARE)
                .then(|| format!("{} ({:.2}x)", name(server), ratio.median))
        })
        .collect();
    if !slower.is_empty() {
        let _ = write!(
            sentence,
            "; reference below {:.0} % of the level before the fault across its interval (the \
             server slower after the fault, or the machine: compare with the others): {}",
            RECOVERED_SHARE * 100.0,
            slower.join(", ")
        );
    }
    sentence.push('.');
    sentence
}

/// The server whose interval of the time back lies wholly below every other's, if one does.
fn first_beyond_the_spread(cells: &[(&ServerResult, &Cell, Recovery)]) -> Option<String> {
    if cells.len() < 2 {
        return None;
    }
    let (server, _, fastest) = cells
        .iter()
        .filter(|(_, _, recovery)| recovery.back_after_seconds.came())
        .min_by(|a, b| {
            let key = |r: &Recovery| r.back_after_seconds.median.unwrap_or(f64::INFINITY);
            key(&a.2).total_cmp(&key(&b.2))
        })?;
    let high = fastest.back_after_seconds.high?;
    let ahead_of_all = cells
        .iter()
        .filter(|(other, _, _)| !std::ptr::eq(*other, *server))
        .all(|(_, _, other)| {
            let time = other.back_after_seconds;
            time.coverage.is_some() && time.low.is_none_or(|low| high < low)
        });
    ahead_of_all.then(|| server.record.shown_name().to_string())
}

/// What the section says of its method: the rounds, the reference, the rules.
fn method(results: &RunResults) -> String {
    let rounds = results.settings.fault_rounds;
    let reference = results
        .settings
        .fault_reference_seconds
        .map_or_else(String::new, |seconds| format!("{seconds} s "));
    let coverage = crate::results::intervals::Interval::of_median(&vec![0.0; rounds.max(1)])
        .map(|interval| {
            format!(
                "; in brackets the interval of the median (order statistics, {:.0} % coverage \
                 with {rounds} rounds)",
                interval.coverage * 100.0
            )
        })
        .unwrap_or_default();
    let rounds_text = if rounds == 0 {
        // Version 3 files: one fault cell per server, judged against the level before it.
        "once per server, after its normal cells; \"back\" judged against the throughput before \
         the fault"
            .to_string()
    } else {
        format!(
            "in {rounds} rounds interleaved across the servers like the normal cells (per round, \
             every server's fault cell of a fault, scenario and level one after the other in a \
             shuffled order, each followed at once by a {reference}reference cell: the same \
             server, scenario and level without a fault)"
        )
    };
    format!(
        "Each fault cell is a scenario measured again with a fault injected into the database \
         during it, {rounds_text}; its figures are not in the tables above. Every figure is the \
         median over the rounds{coverage}.\n\n\
         **Exact figures**, counted request by request and judged against no level (a slow \
         minute of the machine still moves the 503s of a server that refuses at once, which it \
         answers as fast as it can): `failed` is every request that ended in \
         anything but a 2xx or a 503 with `Retry-After` (connection errors, timeouts, resets, \
         500s, 503s without it) over the cell; `503s` those with `Retry-After`; `503s without \
         Retry-After` those without (counted among the failed); `longest ms` the longest answer \
         from the fault's start until throughput was back; `first 2xx s` the time from the \
         database's return to the first 2xx answer.\n\n\
         **Recovery**, judged against levels measured seconds from it, on either side, so that \
         they share the machine's state with it: `req/s before` is the 2xx rate of the fault \
         cell before the fault, `reference req/s` that of the reference cell measured right \
         after the fault cell, `reference / before` their ratio (below 1 in every round: the \
         server, or the machine, was slower after the fault; compare with the other servers), \
         and `level req/s` the lower of the two, per round: the level judged against (the \
         machine's speed moves by tens of percent within seconds here, and a fast moment in \
         either must not raise the bar). `backlog` \
         is the requests that were waiting when the database returned (sent before, answered \
         after; at most one per connection in a closed loop) and `drained s` the time until the \
         last of them was answered. `back s` is the time from the database's return until \
         throughput held the band, {:.0} % of the level, over {} s (its 100 ms intervals \
         averaged, each counted at most up to the level so that the burst of the backlog \
         cannot make up for intervals below the band), counting no earlier than the backlog \
         drained; `never` where it did not within the cell, and a round that did not counts as \
         later than any that did: the median is `never` unless it was back in more than half \
         the rounds (`back in`). The timelines show the round with the median time back, its \
         level and its band.\n\n",
        RECOVERED_SHARE * 100.0,
        SUSTAINED.as_secs_f64()
    )
}

/// The Markdown section, empty when the run injected no fault.
pub fn markdown(results: &RunResults) -> String {
    let groups = fault_groups(results);
    if groups.is_empty() {
        return String::new();
    }
    let mut text = String::from("## Faults\n\n");
    text.push_str(&method(results));
    for (kind, level, scenario) in groups {
        let window = cells_of(results, kind, level, scenario)
            .first()
            .and_then(|(_, cell, _)| cell.fault.as_ref())
            .map(|fault| {
                format!(
                    "{} s into the cell for {} s",
                    fault.at_seconds, fault.for_seconds
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            text,
            "### {kind}: {scenario} ({}; {window})\n\n{}.\n",
            level.label(),
            kind.description()
        );
        text.push_str("Exact figures:\n\n");
        text.push_str(&exact_table(results, kind, level, scenario, Style::Markdown).markdown());
        text.push_str(
            "\nRecovery, against the lower of the level before the fault and the reference cell:\n\n",
        );
        text.push_str(&recovery_table(results, kind, level, scenario, Style::Markdown).markdown());
        let _ = writeln!(
            text,
            "\n{}\n",
            fault_reading(results, kind, level, scenario)
        );
    }
    text
}

/// The terminal's version of the section.
pub fn terminal(results: &RunResults) -> String {
    let mut text = String::new();
    for (kind, level, scenario) in fault_groups(results) {
        let _ = writeln!(
            text,
            "\n{kind}: {scenario} at {}, exact figures\n",
            level.label()
        );
        text.push_str(&exact_table(results, kind, level, scenario, Style::Terminal).terminal());
        let _ = writeln!(
            text,
            "\nrecovery, against the lower of the level before and the reference cell\n"
        );
        text.push_str(&recovery_table(results, kind, level, scenario, Style::Terminal).terminal());
        let _ = writeln!(text, "{}", fault_reading(results, kind, level, scenario));
    }
    text
}
