//! The engine against the test server: exact counts, known latencies, errors by kind and the
//! open-loop correction.

use std::sync::Arc;
use std::time::Duration;

use bakeoff::engine::{self, LiveCounters, LoadOutcome, LoadSpec, PlannedRequest};
use bakeoff::results::series::ErrorKind;
use bytes::Bytes;

use crate::test_server::TestServer;

pub fn spec(
    server: &TestServer,
    paths: &[&str],
    connections: usize,
    duration: Duration,
) -> LoadSpec {
    LoadSpec {
        address: server.address,
        requests: Arc::new(
            paths
                .iter()
                .map(|path| PlannedRequest::new(path, None).unwrap())
                .collect(),
        ),
        connections,
        threads: 1,
        warmup: Duration::ZERO,
        duration,
        rate: None,
        timeout: Duration::from_secs(5),
        check_every: 1,
        cpus: None,
        seed: 7,
        allow_remote: false,
        mark: None,
    }
}

pub fn run(spec: &LoadSpec) -> LoadOutcome {
    engine::run(spec, &Arc::new(LiveCounters::default())).unwrap()
}

fn errors(outcome: &LoadOutcome, kind: ErrorKind) -> u64 {
    outcome.errors.get(&kind).copied().unwrap_or(0)
}

#[test]
fn counts_every_request_the_server_answered() {
    let server = TestServer::start();
    let outcome = run(&spec(&server, &["/ok"], 8, Duration::from_millis(700)));
    // Every answer the server sent was received and counted once; those that completed after
    // the window closed count in the total only, at most one per connection.
    assert_eq!(outcome.total_responses, server.seen.answered());
    assert!(outcome.ok > 100, "{outcome:?}");
    assert_eq!(outcome.ok, outcome.responses);
    assert!(outcome.total_responses - outcome.responses <= 8);
    assert_eq!(outcome.error_count(), 0);
    assert_eq!(outcome.latency.len(), outcome.responses);
    assert_eq!(outcome.checked_bodies, 0, "no expected body was given");
}

#[test]
fn latency_percentiles_match_the_injected_delays() {
    let server = TestServer::start();
    // Nine fast requests for one slow one: p50 is the fast delay, p99 the slow one.
    let mut paths = vec!["/delay/5"; 9];
    paths.push("/delay/60");
    let outcome = run(&spec(&server, &paths, 8, Duration::from_millis(1_500)));
    let millis = |quantile: f64| outcome.latency.value_at_quantile(quantile) as f64 / 1_000.0;
    // A sleep never ends early; timers and scheduling may add a little on a busy machine.
    assert!((5.0..9.0).contains(&millis(0.5)), "p50 {} ms", millis(0.5));
    assert!(
        (60.0..68.0).contains(&millis(0.99)),
        "p99 {} ms",
        millis(0.99)
    );
    assert!(outcome.latency.min() >= 5_000);
    let slow_share =
        outcome.latency.count_between(50_000, 1_000_000) as f64 / outcome.latency.len() as f64;
    assert!(
        (0.05..0.16).contains(&slow_share),
        "slow share {slow_share}"
    );
}

#[test]
fn errors_are_counted_by_kind() {
    let server = TestServer::start();
    let outcome = run(&spec(
        &server,
        &["/ok", "/status/503", "/status/404", "/drop"],
        4,
        Duration::from_millis(800),
    ));
    let (ok, unavailable, missing) = (
        server.seen.status(200),
        server.seen.status(503),
        server.seen.status(404),
    );
    // Window counts may miss only the answers in flight when the window closed.
    for (counted, sent) in [
        (outcome.ok, ok),
        // Without Retry-After a 503 is not the contract's "come back later".
        (
            errors(&outcome, ErrorKind::UnavailableWithoutRetryAfter),
            unavailable,
        ),
        (errors(&outcome, ErrorKind::Status(404)), missing),
        (
            errors(&outcome, ErrorKind::Reset),
            server
                .seen
                .dropped
                .load(std::sync::atomic::Ordering::Relaxed),
        ),
    ] {
        assert!(
            counted > 10 && counted <= sent && sent - counted <= 4,
            "{counted} of {sent}: {outcome:?}"
        );
    }
    assert_eq!(errors(&outcome, ErrorKind::Connect), 0);
    assert_eq!(errors(&outcome, ErrorKind::Status(503)), 0);
}

#[test]
fn refused_connections_are_counted_and_nothing_else() {
    // A port that was just free: nothing listens there.
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let server = TestServer::start();
    let mut spec = spec(&server, &["/ok"], 2, Duration::from_millis(300));
    spec.address = address;
    let outcome = run(&spec);
    assert_eq!(outcome.responses, 0);
    assert!(errors(&outcome, ErrorKind::Connect) >= 2, "{outcome:?}");
    assert_eq!(outcome.errors.len(), 1);
}

#[test]
fn wrong_bodies_are_caught() {
    let server = TestServer::start();
    let mut spec = spec(&server, &[], 1, Duration::from_millis(400));
    spec.requests = Arc::new(vec![
        PlannedRequest::new("/alternate", Some(Bytes::from_static(b"right"))).unwrap(),
    ]);
    let outcome = run(&spec);
    let wrong = errors(&outcome, ErrorKind::Body);
    assert_eq!(outcome.checked_bodies, outcome.responses);
    assert_eq!(outcome.ok + wrong, outcome.responses);
    // Every fourth answer is wrong; one connection sees them in order.
    assert!(wrong * 4 >= outcome.responses - 4 && wrong * 4 <= outcome.responses + 4);
}

#[test]
fn the_open_loop_keeps_its_schedule_and_shows_a_stall() {
    let server = TestServer::start();
    let mut spec = spec(&server, &["/stall"], 2, Duration::from_secs(3));
    spec.rate = Some(200.0);
    // The server stops answering for one second, half a second into the run.
    server.stall_once(Duration::from_millis(500), Duration::from_secs(1));
    let outcome = run(&spec);
    let corrected = &outcome.latency;
    let uncorrected = outcome.uncorrected.as_ref().unwrap();
    // The schedule: 200 per second for 3 seconds, whatever the stall did.
    assert!(
        (590..=601).contains(&outcome.total_responses),
        "{}",
        outcome.total_responses
    );
    // Measured from the intended send time, every request due during the stall waited for it:
    // a third of the run, so the 90th percentile is deep in the stall.
    assert!(
        corrected.max() >= 900_000,
        "corrected max {}",
        corrected.max()
    );
    assert!(
        corrected.value_at_quantile(0.9) >= 500_000,
        "corrected p90 {}",
        corrected.value_at_quantile(0.9)
    );
    // Measured from the actual send, only the two requests caught in flight saw it.
    assert!(uncorrected.max() >= 500_000);
    assert!(
        uncorrected.value_at_quantile(0.9) < 100_000,
        "uncorrected p90 {}",
        uncorrected.value_at_quantile(0.9)
    );
}

#[test]
fn non_loopback_targets_are_refused() {
    let server = TestServer::start();
    let mut spec = spec(&server, &["/ok"], 1, Duration::from_millis(100));
    spec.address = "192.0.2.1:80".parse().unwrap();
    assert!(engine::run(&spec, &Arc::new(LiveCounters::default())).is_err());
}
