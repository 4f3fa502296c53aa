//! What the variants on tokio do around their framework, the same for each: a runtime with
//! `WORKERS` worker threads, and before serving the CPU workload warmed up, the shutdown signal
//! installed and the listening socket bound (shared with the other copies under `PROCESSES`) and announced. Their `lib.rs` then shows only what
//! differs: the framework and the database access.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::runtime::Runtime;

use crate::config::{Config, announce_listening};

/// Why a tokio variant could not start serving.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot build the tokio runtime")]
    Runtime(#[source] std::io::Error),
    #[error("cannot install the SIGTERM/SIGINT handler")]
    Signal(#[source] std::io::Error),
    #[error("cannot listen on {address}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The multi-threaded runtime with `WORKERS` worker threads (default: the CPUs available).
pub fn runtime(config: &Config) -> Result<Runtime, StartError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.workers_or_cpus())
        .enable_all()
        .build()
        .map_err(StartError::Runtime)
}

/// Warms the CPU workload up, installs the signal handlers, binds `BIND` and announces the bound
/// address: returns the listener and the future that resolves at SIGTERM or SIGINT (see
/// [`crate::shutdown::signal`]).
pub async fn listen(
    config: &Config,
) -> Result<(TcpListener, impl Future<Output = ()> + Send + 'static), StartError> {
    crate::workload::warm_up();
    let shutdown = crate::shutdown::signal().map_err(StartError::Signal)?;
    let bind_error = |source| StartError::Bind {
        address: config.bind,
        source,
    };
    // tokio's own backlog for `TcpListener::bind`; SO_REUSEPORT when one of PROCESSES copies.
    let listener = crate::process_group::bind_listener(config.bind, 1024).map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    let listener = TcpListener::from_std(listener).map_err(bind_error)?;
    announce_listening(listener.local_addr().map_err(bind_error)?);
    Ok((listener, shutdown))
}
