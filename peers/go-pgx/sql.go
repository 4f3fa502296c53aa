package main

// The SQL, character for character core::sql (so pg_stat_statements sees the statements of the
// Rust raw-SQL variants). The statement budget: at most three statements per request, none per
// contact. A page is (1) the page's contacts with their type and the total count, then (2) its
// phones and (3) its emails, or (2) a count alone when the page is empty. One contact is its row,
// its phones and its emails. No explicit transaction: each statement is its own.
//
// `$1` limit (int8), `$2` offset (int8), `$3` the LIKE pattern; contact ids are int4, lists of
// them int4[]. pgx prepares each statement on a connection's first use of it (its statement
// cache), which pg_stat_statements does not count as a call.

const (
	sqlListTypes = "SELECT type_id, type_name FROM contact_types ORDER BY type_id"

	sqlContactsPage = "SELECT c.contact_id, c.first_name, c.last_name, t.type_id, t.type_name, " +
		"(SELECT count(*) FROM contacts) AS total_count " +
		"FROM contacts c JOIN contact_types t ON t.type_id = c.type_id " +
		"ORDER BY c.contact_id LIMIT $1 OFFSET $2"

	sqlContactsPageStarts = "SELECT c.contact_id, c.first_name, c.last_name, t.type_id, t.type_name, " +
		"(SELECT count(*) FROM contacts WHERE lower(last_name) LIKE $3) AS total_count " +
		"FROM contacts c JOIN contact_types t ON t.type_id = c.type_id " +
		"WHERE lower(c.last_name) LIKE $3 " +
		"ORDER BY c.contact_id LIMIT $1 OFFSET $2"

	sqlCountContacts = "SELECT count(*) FROM contacts"

	sqlCountContactsStarts = "SELECT count(*) FROM contacts WHERE lower(last_name) LIKE $1"

	sqlContactByID = "SELECT c.contact_id, c.first_name, c.last_name, t.type_id, t.type_name " +
		"FROM contacts c JOIN contact_types t ON t.type_id = c.type_id " +
		"WHERE c.contact_id = $1"

	sqlPhonesOfContacts = "SELECT contact_id, phone_number FROM contact_phones " +
		"WHERE contact_id = ANY($1) ORDER BY contact_id, phone_id"

	sqlEmailsOfContacts = "SELECT contact_id, email_address FROM contact_emails " +
		"WHERE contact_id = ANY($1) ORDER BY contact_id, email_id"
)
