//! The burst timer: N connections are opened first, then N identical requests are released
//! together, and the burst lasts until the last answer is in. This is the study's measure: how
//! long a client waits for the slowest of N simultaneous requests, each asking for about T seconds
//! of server work.
//!
//! A probe can ride along: at a set moment after the release it reads the server's thread count
//! and memory from /proc (when the server is a local process) and asks `/test/resmon` over a
//! connection of its own, recording how long that answer took while the burst was in flight.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::join_all;

use crate::http1::{Connection, GetRequest, TransportError};

/// How long opened connections are given to be accepted before the release, so that the burst
/// times the requests and not the server's accept loop.
const SETTLE: Duration = Duration::from_millis(10);

/// One burst.
#[derive(Debug, Clone)]
pub struct BurstSpec {
    pub address: SocketAddr,
    /// The path every request of the burst asks for.
    pub path: String,
    /// How many requests (and connections).
    pub concurrency: usize,
    /// A request not answered within this counts as a timeout.
    pub timeout: Duration,
    pub probe: Option<Probe>,
}

/// A look at the server while the burst is in flight.
#[derive(Debug, Clone)]
pub struct Probe {
    /// When, after the release.
    pub after: Duration,
    /// Asked over the probe's own connection (`/test/resmon`); `None` asks nothing.
    pub path: Option<String>,
    /// The server's process, read from /proc at that moment when it runs here.
    pub pid: Option<u32>,
}

/// What one request of a burst got.
#[derive(Debug, Clone)]
pub struct RequestOutcome {
    /// The status and body, or how the exchange failed.
    pub result: Result<(u16, Bytes), TransportError>,
    /// From the release to the end of the answer (or the failure).
    pub seconds: f64,
}

/// What the probe saw.
#[derive(Debug, Clone, Default)]
pub struct ProbeOutcome {
    /// Threads of the server process, from /proc.
    pub threads: Option<i64>,
    /// Resident memory of the server process, from /proc.
    pub rss_bytes: Option<u64>,
    /// The probe request's answer.
    pub answer: Option<Result<(u16, Bytes), TransportError>>,
    /// From sending the probe request to its answer.
    pub answered_after: Option<f64>,
}

/// A finished burst.
#[derive(Debug, Clone)]
pub struct BurstOutcome {
    /// From the release to the last answer (or failure): the figure the study plots.
    pub seconds: f64,
    /// One per request, in connection order.
    pub answers: Vec<RequestOutcome>,
    pub probe: Option<ProbeOutcome>,
}

impl BurstOutcome {
    /// Answers with status 200.
    pub fn ok(&self) -> usize {
        self.answers
            .iter()
            .filter(|answer| matches!(answer.result, Ok((200, _))))
            .count()
    }

    /// The earliest answer, in seconds from the release.
    pub fn first_seconds(&self) -> f64 {
        self.answers
            .iter()
            .map(|answer| answer.seconds)
            .fold(f64::INFINITY, f64::min)
    }
}

/// Sends `request` on a connection opened before the release and reads the answer within
/// `timeout`; a connection that could not be opened fails the request the way opening failed.
async fn get_within(
    link: &mut Result<Connection, TransportError>,
    request: &GetRequest,
    timeout: Duration,
) -> Result<(u16, Bytes), TransportError> {
    match link {
        Ok(link) => tokio::time::timeout(timeout, link.get(request))
            .await
            .unwrap_or(Err(TransportError::Timeout)),
        Err(kind) => Err(*kind),
    }
}

/// Opens the connections, releases the requests together and waits for every answer.
pub async fn run(spec: &BurstSpec) -> anyhow::Result<BurstOutcome> {
    anyhow::ensure!(spec.concurrency >= 1, "a burst needs at least one request");
    let request = GetRequest::new(spec.address, &spec.path).map_err(anyhow::Error::msg)?;
    let probe_request = match spec.probe.as_ref().and_then(|p| p.path.as_ref()) {
        Some(path) => Some(GetRequest::new(spec.address, path).map_err(anyhow::Error::msg)?),
        None => None,
    };

    // Every connection is open before the clock starts; one that cannot be opened is a failed
    // request of the burst, not a reason to stop.
    let mut links: Vec<Result<Connection, TransportError>> =
        join_all((0..spec.concurrency).map(|_| Connection::open(spec.address, spec.timeout))).await;
    let mut probe_link = match &probe_request {
        Some(_) => Some(Connection::open(spec.address, spec.timeout).await),
        None => None,
    };
    tokio::time::sleep(SETTLE).await;

    let released = Instant::now();
    let requests = join_all(links.iter_mut().map(|link| {
        let request = &request;
        async move {
            let result = get_within(link, request, spec.timeout).await;
            RequestOutcome {
                result,
                seconds: released.elapsed().as_secs_f64(),
            }
        }
    }));
    let probing = async {
        let probe = spec.probe.as_ref()?;
        tokio::time::sleep_until((released + probe.after).into()).await;
        let mut outcome = ProbeOutcome::default();
        if let Some(pid) = probe.pid
            && let Some(tree) = crate::processes::read_tree(pid)
        {
            outcome.threads = i64::try_from(tree.threads).ok();
            outcome.rss_bytes = Some(tree.rss_bytes);
        }
        if let (Some(request), Some(link)) = (&probe_request, probe_link.as_mut()) {
            let sent = Instant::now();
            let result = get_within(link, request, spec.timeout).await;
            outcome.answered_after = Some(sent.elapsed().as_secs_f64());
            outcome.answer = Some(result);
        }
        Some(outcome)
    };
    let (answers, probe) = tokio::join!(requests, probing);
    let seconds = answers
        .iter()
        .map(|answer| answer.seconds)
        .fold(0.0, f64::max);
    Ok(BurstOutcome {
        seconds,
        answers,
        probe,
    })
}
