//! Graceful shutdown, the same in every variant: on SIGTERM or SIGINT stop accepting, let the
//! requests in flight finish, and exit 0; if some are still running at [`SHUTDOWN_DEADLINE`], exit
//! 1 anyway, so that a benchmark can tell a clean stop from a cut one.

use crate::config::SHUTDOWN_DEADLINE;

/// Ends the process at the deadline unless it has exited by then. A plain thread, not a task: a
/// runtime whose workers are all stuck in blocking handlers would never run a task.
pub fn enforce_deadline() {
    std::thread::spawn(|| {
        std::thread::sleep(SHUTDOWN_DEADLINE);
        tracing::warn!(
            deadline_seconds = SHUTDOWN_DEADLINE.as_secs(),
            "requests still in flight at the shutdown deadline; exiting anyway"
        );
        std::process::exit(1);
    });
}

/// For the tokio-based servers: a future that resolves on the first SIGTERM or SIGINT and then
/// starts the deadline. The handlers are installed when this is called, before the server
/// announces its address, so an early signal is never lost.
#[cfg(feature = "tokio")]
pub fn signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM: finishing requests in flight"),
            _ = interrupt.recv() => tracing::info!("SIGINT: finishing requests in flight"),
        }
        enforce_deadline();
    })
}
