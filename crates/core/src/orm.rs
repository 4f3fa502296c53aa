//! The contract's queries in diesel's DSL, shared by the ORM variants (async and sync diesel).
//!
//! This module only *builds* queries: the schema as diesel tables, the records that rows load
//! into, and one function per statement of the contract. Running them is each variant's own
//! business (`diesel_async::RunQueryDsl` or `diesel::RunQueryDsl` on its pooled connection), and so
//! is the order it runs them in. The statements are the same as the raw-SQL variants' in
//! [`crate::sql`] and so is the budget: at most three per request, none per contact.
//!
//! The DSL expresses every statement, so there is no raw SQL here. Diesel renders them with its
//! own quoting and parentheses, the count subquery reads `contacts` under an alias and gets a
//! `LIMIT 1` from `single_value()`; otherwise PostgreSQL sees the raw variants' SQL (the unit
//! tests below pin the page statement).

use diesel::dsl::{self, AsSelect, IntoBoxed, Select};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::Text;

use crate::model::{ContactDetail, ContactRow};
use crate::{ApiError, ContactId, PageRequest};

diesel::table! {
    contact_types (type_id) {
        type_id -> Int4,
        type_name -> Varchar,
    }
}

diesel::table! {
    contacts (contact_id) {
        contact_id -> Int4,
        first_name -> Varchar,
        last_name -> Varchar,
        type_id -> Int4,
    }
}

diesel::table! {
    contact_phones (phone_id) {
        phone_id -> Int4,
        contact_id -> Int4,
        phone_number -> Varchar,
    }
}

diesel::table! {
    contact_emails (email_id) {
        email_id -> Int4,
        contact_id -> Int4,
        email_address -> Varchar,
    }
}

diesel::joinable!(contacts -> contact_types (type_id));
diesel::joinable!(contact_phones -> contacts (contact_id));
diesel::joinable!(contact_emails -> contacts (contact_id));
diesel::allow_tables_to_appear_in_same_query!(
    contact_types,
    contacts,
    contact_phones,
    contact_emails
);

// `contacts` once more, for the total count inside the page statement: diesel refuses a
// subquery over a table that its outer query already names.
diesel::alias!(contacts as counted_contacts: CountedContacts);

diesel::define_sql_function! {
    /// PostgreSQL's `lower(text)`: the `starts` filter is `lower(last_name) LIKE pattern`, which
    /// the schema's expression index serves.
    fn lower(text: Text) -> Text;
}

/// A row of `contact_types`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = contact_types, check_for_backend(Pg))]
pub struct ContactTypeRecord {
    pub type_id: i32,
    pub type_name: String,
}

impl From<ContactTypeRecord> for crate::model::ContactType {
    fn from(record: ContactTypeRecord) -> Self {
        crate::model::ContactType {
            type_id: record.type_id,
            type_name: record.type_name,
        }
    }
}

/// A contact joined with its type: the columns of [`ContactRow`].
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = contacts, check_for_backend(Pg))]
pub struct ContactRecord {
    pub contact_id: i32,
    pub first_name: String,
    pub last_name: String,
    #[diesel(embed)]
    pub contact_type: ContactTypeRecord,
}

impl From<ContactRecord> for ContactRow {
    fn from(record: ContactRecord) -> Self {
        ContactRow {
            contact_id: record.contact_id,
            first_name: record.first_name,
            last_name: record.last_name,
            type_id: record.contact_type.type_id,
            type_name: record.contact_type.type_name,
        }
    }
}

/// A phone number or an email address with its contact: `(contact_id, value)` as selected by
/// [`phones_of`] and [`emails_of`].
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct DetailRecord {
    pub contact_id: i32,
    pub value: String,
}

impl From<DetailRecord> for ContactDetail {
    fn from(record: DetailRecord) -> Self {
        ContactDetail {
            contact_id: record.contact_id,
            value: record.value,
        }
    }
}

/// One row of [`contacts_page`]: the contact, and the total the page is part of (the scalar
/// count subquery is nullable in SQL's eyes, though a count is never NULL).
pub type PageRecord = (ContactRecord, Option<i64>);

/// `/types`: every contact type by id.
#[dsl::auto_type]
pub fn list_types() -> _ {
    let selection: AsSelect<ContactTypeRecord, Pg> = ContactTypeRecord::as_select();
    contact_types::table
        .select(selection)
        .order_by(contact_types::type_id)
}

/// The type of [`contacts_page`]: boxed, because the filtered and the unfiltered statement are
/// different types in the DSL but load the same rows.
pub type ContactsPage = IntoBoxed<
    'static,
    Select<
        dsl::InnerJoin<contacts::table, contact_types::table>,
        (
            AsSelect<ContactRecord, Pg>,
            dsl::SingleValue<dsl::Count<diesel::query_source::Alias<CountedContacts>>>,
        ),
    >,
    Pg,
>;

/// `/contacts`: a page of contacts with their type and, on every row, the total count of the
/// (filtered) contacts as a scalar subquery, as [`crate::sql::CONTACTS_PAGE`] and
/// [`crate::sql::CONTACTS_PAGE_STARTS`] do.
pub fn contacts_page(request: &PageRequest) -> ContactsPage {
    let contacts_with_type = contacts::table.inner_join(contact_types::table);
    let page = match request.starts().map(|prefix| prefix.like_pattern()) {
        None => contacts_with_type
            .select((
                ContactRecord::as_select(),
                counted_contacts.count().single_value(),
            ))
            .into_boxed(),
        Some(pattern) => contacts_with_type
            .filter(lower(contacts::last_name).like(pattern.clone()))
            .select((
                ContactRecord::as_select(),
                counted_contacts
                    .filter(lower(counted_contacts.field(contacts::last_name)).like(pattern))
                    .count()
                    .single_value(),
            ))
            .into_boxed(),
    };
    page.order_by(contacts::contact_id)
        .limit(request.limit())
        .offset(request.offset())
}

/// The type of [`count_contacts`].
pub type CountContacts = IntoBoxed<'static, dsl::Count<contacts::table>, Pg>;

/// The total of an empty page (its offset is past the end), which has no row to carry it.
pub fn count_contacts(request: &PageRequest) -> CountContacts {
    let count = contacts::table.count().into_boxed();
    match request.starts() {
        None => count,
        Some(prefix) => count.filter(lower(contacts::last_name).like(prefix.like_pattern())),
    }
}

/// `/contacts/{contact_id}`: the contact with its type, if it exists.
#[dsl::auto_type]
pub fn contact_by_id(id: ContactId) -> _ {
    let id: i32 = id.get();
    let selection: AsSelect<ContactRecord, Pg> = ContactRecord::as_select();
    contacts::table
        .inner_join(contact_types::table)
        .filter(contacts::contact_id.eq(id))
        .select(selection)
}

/// The phones of the given contacts (`contact_id = ANY($1)`), by contact then phone.
#[dsl::auto_type]
pub fn phones_of(ids: Vec<i32>) -> _ {
    contact_phones::table
        .filter(contact_phones::contact_id.eq_any(ids))
        .select((contact_phones::contact_id, contact_phones::phone_number))
        .order_by((contact_phones::contact_id, contact_phones::phone_id))
}

/// The emails of the given contacts (`contact_id = ANY($1)`), by contact then email.
#[dsl::auto_type]
pub fn emails_of(ids: Vec<i32>) -> _ {
    contact_emails::table
        .filter(contact_emails::contact_id.eq_any(ids))
        .select((contact_emails::contact_id, contact_emails::email_address))
        .order_by((contact_emails::contact_id, contact_emails::email_id))
}

/// Splits the rows of [`contacts_page`] into the total and the contacts, or `None` for an empty
/// page, whose total then comes from [`count_contacts`].
pub fn split_page(records: Vec<PageRecord>) -> Option<(i64, Vec<ContactRow>)> {
    let total = records.first()?.1.unwrap_or(0);
    let rows = records
        .into_iter()
        .map(|(record, _)| ContactRow::from(record))
        .collect();
    Some((total, rows))
}

/// The ids of contact rows, for [`phones_of`] and [`emails_of`].
pub fn ids_of(rows: &[ContactRow]) -> Vec<i32> {
    rows.iter().map(|row| row.contact_id).collect()
}

/// Converts loaded phones or emails for [`crate::model::assemble_contacts`].
pub fn details(records: Vec<DetailRecord>) -> Vec<ContactDetail> {
    records.into_iter().map(ContactDetail::from).collect()
}

/// PostgreSQL's messages for a connection it is closing or refusing because it is shutting down,
/// restarting or recovering (SQLSTATE 57P01 to 57P03). diesel's error kinds do not carry the
/// SQLSTATE, and diesel-async reports these as `Unknown`, so the message is all there is.
const UNAVAILABLE_MESSAGES: [&str; 4] = [
    "terminating connection due to administrator command",
    "terminating connection due to crash of another server process",
    "the database system is shutting down",
    "the database system is starting up",
];

/// Whether a query error means the database (or this connection to it) is gone, not a bug.
pub fn is_unavailable(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        ) => true,
        DieselError::DatabaseError(_, information) => UNAVAILABLE_MESSAGES
            .iter()
            .any(|message| information.message().starts_with(message)),
        DieselError::BrokenTransactionManager => true,
        _ => false,
    }
}

/// Whether a query failed because its connection was closed under it (PostgreSQL restarted, the
/// backend terminated, the socket gone): a read that fails so is worth one more try on another
/// connection. diesel (libpq) reports these as `ClosedConnection` or `UnableToSendCommand`;
/// diesel-async reports every tokio-postgres error without a SQLSTATE (a closed connection, an
/// I/O error) as `UnableToSendCommand`, and the FATAL a terminated backend sends by its message.
pub fn is_connection_lost(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        ) => true,
        DieselError::DatabaseError(_, information) => UNAVAILABLE_MESSAGES[..2]
            .iter()
            .any(|message| information.message().starts_with(message)),
        _ => false,
    }
}

/// Maps a query error to the contract: 503 when the database is unavailable, otherwise a logged
/// 500 whose detail never reaches the client. `NotFound` is for the caller to handle first
/// (a missing contact is a 404); reaching here it is a bug like any other.
pub fn database_error(error: DieselError) -> ApiError {
    ApiError::from_database(&error, is_unavailable(&error))
}

/// How an attempt on one connection failed, for the ORM variants' retry of a request whose
/// connection was closed under it.
#[derive(Debug)]
pub enum Failure {
    /// A statement found the connection closed under it: another connection may well answer.
    ConnectionLost(DieselError),
    /// The request's answer, whichever connection ran it.
    Answer(ApiError),
}

impl From<DieselError> for Failure {
    fn from(error: DieselError) -> Failure {
        if is_connection_lost(&error) {
            Failure::ConnectionLost(error)
        } else {
            Failure::Answer(database_error(error))
        }
    }
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Failure {
        Failure::Answer(error)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sql_of<T: diesel::query_builder::QueryFragment<Pg>>(query: &T) -> String {
        diesel::debug_query::<Pg, _>(query)
            .to_string()
            .split(" -- binds")
            .next()
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn the_page_statement_is_the_raw_variants_statement() {
        let request = PageRequest::from_query(Some("limit=5&offset=10&starts=Sm")).unwrap();
        let sql = sql_of(&contacts_page(&request));
        assert_eq!(
            sql,
            "SELECT \"contacts\".\"contact_id\", \"contacts\".\"first_name\", \
             \"contacts\".\"last_name\", \"contact_types\".\"type_id\", \
             \"contact_types\".\"type_name\", (SELECT COUNT(*) FROM \"contacts\" AS \"counted_contacts\" \
             WHERE (lower(\"counted_contacts\".\"last_name\") LIKE $1) LIMIT $2) \
             FROM (\"contacts\" INNER JOIN \"contact_types\" ON \
             (\"contacts\".\"type_id\" = \"contact_types\".\"type_id\")) \
             WHERE (lower(\"contacts\".\"last_name\") LIKE $3) \
             ORDER BY \"contacts\".\"contact_id\" LIMIT $4 OFFSET $5"
        );
    }

    #[test]
    fn details_are_fetched_for_all_ids_in_one_statement() {
        let sql = sql_of(&phones_of(vec![1, 2, 3]));
        assert!(sql.contains("= ANY($1)"), "{sql}");
        assert!(
            sql.ends_with(
                "ORDER BY \"contact_phones\".\"contact_id\", \"contact_phones\".\"phone_id\""
            ),
            "{sql}"
        );
    }

    #[test]
    fn emails_are_read_from_the_first_studys_column() {
        let sql = sql_of(&emails_of(vec![1, 2, 3]));
        assert_eq!(
            sql,
            "SELECT \"contact_emails\".\"contact_id\", \"contact_emails\".\"email_address\" \
             FROM \"contact_emails\" WHERE (\"contact_emails\".\"contact_id\" = ANY($1)) \
             ORDER BY \"contact_emails\".\"contact_id\", \"contact_emails\".\"email_id\""
        );
    }

    #[test]
    fn the_unfiltered_count_has_no_where() {
        let sql = sql_of(&count_contacts(&PageRequest::default()));
        assert_eq!(sql, "SELECT COUNT(*) FROM \"contacts\"");
    }
}
