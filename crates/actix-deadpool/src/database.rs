//! The pooled-checkout architecture: one deadpool-postgres pool shared by every actix worker;
//! each request checks a connection out, runs its statements on it, and gives it back on drop.
//!
//! Statements are prepared per connection and cached on it (`prepare_cached`), so a connection
//! prepares each SQL text once in its life. Connections are opened lazily, on checkout, so the
//! pool (and the server) starts while the database is still unreachable.
//!
//! `DB_RECYCLE` is deadpool-postgres's recycling method: `fast` hands out an idle connection
//! after checking only that its socket is still open (its driver task sees a terminated backend
//! at once), `verified` also runs an empty query on it first. Either way a request whose first
//! statement finds its connection closed under it (a restart, `pg_terminate_backend`) takes that
//! connection out of the pool and runs once more on another, verified with an empty query under
//! either policy, before anything is answered.
//!
//! A connection's socket is driven by a task on the event loop of the worker that opened it, and
//! stays there while other workers check the connection out. So a worker busy in a blocking
//! handler also delays the queries of other workers' requests that drew one of its connections:
//! a cost of sharing one pool between single-threaded event loops, visible under mixed load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bakeoff_core::{ApiError, Config, DbRecycle, pg};
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime, tokio_postgres,
};
use tokio_postgres::{Client, NoTls, Statement};

/// Why the pool could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PoolSetupError {
    #[error("DATABASE_URL: {0}")]
    DatabaseUrl(String),
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

/// The pool, with what a checkout and `/test/resmon` need to know about it.
pub struct DbPool {
    pool: Pool,
    /// `DB_WAIT_TIMEOUT_MS`: the longest a request waits for a connection.
    wait: Duration,
    /// The pool's maximum size.
    pub size: usize,
    /// `DB_RECYCLE`: whether a checkout runs a query.
    pub recycle: DbRecycle,
}

impl DbPool {
    /// Builds the pool without connecting: `DB_POOL_SIZE` connections at most, by default
    /// [`CONNECTIONS_PER_WORKER`] x `WORKERS`.
    pub fn new(config: &Config) -> Result<DbPool, PoolSetupError> {
        let pg_config: tokio_postgres::Config =
            config.database_url.as_str().parse().map_err(|error| {
                // tokio-postgres keeps the reason (an unknown option, say) in the error's source.
                let reason = std::error::Error::source(&error)
                    .map_or(String::new(), |source| format!(": {source}"));
                PoolSetupError::DatabaseUrl(format!("{error}{reason}"))
            })?;
        let manager = Manager::from_config(
            pg_config,
            NoTls,
            ManagerConfig {
                // Both check that the socket is open. `Verified` also runs an empty query on
                // every checkout of an idle connection, a round trip per request; it is not a
                // statement, so it is neither counted against the SQL budget nor tracked by
                // pg_stat_statements.
                recycling_method: match config.db_recycle {
                    DbRecycle::Fast => RecyclingMethod::Fast,
                    DbRecycle::Verified => RecyclingMethod::Verified,
                },
            },
        );
        let size = config.db_pool_size_or(config.workers_or_cpus() * CONNECTIONS_PER_WORKER);
        let wait = config.db_wait_timeout;
        // deadpool waits forever by default; here each step of a checkout (waiting for a free
        // slot, checking an idle connection, opening a new one) gives up after the wait timeout.
        let pool = Pool::builder(manager)
            .max_size(size)
            .wait_timeout(Some(wait))
            .recycle_timeout(Some(wait))
            .create_timeout(Some(wait))
            .runtime(Runtime::Tokio1)
            .build()?;
        Ok(DbPool {
            pool,
            wait,
            size,
            recycle: config.db_recycle,
        })
    }

    /// Runs `work` on a checked-out connection. When its statements find the connection closed
    /// under them, the connection leaves the pool and `work` runs once more on another one:
    /// nothing has been answered yet, and the contract's requests are reads. Checking out, the
    /// first time and for the retry, is bounded by the wait timeout as a whole.
    pub async fn run<T>(
        &self,
        work: impl AsyncFn(&Pooled) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let deadline = tokio::time::Instant::now() + self.wait;
        let connection = self.checkout(deadline).await?;
        let first = work(&connection).await;
        if first.is_ok() || !connection.is_lost() {
            return first;
        }
        connection.discard();
        tracing::info!("database connection closed under a request; retrying on another");
        let connection = self.verified_checkout(deadline).await?;
        let second = work(&connection).await;
        if second.is_err() && connection.is_lost() {
            connection.discard();
        }
        second
    }

    /// A connection for a retry, verified with an empty query. Under `verified` the pool has
    /// done that already; under `fast` it is done here: the idle connections beside one found
    /// closed are likely closed too (a restart, or `pg_terminate_backend` for every backend),
    /// possibly before their driver tasks have noticed. Each that fails leaves the pool.
    async fn verified_checkout(&self, deadline: tokio::time::Instant) -> Result<Pooled, ApiError> {
        loop {
            let connection = self.checkout(deadline).await?;
            if self.recycle == DbRecycle::Verified {
                return Ok(connection);
            }
            let check = tokio::time::timeout_at(deadline, connection.object.simple_query("")).await;
            match check {
                Ok(Ok(_)) => return Ok(connection),
                Ok(Err(error)) if pg::is_connection_lost(&error) => connection.discard(),
                Ok(Err(error)) => return Err(pg::database_error(error)),
                Err(_) => return Err(ApiError::DatabaseUnavailable),
            }
        }
    }

    /// Checks a connection out; 503 when none can be had by `deadline`.
    async fn checkout(&self, deadline: tokio::time::Instant) -> Result<Pooled, ApiError> {
        // A checkout may take several steps (against a database that hangs: one recycle timeout
        // per idle connection, then a create timeout), so the whole of it is bounded too.
        let Ok(checkout) = tokio::time::timeout_at(deadline, self.pool.get()).await else {
            tracing::warn!("no database connection within the wait timeout");
            return Err(ApiError::DatabaseUnavailable);
        };
        checkout.map(Pooled::new).map_err(|error| match error {
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
}

/// A connection checked out of the pool for one request; dropping it gives it back.
pub struct Pooled {
    object: Object,
    /// Set when a statement found the connection closed under it.
    lost: AtomicBool,
}

impl Pooled {
    fn new(object: Object) -> Pooled {
        Pooled {
            object,
            lost: AtomicBool::new(false),
        }
    }

    fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed) || self.object.is_closed()
    }

    /// Takes the connection out of the pool for good (and closes it), rather than giving a
    /// dead connection back for the next request to draw.
    fn discard(self) {
        drop(Object::take(self.object));
    }
}

impl pg::DbConnection for Pooled {
    fn client(&self) -> &Client {
        &self.object
    }

    fn statement(
        &self,
        sql: &'static str,
    ) -> impl Future<Output = Result<Statement, tokio_postgres::Error>> + Send {
        self.object.prepare_cached(sql)
    }

    fn connection_lost(&self) {
        self.lost.store(true, Ordering::Relaxed);
    }
}
