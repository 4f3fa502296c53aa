//! threaded-blocking: the control case. A fixed pool of OS threads, each taking one request at a
//! time from a shared `tiny_http::Server` and blocking on sync diesel over an r2d2 pool: the shape
//! of Flask or Django under gunicorn's sync workers, with no async runtime anywhere in the
//! request path.
//!
//! Concurrency is exactly `WORKERS`: a request that sleeps, computes or waits for PostgreSQL holds
//! its thread, and further requests queue until a thread is free. That is the baseline the async
//! variants are judged against.
//!
//! tiny_http reads each connection on a thread of its own and hands its requests to the workers.
//! The workspace patches tiny_http 0.12.0 (`third_party/tiny_http/PATCHED.md`), whose pool of
//! connection threads could leave connections of a burst queued without a thread, unanswered.
//!
//! Read it as every server crate reads: [`routes`] (each path to its handler), [`handlers`] (one
//! function per route), [`database`] (the pool and the queries), and [`http`], what tiny_http
//! leaves to the application (a body cap, a panic's 500, every response built as JSON, errors
//! included).

mod database;
mod handlers;
mod http;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use bakeoff_core::config::{self, Config, VariantInfo};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tiny_http::Server;

use crate::database::DbPool;
use crate::handlers::AppState;

/// What `--help`, `/version` and `/test/resmon` say about this variant.
pub const VARIANT: VariantInfo = VariantInfo {
    name: env!("CARGO_PKG_NAME"),
    summary: "tiny_http + sync diesel + r2d2: a fixed pool of OS threads, each serving one request \
              at a time and blocking on the database (gunicorn's sync workers)",
    workers_default: "2 x CPUs + 1, gunicorn's recommendation for sync workers",
    pool_default: "WORKERS, one connection per thread",
    recycle_meaning: "r2d2's test_on_check_out: verified runs SELECT 1 on every checkout, fast \
                      runs nothing",
    unprepared_statements: Ok(
        "disables diesel's prepared-statement cache (CacheSize::Disabled): each statement goes \
         out with PQsendQueryParams, parse, bind and execute in one round trip",
    ),
};

/// Why the server could not start, or stopped other than by a signal.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {address}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot serve on the listening socket")]
    Server(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot install the SIGTERM/SIGINT handler")]
    Signals(#[source] std::io::Error),
    #[error("cannot start a worker thread")]
    Spawn(#[source] std::io::Error),
    #[error("the listening socket failed")]
    Listener(#[source] std::io::Error),
}

/// The request-serving threads: `WORKERS` when set, otherwise gunicorn's `2 x CPUs + 1`.
pub fn workers(config: &Config) -> usize {
    config.workers_or(2 * config::available_cpus().get() + 1)
}

/// Serves until SIGTERM or SIGINT, then finishes the requests already taken and returns.
pub fn run(config: Config) -> Result<(), ServeError> {
    let workers = workers(&config);
    let db_pool_size = config.db_pool_size_or(workers);
    // The pool connects in the background: an unreachable database at startup is not fatal.
    let pool = DbPool::new(
        &config.database_url,
        db_pool_size,
        config.db_wait_timeout,
        config.db_recycle,
        config.db_statements,
    );
    let state = Arc::new(AppState {
        pool,
        workers,
        pool_size: db_pool_size,
    });

    // std's backlog for `TcpListener::bind`; SO_REUSEPORT when one of PROCESSES copies.
    let listener =
        bakeoff_core::process_group::bind_listener(config.bind, 128).map_err(|source| {
            ServeError::Bind {
                address: config.bind,
                source,
            }
        })?;
    let address = listener.local_addr().map_err(|source| ServeError::Bind {
        address: config.bind,
        source,
    })?;
    let server = Arc::new(Server::from_listener(listener, None).map_err(ServeError::Server)?);
    let shutdown = Arc::new(Shutdown::new(Arc::clone(&server), workers));
    watch_signals(Arc::clone(&shutdown))?;
    bakeoff_core::workload::warm_up();

    let threads = (0..workers)
        .map(|index| {
            let (server, state, shutdown) = (
                Arc::clone(&server),
                Arc::clone(&state),
                Arc::clone(&shutdown),
            );
            thread::Builder::new()
                .name(format!("worker-{index}"))
                .spawn(move || work(&server, &state, &shutdown))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(ServeError::Spawn)?;
    tracing::info!(%address, workers, db_pool_size, "serving");
    config::announce_listening(address);

    let mut failure = None;
    for thread in threads {
        match thread.join() {
            Ok(None) => {}
            Ok(Some(error)) => failure = Some(error),
            // Handlers run under catch_unwind, so this is a panic in the serving loop itself.
            Err(_) => tracing::error!("a worker thread panicked"),
        }
    }
    match failure {
        Some(error) => Err(ServeError::Listener(error)),
        None => Ok(()),
    }
}

/// One worker thread: take a request, serve it to the end, repeat. Returns the listener's error
/// if that is what stopped it.
fn work(server: &Server, state: &AppState, shutdown: &Shutdown) -> Option<std::io::Error> {
    loop {
        match server.recv() {
            Ok(request) => http::serve(state, request),
            // After `Shutdown::begin`, the error is the wake-up that tells this thread to stop.
            Err(_) if shutdown.has_begun() => return None,
            Err(error) => {
                // tiny_http reports an accept error once and then stops accepting for good: the
                // server is deaf, so it shuts down rather than pretend to be up.
                tracing::error!(%error, "the listening socket failed; shutting down");
                shutdown.begin();
                return Some(error);
            }
        }
    }
}

/// Stopping the workers: each is woken from `recv()` once, after the requests already queued.
///
/// tiny_http closes its listening socket only when the `Server` is dropped, so connections keep
/// being accepted until the process exits; a request that arrives after the signal queues behind
/// the wake-ups, is never taken, and its connection is closed by the exit.
struct Shutdown {
    begun: AtomicBool,
    server: Arc<Server>,
    workers: usize,
}

impl Shutdown {
    fn new(server: Arc<Server>, workers: usize) -> Shutdown {
        Shutdown {
            begun: AtomicBool::new(false),
            server,
            workers,
        }
    }

    fn has_begun(&self) -> bool {
        self.begun.load(Ordering::SeqCst)
    }

    fn begin(&self) {
        if !self.begun.swap(true, Ordering::SeqCst) {
            // `unblock` queues one wake-up behind the requests already taken off the socket, and
            // wakes one thread: one per worker stops them all once that backlog is served.
            for _ in 0..self.workers {
                self.server.unblock();
            }
        }
    }
}

/// On the first SIGTERM or SIGINT: stop the workers, and force the exit if they have not
/// finished within the deadline (a `/test/blocking-iobound/60000` would otherwise hold it).
fn watch_signals(shutdown: Arc<Shutdown>) -> Result<(), ServeError> {
    let mut signals = Signals::new([SIGTERM, SIGINT]).map_err(ServeError::Signals)?;
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                tracing::info!(signal, "shutting down: finishing requests in flight");
                shutdown.begin();
                bakeoff_core::shutdown::enforce_deadline();
            }
        })
        .map_err(ServeError::Signals)?;
    Ok(())
}
