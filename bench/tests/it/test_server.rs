//! A tiny hyper server whose behaviour the engine tests know exactly: it answers after a given
//! delay, with a given status (`/unavailable`: 503 with `Retry-After`), drops connections on
//! request, stalls once on a schedule, and counts every request it answers by status.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// What the server has seen.
#[derive(Debug, Default)]
pub struct Seen {
    /// Requests answered, by status.
    pub by_status: Mutex<BTreeMap<u16, u64>>,
    /// Connections dropped on purpose.
    pub dropped: AtomicU64,
    /// Requests to `/alternate`, which answers a wrong body every fourth time.
    pub alternate: AtomicU64,
}

impl Seen {
    pub fn status(&self, status: u16) -> u64 {
        self.by_status
            .lock()
            .unwrap()
            .get(&status)
            .copied()
            .unwrap_or(0)
    }

    pub fn answered(&self) -> u64 {
        self.by_status.lock().unwrap().values().sum()
    }
}

/// A running test server; it lives as long as the test process (its thread is detached).
pub struct TestServer {
    pub address: SocketAddr,
    pub seen: Arc<Seen>,
    /// Requests arriving in this window wait until its end (`/stall` only).
    stall: Arc<Mutex<Option<(Instant, Instant)>>>,
}

impl TestServer {
    pub fn start() -> TestServer {
        let seen = Arc::new(Seen::default());
        let stall = Arc::new(Mutex::new(None));
        let (server_seen, server_stall) = (Arc::clone(&seen), Arc::clone(&stall));
        let address = serve_http1(move |request| {
            answer(request, Arc::clone(&server_seen), Arc::clone(&server_stall))
        });
        TestServer {
            address,
            seen,
            stall,
        }
    }

    /// Makes `/stall` requests that arrive from `after` from now on wait until `after + length`.
    pub fn stall_once(&self, after: Duration, length: Duration) {
        let start = Instant::now() + after;
        *self.stall.lock().unwrap() = Some((start, start + length));
    }
}

/// Serves HTTP/1.1 on a loopback port with `answer` on a runtime of its own (two workers, a
/// detached thread that lives as long as the test process), and returns the port's address. An
/// answer's error drops the connection.
pub fn serve_http1<Answer, Answered, Failure>(answer: Answer) -> SocketAddr
where
    Answer: Fn(Request<Incoming>) -> Answered + Clone + Send + Sync + 'static,
    Answered: Future<Output = Result<Response<Full<Bytes>>, Failure>> + Send + 'static,
    Failure: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            sender.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let answer = answer.clone();
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service_fn(answer))
                        .await;
                });
            }
        });
    });
    receiver.recv().unwrap()
}

#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("connection dropped on purpose")
    }
}

impl std::error::Error for Dropped {}

async fn answer(
    request: Request<Incoming>,
    seen: Arc<Seen>,
    stall: Arc<Mutex<Option<(Instant, Instant)>>>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let path = request.uri().path().to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (status, body): (u16, &'static str) = match segments.as_slice() {
        ["ok"] => (200, "ok"),
        ["delay", millis] => {
            let millis: u64 = millis.parse().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(millis)).await;
            (200, "ok")
        }
        ["status", code] => (code.parse().unwrap_or(500), "status"),
        ["unavailable"] => (503, "unavailable"),
        ["drop"] => {
            seen.dropped.fetch_add(1, Ordering::Relaxed);
            // An error from the service makes hyper close the connection without an answer.
            return Err(Dropped);
        }
        ["stall"] => {
            let window = *stall.lock().unwrap();
            if let Some((start, end)) = window {
                let now = Instant::now();
                if now >= start && now < end {
                    tokio::time::sleep_until(end.into()).await;
                }
            }
            (200, "ok")
        }
        ["alternate"] => {
            let count = seen.alternate.fetch_add(1, Ordering::Relaxed);
            (200, if count % 4 == 3 { "wrong" } else { "right" })
        }
        _ => (404, "no such path"),
    };
    *seen.by_status.lock().unwrap().entry(status).or_insert(0) += 1;
    let mut response = Response::builder().status(status);
    if path == "/unavailable" {
        response = response.header("Retry-After", "1");
    }
    let response = response
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    Ok::<_, Dropped>(response)
}
