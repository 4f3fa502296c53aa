//! The database side: diesel-async connections in diesel-async's deadpool pool, running the
//! queries that `bakeoff_core::orm` builds in diesel's DSL.
//!
//! A request checks a connection out, runs at most three statements on it and gives it back on
//! drop. Independent statements are issued together through a shared reference to the connection
//! (`&mut &connection`), which diesel-async pipelines on the one socket, as the raw-SQL variants
//! do with tokio-postgres. diesel-async prepares each statement once per connection and caches it.

use std::time::Duration;

use bakeoff_core::model::{Contact, ContactType, Page, assemble_contacts};
use bakeoff_core::orm::{self, ContactRecord, ContactTypeRecord, DetailRecord, PageRecord};
use bakeoff_core::{ApiError, Config, ContactId, PageRequest};
use deadpool::Runtime;
use deadpool::managed::{PoolError, TimeoutType};
use diesel::OptionalExtension;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::deadpool::{BuildError, Object, Pool};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::future::try_join;

/// The pool of diesel-async PostgreSQL connections.
pub type DbPool = Pool<AsyncPgConnection>;

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
/// The manager's default recycling check (`RecyclingMethod::Verified`) runs `SELECT 1` on every
/// checkout of an idle connection and drops one that fails or whose socket closed, so a
/// connection that a PostgreSQL restart broke is replaced instead of failing the request that
/// drew it. deadpool waits forever by default; here waiting for a slot, opening a connection and
/// checking an idle one are each bounded by `DB_WAIT_TIMEOUT_MS`, past which the request gets 503.
pub fn pool(config: &Config) -> Result<DbPool, BuildError> {
    let manager =
        AsyncDieselConnectionManager::<AsyncPgConnection>::new(config.database_url.as_str());
    let wait: Duration = config.db_wait_timeout;
    Pool::builder(manager)
        .max_size(pool_size(config))
        .wait_timeout(Some(wait))
        .create_timeout(Some(wait))
        .recycle_timeout(Some(wait))
        .runtime(Runtime::Tokio1)
        .build()
}

/// Checks a connection out; 503 when none can be had within the wait timeout.
async fn checkout(pool: &DbPool) -> Result<Object<AsyncPgConnection>, ApiError> {
    pool.get().await.map_err(|error| match error {
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

/// `GET /types`: one statement.
pub async fn list_types(pool: &DbPool) -> Result<Page<ContactType>, ApiError> {
    let mut connection = checkout(pool).await?;
    let records: Vec<ContactTypeRecord> = orm::list_types()
        .load(&mut connection)
        .await
        .map_err(orm::database_error)?;
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
    let mut connection = checkout(pool).await?;
    let records: Vec<PageRecord> = orm::contacts_page(request)
        .load(&mut connection)
        .await
        .map_err(orm::database_error)?;
    let Some((count, rows)) = orm::split_page(records) else {
        let count = orm::count_contacts(request)
            .get_result(&mut connection)
            .await
            .map_err(orm::database_error)?;
        return Ok(Page {
            count,
            results: Vec::new(),
        });
    };
    let (phones, emails) = details_of(&connection, orm::ids_of(&rows)).await?;
    Ok(Page {
        count,
        results: assemble_contacts(rows, phones, emails),
    })
}

/// `GET /contacts/{contact_id}`: the contact, its phones and its emails, all three issued
/// together.
pub async fn get_contact(pool: &DbPool, id: ContactId) -> Result<Contact, ApiError> {
    let connection = checkout(pool).await?;
    let contact = async {
        orm::contact_by_id(id)
            .get_result::<ContactRecord>(&mut &*connection)
            .await
            .optional()
            .map_err(orm::database_error)
    };
    let (record, (phones, emails)) =
        try_join(contact, details_of(&connection, vec![id.get()])).await?;
    let record = record.ok_or(ApiError::ContactNotFound)?;
    let contacts = assemble_contacts(vec![record.into()], phones, emails);
    contacts.into_iter().next().ok_or_else(|| {
        tracing::error!("one contact row did not assemble into one contact");
        ApiError::Internal
    })
}

type Details = Vec<bakeoff_core::model::ContactDetail>;

/// The phones and the emails of the given contacts, pipelined on one connection.
async fn details_of(
    connection: &AsyncPgConnection,
    ids: Vec<i32>,
) -> Result<(Details, Details), ApiError> {
    let phones = orm::phones_of(ids.clone()).load::<DetailRecord>(&mut &*connection);
    let emails = orm::emails_of(ids).load::<DetailRecord>(&mut &*connection);
    let (phones, emails) = try_join(phones, emails)
        .await
        .map_err(orm::database_error)?;
    Ok((orm::details(phones), orm::details(emails)))
}
