//! How a server rode out a fault, read from its fault cells: per round ([`FaultFigures`], from
//! the cell's totals, its series and what the engine saw when the database returned), and over
//! the rounds ([`Recovery`]: every figure a median with its interval).
//!
//! Two kinds of figures, read differently:
//! - **Exact**: failed requests, 503s with and without `Retry-After`, the longest answer, the
//!   time to the first 2xx and the backlog (requests waiting when the database returned, and
//!   when the last of them was answered). Counted request by request and judged against no
//!   level (though a server that refuses at once answers its 503s as fast as the machine lets
//!   it, so their count moves with the machine's speed).
//! - **Against a level**: whether, and when, throughput was back. It is judged against the
//!   lower of two levels of the same server measured seconds from the recovery, on either side
//!   of it: its throughput before the fault, and its reference cell (the same scenario and level
//!   without a fault, measured right after the fault cell). On these machines the speed moves by
//!   tens of percent within seconds; a fast moment in either level must not raise the bar, and a
//!   level measured minutes away would not share the machine's state at all. A server left
//!   slower by the fault shows as a reference cell below the level before, round after round.
//!   "Back" counts from the moment the backlog drained, and the level must hold: the 2xx of
//!   every 100 ms interval, each counted at most up to the level (a burst above it cannot make
//!   up for intervals below it), must average [`RECOVERED_SHARE`] of it over [`SUSTAINED`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::engine::AfterMark;
use crate::harness::faults::{FaultSpec, FaultTimes};
use crate::results::intervals::Interval;
use crate::results::recovery::{
    FaultFigures, FaultRecord, MedianFigure, MedianTime, Recovery, Reference,
};
use crate::results::series::{ErrorKind, Series};
use crate::stats::median_of_all;

/// Throughput is back when it holds this share of the reference ...
pub const RECOVERED_SHARE: f64 = 0.9;
/// ... over this long: a sustained window, not a burst.
pub const SUSTAINED: Duration = Duration::from_secs(1);

/// Where a fault fell in a cell's window, and what the engine saw when the database returned;
/// in seconds from the window's start, or from the return.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultWindow {
    pub started_seconds: f64,
    pub returned_seconds: f64,
    /// Requests sent before the database returned and answered after it (`None`: not watched).
    pub backlog: Option<u64>,
    /// From the return until the last of them was answered (0 with no backlog).
    pub drained_after_seconds: Option<f64>,
    /// From the return until the first 2xx answer.
    pub first_ok_after_seconds: Option<f64>,
}

impl FaultWindow {
    /// The fault's `times` and the engine's `after_mark`, placed against the engine's
    /// `window_start`.
    pub fn place(
        times: &FaultTimes,
        window_start: Instant,
        after_mark: Option<&AfterMark>,
    ) -> FaultWindow {
        let since_return = |at: Option<Instant>| {
            at.map(|at| at.saturating_duration_since(times.returned).as_secs_f64())
        };
        FaultWindow {
            started_seconds: signed_seconds(times.started, window_start),
            returned_seconds: signed_seconds(times.returned, window_start),
            backlog: after_mark.map(|mark| mark.waiting),
            drained_after_seconds: after_mark.map(|mark| since_return(mark.drained).unwrap_or(0.0)),
            first_ok_after_seconds: after_mark.and_then(|mark| since_return(mark.first_ok)),
        }
    }
}

fn signed_seconds(at: Instant, origin: Instant) -> f64 {
    if at >= origin {
        at.duration_since(origin).as_secs_f64()
    } else {
        -origin.duration_since(at).as_secs_f64()
    }
}

impl FaultRecord {
    /// The record of `fault` as it happened (`window`), with the figures of the cell's `errors`
    /// and `series`; `reference`: 2xx per second of the plain cell measured after it (`None` or
    /// 0: none).
    pub fn of(
        fault: &FaultSpec,
        window: &FaultWindow,
        errors: &BTreeMap<String, u64>,
        series: &Series,
        reference: Option<f64>,
    ) -> FaultRecord {
        FaultRecord {
            kind: fault.kind,
            at_seconds: fault.at.as_secs_f64(),
            for_seconds: fault.length.as_secs_f64(),
            started_seconds: window.started_seconds,
            returned_seconds: window.returned_seconds,
            figures: FaultFigures::of(errors, series, window, reference),
        }
    }
}

impl FaultFigures {
    /// The figures of a cell whose failures by kind are `errors` and whose series is `series`,
    /// for a fault placed as `window`, with `reference` the 2xx per second of the reference
    /// cell after it.
    pub fn of(
        errors: &BTreeMap<String, u64>,
        series: &Series,
        window: &FaultWindow,
        reference: Option<f64>,
    ) -> FaultFigures {
        let accepted = ErrorKind::Status(503).name();
        let failed_by_kind: BTreeMap<String, u64> = errors
            .iter()
            .filter(|(kind, _)| **kind != accepted)
            .map(|(kind, count)| (kind.clone(), *count))
            .collect();
        let interval = series.interval_ms.max(1) as f64 / 1_000.0;
        let intervals = &series.intervals;
        // A hair over, so that 0.3 s / 0.1 s is interval 3 and not 2.999...
        let index_at = |seconds: f64| (seconds / interval + 1e-9).floor().max(0.0) as usize;
        let fault_index = index_at(window.started_seconds).min(intervals.len());
        // Only whole intervals before the fault count towards the level before it.
        let before = &intervals[..fault_index];
        let before_per_interval = if before.is_empty() {
            0.0
        } else {
            before.iter().map(|figures| figures.ok).sum::<u64>() as f64 / before.len() as f64
        };
        let reference = reference.filter(|level| *level > 0.0);
        let (reference_kind, level) = match reference {
            Some(after) if after * interval < before_per_interval => {
                (Reference::CellAfter, after * interval)
            }
            _ => (Reference::LevelBefore, before_per_interval),
        };
        let returned = window.returned_seconds;
        let drained = window.drained_after_seconds.unwrap_or(0.0).max(0.0);
        let span = ((SUSTAINED.as_secs_f64() / interval) - 1e-9)
            .ceil()
            .max(1.0) as usize;
        let back_index = (index_at(returned + drained)..=intervals.len().saturating_sub(span))
            .find(|&index| holds(&intervals[index..index + span], level, RECOVERED_SHARE))
            .filter(|&index| index + span <= intervals.len());
        let returned_index = index_at(returned);
        let first_ok = window.first_ok_after_seconds.or_else(|| {
            (returned_index..intervals.len())
                .find(|&index| intervals[index].ok > 0)
                .map(|index| ((index + 1) as f64 * interval - returned).max(0.0))
        });
        let until = back_index.map_or(intervals.len(), |index| (index + 1).min(intervals.len()));
        let longest_us = intervals
            .get(fault_index..until)
            .unwrap_or_default()
            .iter()
            .map(|figures| figures.max_us)
            .max()
            .unwrap_or(0);
        FaultFigures {
            failed: failed_by_kind.values().sum(),
            failed_by_kind,
            unavailable: errors.get(&accepted).copied().unwrap_or(0),
            longest_ms: longest_us as f64 / 1_000.0,
            before_ok_per_second: before_per_interval / interval,
            first_ok_after_seconds: first_ok,
            recovered_after_seconds: back_index
                .map(|index| (series.start_seconds(index) - returned).max(drained)),
            reference_ok_per_second: reference,
            level_ok_per_second: Some(level / interval),
            reference: reference_kind,
            sustained_seconds: Some(span as f64 * interval),
            backlog: window.backlog,
            drained_after_seconds: window.drained_after_seconds,
        }
    }

    pub fn recovered(&self) -> bool {
        self.recovered_after_seconds.is_some()
    }

    /// 503 answers without `Retry-After` (counted among the failures).
    pub fn unavailable_without_retry_after(&self) -> u64 {
        self.failed_by_kind
            .get(&ErrorKind::UnavailableWithoutRetryAfter.name())
            .copied()
            .unwrap_or(0)
    }

    /// The level "back" was judged against, in 2xx per second.
    pub fn level(&self) -> f64 {
        self.level_ok_per_second
            .unwrap_or(self.before_ok_per_second)
    }
}

/// Whether `level` (2xx per interval) holds over `window`: its 2xx per interval, each counted
/// at most up to the level, average at least `share` of it.
fn holds(window: &[crate::results::series::IntervalFigures], level: f64, share: f64) -> bool {
    if window.is_empty() || level <= 0.0 {
        return false;
    }
    let capped: f64 = window
        .iter()
        .map(|figures| (figures.ok as f64).min(level))
        .sum();
    capped / window.len() as f64 >= share * level
}

impl MedianFigure {
    pub fn of(values: &[f64]) -> Option<MedianFigure> {
        (!values.is_empty()).then(|| MedianFigure {
            median: median_of_all(values),
            interval: Interval::of_median(values),
        })
    }
}

impl MedianTime {
    pub fn of(values: &[Option<f64>]) -> MedianTime {
        let finite = |value: f64| value.is_finite().then_some(value);
        let mut ordered: Vec<f64> = values
            .iter()
            .map(|value| value.unwrap_or(f64::INFINITY))
            .collect();
        ordered.sort_by(f64::total_cmp);
        let count = ordered.len();
        let median = match count {
            0 => None,
            _ if count % 2 == 1 => finite(ordered[count / 2]),
            _ => finite(ordered[count / 2]).map(|upper| (ordered[count / 2 - 1] + upper) / 2.0),
        };
        let interval = Interval::of_median(&ordered);
        MedianTime {
            median,
            low: interval.and_then(|interval| finite(interval.low)),
            high: interval.and_then(|interval| finite(interval.high)),
            coverage: interval.map(|interval| interval.coverage),
        }
    }

    /// Whether it came within the cell in the median round.
    pub fn came(&self) -> bool {
        self.median.is_some()
    }
}

impl Recovery {
    /// The summary of a cell's rounds; `None` without any.
    pub fn of(records: &[&FaultRecord]) -> Option<Recovery> {
        let figure = |read: fn(&FaultFigures) -> f64| -> Option<MedianFigure> {
            let values: Vec<f64> = records.iter().map(|r| read(&r.figures)).collect();
            MedianFigure::of(&values)
        };
        let known = |read: fn(&FaultFigures) -> Option<f64>| -> Option<MedianFigure> {
            let values: Vec<f64> = records.iter().filter_map(|r| read(&r.figures)).collect();
            MedianFigure::of(&values)
        };
        let time = |read: fn(&FaultFigures) -> Option<f64>| -> MedianTime {
            let values: Vec<Option<f64>> = records.iter().map(|r| read(&r.figures)).collect();
            MedianTime::of(&values)
        };
        let count = |test: fn(&FaultFigures) -> bool| {
            records
                .iter()
                .filter(|record| test(&record.figures))
                .count()
        };
        Some(Recovery {
            rounds: records.len(),
            rounds_back: count(FaultFigures::recovered),
            rounds_level_after: count(|f| f.reference == Reference::CellAfter),
            rounds_failed: count(|f| f.failed > 0),
            failed_total: records.iter().map(|r| r.figures.failed).sum(),
            failed: figure(|f| f.failed as f64)?,
            unavailable: figure(|f| f.unavailable as f64)?,
            unavailable_without_retry_after: figure(|f| {
                f.unavailable_without_retry_after() as f64
            })?,
            longest_ms: figure(|f| f.longest_ms)?,
            first_ok_after_seconds: time(|f| f.first_ok_after_seconds),
            back_after_seconds: time(|f| f.recovered_after_seconds),
            backlog: known(|f| f.backlog.map(|count| count as f64)),
            drained_after_seconds: known(|f| f.drained_after_seconds),
            before_ok_per_second: figure(|f| f.before_ok_per_second)?,
            reference_ok_per_second: known(|f| f.reference_ok_per_second),
            level_ok_per_second: figure(FaultFigures::level)?,
            reference_over_before: known(|f| {
                let after = f.reference_ok_per_second?;
                (f.before_ok_per_second > 0.0).then(|| after / f.before_ok_per_second)
            }),
        })
    }

    /// The round a report shows (its timeline): the one with the median time back (a round not
    /// back counting as the latest), the first of equals.
    pub fn shown_round(records: &[&FaultRecord]) -> usize {
        let mut order: Vec<(usize, f64)> = records
            .iter()
            .enumerate()
            .map(|(index, record)| {
                let back = record.figures.recovered_after_seconds;
                (index, back.unwrap_or(f64::INFINITY))
            })
            .collect();
        order.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        order.get(order.len() / 2).map_or(0, |(index, _)| *index)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::results::series::IntervalFigures;
    use crate::results::vocabulary::FaultKind;

    fn interval(ok: u64, unavailable: u64, max_us: u64) -> IntervalFigures {
        IntervalFigures {
            ok,
            unavailable,
            max_us,
            ..IntervalFigures::default()
        }
    }

    /// A recorded series, 100 ms intervals, 2xx per interval: a level of 100 for 1 s, the
    /// database away from 1.0 s to 2.05 s (503s, 2 s answers), then `after`.
    fn recorded(after: &[u64]) -> Series {
        let mut intervals = vec![interval(100, 0, 5_000); 10];
        intervals.extend(vec![interval(0, 20, 2_000_000); 10]);
        intervals.extend(after.iter().map(|&ok| interval(ok, 0, 9_000)));
        Series {
            interval_ms: 100,
            intervals,
        }
    }

    fn window(backlog: u64, drained: f64) -> FaultWindow {
        FaultWindow {
            started_seconds: 1.0,
            returned_seconds: 2.05,
            backlog: Some(backlog),
            drained_after_seconds: Some(drained),
            first_ok_after_seconds: Some(0.012),
        }
    }

    fn errors() -> BTreeMap<String, u64> {
        BTreeMap::from([
            ("status-503".to_string(), 200),
            ("status-503-no-retry-after".to_string(), 2),
            ("timeout".to_string(), 3),
        ])
    }

    #[test]
    fn a_burst_after_the_fault_then_a_level_below_the_band_is_not_back() {
        // The 64 waiting requests answered at once on top of the new level (a burst of 3x the
        // reference), then 70 per interval for the rest of the cell: the old rule (half a
        // second from the return, averaged) called this back at once, (300 + 4 x 70) / 5 = 116.
        let mut after = vec![300];
        after.extend([70; 29]);
        let series = recorded(&after);
        let figures = FaultFigures::of(&errors(), &series, &window(64, 0.04), Some(1_000.0));
        assert_eq!(figures.recovered_after_seconds, None);
        assert!(!figures.recovered());
        // The exact figures are the counts themselves.
        assert_eq!(figures.failed, 5);
        assert_eq!(figures.unavailable, 200);
        assert_eq!(figures.unavailable_without_retry_after(), 2);
        assert_eq!(figures.first_ok_after_seconds, Some(0.012));
        assert_eq!(
            (figures.backlog, figures.drained_after_seconds),
            (Some(64), Some(0.04))
        );
        assert_eq!(figures.before_ok_per_second, 1_000.0);
        assert_eq!(figures.level(), 1_000.0);
        assert_eq!(figures.sustained_seconds, Some(1.0));
        // Not back: the longest answer runs to the cell's end, the 2 s of the outage.
        assert_eq!(figures.longest_ms, 2_000.0);
    }

    #[test]
    fn a_level_that_holds_the_band_for_a_second_is_back() {
        // After a burst, 40 for 0.5 s, then 95 (within 90 % of the reference, 100) to the end.
        let mut after = vec![300];
        after.extend([40; 5]);
        after.extend([95; 24]);
        let series = recorded(&after);
        let figures = FaultFigures::of(&errors(), &series, &window(64, 0.04), Some(1_000.0));
        // Back from the first interval of the 95s, at 2.6 s: 0.55 s after the return (from
        // 2.5 s, one interval of 40 and nine of 95 average 89.5, short of 90).
        let back = figures.recovered_after_seconds.unwrap();
        assert!((back - 0.55).abs() < 1e-9, "{back}");
        // A second of 86, 95, 86, 95, ... (90.5 on average) holds the band too.
        let series = recorded(&[86, 95, 86, 95, 86, 95, 86, 95, 86, 95]);
        let figures = FaultFigures::of(&errors(), &series, &window(0, 0.0), Some(1_000.0));
        assert_eq!(figures.recovered_after_seconds, Some(0.0));
        // A burst counts at most as the reference: 300 does not make up for two intervals of
        // 60 (counted in full it would: 108.5 on average; capped, 88.5).
        let series = recorded(&[300, 60, 60, 95, 95, 95, 95, 95, 95, 95]);
        let figures = FaultFigures::of(&errors(), &series, &window(0, 0.0), Some(1_000.0));
        assert_eq!(figures.recovered_after_seconds, None);
        // Judged against the lower of the level before (1,000/s) and the reference cell's: a
        // reference cell measured in a fast moment of the machine does not raise the bar, one
        // measured in a slow moment lowers it, and without one the level before counts.
        let series = recorded(&[80; 12]);
        let figures = FaultFigures::of(&errors(), &series, &window(64, 0.04), Some(1_500.0));
        assert_eq!(
            (figures.reference, figures.level()),
            (Reference::LevelBefore, 1_000.0)
        );
        assert!(!figures.recovered());
        let figures = FaultFigures::of(&errors(), &series, &window(64, 0.04), Some(850.0));
        assert_eq!(
            (figures.reference, figures.level()),
            (Reference::CellAfter, 850.0)
        );
        assert!(figures.recovered());
        let figures = FaultFigures::of(&errors(), &series, &window(64, 0.04), Some(0.0));
        assert_eq!(
            (figures.reference, figures.level()),
            (Reference::LevelBefore, 1_000.0)
        );
        assert_eq!(figures.reference_ok_per_second, None);
    }

    #[test]
    fn back_counts_from_the_drained_backlog_and_needs_a_whole_window() {
        // A backlog that took 0.5 s to drain: back no earlier, even at a level from the start.
        let series = recorded(&[100; 20]);
        let figures = FaultFigures::of(&errors(), &series, &window(64, 0.5), Some(1_000.0));
        assert!((figures.recovered_after_seconds.unwrap() - 0.5).abs() < 1e-9);
        // Less than a whole second left after the return: not back within the cell.
        let series = recorded(&[100; 9]);
        let figures = FaultFigures::of(&errors(), &series, &window(64, 0.0), Some(1_000.0));
        assert_eq!(figures.recovered_after_seconds, None);
        // Without the engine's figures (version 3), the first 2xx is read from the series: the
        // end of the first interval with one, 2.1 s, 0.05 s after the return.
        let unwatched = FaultWindow {
            backlog: None,
            drained_after_seconds: None,
            first_ok_after_seconds: None,
            ..window(0, 0.0)
        };
        let figures = FaultFigures::of(&errors(), &recorded(&[100; 12]), &unwatched, None);
        assert!((figures.first_ok_after_seconds.unwrap() - 0.05).abs() < 1e-9);
        assert_eq!(figures.backlog, None);
    }

    fn record(back: Option<f64>, failed: u64) -> FaultRecord {
        let mut figures = FaultFigures::of(
            &BTreeMap::from([("timeout".to_string(), failed)]),
            &recorded(&[100; 12]),
            &window(60, 0.1),
            Some(1_000.0),
        );
        figures.recovered_after_seconds = back;
        FaultRecord {
            kind: FaultKind::DbRestart,
            at_seconds: 1.0,
            for_seconds: 1.0,
            started_seconds: 1.0,
            returned_seconds: 2.05,
            figures,
        }
    }

    #[test]
    fn rounds_give_medians_with_intervals_and_not_back_counts_as_latest() {
        // Five rounds, back in three: the median is the third time, the interval runs to
        // "not within the cell".
        let records = [
            record(Some(0.4), 0),
            record(None, 0),
            record(Some(0.2), 7),
            record(Some(0.3), 0),
            record(None, 0),
        ];
        let references: Vec<&FaultRecord> = records.iter().collect();
        let recovery = Recovery::of(&references).unwrap();
        assert_eq!((recovery.rounds, recovery.rounds_back), (5, 3));
        assert_eq!((recovery.rounds_failed, recovery.failed_total), (1, 7));
        let back = recovery.back_after_seconds;
        assert_eq!(
            (back.median, back.low, back.high),
            (Some(0.4), Some(0.2), None)
        );
        assert!((back.coverage.unwrap() - 0.9375).abs() < 1e-12);
        assert!(back.came());
        assert_eq!(recovery.failed.median, 0.0);
        assert_eq!(recovery.backlog.unwrap().median, 60.0);
        // The timeline shows the round with the median time: the 0.4 s one.
        assert_eq!(Recovery::shown_round(&references), 0);
        // Back in two of five: not back in the median round.
        let records = [
            record(None, 0),
            record(Some(0.2), 0),
            record(None, 0),
            record(None, 0),
            record(Some(0.3), 0),
        ];
        let references: Vec<&FaultRecord> = records.iter().collect();
        let recovery = Recovery::of(&references).unwrap();
        assert!(!recovery.back_after_seconds.came());
        assert_eq!(recovery.back_after_seconds.low, Some(0.2));
        assert_eq!(Recovery::of(&[]), None);
    }
}
