//! The database side: diesel-async connections in diesel-async's deadpool pool, running the
//! queries that `bakeoff_core::orm` builds in diesel's DSL.
//!
//! A request checks a connection out, runs at most three statements on it and gives it back on
//! drop. Independent statements are issued together through a shared reference to the connection
//! (`&mut &connection`), which diesel-async pipelines on the one socket, as the raw-SQL variants
//! do with tokio-postgres. diesel-async prepares each statement once per connection and caches it.
//!
//! `DB_RECYCLE` is the pool's recycling method: `fast` hands out an idle connection after checking
//! only that it is not broken (its socket, driven by its own task, closes as soon as the backend
//! is terminated), `verified` also runs `SELECT 1` on it first. Either way a request whose
//! statements find their connection closed under them (a restart, `pg_terminate_backend`) takes
//! that connection out of the pool and runs once more on another before anything is answered.

use std::time::Duration;

use bakeoff_core::model::{Contact, ContactType, Page, assemble_contacts};
use bakeoff_core::orm::{
    self, ContactRecord, ContactTypeRecord, DetailRecord, Failure, PageRecord,
};
use bakeoff_core::{ApiError, Config, ContactId, DbRecycle, PageRequest};
use deadpool::Runtime;
use deadpool::managed::{PoolError, TimeoutType};
use diesel::OptionalExtension;
use diesel_async::pooled_connection::deadpool::{BuildError, Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, PoolableConnection, RecyclingMethod,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::future::try_join;
use tokio::time::Instant;

/// The pool of diesel-async PostgreSQL connections, with the policy and bound it was built with.
#[derive(Clone)]
pub struct DbPool {
    pool: Pool<AsyncPgConnection>,
    /// `DB_RECYCLE`, the pool's recycling method.
    recycle: DbRecycle,
    /// `DB_WAIT_TIMEOUT_MS`: the longest a request waits for its connections, retry included.
    wait: Duration,
}

impl DbPool {
    /// The recycling policy, for `/test/resmon`.
    pub fn recycle(&self) -> DbRecycle {
        self.recycle
    }
}

/// The default of `DB_POOL_SIZE`, per worker.
///
/// A request holds its connection only across its round trips to the database, so a few
/// connections per worker thread keep several requests' queries in flight while the thread
/// serves others. Four per worker is what the actix-deadpool variant uses too, so the two
/// pooled-checkout variants differ in the query layer, not in the pool.
pub const CONNECTIONS_PER_WORKER: usize = 4;

/// The pool's maximum size: `DB_POOL_SIZE`, or [`CONNECTIONS_PER_WORKER`] x `WORKERS`.
pub fn pool_size(config: &Config) -> usize {
    config.db_pool_size_or(config.workers_or_cpus() * CONNECTIONS_PER_WORKER)
}

/// Builds the pool without connecting, so the server starts while PostgreSQL is still down.
///
/// The recycling method is `DB_RECYCLE`'s (see the module). deadpool waits forever by default;
/// here waiting for a slot, opening a connection and checking an idle one are each bounded by
/// `DB_WAIT_TIMEOUT_MS`, past which the request gets 503.
pub fn pool(config: &Config) -> Result<DbPool, BuildError> {
    let mut manager_config = ManagerConfig::<AsyncPgConnection>::default();
    manager_config.recycling_method = match config.db_recycle {
        DbRecycle::Fast => RecyclingMethod::Fast,
        DbRecycle::Verified => RecyclingMethod::Verified,
    };
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
        config.database_url.as_str(),
        manager_config,
    );
    let wait: Duration = config.db_wait_timeout;
    let pool = Pool::builder(manager)
        .max_size(pool_size(config))
        .wait_timeout(Some(wait))
        .create_timeout(Some(wait))
        .recycle_timeout(Some(wait))
        .runtime(Runtime::Tokio1)
        .build()?;
    Ok(DbPool {
        pool,
        recycle: config.db_recycle,
        wait,
    })
}

/// Checks a connection out; 503 when none can be had by `deadline`.
async fn checkout(pool: &DbPool, deadline: Instant) -> Result<Object<AsyncPgConnection>, ApiError> {
    // A checkout may take several steps (waiting for a slot, checking idle connections, opening
    // one), each bounded by the pool; the whole of it, retry included, is bounded here.
    let Ok(checkout) = tokio::time::timeout_at(deadline, pool.pool.get()).await else {
        tracing::warn!("no database connection within the wait timeout");
        return Err(ApiError::DatabaseUnavailable);
    };
    checkout.map_err(|error| match error {
        PoolError::Timeout(TimeoutType::Wait) => {
            tracing::warn!("no free database connection within the wait timeout");
            ApiError::DatabaseUnavailable
        }
        PoolError::Timeout(kind) => {
            tracing::warn!(?kind, "database not answering within the wait timeout");
            ApiError::DatabaseUnavailable
        }
        // Connecting failed (the database is down or refuses us) or the check of an idle
        // connection failed: either way the database is not there for this request.
        PoolError::Backend(error) => {
            tracing::warn!(%error, "database unavailable");
            ApiError::DatabaseUnavailable
        }
        PoolError::Closed => ApiError::DatabaseUnavailable,
        error @ (PoolError::NoRuntimeSpecified | PoolError::PostCreateHook(_)) => {
            tracing::error!(%error, "connection pool misconfigured");
            ApiError::Internal
        }
    })
}

/// A request's attempts: at most two, the second only when the first one's connection was
/// closed under it, and every checkout before the one deadline of the wait timeout.
///
/// Written as a loop in each query function rather than as a function taking the work as a
/// closure: a closure borrowing the connection for an async block would need boxing per
/// request, which the raw-SQL variants do not pay.
struct Attempts<'p> {
    pool: &'p DbPool,
    /// The pool's recycling method, which already verifies each checkout under `verified`.
    recycle: DbRecycle,
    deadline: Instant,
    retried: bool,
}

impl<'p> Attempts<'p> {
    fn new(pool: &'p DbPool) -> Attempts<'p> {
        Attempts {
            pool,
            recycle: pool.recycle,
            deadline: Instant::now() + pool.wait,
            retried: false,
        }
    }

    /// The first attempt's connection as the pool hands it out; a retry's verified with
    /// `SELECT 1` under either policy, since the idle connections beside one found closed are
    /// likely closed too (a restart, or `pg_terminate_backend` for every backend), possibly
    /// before their driver tasks have noticed. Each that fails the check leaves the pool.
    async fn checkout(&self) -> Result<Object<AsyncPgConnection>, ApiError> {
        loop {
            let mut connection = checkout(self.pool, self.deadline).await?;
            if !self.retried || self.recycle == DbRecycle::Verified {
                return Ok(connection);
            }
            let check =
                tokio::time::timeout_at(self.deadline, connection.ping(&RecyclingMethod::Verified))
                    .await;
            match check {
                Ok(Ok(())) => return Ok(connection),
                Ok(Err(error)) if orm::is_connection_lost(&error) => {
                    drop(Object::take(connection));
                }
                Ok(Err(error)) => return Err(orm::database_error(error)),
                Err(_) => return Err(ApiError::DatabaseUnavailable),
            }
        }
    }

    /// The answer, or `None` when the attempt should run again on another connection. A
    /// connection found closed leaves the pool rather than going back for the next request.
    fn settle<T>(
        &mut self,
        connection: Object<AsyncPgConnection>,
        outcome: Result<T, Failure>,
    ) -> Option<Result<T, ApiError>> {
        match outcome {
            Ok(value) => Some(Ok(value)),
            Err(Failure::Answer(error)) => Some(Err(error)),
            Err(Failure::ConnectionLost(error)) => {
                drop(Object::take(connection));
                if self.retried {
                    return Some(Err(orm::database_error(error)));
                }
                tracing::info!(%error, "database connection closed under a request; retrying");
                self.retried = true;
                None
            }
        }
    }
}

/// `GET /types`: one statement.
pub async fn list_types(pool: &DbPool) -> Result<Page<ContactType>, ApiError> {
    let mut attempts = Attempts::new(pool);
    loop {
        let mut connection = attempts.checkout().await?;
        let outcome = list_types_on(&mut connection).await;
        if let Some(answer) = attempts.settle(connection, outcome) {
            return answer;
        }
    }
}

async fn list_types_on(connection: &mut AsyncPgConnection) -> Result<Page<ContactType>, Failure> {
    let records: Vec<ContactTypeRecord> = orm::list_types().load(connection).await?;
    let results: Vec<ContactType> = records.into_iter().map(ContactType::from).collect();
    Ok(Page {
        count: results.len() as i64,
        results,
    })
}

/// `GET /contacts`: the page with its total, then phones and emails together; or, for an empty
/// page, the count alone.
pub async fn list_contacts(
    pool: &DbPool,
    request: &PageRequest,
) -> Result<Page<Contact>, ApiError> {
    let mut attempts = Attempts::new(pool);
    loop {
        let mut connection = attempts.checkout().await?;
        let outcome = list_contacts_on(&mut connection, request).await;
        if let Some(answer) = attempts.settle(connection, outcome) {
            return answer;
        }
    }
}

async fn list_contacts_on(
    connection: &mut AsyncPgConnection,
    request: &PageRequest,
) -> Result<Page<Contact>, Failure> {
    let records: Vec<PageRecord> = orm::contacts_page(request).load(connection).await?;
    let Some((count, rows)) = orm::split_page(records) else {
        let count = orm::count_contacts(request).get_result(connection).await?;
        return Ok(Page {
            count,
            results: Vec::new(),
        });
    };
    let (phones, emails) = details_of(connection, orm::ids_of(&rows)).await?;
    Ok(Page {
        count,
        results: assemble_contacts(rows, phones, emails),
    })
}

/// `GET /contacts/{contact_id}`: the contact, its phones and its emails, all three issued
/// together.
pub async fn get_contact(pool: &DbPool, id: ContactId) -> Result<Contact, ApiError> {
    let mut attempts = Attempts::new(pool);
    loop {
        let connection = attempts.checkout().await?;
        let outcome = get_contact_on(&connection, id).await;
        if let Some(answer) = attempts.settle(connection, outcome) {
            return answer;
        }
    }
}

async fn get_contact_on(connection: &AsyncPgConnection, id: ContactId) -> Result<Contact, Failure> {
    let contact = async {
        orm::contact_by_id(id)
            .get_result::<ContactRecord>(&mut &*connection)
            .await
            .optional()
            .map_err(Failure::from)
    };
    let (record, (phones, emails)) =
        try_join(contact, details_of(connection, vec![id.get()])).await?;
    let record = record.ok_or(ApiError::ContactNotFound)?;
    let contacts = assemble_contacts(vec![record.into()], phones, emails);
    contacts.into_iter().next().ok_or_else(|| {
        tracing::error!("one contact row did not assemble into one contact");
        Failure::Answer(ApiError::Internal)
    })
}

type Details = Vec<bakeoff_core::model::ContactDetail>;

/// The phones and the emails of the given contacts, pipelined on one connection.
async fn details_of(
    connection: &AsyncPgConnection,
    ids: Vec<i32>,
) -> Result<(Details, Details), Failure> {
    let phones = orm::phones_of(ids.clone()).load::<DetailRecord>(&mut &*connection);
    let emails = orm::emails_of(ids).load::<DetailRecord>(&mut &*connection);
    let (phones, emails) = try_join(phones, emails).await?;
    Ok((orm::details(phones), orm::details(emails)))
}
