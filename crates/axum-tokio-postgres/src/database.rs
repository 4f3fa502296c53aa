//! A fixed set of shared tokio-postgres connections, each kept alive by its own supervisor task.
//!
//! A supervisor connects, prepares every statement of `core::sql`, publishes the connection, and
//! then drives the connection until it ends (PostgreSQL restarted, backend terminated, network
//! gone). It then withdraws it and reconnects with a short backoff. A request takes a live
//! connection round-robin; when there is none (the server has just started, or the database is
//! away) it waits for a supervisor to publish one, up to `DB_WAIT_TIMEOUT_MS`, and then gets 503.
//! The whole of a request's database work is bounded by that same timeout, so nothing hangs while
//! the database is away, and service resumes as soon as a supervisor reconnects, without
//! restarting the server.
//!
//! There is no checkout, so `DB_RECYCLE` has nothing to verify: it is recorded and reported, and
//! either way a request whose statement finds its connection closed under it is retried once on
//! another live connection, checked with an empty query first, before anything is answered.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bakeoff_core::ApiError;
use bakeoff_core::pg::DbConnection;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_postgres::{Client, NoTls, Statement};

/// Reconnection backoff: quick at first (a restart is usually short), capped so that service
/// resumes within a fraction of a second of the database's return.
const FIRST_RETRY: Duration = Duration::from_millis(50);
const MAX_RETRY: Duration = Duration::from_millis(500);

/// One open connection with its statements prepared.
pub struct SharedConnection {
    client: Client,
    statements: HashMap<&'static str, Statement>,
    /// Set when a statement found the connection closed, possibly before its supervisor has
    /// noticed: from then on no request picks it.
    lost: AtomicBool,
}

impl SharedConnection {
    /// Whether requests may still use it.
    fn is_live(&self) -> bool {
        !self.lost.load(Ordering::Relaxed) && !self.client.is_closed()
    }
}

impl DbConnection for SharedConnection {
    fn client(&self) -> &Client {
        &self.client
    }

    fn statement(
        &self,
        sql: &'static str,
    ) -> impl Future<Output = Result<Statement, tokio_postgres::Error>> + Send {
        let prepared = self.statements.get(sql).cloned();
        async move {
            match prepared {
                Some(statement) => Ok(statement),
                // Every statement of core::sql is prepared on connect; a new one still works.
                None => self.client.prepare(sql).await,
            }
        }
    }

    fn connection_lost(&self) {
        self.lost.store(true, Ordering::Relaxed);
    }
}

/// The slots the supervisors publish into, and the signal that one just did.
struct Slots {
    connections: Box<[RwLock<Option<Arc<SharedConnection>>>]>,
    /// Woken whenever a supervisor publishes a connection: requests waiting for one retry then.
    published: Notify,
}

/// The `DB_POOL_SIZE` shared connections: a pool in size only, since nothing is checked out.
pub struct DbPool {
    slots: Arc<Slots>,
    next: AtomicUsize,
    wait_timeout: Duration,
}

impl DbPool {
    /// Parses the URL and starts one supervisor per connection. Does not wait for the database:
    /// until it answers, requests wait for it up to the wait timeout, then get 503.
    pub fn start(
        database_url: &str,
        size: usize,
        wait_timeout: Duration,
    ) -> Result<DbPool, tokio_postgres::Error> {
        let config: tokio_postgres::Config = database_url.parse()?;
        let slots = Arc::new(Slots {
            connections: (0..size.max(1)).map(|_| RwLock::new(None)).collect(),
            published: Notify::new(),
        });
        for index in 0..slots.connections.len() {
            tokio::spawn(supervise(config.clone(), slots.clone(), index));
        }
        Ok(DbPool {
            slots,
            next: AtomicUsize::new(0),
            wait_timeout,
        })
    }

    /// A live connection, round-robin, skipping ones that are reconnecting or were found closed.
    fn pick(&self) -> Option<Arc<SharedConnection>> {
        let connections = &self.slots.connections;
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..connections.len()).find_map(|offset| {
            let slot = &connections[(start + offset) % connections.len()];
            slot.read()
                .ok()
                .and_then(|current| current.clone())
                .filter(|connection| connection.is_live())
        })
    }

    /// A live connection, waiting for a supervisor to publish one until `deadline`.
    async fn live_connection(&self, deadline: Instant) -> Result<Arc<SharedConnection>, ApiError> {
        loop {
            // Registered before looking, so that a connection published between the look and
            // the wait still wakes this request.
            let published = self.slots.published.notified();
            let mut published = std::pin::pin!(published);
            published.as_mut().enable();
            if let Some(connection) = self.pick() {
                return Ok(connection);
            }
            if tokio::time::timeout_at(deadline, published).await.is_err() {
                tracing::warn!("no live database connection within the wait timeout");
                return Err(ApiError::DatabaseUnavailable);
            }
        }
    }

    /// Runs `work` on a live shared connection, all within the wait timeout. When `work` fails
    /// because its connection was closed under it (a PostgreSQL restart, a terminated backend),
    /// it runs once more on another live connection: nothing has been answered yet, and the
    /// contract's requests are reads.
    pub async fn with_connection<T, F>(
        &self,
        work: impl Fn(Arc<SharedConnection>) -> F,
    ) -> Result<T, ApiError>
    where
        F: Future<Output = Result<T, ApiError>>,
    {
        let deadline = Instant::now() + self.wait_timeout;
        let connection = self.live_connection(deadline).await?;
        let first = tokio::time::timeout_at(deadline, work(connection.clone()))
            .await
            .unwrap_or(Err(ApiError::DatabaseUnavailable));
        if first.is_ok() || connection.is_live() {
            return first;
        }
        tracing::info!("database connection closed under a request; retrying on another");
        let connection = self.verified_connection(deadline).await?;
        tokio::time::timeout_at(deadline, work(connection))
            .await
            .unwrap_or(Err(ApiError::DatabaseUnavailable))
    }

    /// A live connection that has just answered an empty query, for a retry. The connections
    /// beside one found closed are likely closed too (a restart, or `pg_terminate_backend` for
    /// every backend) before their supervisors have noticed: each that fails the check is marked
    /// and skipped, until one passes or a supervisor has reconnected.
    async fn verified_connection(
        &self,
        deadline: Instant,
    ) -> Result<Arc<SharedConnection>, ApiError> {
        loop {
            let connection = self.live_connection(deadline).await?;
            let check = tokio::time::timeout_at(deadline, connection.client.simple_query("")).await;
            match check {
                Ok(Ok(_)) => return Ok(connection),
                Ok(Err(error)) if bakeoff_core::pg::is_connection_lost(&error) => {
                    connection.connection_lost();
                }
                Ok(Err(error)) => return Err(bakeoff_core::pg::database_error(error)),
                Err(_) => return Err(ApiError::DatabaseUnavailable),
            }
        }
    }
}

async fn supervise(config: tokio_postgres::Config, slots: Arc<Slots>, index: usize) {
    let mut retry = FIRST_RETRY;
    loop {
        match config.connect(NoTls).await {
            Ok((client, connection)) => {
                // The connection must be driven for prepare to complete, so drive it on a task
                // and await its end from here.
                let mut driver = tokio::spawn(connection);
                match prepare_all(&client).await {
                    Ok(statements) => {
                        retry = FIRST_RETRY;
                        let connection = SharedConnection {
                            client,
                            statements,
                            lost: AtomicBool::new(false),
                        };
                        publish(&slots.connections[index], Some(Arc::new(connection)));
                        slots.published.notify_waiters();
                        tracing::info!(index, "database connection ready");
                        if let Ok(Err(error)) = (&mut driver).await {
                            tracing::warn!(index, %error, "database connection lost");
                        }
                        publish(&slots.connections[index], None);
                    }
                    Err(error) => {
                        tracing::warn!(index, %error, "preparing statements failed");
                        driver.abort();
                    }
                }
            }
            Err(error) => tracing::debug!(index, %error, "connecting to the database failed"),
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(MAX_RETRY);
    }
}

fn publish(
    slot: &RwLock<Option<Arc<SharedConnection>>>,
    connection: Option<Arc<SharedConnection>>,
) {
    // A poisoned lock only means a panic elsewhere while holding it; the value is still usable.
    let mut current = slot
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    *current = connection;
}

async fn prepare_all(
    client: &Client,
) -> Result<HashMap<&'static str, Statement>, tokio_postgres::Error> {
    let mut statements = HashMap::new();
    for sql in bakeoff_core::sql::ALL {
        statements.insert(sql, client.prepare(sql).await?);
    }
    Ok(statements)
}
