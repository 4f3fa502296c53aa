package bakeoff.springjdbc;

/**
 * core's SQL ({@code core::sql}) with JDBC's {@code ?} placeholders, which pgjdbc sends as
 * {@code $1, $2, ...} in order of appearance: the same statements, the parameters numbered by
 * position (so the filtered page takes its pattern twice, and its text at pg_stat_statements
 * differs from core's in the numbers). The statement budget: at most three statements per
 * request, none per contact; no explicit transaction. pgjdbc runs a statement unnamed for its
 * first four executions on a connection and prepares it from the fifth (prepareThreshold=5).
 */
final class Sql {
    private Sql() {}

    static final String LIST_TYPES = "SELECT type_id, type_name FROM contact_types ORDER BY type_id";

    static final String CONTACTS_PAGE =
            "SELECT c.contact_id, c.first_name, c.last_name, t.type_id, t.type_name, "
                    + "(SELECT count(*) FROM contacts) AS total_count "
                    + "FROM contacts c JOIN contact_types t ON t.type_id = c.type_id "
                    + "ORDER BY c.contact_id LIMIT ? OFFSET ?";

    /** Parameters: the pattern, the pattern again, limit, offset. */
    static final String CONTACTS_PAGE_STARTS =
            "SELECT c.contact_id, c.first_name, c.last_name, t.type_id, t.type_name, "
                    + "(SELECT count(*) FROM contacts WHERE lower(last_name) LIKE ?) AS total_count "
                    + "FROM contacts c JOIN contact_types t ON t.type_id = c.type_id "
                    + "WHERE lower(c.last_name) LIKE ? "
                    + "ORDER BY c.contact_id LIMIT ? OFFSET ?";

    static final String COUNT_CONTACTS = "SELECT count(*) FROM contacts";

    static final String COUNT_CONTACTS_STARTS =
            "SELECT count(*) FROM contacts WHERE lower(last_name) LIKE ?";

    static final String CONTACT_BY_ID =
            "SELECT c.contact_id, c.first_name, c.last_name, t.type_id, t.type_name "
                    + "FROM contacts c JOIN contact_types t ON t.type_id = c.type_id "
                    + "WHERE c.contact_id = ?";

    /** The phones of a list of contacts (an int4[]), in contact then phone order. */
    static final String PHONES_OF_CONTACTS =
            "SELECT contact_id, phone_number FROM contact_phones "
                    + "WHERE contact_id = ANY(?) ORDER BY contact_id, phone_id";

    static final String EMAILS_OF_CONTACTS =
            "SELECT contact_id, email_address FROM contact_emails "
                    + "WHERE contact_id = ANY(?) ORDER BY contact_id, email_id";
}
