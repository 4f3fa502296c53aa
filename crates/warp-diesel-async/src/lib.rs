//! warp 0.4 + diesel-async: the ORM variant, the Rust analog of FastAPI with SQLAlchemy's ORM.
//!
//! The architecture this variant shows: the same pooled checkout per request as actix-deadpool,
//! but every statement is written in diesel's query DSL (`bakeoff_core::orm`) instead of SQL
//! text, and rows load into typed records. Next to the raw-SQL variants it measures what the
//! query builder costs per request, and shows how close the DSL stays to the SQL it replaces.
//!
//! Read it as every server crate reads: [`routes`] (warp's filters, each path to its handler),
//! [`handlers`] (one function per route), [`error`] (JSON replies, and warp's rejections and the
//! contract's errors as JSON), [`database`] (the pool and the queries).

mod database;
mod error;
mod handlers;
mod routes;

use anyhow::Context;
use bakeoff_core::config::{Config, VariantInfo};
use bakeoff_core::serving;

use crate::handlers::AppState;

pub const VARIANT: VariantInfo = VariantInfo {
    name: env!("CARGO_PKG_NAME"),
    summary: "warp 0.4 + diesel-async, queries in diesel's DSL over a deadpool connection pool",
    workers_default: "the CPUs available to the process",
    pool_default: "4 x WORKERS (a connection is held only for a request's statements)",
    recycle_meaning: "diesel-async's recycling method: fast checks only that the connection is \
                      not broken, verified also runs SELECT 1 on each checkout of an idle \
                      connection",
    unprepared_statements: Err(
        "diesel-async prepares every statement through tokio-postgres (named), whatever its statement cache size",
    ),
};

/// Builds the runtime with `WORKERS` threads and serves until SIGTERM or SIGINT.
pub fn run(config: Config) -> anyhow::Result<()> {
    serving::runtime(&config)?.block_on(serve(config))
}

/// Serves on the configured address; returns after a graceful shutdown.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let state = AppState {
        pool: database::pool(&config).context("building the connection pool")?,
        workers: config.workers_or_cpus(),
        pool_size: database::pool_size(&config),
    };

    // Binding here rather than in warp's `run(addr)`, which panics on failure and does not tell
    // the port it got when BIND asks for port 0.
    let (listener, shutdown) = serving::listen(&config).await?;
    warp::serve(routes::routes(state))
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
    Ok(())
}
