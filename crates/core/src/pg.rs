//! Running the contract's SQL over tokio-postgres: the query code the raw-SQL variants share.
//!
//! The variants differ in how they hold connections (shared pipelined connections with statements
//! prepared once, or a pool with a per-connection statement cache); [`DbConnection`] is that
//! difference, and everything else (which statements, in what order, how rows become JSON) is
//! here once. Independent statements are issued together: tokio-postgres then pipelines them on
//! the one connection instead of waiting for each answer in turn.

use std::future::Future;

use futures_util::future::try_join;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement};

use crate::model::{Contact, ContactDetail, ContactRow, ContactType, Page, assemble_contacts};
use crate::{ApiError, ContactId, PageRequest, sql};

/// A connection as a variant holds it: the client, and how it gets a prepared statement.
pub trait DbConnection: Sync {
    fn client(&self) -> &Client;

    /// The prepared statement for one of the SQL texts in [`crate::sql`].
    fn statement(
        &self,
        sql: &'static str,
    ) -> impl Future<Output = Result<Statement, tokio_postgres::Error>> + Send;

    /// Called when a statement failed because this connection was closed under it
    /// ([`is_connection_lost`]): the variant marks the connection so that it is not used again
    /// and the request can be retried on another one.
    fn connection_lost(&self) {}
}

async fn query(
    connection: &impl DbConnection,
    sql: &'static str,
    parameters: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let result = async {
        let statement = connection.statement(sql).await?;
        connection.client().query(&statement, parameters).await
    }
    .await;
    if let Err(error) = &result
        && is_connection_lost(error)
    {
        connection.connection_lost();
    }
    result
}

/// `GET /types`.
pub async fn list_types(connection: &impl DbConnection) -> Result<Page<ContactType>, ApiError> {
    let rows = query(connection, sql::LIST_TYPES, &[])
        .await
        .map_err(database_error)?;
    let results: Vec<ContactType> = rows
        .iter()
        .map(|row| {
            Ok(ContactType {
                type_id: row.try_get(0)?,
                type_name: row.try_get(1)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(database_error)?;
    Ok(Page {
        count: results.len() as i64,
        results,
    })
}

/// `GET /contacts`: the page with its total, then phones and emails together.
pub async fn list_contacts(
    connection: &impl DbConnection,
    request: &PageRequest,
) -> Result<Page<Contact>, ApiError> {
    let pattern = request.starts().map(|prefix| prefix.like_pattern());
    let (limit, offset) = (request.limit(), request.offset());
    let rows = match &pattern {
        None => query(connection, sql::CONTACTS_PAGE, &[&limit, &offset]).await,
        Some(pattern) => {
            query(
                connection,
                sql::CONTACTS_PAGE_STARTS,
                &[&limit, &offset, pattern],
            )
            .await
        }
    }
    .map_err(database_error)?;

    let Some(first) = rows.first() else {
        // An empty page carries no total; count separately (still within three statements).
        let count_rows = match &pattern {
            None => query(connection, sql::COUNT_CONTACTS, &[]).await,
            Some(pattern) => query(connection, sql::COUNT_CONTACTS_STARTS, &[pattern]).await,
        }
        .map_err(database_error)?;
        let count = count_rows
            .first()
            .map(|row| row.try_get(0))
            .transpose()
            .map_err(database_error)?;
        return Ok(Page {
            count: count.unwrap_or(0),
            results: Vec::new(),
        });
    };
    let count: i64 = first.try_get(5).map_err(database_error)?;
    let contact_rows = rows
        .iter()
        .map(contact_row)
        .collect::<Result<Vec<_>, _>>()
        .map_err(database_error)?;
    let ids: Vec<i32> = contact_rows.iter().map(|row| row.contact_id).collect();
    let (phones, emails) = details_of(connection, &ids).await?;
    Ok(Page {
        count,
        results: assemble_contacts(contact_rows, phones, emails),
    })
}

/// `GET /contacts/{id}`: the three statements issued together.
pub async fn get_contact(
    connection: &impl DbConnection,
    id: ContactId,
) -> Result<Contact, ApiError> {
    let id_value = id.get();
    let ids = [id_value];
    let (rows, (phones, emails)) = try_join(
        async {
            query(connection, sql::CONTACT_BY_ID, &[&id_value])
                .await
                .map_err(database_error)
        },
        details_of(connection, &ids),
    )
    .await?;
    let row = rows.first().ok_or(ApiError::ContactNotFound)?;
    let contact_row = contact_row(row).map_err(database_error)?;
    Ok(assemble_contacts(vec![contact_row], phones, emails).remove(0))
}

async fn details_of(
    connection: &impl DbConnection,
    ids: &[i32],
) -> Result<(Vec<ContactDetail>, Vec<ContactDetail>), ApiError> {
    let (phones, emails) = try_join(
        query(connection, sql::PHONES_OF_CONTACTS, &[&ids]),
        query(connection, sql::EMAILS_OF_CONTACTS, &[&ids]),
    )
    .await
    .map_err(database_error)?;
    let phones = phones
        .iter()
        .map(detail_row)
        .collect::<Result<_, _>>()
        .map_err(database_error)?;
    let emails = emails
        .iter()
        .map(detail_row)
        .collect::<Result<_, _>>()
        .map_err(database_error)?;
    Ok((phones, emails))
}

fn contact_row(row: &Row) -> Result<ContactRow, tokio_postgres::Error> {
    Ok(ContactRow {
        contact_id: row.try_get(0)?,
        first_name: row.try_get(1)?,
        last_name: row.try_get(2)?,
        type_id: row.try_get(3)?,
        type_name: row.try_get(4)?,
    })
}

fn detail_row(row: &Row) -> Result<ContactDetail, tokio_postgres::Error> {
    Ok(ContactDetail {
        contact_id: row.try_get(0)?,
        value: row.try_get(1)?,
    })
}

/// Whether an error means the database (or this connection to it) is gone, rather than a bug.
pub fn is_unavailable(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    match error.code() {
        // Class 08: connection exception; 57P: operator intervention (shutdown, cannot connect
        // now); 53: insufficient resources (too many connections).
        Some(code) => {
            let code = code.code();
            code.starts_with("08") || code.starts_with("57P") || code.starts_with("53")
        }
        // No SQLSTATE: unavailable when the socket failed; a conversion error is a bug.
        None => {
            std::error::Error::source(error).is_some_and(|source| source.is::<std::io::Error>())
        }
    }
}

/// Whether a statement failed because its connection was closed under it: the socket closed or
/// failed, or the backend was terminated (SQLSTATE 57P01 `admin_shutdown` when PostgreSQL stops
/// or `pg_terminate_backend` ends it, 57P02 `crash_shutdown`) or lost its connection (class 08).
/// Another connection may well work, and the contract's requests are reads, so such a failure
/// is worth one retry elsewhere.
pub fn is_connection_lost(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    match error.code() {
        Some(code) => {
            let code = code.code();
            code == "57P01" || code == "57P02" || code.starts_with("08")
        }
        None => {
            std::error::Error::source(error).is_some_and(|source| source.is::<std::io::Error>())
        }
    }
}

/// Maps a driver error to the contract: 503 when the database is unavailable, otherwise a logged
/// 500 whose detail never reaches the client.
pub fn database_error(error: tokio_postgres::Error) -> ApiError {
    ApiError::from_database(&error, is_unavailable(&error))
}
