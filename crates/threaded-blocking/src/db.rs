//! The database side: an r2d2 pool of sync diesel connections, and the contract's queries (built
//! by `bakeoff_core::orm`) run on it, one blocking statement after another.
//!
//! r2d2 opens its connections on background threads, so creating the pool never needs the
//! database, and keeps retrying while PostgreSQL is down, backing off to at most half the wait
//! timeout between attempts. Every checkout first runs diesel's connection check, a prepared
//! `SELECT 1` (pg_stat_statements shows it as `SELECT 1`; the statement budget does not count
//! it), so a connection that died with a PostgreSQL restart is replaced before a request can fail
//! on it. A checkout that finds no live connection within `DB_WAIT_TIMEOUT_MS` is a 503: while
//! PostgreSQL is down every database request waits that long, holding its thread.

use std::time::Duration;

use bakeoff_core::config::DatabaseUrl;
use bakeoff_core::model::{Contact, ContactType, Page, assemble_contacts};
use bakeoff_core::orm::{self, ContactRecord, ContactTypeRecord, DetailRecord, PageRecord};
use bakeoff_core::{ApiError, ContactId, PageRequest};
use diesel::r2d2::{self, ConnectionManager, PooledConnection};
use diesel::{OptionalExtension, PgConnection, RunQueryDsl};

pub type Pool = r2d2::Pool<ConnectionManager<PgConnection>>;
type Connection = PooledConnection<ConnectionManager<PgConnection>>;

/// A pool of `size` connections; a checkout waits at most `wait` for one to be free.
pub fn pool(url: &DatabaseUrl, size: usize, wait: Duration) -> Pool {
    Pool::builder()
        .max_size(u32::try_from(size).unwrap_or(u32::MAX))
        .connection_timeout(wait)
        .test_on_check_out(true)
        .error_handler(Box::new(LogErrors))
        .build_unchecked(ConnectionManager::new(url.as_str()))
}

/// r2d2 reports failed connection attempts and checks through this, and logs them with the `log`
/// crate by default; this sends them to the same place as everything else.
#[derive(Debug)]
struct LogErrors;

impl r2d2::HandleError<r2d2::Error> for LogErrors {
    fn handle_error(&self, error: r2d2::Error) {
        tracing::warn!(%error, "database connection failed");
    }
}

/// A connection, or the contract's 503 if none frees up (or can be opened) in time.
fn connection(pool: &Pool) -> Result<Connection, ApiError> {
    pool.get().map_err(|error| {
        tracing::warn!(%error, "no database connection");
        ApiError::DatabaseUnavailable
    })
}

/// `GET /types`: one statement.
pub fn list_types(pool: &Pool) -> Result<Page<ContactType>, ApiError> {
    let mut connection = connection(pool)?;
    let records: Vec<ContactTypeRecord> = orm::list_types()
        .load(&mut connection)
        .map_err(orm::database_error)?;
    let results: Vec<ContactType> = records.into_iter().map(ContactType::from).collect();
    Ok(Page {
        count: results.len() as i64,
        results,
    })
}

/// `GET /contacts`: the page with its total, then its phones and its emails; an empty page is
/// the page statement and a count.
pub fn list_contacts(pool: &Pool, request: &PageRequest) -> Result<Page<Contact>, ApiError> {
    let mut connection = connection(pool)?;
    let records: Vec<PageRecord> = orm::contacts_page(request)
        .load(&mut connection)
        .map_err(orm::database_error)?;
    let Some((count, rows)) = orm::split_page(records) else {
        let count = orm::count_contacts(request)
            .get_result(&mut connection)
            .map_err(orm::database_error)?;
        return Ok(Page {
            count,
            results: Vec::new(),
        });
    };
    let ids = orm::ids_of(&rows);
    let (phones, emails) = details_of(&mut connection, ids)?;
    Ok(Page {
        count,
        results: assemble_contacts(rows, phones, emails),
    })
}

/// `GET /contacts/{contact_id}`: the contact, its phones and its emails.
pub fn get_contact(pool: &Pool, id: ContactId) -> Result<Contact, ApiError> {
    let mut connection = connection(pool)?;
    let record = orm::contact_by_id(id)
        .get_result::<ContactRecord>(&mut connection)
        .optional()
        .map_err(orm::database_error)?
        .ok_or(ApiError::ContactNotFound)?;
    let (phones, emails) = details_of(&mut connection, vec![id.get()])?;
    // One row in, one contact out.
    assemble_contacts(vec![record.into()], phones, emails)
        .pop()
        .ok_or(ApiError::Internal)
}

type Details = Vec<bakeoff_core::model::ContactDetail>;

fn details_of(connection: &mut Connection, ids: Vec<i32>) -> Result<(Details, Details), ApiError> {
    let phones: Vec<DetailRecord> = orm::phones_of(ids.clone())
        .load(connection)
        .map_err(orm::database_error)?;
    let emails: Vec<DetailRecord> = orm::emails_of(ids)
        .load(connection)
        .map_err(orm::database_error)?;
    Ok((orm::details(phones), orm::details(emails)))
}
