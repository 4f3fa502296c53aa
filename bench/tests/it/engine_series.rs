//! The engine's series against the test server: the intervals add up to the run's totals, over
//! one engine thread and over several, a stall shows where it happened, and a mark set during
//! the run counts what was waiting then.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bakeoff::engine::{LoadOutcome, Mark};
use bakeoff::results::series::{ErrorKind, Series};

use crate::engine::{run, spec};
use crate::test_server::TestServer;

/// Every count of the series, summed over its intervals, is the run's own.
fn assert_series_adds_up(outcome: &LoadOutcome) {
    let series = &outcome.series;
    let sum = |count: fn(&bakeoff::results::series::IntervalFigures) -> u64| -> u64 {
        series.intervals.iter().map(count).sum()
    };
    assert_eq!(sum(|i| i.ok), outcome.ok);
    assert_eq!(sum(|i| i.answers()), outcome.responses);
    for (kind, total) in &outcome.errors {
        let name = kind.name();
        let counted: u64 = series
            .intervals
            .iter()
            .map(|interval| interval.errors.get(&name).copied().unwrap_or(0))
            .sum();
        assert_eq!(counted, *total, "{name}");
    }
    let unavailable = outcome
        .errors
        .iter()
        .filter(|(kind, _)| {
            matches!(
                kind,
                ErrorKind::Status(503) | ErrorKind::UnavailableWithoutRetryAfter
            )
        })
        .map(|(_, count)| count)
        .sum::<u64>();
    assert_eq!(sum(|i| i.unavailable), unavailable);
}

#[test]
fn the_series_adds_up_to_the_totals_on_one_thread_and_on_two() {
    let server = TestServer::start();
    for threads in [1, 2] {
        let mut spec = spec(
            &server,
            &["/ok", "/unavailable", "/status/503", "/status/404", "/drop"],
            6,
            Duration::from_millis(1_000),
        );
        spec.threads = threads;
        let outcome = run(&spec);
        let series: &Series = &outcome.series;
        assert_eq!(series.interval_ms, 100);
        assert_eq!(series.intervals.len(), 10, "{threads} threads");
        assert_series_adds_up(&outcome);
        // Both kinds of 503 were told apart, and every interval saw answers with latencies.
        assert!(outcome.errors[&ErrorKind::Status(503)] > 10);
        assert!(outcome.errors[&ErrorKind::UnavailableWithoutRetryAfter] > 10);
        for interval in &series.intervals {
            assert!(interval.ok > 0 && interval.unavailable > 0, "{interval:?}");
            assert!(interval.p50_us > 0 && interval.p50_us <= interval.p99_us);
            assert!(interval.p99_us <= interval.max_us);
        }
        // Every interval's latencies are within the run's.
        let highest = series.intervals.iter().map(|i| i.max_us).max().unwrap();
        let whole_max = outcome.latency.max();
        assert!(
            highest.abs_diff(whole_max) * 50 <= whole_max,
            "{highest} vs {whole_max}"
        );
    }
}

#[test]
fn a_stall_shows_in_the_series_where_it_happened() {
    let server = TestServer::start();
    let spec = spec(&server, &["/stall"], 4, Duration::from_millis(1_500));
    // From 0.5 s to 1.0 s nothing is answered; what arrived then is answered at 1.0 s.
    server.stall_once(Duration::from_millis(500), Duration::from_millis(500));
    let outcome = run(&spec);
    assert_series_adds_up(&outcome);
    let intervals = &outcome.series.intervals;
    assert_eq!(intervals.len(), 15);
    // Engine and server start within milliseconds of each other: allow an interval either side.
    for index in [0, 1, 2, 3] {
        assert!(intervals[index].ok > 20, "{index}: {:?}", intervals[index]);
    }
    for index in [6, 7, 8] {
        assert_eq!(intervals[index].ok, 0, "{index}: {:?}", intervals[index]);
    }
    for index in [11, 12, 13, 14] {
        assert!(intervals[index].ok > 20, "{index}: {:?}", intervals[index]);
    }
    // The answers released at the end of the stall waited about half a second.
    let longest = intervals[9..=10].iter().map(|i| i.max_us).max().unwrap();
    assert!((400_000..700_000).contains(&longest), "{longest}");
}

#[test]
fn a_mark_counts_the_requests_waiting_then_and_when_they_drained() {
    let server = TestServer::start();
    let mut spec = spec(&server, &["/stall"], 4, Duration::from_millis(1_200));
    spec.threads = 2;
    let mark = Arc::new(Mark::default());
    spec.mark = Some(Arc::clone(&mark));
    // The server holds every request from 0.3 s to 0.8 s; the mark falls 0.1 s before the end
    // of the stall, while all four connections wait, as a database coming back would.
    server.stall_once(Duration::from_millis(300), Duration::from_millis(500));
    let marker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        mark.set(Instant::now());
    });
    let outcome = run(&spec);
    marker.join().unwrap();
    let after = outcome.after_mark.expect("the mark was set during the run");
    let mark = after.mark.unwrap();
    // One request per connection was waiting, answered when the stall ended, about 0.1 s later
    // (the bound leaves room for a busy machine).
    assert_eq!(after.waiting, 4, "{after:?}");
    let drained = after.drained.unwrap().duration_since(mark);
    assert!(drained < Duration::from_millis(500), "{drained:?}");
    let first_ok = after.first_ok.unwrap().duration_since(mark);
    assert!(first_ok <= drained, "{first_ok:?} after {drained:?}");
    // A run without a mark watches nothing.
    let mut plain = crate::engine::spec(&server, &["/ok"], 2, Duration::from_millis(200));
    plain.mark = None;
    assert_eq!(run(&plain).after_mark, None);
}
