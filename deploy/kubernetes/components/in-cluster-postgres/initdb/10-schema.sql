-- The contacts schema shared by every bakeoff server.
--
-- Idempotent: `bakeoff db seed` and the test kit apply it to a database that may already have it.
-- Keys are serial, as in the original study; the seeder sets them explicitly and then moves the
-- sequences past the data so that inserts made by hand still work. Table and column names are the
-- first study's (`contacts.type_id`, `contact_emails.email_address`), so that its implementations
-- run unchanged against a bakeoff database; the JSON keeps the contract's names.

CREATE TABLE IF NOT EXISTS contact_types (
    type_id   serial PRIMARY KEY,
    type_name varchar(50) NOT NULL UNIQUE
);

CREATE TABLE IF NOT EXISTS contacts (
    contact_id serial PRIMARY KEY,
    first_name varchar(100) NOT NULL,
    last_name  varchar(100) NOT NULL,
    type_id    integer NOT NULL REFERENCES contact_types (type_id) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS contact_phones (
    phone_id     serial PRIMARY KEY,
    contact_id   integer NOT NULL REFERENCES contacts (contact_id) ON DELETE CASCADE,
    phone_number varchar(30) NOT NULL
);

CREATE TABLE IF NOT EXISTS contact_emails (
    email_id      serial PRIMARY KEY,
    contact_id    integer NOT NULL REFERENCES contacts (contact_id) ON DELETE CASCADE,
    email_address varchar(254) NOT NULL
);

-- A database created before the columns took the first study's names is brought up to date.
DO $$
BEGIN
    IF EXISTS (SELECT FROM information_schema.columns WHERE table_schema = current_schema()
               AND table_name = 'contacts' AND column_name = 'contact_type_id') THEN
        ALTER TABLE contacts RENAME COLUMN contact_type_id TO type_id;
    END IF;
    IF EXISTS (SELECT FROM information_schema.columns WHERE table_schema = current_schema()
               AND table_name = 'contact_emails' AND column_name = 'email') THEN
        ALTER TABLE contact_emails RENAME COLUMN email TO email_address;
    END IF;
END
$$;
ALTER INDEX IF EXISTS contacts_contact_type_id_idx RENAME TO contacts_type_id_idx;

-- Phones and emails are always fetched by contact, never by their own key alone.
CREATE INDEX IF NOT EXISTS contact_phones_contact_id_idx ON contact_phones (contact_id, phone_id);
CREATE INDEX IF NOT EXISTS contact_emails_contact_id_idx ON contact_emails (contact_id, email_id);

-- The `starts` filter is a case-insensitive prefix of last_name: `lower(last_name) LIKE 'abc%'`.
-- text_pattern_ops lets that LIKE use the index whatever the database's collation.
CREATE INDEX IF NOT EXISTS contacts_last_name_lower_prefix_idx
    ON contacts (lower(last_name) text_pattern_ops);

CREATE INDEX IF NOT EXISTS contacts_type_id_idx ON contacts (type_id);

INSERT INTO contact_types (type_id, type_name) VALUES
    (1, 'Relatives'),
    (2, 'Friends'),
    (3, 'Colleagues')
ON CONFLICT (type_id) DO NOTHING;

SELECT setval(pg_get_serial_sequence('contact_types', 'type_id'),
              (SELECT max(type_id) FROM contact_types));
