//! The pooled-checkout architecture: one deadpool-postgres pool shared by every actix worker;
//! each request checks a connection out, runs its statements on it, and gives it back on drop.
//!
//! Statements are prepared per connection and cached on it (`prepare_cached`), so a connection
//! prepares each SQL text once in its life. Connections are opened lazily, on checkout, so the
//! pool (and the server) starts while the database is still unreachable.

use std::time::Duration;

use bakeoff_core::{ApiError, Config, pg};
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime, tokio_postgres,
};
use tokio_postgres::{Client, NoTls, Statement};

/// Why the pool could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PoolSetupError {
    #[error("DATABASE_URL: {0}")]
    DatabaseUrl(#[source] tokio_postgres::Error),
    #[error("cannot build the connection pool: {0}")]
    Build(#[from] deadpool_postgres::BuildError),
}

/// The default of `DB_POOL_SIZE`, per worker.
///
/// An actix worker is one thread running one event loop, and a request holds its connection only
/// across its round trips to the database. A few connections per worker let a worker keep
/// several requests' queries in flight while it serves others, and four per CPU stays well below
/// PostgreSQL's default `max_connections` (100) on ordinary machines.
pub const CONNECTIONS_PER_WORKER: usize = 4;

/// The pool's maximum size: `DB_POOL_SIZE`, or [`CONNECTIONS_PER_WORKER`] x `WORKERS`.
pub fn pool_size(config: &Config) -> usize {
    config.db_pool_size_or(config.workers.get() * CONNECTIONS_PER_WORKER)
}

/// Builds the pool without connecting.
///
/// deadpool waits for a free connection forever by default; here every step of a checkout
/// (waiting for a slot, opening a connection, checking an idle one) is bounded by
/// `DB_WAIT_TIMEOUT_MS`, past which the request gets 503.
pub fn pool(config: &Config) -> Result<Pool, PoolSetupError> {
    let pg_config: tokio_postgres::Config = config
        .database_url
        .as_str()
        .parse()
        .map_err(PoolSetupError::DatabaseUrl)?;
    let manager = Manager::from_config(
        pg_config,
        NoTls,
        ManagerConfig {
            // `Verified` runs an empty query on every checkout of an idle connection: one that a
            // PostgreSQL restart broke is then dropped and replaced instead of failing the
            // request that drew it. The empty query is not a statement, so it is neither counted
            // against the SQL budget nor tracked by pg_stat_statements.
            recycling_method: RecyclingMethod::Verified,
        },
    );
    let wait: Duration = config.db_wait_timeout;
    Ok(Pool::builder(manager)
        .max_size(pool_size(config))
        .wait_timeout(Some(wait))
        .create_timeout(Some(wait))
        .recycle_timeout(Some(wait))
        .runtime(Runtime::Tokio1)
        .build()?)
}

/// A connection checked out of the pool for one request.
pub struct Pooled(Object);

/// Checks a connection out; 503 when none can be had within the wait timeout.
pub async fn checkout(pool: &Pool) -> Result<Pooled, ApiError> {
    pool.get().await.map(Pooled).map_err(|error| match error {
        PoolError::Backend(error) => pg::database_error(error),
        PoolError::Timeout(kind) => {
            tracing::warn!(?kind, "no database connection within the wait timeout");
            ApiError::DatabaseUnavailable
        }
        PoolError::Closed => ApiError::DatabaseUnavailable,
        error @ (PoolError::NoRuntimeSpecified | PoolError::PostCreateHook(_)) => {
            tracing::error!(%error, "connection pool misconfigured");
            ApiError::Internal
        }
    })
}

impl pg::Connection for Pooled {
    fn client(&self) -> &Client {
        &self.0
    }

    fn statement(
        &self,
        sql: &'static str,
    ) -> impl Future<Output = Result<Statement, tokio_postgres::Error>> + Send {
        self.0.prepare_cached(sql)
    }
}
