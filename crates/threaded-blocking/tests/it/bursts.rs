//! Bursts of simultaneous keep-alive connections: every request is answered. tiny_http 0.12.0
//! hands each accepted connection to a thread pool that could queue more connections than it had
//! idle threads, and a queued connection is read only once another one closes; its client hangs.
//! The workspace patches tiny_http (`third_party/tiny_http`, see `PATCHED.md` there); this test
//! fails against the unpatched crate.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bakeoff_suite::server_command;
use bakeoff_testkit::postgres::{APP_ROLE, free_port};
use bakeoff_testkit::server::ServerProcess;

/// Bursts per test, on one server.
const ROUNDS: usize = 5;
/// Connections opened at once in each burst.
const CONNECTIONS: usize = 16;
/// How long every connection of a burst may take to be answered. A served `/version` takes
/// milliseconds; a connection left in tiny_http's queue is not read while the others stay open.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

const REQUEST: &[u8] = b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n";

#[test]
fn answers_every_connection_of_a_burst() {
    // `/version` needs no database, and an unreachable one is not fatal.
    let database_url = format!(
        "postgres://{APP_ROLE}@127.0.0.1:{}/bakeoff",
        free_port().unwrap()
    );
    let server = ServerProcess::spawn(server_command(
        env!("CARGO_BIN_EXE_threaded-blocking"),
        &database_url,
    ))
    .unwrap();

    let mut failures = Vec::new();
    for round in 1..=ROUNDS {
        let unanswered = burst(server.address());
        if !unanswered.is_empty() {
            failures.push(format!(
                "round {round}: {} of {CONNECTIONS} connections unanswered after {ANSWER_WITHIN:?}: {}",
                unanswered.len(),
                unanswered.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {ROUNDS} bursts left requests unanswered:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Opens every connection first, then sends one request on each and waits for all the answers,
/// keeping every connection open until the last; they close when the burst returns. Returns the
/// connections not answered with a 200, each with what happened.
fn burst(address: SocketAddr) -> Vec<String> {
    let mut streams: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|_| TcpStream::connect(address).expect("connecting to the server"))
        .collect();
    for stream in &mut streams {
        stream.set_nodelay(true).expect("setting TCP_NODELAY");
        stream.write_all(REQUEST).expect("sending the request");
    }
    let deadline = Instant::now() + ANSWER_WITHIN;
    streams
        .iter_mut()
        .enumerate()
        .filter_map(|(index, stream)| match read_response(stream, deadline) {
            Ok(status) if status.starts_with("HTTP/1.1 200 ") => None,
            Ok(status) => Some(format!("#{index} answered {status:?}")),
            Err(error) => Some(format!("#{index}: {error}")),
        })
        .collect()
}

/// Reads one response (headers and a `Content-Length` body) by `deadline`; returns its status line.
fn read_response(stream: &mut TcpStream, deadline: Instant) -> Result<String, String> {
    let mut received = Vec::new();
    let mut buffer = [0_u8; 4096];
    loop {
        if let Some(end) = find(&received, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).into_owned();
            let length = head
                .lines()
                .filter_map(|line| line.split_once(':'))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, value)| value.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                return Ok(head.lines().next().unwrap_or_default().to_string());
            }
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(format!("no complete answer ({} bytes)", received.len()));
        }
        stream
            .set_read_timeout(Some(remaining))
            .map_err(|error| error.to_string())?;
        match stream.read(&mut buffer) {
            Ok(0) => return Err(format!("closed after {} bytes", received.len())),
            Ok(read) => received.extend_from_slice(&buffer[..read]),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(error) => return Err(error.to_string()),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
