//! The database side: an r2d2 pool of sync diesel connections, and the contract's queries (built
//! by `bakeoff_core::orm`) run on it, one blocking statement after another.
//!
//! r2d2 opens its connections on background threads, so creating the pool never needs the
//! database, and keeps retrying while PostgreSQL is down, backing off to at most half the wait
//! timeout between attempts. A checkout that finds no live connection within
//! `DB_WAIT_TIMEOUT_MS` is a 503: while PostgreSQL is down every database request waits that
//! long, holding its thread.
//!
//! `DB_RECYCLE` is r2d2's `test_on_check_out`: `verified` runs diesel's connection check, a
//! prepared `SELECT 1` (pg_stat_statements shows it as `SELECT 1`; the statement budget does not
//! count it), on every checkout; `fast` runs nothing, and libpq does not notice a closed socket
//! until it uses it. So either way a request whose statement finds its connection closed under
//! it (a PostgreSQL restart, `pg_terminate_backend`) marks that connection, which r2d2 then drops
//! instead of taking it back, and runs once more on another connection, checked with that same
//! `SELECT 1` first: the idle connections beside a closed one are likely closed too.

use std::time::{Duration, Instant};

use bakeoff_core::config::DatabaseUrl;
use bakeoff_core::model::{Contact, ContactType, Page, assemble_contacts};
use bakeoff_core::orm::{
    self, ContactRecord, ContactTypeRecord, DetailRecord, Failure, PageRecord,
};
use bakeoff_core::{ApiError, ContactId, DbRecycle, DbStatements, PageRequest};
use diesel::connection::{CacheSize, Connection as _};
use diesel::r2d2::{self, ConnectionManager, ManageConnection, PooledConnection, R2D2Connection};
use diesel::{OptionalExtension, PgConnection, RunQueryDsl};

type Pool = r2d2::Pool<Manager>;
type Pooled = PooledConnection<Manager>;

/// The pool, with what a request's checkouts need to know.
pub struct DbPool {
    pool: Pool,
    /// `DB_WAIT_TIMEOUT_MS`: the longest a request waits for its connections, retry included.
    wait: Duration,
    /// `DB_RECYCLE`.
    pub recycle: DbRecycle,
}

impl DbPool {
    /// A pool of `size` connections; a checkout waits at most `wait` for one to be free.
    /// Under `DB_STATEMENTS=unprepared` each connection's prepared-statement cache is disabled:
    /// diesel then sends every statement with `PQsendQueryParams` (no named statement), which a
    /// pooler in transaction mode can pass to any server connection.
    pub fn new(
        url: &DatabaseUrl,
        size: usize,
        wait: Duration,
        recycle: DbRecycle,
        statements: DbStatements,
    ) -> DbPool {
        let pool = Pool::builder()
            .max_size(u32::try_from(size).unwrap_or(u32::MAX))
            .connection_timeout(wait)
            .test_on_check_out(recycle == DbRecycle::Verified)
            .error_handler(Box::new(LogErrors))
            .build_unchecked(Manager {
                manager: ConnectionManager::new(url.as_str()),
                statements,
            });
        DbPool {
            pool,
            wait,
            recycle,
        }
    }

    /// Runs `work` on a pooled connection; when a statement finds that connection closed under
    /// it, once more on another, verified, connection: nothing has been answered yet, and the
    /// contract's requests are reads.
    fn run<T>(
        &self,
        work: impl Fn(&mut PgConnection) -> Result<T, Failure>,
    ) -> Result<T, ApiError> {
        let deadline = Instant::now() + self.wait;
        let mut connection = self.checkout(deadline)?;
        let error = match work(&mut connection.connection) {
            Ok(value) => return Ok(value),
            Err(Failure::Answer(error)) => return Err(error),
            Err(Failure::ConnectionLost(error)) => error,
        };
        connection.lost = true;
        drop(connection);
        tracing::info!(%error, "database connection closed under a request; retrying");
        let mut connection = self.verified_checkout(deadline)?;
        match work(&mut connection.connection) {
            Ok(value) => Ok(value),
            Err(Failure::Answer(error)) => Err(error),
            Err(Failure::ConnectionLost(error)) => {
                connection.lost = true;
                Err(orm::database_error(error))
            }
        }
    }

    /// A connection by `deadline`, or the contract's 503.
    fn checkout(&self, deadline: Instant) -> Result<Pooled, ApiError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        self.pool.get_timeout(remaining).map_err(|error| {
            tracing::warn!(%error, "no database connection");
            ApiError::DatabaseUnavailable
        })
    }

    /// A connection that has just answered `SELECT 1`. Under `verified` r2d2 has run it already;
    /// under `fast` it runs here, and each connection that fails it leaves the pool.
    fn verified_checkout(&self, deadline: Instant) -> Result<Pooled, ApiError> {
        loop {
            let mut connection = self.checkout(deadline)?;
            if self.recycle == DbRecycle::Verified {
                return Ok(connection);
            }
            match connection.connection.ping() {
                Ok(()) => return Ok(connection),
                Err(error) => {
                    tracing::info!(%error, "an idle database connection was closed too");
                    connection.lost = true;
                }
            }
        }
    }
}

/// diesel's r2d2 manager, over connections that remember being found closed, so that r2d2
/// drops them when they come back instead of handing them to the next request. diesel's own
/// check (`has_broken`) looks at the transaction state only. It also applies `DB_STATEMENTS` to
/// each new connection.
#[derive(Debug)]
struct Manager {
    manager: ConnectionManager<PgConnection>,
    statements: DbStatements,
}

struct Checked {
    connection: PgConnection,
    /// Set when a statement or a check found the connection closed.
    lost: bool,
}

impl ManageConnection for Manager {
    type Connection = Checked;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<Checked, r2d2::Error> {
        let mut connection = self.manager.connect()?;
        if self.statements == DbStatements::Unprepared {
            connection.set_prepared_statement_cache_size(CacheSize::Disabled);
        }
        Ok(Checked {
            connection,
            lost: false,
        })
    }

    fn is_valid(&self, checked: &mut Checked) -> Result<(), r2d2::Error> {
        self.manager.is_valid(&mut checked.connection)
    }

    fn has_broken(&self, checked: &mut Checked) -> bool {
        checked.lost || self.manager.has_broken(&mut checked.connection)
    }
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

/// `GET /types`: one statement.
pub fn list_types(pool: &DbPool) -> Result<Page<ContactType>, ApiError> {
    pool.run(|connection| {
        let records: Vec<ContactTypeRecord> = orm::list_types().load(connection)?;
        let results: Vec<ContactType> = records.into_iter().map(ContactType::from).collect();
        Ok(Page {
            count: results.len() as i64,
            results,
        })
    })
}

/// `GET /contacts`: the page with its total, then its phones and its emails; an empty page is
/// the page statement and a count.
pub fn list_contacts(pool: &DbPool, request: &PageRequest) -> Result<Page<Contact>, ApiError> {
    pool.run(|connection| {
        let records: Vec<PageRecord> = orm::contacts_page(request).load(connection)?;
        let Some((count, rows)) = orm::split_page(records) else {
            let count = orm::count_contacts(request).get_result(connection)?;
            return Ok(Page {
                count,
                results: Vec::new(),
            });
        };
        let ids = orm::ids_of(&rows);
        let (phones, emails) = details_of(connection, ids)?;
        Ok(Page {
            count,
            results: assemble_contacts(rows, phones, emails),
        })
    })
}

/// `GET /contacts/{contact_id}`: the contact, its phones and its emails.
pub fn get_contact(pool: &DbPool, id: ContactId) -> Result<Contact, ApiError> {
    pool.run(|connection| {
        let record = orm::contact_by_id(id)
            .get_result::<ContactRecord>(connection)
            .optional()?
            .ok_or(ApiError::ContactNotFound)?;
        let (phones, emails) = details_of(connection, vec![id.get()])?;
        // One row in, one contact out.
        assemble_contacts(vec![record.into()], phones, emails)
            .pop()
            .ok_or(Failure::Answer(ApiError::Internal))
    })
}

type Details = Vec<bakeoff_core::model::ContactDetail>;

fn details_of(connection: &mut PgConnection, ids: Vec<i32>) -> Result<(Details, Details), Failure> {
    let phones: Vec<DetailRecord> = orm::phones_of(ids.clone()).load(connection)?;
    let emails: Vec<DetailRecord> = orm::emails_of(ids).load(connection)?;
    Ok((orm::details(phones), orm::details(emails)))
}
