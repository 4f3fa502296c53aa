//! A fixed number of requests, sent in a fixed order on a few keep-alive connections, each
//! answer checked: the load of `bakeoff cost`. What matters there is exactly which requests a
//! count covers, not how fast they go, so the order never depends on timing: request `i` is
//! `requests[i % len]`, and connection `c` of `C` sends requests `c`, `c + C`, `c + 2C`, ... one
//! at a time, each waiting for its answer (a closed loop that keeps pace with the server, however
//! slow it runs). A connection is kept alive, or opened anew for every request
//! ([`Connections::PerRequest`], as `curl` in a loop does).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::engine::PlannedRequest;
use crate::http1::{BodyUse, Connection, GetRequest};
use crate::results::series::ErrorKind;

/// How the requests of one sender go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connections {
    /// One keep-alive connection for all its requests.
    KeptAlive,
    /// A new connection for every request, closed after its answer.
    PerRequest,
}

/// What a sequence came to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sent {
    /// 2xx answers with the expected body (where one is expected).
    pub ok: u64,
    /// Failed requests by kind (`status-500`, `body`, `timeout`...).
    pub failures: BTreeMap<String, u64>,
    /// Wall time of the whole sequence.
    pub seconds: f64,
}

impl Sent {
    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }
}

/// Sends `count` requests drawn in order from `requests` on `connections` connections to
/// `address`; a request not answered within `timeout` fails (and its connection is opened
/// again).
pub async fn send(
    address: SocketAddr,
    requests: &[PlannedRequest],
    count: usize,
    connections: usize,
    reuse: Connections,
    timeout: Duration,
) -> Result<Sent> {
    anyhow::ensure!(!requests.is_empty(), "no requests to send");
    let connections = connections.clamp(1, count.max(1));
    let wire: Vec<GetRequest> = requests
        .iter()
        .map(|request| GetRequest::new(address, &request.path).map_err(anyhow::Error::msg))
        .collect::<Result<_>>()?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for first in 0..connections {
        let indexes: Vec<usize> = (first..count)
            .step_by(connections)
            .map(|i| i % requests.len())
            .collect();
        let wire = wire.clone();
        let expected: Vec<Option<bytes::Bytes>> = requests
            .iter()
            .map(|request| request.expected.clone())
            .collect();
        tasks.spawn(async move {
            one_connection(address, &wire, &expected, &indexes, reuse, timeout).await
        });
    }
    let mut sent = Sent::default();
    while let Some(outcome) = tasks.join_next().await {
        let part = outcome.context("a sending task stopped")?;
        sent.ok += part.ok;
        for (kind, failed) in part.failures {
            *sent.failures.entry(kind).or_default() += failed;
        }
    }
    sent.seconds = started.elapsed().as_secs_f64();
    Ok(sent)
}

async fn one_connection(
    address: SocketAddr,
    wire: &[GetRequest],
    expected: &[Option<bytes::Bytes>],
    indexes: &[usize],
    reuse: Connections,
    timeout: Duration,
) -> Sent {
    let mut sent = Sent::default();
    let mut connection: Option<Connection> = None;
    for &index in indexes {
        let outcome = tokio::time::timeout(timeout, async {
            if connection.as_ref().is_none_or(|open| !open.is_reusable()) {
                connection = Some(Connection::open(address, timeout).await?);
            }
            let Some(open) = connection.as_mut() else {
                return Err(crate::http1::TransportError::Connect);
            };
            let body = match &expected[index] {
                Some(bytes) => BodyUse::Compare(bytes),
                None => BodyUse::Count,
            };
            open.exchange(&wire[index], body).await
        })
        .await;
        let failure = match outcome {
            Ok(Ok(answer)) if (200..300).contains(&answer.status) && answer.body_matches => None,
            Ok(Ok(answer)) if (200..300).contains(&answer.status) => Some(ErrorKind::Body),
            Ok(Ok(answer)) => Some(ErrorKind::Status(answer.status)),
            Ok(Err(error)) => Some(ErrorKind::from(error)),
            Err(_) => Some(ErrorKind::Timeout),
        };
        if reuse == Connections::PerRequest {
            connection = None;
        }
        match failure {
            None => sent.ok += 1,
            Some(kind) => {
                *sent.failures.entry(kind.name()).or_default() += 1;
                // An abandoned exchange leaves the connection unusable.
                connection = None;
            }
        }
    }
    sent
}
