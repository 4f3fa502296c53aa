//! axum + tokio-postgres with no pool crate: a small fixed set of long-lived connections shared by
//! every request.
//!
//! The architecture this variant shows: tokio-postgres connections are cheap to share, because a
//! `Client` pipelines the statements of concurrent requests on one socket. So instead of checking a
//! connection out per request (the actix-deadpool variant), requests pick one of `DB_POOL_SIZE`
//! shared connections round-robin, and a request's independent statements go out together.
//! Statements are prepared once per connection when it opens. See [`database`] for recovery, and
//! for why `DB_RECYCLE` changes nothing here.
//!
//! Read it as every server crate reads: [`routes`] (each path to its handler), [`handlers`] (one
//! function per route), [`error`] (the contract's errors as axum responses), [`database`] (the
//! server's connections to PostgreSQL).

mod database;
mod error;
mod handlers;
mod routes;

use std::sync::Arc;

use anyhow::Context;
use bakeoff_core::config::{Config, VariantInfo};
use bakeoff_core::serving;

use crate::database::DbPool;
use crate::handlers::AppState;

pub const VARIANT: VariantInfo = VariantInfo {
    name: env!("CARGO_PKG_NAME"),
    summary: "axum 0.8 + tokio-postgres, a few shared connections with pipelined statements",
    workers_default: "the CPUs available to the process",
    pool_default: "WORKERS (one shared connection per worker thread)",
    recycle_meaning: "accepted and reported, but this variant does not check connections out, so \
                      neither policy runs a query; a connection found closed is skipped and its \
                      supervisor reconnects",
    unprepared_statements: Err(
        "every statement is prepared once per connection (tokio-postgres `prepare`) and reused; unprepared statements would take other calls (tokio-postgres `query_typed`), not a setting",
    ),
};

/// Builds the runtime with `WORKERS` threads and serves until SIGTERM or SIGINT.
pub fn run(config: Config) -> anyhow::Result<()> {
    serving::runtime(&config)?.block_on(serve(config))
}

/// Serves on the configured address; returns after a graceful shutdown.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let pool_size = config.db_pool_size_or(config.workers_or_cpus());
    let pool = DbPool::start(
        config.database_url.as_str(),
        pool_size,
        config.db_wait_timeout,
    )
    .context("DATABASE_URL")?;
    let state = AppState {
        pool: Arc::new(pool),
        workers: config.workers_or_cpus(),
        pool_size,
        db_recycle: config.db_recycle,
    };

    let (listener, shutdown) = serving::listen(&config).await?;
    axum::serve(listener, routes::router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving")?;
    Ok(())
}
