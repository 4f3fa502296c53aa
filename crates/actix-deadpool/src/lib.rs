//! `actix-deadpool`: the contacts API on actix-web 4 with a deadpool-postgres pool, one pooled
//! connection checked out per request. The closest Rust analog of the original study's FastAPI +
//! asyncpg pool.
//!
//! actix runs `WORKERS` threads, each a single-threaded event loop with its own copy of the app;
//! all of them share one pool of at most `DB_POOL_SIZE` connections. A request takes a connection
//! for the length of its statements, so a connection is never shared by two requests at once
//! (unlike the axum variant's few shared, pipelined connections).

mod db;
mod error;
mod handlers;

use actix_web::{App, HttpServer, Resource, Responder, guard, web};
use bakeoff_core::config::{self, SHUTDOWN_DEADLINE};
use bakeoff_core::{Config, Variant, workload};

pub use db::{CONNECTIONS_PER_WORKER, Database, PoolSetupError};
pub use error::Error;
pub use handlers::AppState;

/// This variant, for `--help`, `/version` and `/test/resmon`.
pub const VARIANT: Variant = Variant {
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

/// The routes of the contract.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(get("/version", handlers::version))
        .service(get("/types", handlers::types))
        .service(get("/contacts", handlers::contacts))
        .service(get("/contacts/{contact_id}", handlers::contact))
        .service(get("/fibonacci/{n}", handlers::fibonacci))
        .service(get("/test/calibrate", handlers::calibrate))
        .service(get(
            "/test/sync-cpubound/{iterations}",
            handlers::sync_cpubound,
        ))
        .service(get(
            "/test/offload-cpubound/{iterations}",
            handlers::offload_cpubound,
        ))
        .service(get("/test/async-iobound/{millis}", handlers::async_iobound))
        .service(get(
            "/test/blocking-iobound/{millis}",
            handlers::blocking_iobound,
        ))
        .service(get("/test/resmon", handlers::resmon))
        .service(get("/openapi.json", handlers::openapi))
        .default_service(web::to(handlers::route_not_found));
}

/// A resource answering GET and HEAD at `path` and at `path/` (no redirect), and 405 for other
/// methods. actix routes HEAD only where asked (`web::get()` matches GET alone); for a HEAD it
/// runs the same handler, keeps the body's Content-Length and sends no body.
fn get<F, Args>(path: &str, handler: F) -> Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: Responder + 'static,
{
    web::resource([path.to_string(), format!("{path}/")])
        .route(
            web::route()
                .guard(guard::Any(guard::Get()).or(guard::Head()))
                .to(handler),
        )
        .default_service(web::to(handlers::method_not_allowed))
}

/// Builds the pool and the server, announces the bound address, and serves until SIGTERM or
/// SIGINT, after which in-flight requests get [`SHUTDOWN_DEADLINE`] to finish.
pub async fn run(config: Config) -> Result<(), RunError> {
    workload::warm_up();
    let state = web::Data::new(AppState {
        database: Database::new(&config)?,
        workers: config.workers_or_cpus(),
    });
    let server = HttpServer::new(move || App::new().app_data(state.clone()).configure(routes))
        .workers(config.workers_or_cpus())
        .shutdown_timeout(SHUTDOWN_DEADLINE.as_secs())
        .shutdown_signal(bakeoff_core::shutdown::signal().map_err(RunError::Serve)?)
        // actix's default backlog; SO_REUSEPORT when one of PROCESSES copies.
        .listen(
            bakeoff_core::processes::bind_listener(config.bind, 2048).map_err(|source| {
                RunError::Bind {
                    address: config.bind,
                    source,
                }
            })?,
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
