//! `actix-deadpool`: the contacts API on actix-web 4 with a deadpool-postgres pool, one pooled
//! connection checked out per request. The closest Rust analog of the original study's FastAPI +
//! asyncpg pool.
//!
//! actix runs `WORKERS` threads, each a single-threaded event loop with its own copy of the app;
//! all of them share one pool of at most `DB_POOL_SIZE` connections. A request takes a connection
//! for the length of its statements, so a connection is never shared by two requests at once
//! (unlike the axum variant's few shared, pipelined connections).
//!
//! Read it as every server crate reads: [`routes`] (each path to its handler), [`handlers`] (one
//! function per route), [`error`] (the contract's errors as actix responses), [`database`] (the
//! pool and the checkout).

mod database;
mod error;
mod handlers;
mod routes;

use actix_web::{App, HttpServer, web};
use bakeoff_core::config::{self, SHUTDOWN_DEADLINE};
use bakeoff_core::{Config, VariantInfo, workload};

pub use database::PoolSetupError;

use crate::database::DbPool;
use crate::handlers::AppState;

/// This variant, for `--help`, `/version` and `/test/resmon`.
pub const VARIANT: VariantInfo = VariantInfo {
    name: env!("CARGO_PKG_NAME"),
    summary: "actix-web + deadpool-postgres, one pooled connection checked out per request",
    workers_default: "the number of CPUs (actix workers, one event loop thread each)",
    pool_default: "4 x WORKERS (one pool shared by all workers)",
    recycle_meaning: "deadpool-postgres's recycling method: fast checks only that the socket is \
                      open, verified also runs an empty query on each checkout of an idle \
                      connection",
    unprepared_statements: Err(
        "statements are prepared and cached per connection (deadpool-postgres `prepare_cached`); unprepared statements would take other calls (tokio-postgres `query_typed`), not a setting",
    ),
};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Pool(#[from] PoolSetupError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// Builds the pool and the server, announces the bound address, and serves until SIGTERM or
/// SIGINT, after which in-flight requests get [`SHUTDOWN_DEADLINE`] to finish.
pub async fn run(config: Config) -> Result<(), RunError> {
    workload::warm_up();
    let state = web::Data::new(AppState {
        pool: DbPool::new(&config)?,
        workers: config.workers_or_cpus(),
    });
    let server =
        HttpServer::new(move || App::new().app_data(state.clone()).configure(routes::routes))
            .workers(config.workers_or_cpus())
            .shutdown_timeout(SHUTDOWN_DEADLINE.as_secs())
            .shutdown_signal(bakeoff_core::shutdown::signal().map_err(RunError::Serve)?)
            // actix's default backlog; SO_REUSEPORT when one of PROCESSES copies.
            .listen(
                bakeoff_core::process_group::bind_listener(config.bind, 2048).map_err(
                    |source| RunError::Bind {
                        address: config.bind,
                        source,
                    },
                )?,
            )
            .map_err(|source| RunError::Bind {
                address: config.bind,
                source,
            })?;
    for address in server.addrs() {
        config::announce_listening(address);
    }
    server.run().await.map_err(RunError::Serve)
}
