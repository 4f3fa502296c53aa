//! The SQL of the raw-SQL variants, in one place so that they run the same statements.
//!
//! The statement budget of the contract: at most three statements per request, none per contact.
//! A page is (1) the page's contacts with their type and the total count, then (2) the page's
//! phones and (3) the page's emails, or (2) a count alone when the page is empty (the count rides
//! on the page rows, so an empty page has none). One contact is its row, its phones and its
//! emails. No explicit transaction: each statement is its own.
//!
//! Parameters: `$1` limit (int8), `$2` offset (int8), `$3` the LIKE pattern of
//! [`crate::LastNamePrefix::like_pattern`]; contact ids are int4, lists of them int4[].

/// `/types`: one statement.
pub const LIST_TYPES: &str = "SELECT type_id, type_name FROM contact_types ORDER BY type_id";

/// A page of contacts with their type; the total rides along as a scalar subquery, which counts
/// from the primary key index instead of joining every row as a window count would.
pub const CONTACTS_PAGE: &str = "\
SELECT c.contact_id, c.first_name, c.last_name, t.type_id, t.type_name, \
(SELECT count(*) FROM contacts) AS total_count \
FROM contacts c JOIN contact_types t ON t.type_id = c.type_id \
ORDER BY c.contact_id LIMIT $1 OFFSET $2";

/// [`CONTACTS_PAGE`] filtered by a case-insensitive last-name prefix.
pub const CONTACTS_PAGE_STARTS: &str = "\
SELECT c.contact_id, c.first_name, c.last_name, t.type_id, t.type_name, \
(SELECT count(*) FROM contacts WHERE lower(last_name) LIKE $3) AS total_count \
FROM contacts c JOIN contact_types t ON t.type_id = c.type_id \
WHERE lower(c.last_name) LIKE $3 \
ORDER BY c.contact_id LIMIT $1 OFFSET $2";

/// The count of an empty page (offset past the end).
pub const COUNT_CONTACTS: &str = "SELECT count(*) FROM contacts";

/// The count of an empty filtered page; `$1` is the LIKE pattern.
pub const COUNT_CONTACTS_STARTS: &str =
    "SELECT count(*) FROM contacts WHERE lower(last_name) LIKE $1";

/// One contact with its type; `$1` is the contact id.
pub const CONTACT_BY_ID: &str = "\
SELECT c.contact_id, c.first_name, c.last_name, t.type_id, t.type_name \
FROM contacts c JOIN contact_types t ON t.type_id = c.type_id \
WHERE c.contact_id = $1";

/// The phones of a list of contacts (`$1` int4[]), in contact then phone order.
pub const PHONES_OF_CONTACTS: &str = "\
SELECT contact_id, phone_number FROM contact_phones \
WHERE contact_id = ANY($1) ORDER BY contact_id, phone_id";

/// The emails of a list of contacts (`$1` int4[]), in contact then email order.
pub const EMAILS_OF_CONTACTS: &str = "\
SELECT contact_id, email_address FROM contact_emails \
WHERE contact_id = ANY($1) ORDER BY contact_id, email_id";

/// Every statement above, for variants that prepare them all when a connection opens.
pub const ALL: [&str; 8] = [
    LIST_TYPES,
    CONTACTS_PAGE,
    CONTACTS_PAGE_STARTS,
    COUNT_CONTACTS,
    COUNT_CONTACTS_STARTS,
    CONTACT_BY_ID,
    PHONES_OF_CONTACTS,
    EMAILS_OF_CONTACTS,
];
