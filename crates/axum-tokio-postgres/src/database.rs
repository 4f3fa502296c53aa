//! A fixed set of shared tokio-postgres connections, each kept alive by its own supervisor task.
//!
//! A supervisor connects, prepares every statement of `core::sql`, publishes the connection, and
//! then drives the connection until it ends (PostgreSQL restarted, network gone). It then
//! withdraws it and reconnects with a short backoff. Requests never wait for a connection: one
//! that finds no live connection gets 503 at once, and every database call is bounded by
//! `DB_WAIT_TIMEOUT_MS`, so nothing hangs while the database is away, and service resumes as soon
//! as a supervisor reconnects, without restarting the server.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bakeoff_core::ApiError;
use bakeoff_core::pg::Connection;
use tokio_postgres::{Client, NoTls, Statement};

/// Reconnection backoff: quick at first (a restart is usually short), capped so that service
/// resumes within a fraction of a second of the database's return.
const FIRST_RETRY: Duration = Duration::from_millis(50);
const MAX_RETRY: Duration = Duration::from_millis(500);

/// One open connection with its statements prepared.
pub struct SharedConnection {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl Connection for SharedConnection {
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
}

/// The shared connections.
pub struct Database {
    slots: Arc<[RwLock<Option<Arc<SharedConnection>>>]>,
    next: AtomicUsize,
    wait_timeout: Duration,
}

impl Database {
    /// Parses the URL and starts one supervisor per connection. Does not wait for the database:
    /// until it answers, requests get 503.
    pub fn start(
        database_url: &str,
        size: usize,
        wait_timeout: Duration,
    ) -> Result<Database, tokio_postgres::Error> {
        let config: tokio_postgres::Config = database_url.parse()?;
        let slots: Arc<[RwLock<Option<Arc<SharedConnection>>>]> =
            (0..size.max(1)).map(|_| RwLock::new(None)).collect();
        for index in 0..slots.len() {
            tokio::spawn(supervise(config.clone(), slots.clone(), index));
        }
        Ok(Database {
            slots,
            next: AtomicUsize::new(0),
            wait_timeout,
        })
    }

    /// A live connection, round-robin, skipping ones that are reconnecting.
    fn pick(&self) -> Option<Arc<SharedConnection>> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..self.slots.len()).find_map(|offset| {
            let slot = &self.slots[(start + offset) % self.slots.len()];
            slot.read().ok().and_then(|current| current.clone())
        })
    }

    /// Runs `work` on a shared connection within the wait timeout.
    pub async fn with_connection<T, F>(
        &self,
        work: impl FnOnce(Arc<SharedConnection>) -> F,
    ) -> Result<T, ApiError>
    where
        F: Future<Output = Result<T, ApiError>>,
    {
        let connection = self.pick().ok_or(ApiError::DatabaseUnavailable)?;
        tokio::time::timeout(self.wait_timeout, work(connection))
            .await
            .unwrap_or(Err(ApiError::DatabaseUnavailable))
    }
}

async fn supervise(
    config: tokio_postgres::Config,
    slots: Arc<[RwLock<Option<Arc<SharedConnection>>>]>,
    index: usize,
) {
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
                        publish(
                            &slots[index],
                            Some(Arc::new(SharedConnection { client, statements })),
                        );
                        tracing::info!(index, "database connection ready");
                        if let Ok(Err(error)) = (&mut driver).await {
                            tracing::warn!(index, %error, "database connection lost");
                        }
                        publish(&slots[index], None);
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
