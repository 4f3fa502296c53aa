//! The schema and the deterministic seeder.
//!
//! The same contact count and seed give identical rows on any machine: every contact's data comes
//! from its own ChaCha8 stream (`ChaCha8Rng::seed_from_u64(seed)` with `set_stream(contact_id)`),
//! an algorithm fixed by name rather than a default generator that may change between crate
//! versions. Rows are loaded with COPY: contacts first, then phones and emails at once on two
//! more connections (each regenerates the same per-contact data and keeps its part).

use std::fmt::Write as _;

use anyhow::{Context, Result};
use bytes::Bytes;
use futures_util::SinkExt;
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use tokio_postgres::Client;

/// The schema, as kept in `schema/schema.sql`.
pub const SCHEMA_SQL: &str = include_str!("../../../schema/schema.sql");

/// Contacts per COPY chunk (and per progress report).
const CHUNK: u32 = 10_000;

/// Applies the schema if any of its tables is absent. (Re-running it on a complete schema would
/// be harmless for the owner, but `CREATE INDEX IF NOT EXISTS` still demands ownership, and a role
/// that may only write the data must be able to reseed.)
pub async fn apply_schema(client: &Client) -> Result<()> {
    let complete: bool = client
        .query_one(
            "SELECT to_regclass('contact_types') IS NOT NULL AND to_regclass('contacts') IS NOT NULL \
               AND to_regclass('contact_phones') IS NOT NULL \
               AND to_regclass('contact_emails') IS NOT NULL",
            &[],
        )
        .await
        .context("looking for the schema")?
        .get(0);
    if complete {
        return Ok(());
    }
    client
        .batch_execute(SCHEMA_SQL)
        .await
        .context("applying schema/schema.sql")
}

/// What to seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedSpec {
    pub contacts: u32,
    pub seed: u64,
}

impl Default for SeedSpec {
    fn default() -> Self {
        SeedSpec {
            contacts: 10_000,
            seed: 1,
        }
    }
}

/// One generated contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedContact {
    pub contact_id: i32,
    pub first_name: &'static str,
    pub last_name: &'static str,
    pub type_id: i32,
    pub phones: Vec<String>,
    pub emails: Vec<String>,
}

/// The data of contact `contact_id` (1-based) for `seed`.
pub fn generate_contact(seed: u64, contact_id: i32) -> GeneratedContact {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(contact_id as u64);
    let first_name = FIRST_NAMES[below(&mut rng, FIRST_NAMES.len() as u32) as usize];
    let last_name = LAST_NAMES[below(&mut rng, LAST_NAMES.len() as u32) as usize];
    let type_id = below(&mut rng, 3) as i32 + 1;
    let phone_count = below(&mut rng, 4);
    let phones = (0..phone_count)
        .map(|_| {
            format!(
                "+1-{:03}-{:03}-{:04}",
                200 + below(&mut rng, 800),
                200 + below(&mut rng, 800),
                below(&mut rng, 10_000)
            )
        })
        .collect();
    let email_count = below(&mut rng, 4);
    let emails = (0..email_count)
        .map(|index| {
            let domain = EMAIL_DOMAINS[below(&mut rng, EMAIL_DOMAINS.len() as u32) as usize];
            format!(
                "{}.{}{}@{domain}",
                first_name.to_lowercase(),
                last_name.to_lowercase().replace(' ', ""),
                contact_id as u32 * 4 + index
            )
        })
        .collect();
    GeneratedContact {
        contact_id,
        first_name,
        last_name,
        type_id,
        phones,
        emails,
    }
}

/// A number below `bound`, by multiply-shift: deterministic and free of modulo's worst bias.
fn below(rng: &mut ChaCha8Rng, bound: u32) -> u32 {
    ((u64::from(rng.next_u32()) * u64::from(bound)) >> 32) as u32
}

/// Progress of a seeding run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedProgress {
    /// Contacts whose rows of every table have been sent.
    pub done: u64,
    pub total: u64,
}

/// The secondary indexes of `schema/schema.sql`, dropped during a superuser's load and rebuilt
/// after it by re-applying the schema: building an index once is much cheaper than maintaining it
/// row by row.
const SECONDARY_INDEXES: [&str; 4] = [
    "contact_phones_contact_id_idx",
    "contact_emails_contact_id_idx",
    "contacts_last_name_lower_prefix_idx",
    "contacts_type_id_idx",
];

/// Replaces all contact data in the database at `database_url` (schema applied first if absent)
/// with `spec`'s. `progress` is called after each chunk.
///
/// As a superuser (the local clusters), the three tables load at once with foreign-key triggers
/// off (`session_replication_role = replica`; the generated rows are consistent by construction)
/// and the secondary indexes are rebuilt afterwards. Any other role loads contacts first, then
/// phones and emails together, with every constraint checked as rows arrive.
pub async fn seed(
    database_url: &str,
    spec: &SeedSpec,
    progress: &(dyn Fn(SeedProgress) + Sync),
) -> Result<()> {
    let client = crate::connect(database_url).await?;
    apply_schema(&client).await?;
    let superuser: bool = client
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .context("reading the role's rights")?
        .get(0);
    client
        .batch_execute("TRUNCATE contacts, contact_phones, contact_emails CASCADE")
        .await
        .context("emptying the contact tables")?;
    if superuser {
        let drops: Vec<String> = SECONDARY_INDEXES
            .iter()
            .map(|index| format!("DROP INDEX IF EXISTS {index};"))
            .collect();
        client
            .batch_execute(&drops.concat())
            .await
            .context("dropping secondary indexes")?;
    }

    // Progress in contacts: each table's chunk counts for a third of those contacts.
    let units = std::sync::atomic::AtomicU64::new(0);
    let report = |contacts: u32| {
        let now = units.fetch_add(u64::from(contacts), std::sync::atomic::Ordering::Relaxed)
            + u64::from(contacts);
        progress(SeedProgress {
            done: now / 3,
            total: u64::from(spec.contacts),
        });
    };
    let phones_client = crate::connect(database_url).await?;
    let emails_client = crate::connect(database_url).await?;
    if superuser {
        let replica = "SET session_replication_role = replica";
        for connection in [&client, &phones_client, &emails_client] {
            connection
                .batch_execute(replica)
                .await
                .context("turning off foreign-key triggers")?;
        }
        let (contacts, phones, emails) = tokio::join!(
            copy_table(&client, spec, Table::Contacts, &report),
            copy_table(&phones_client, spec, Table::Phones, &report),
            copy_table(&emails_client, spec, Table::Emails, &report),
        );
        contacts?;
        phones?;
        emails?;
        client
            .batch_execute("SET session_replication_role = DEFAULT")
            .await?;
        client
            .batch_execute(SCHEMA_SQL)
            .await
            .context("rebuilding the indexes")?;
    } else {
        copy_table(&client, spec, Table::Contacts, &report).await?;
        let (phones, emails) = tokio::join!(
            copy_table(&phones_client, spec, Table::Phones, &report),
            copy_table(&emails_client, spec, Table::Emails, &report),
        );
        phones?;
        emails?;
    }

    client
        .batch_execute(
            "SELECT setval(pg_get_serial_sequence('contacts', 'contact_id'), \
                    greatest((SELECT max(contact_id) FROM contacts), 1)); \
             SELECT setval(pg_get_serial_sequence('contact_phones', 'phone_id'), \
                    greatest((SELECT max(phone_id) FROM contact_phones), 1)); \
             SELECT setval(pg_get_serial_sequence('contact_emails', 'email_id'), \
                    greatest((SELECT max(email_id) FROM contact_emails), 1)); \
             ANALYZE contact_types, contacts, contact_phones, contact_emails",
        )
        .await
        .context("moving sequences and analyzing")?;
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Table {
    Contacts,
    Phones,
    Emails,
}

impl Table {
    fn copy_statement(self) -> &'static str {
        match self {
            Table::Contacts => {
                "COPY contacts (contact_id, first_name, last_name, type_id) FROM STDIN"
            }
            Table::Phones => "COPY contact_phones (phone_id, contact_id, phone_number) FROM STDIN",
            Table::Emails => "COPY contact_emails (email_id, contact_id, email_address) FROM STDIN",
        }
    }
}

async fn copy_table(
    client: &Client,
    spec: &SeedSpec,
    table: Table,
    report: &(dyn Fn(u32) + Sync),
) -> Result<()> {
    let sink = client
        .copy_in::<_, Bytes>(table.copy_statement())
        .await
        .with_context(|| format!("starting {}", table.copy_statement()))?;
    let mut sink = std::pin::pin!(sink);
    let mut next_detail_id: u64 = 1;
    let mut first = 1u32;
    while first <= spec.contacts {
        let last = first.saturating_add(CHUNK - 1).min(spec.contacts);
        let mut buffer = String::with_capacity(CHUNK as usize * 64);
        for contact_id in first..=last {
            let contact = generate_contact(spec.seed, contact_id as i32);
            // Generated text holds no tabs, newlines or backslashes, so needs no COPY escaping.
            let _ = match table {
                Table::Contacts => writeln!(
                    buffer,
                    "{}\t{}\t{}\t{}",
                    contact.contact_id, contact.first_name, contact.last_name, contact.type_id
                ),
                Table::Phones => {
                    write_details(&mut buffer, &mut next_detail_id, &contact, &contact.phones)
                }
                Table::Emails => {
                    write_details(&mut buffer, &mut next_detail_id, &contact, &contact.emails)
                }
            };
        }
        sink.send(Bytes::from(buffer))
            .await
            .context("sending COPY data")?;
        report(last - first + 1);
        first = last + 1;
    }
    sink.as_mut()
        .finish()
        .await
        .with_context(|| format!("finishing {}", table.copy_statement()))?;
    Ok(())
}

fn write_details(
    buffer: &mut String,
    next_id: &mut u64,
    contact: &GeneratedContact,
    values: &[String],
) -> std::fmt::Result {
    for value in values {
        writeln!(buffer, "{}\t{}\t{}", next_id, contact.contact_id, value)?;
        *next_id += 1;
    }
    Ok(())
}

const EMAIL_DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "example.net",
    "mail.example.com",
    "corp.example.org",
];

const FIRST_NAMES: &[&str] = &[
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Christopher",
    "Lisa",
    "Daniel",
    "Nancy",
    "Matthew",
    "Betty",
    "Anthony",
    "Margaret",
    "Mark",
    "Sandra",
    "Donald",
    "Ashley",
    "Steven",
    "Kimberly",
    "Paul",
    "Emily",
    "Andrew",
    "Donna",
    "Joshua",
    "Michelle",
    "Kenneth",
    "Carol",
    "Kevin",
    "Amanda",
    "Brian",
    "Dorothy",
    "George",
    "Melissa",
    "Timothy",
    "Deborah",
    "Ronald",
    "Stephanie",
    "Edward",
    "Rebecca",
    "Jason",
    "Sharon",
    "Jeffrey",
    "Laura",
    "Ryan",
    "Cynthia",
    "Jacob",
    "Kathleen",
    "Gary",
    "Amy",
    "Nicholas",
    "Angela",
    "Eric",
    "Shirley",
    "Jonathan",
    "Anna",
    "Stephen",
    "Brenda",
    "Larry",
    "Pamela",
    "Justin",
    "Emma",
    "Scott",
    "Nicole",
    "Brandon",
    "Helen",
    "Benjamin",
    "Samantha",
    "Samuel",
    "Katherine",
    "Gregory",
    "Christine",
    "Alexander",
    "Debra",
    "Frank",
    "Rachel",
    "Patrick",
    "Carolyn",
    "Raymond",
    "Janet",
    "Jack",
    "Catherine",
    "Dennis",
    "Maria",
    "Jerry",
    "Heather",
    "Tyler",
    "Diane",
    "Aaron",
    "Ruth",
    "Jose",
    "Julie",
    "Adam",
    "Olivia",
    "Nathan",
    "Joyce",
    "Henry",
    "Virginia",
    "Douglas",
    "Victoria",
    "Zachary",
    "Kelly",
    "Peter",
    "Lauren",
    "Kyle",
    "Christina",
    "Ethan",
    "Joan",
    "Walter",
    "Evelyn",
    "Noah",
    "Judith",
    "Jeremy",
    "Megan",
    "Christian",
    "Andrea",
    "Keith",
    "Cheryl",
    "Roger",
    "Hannah",
    "Terry",
    "Jacqueline",
    "Gerald",
    "Martha",
    "Harold",
    "Gloria",
    "Sean",
    "Teresa",
    "Austin",
    "Ann",
    "Carl",
    "Sara",
    "Arthur",
    "Madison",
    "Lawrence",
    "Frances",
    "Dylan",
    "Kathryn",
    "Jesse",
    "Janice",
    "Jordan",
    "Jean",
    "Bryan",
    "Abigail",
    "Billy",
    "Alice",
    "Joe",
    "Julia",
    "Bruce",
    "Judy",
    "Gabriel",
    "Sophia",
    "Logan",
    "Grace",
    "Albert",
    "Denise",
    "Willie",
    "Amber",
    "Alan",
    "Doris",
    "Juan",
    "Marilyn",
    "Wayne",
    "Danielle",
    "Elijah",
    "Beverly",
    "Randy",
    "Isabella",
    "Roy",
    "Theresa",
    "Vincent",
    "Diana",
    "Ralph",
    "Natalie",
    "Eugene",
    "Brittany",
    "Russell",
    "Charlotte",
    "Bobby",
    "Marie",
    "Mason",
    "Kayla",
    "Philip",
    "Alexis",
    "Louis",
    "Lori",
];

const LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Gomez",
    "Phillips",
    "Evans",
    "Turner",
    "Diaz",
    "Parker",
    "Cruz",
    "Edwards",
    "Collins",
    "Reyes",
    "Stewart",
    "Morris",
    "Morales",
    "Murphy",
    "Cook",
    "Rogers",
    "Gutierrez",
    "Ortiz",
    "Morgan",
    "Cooper",
    "Peterson",
    "Bailey",
    "Reed",
    "Kelly",
    "Howard",
    "Ramos",
    "Kim",
    "Cox",
    "Ward",
    "Richardson",
    "Watson",
    "Brooks",
    "Chavez",
    "Wood",
    "James",
    "Bennett",
    "Gray",
    "Mendoza",
    "Ruiz",
    "Hughes",
    "Price",
    "Alvarez",
    "Castillo",
    "Sanders",
    "Patel",
    "Myers",
    "Long",
    "Ross",
    "Foster",
    "Jimenez",
    "Powell",
    "Jenkins",
    "Perry",
    "Russell",
    "Sullivan",
    "Bell",
    "Coleman",
    "Butler",
    "Henderson",
    "Barnes",
    "Gonzales",
    "Fisher",
    "Vasquez",
    "Simmons",
    "Romero",
    "Jordan",
    "Patterson",
    "Alexander",
    "Hamilton",
    "Graham",
    "Reynolds",
    "Griffin",
    "Wallace",
    "Moreno",
    "West",
    "Cole",
    "Hayes",
    "Bryant",
    "Herrera",
    "Gibson",
    "Ellis",
    "Tran",
    "Medina",
    "Aguilar",
    "Stevens",
    "Murray",
    "Ford",
    "Castro",
    "Marshall",
    "Owens",
    "Harrison",
    "Fernandez",
    "McDonald",
    "Woods",
    "Washington",
    "Kennedy",
    "Wells",
    "Vargas",
    "Henry",
    "Chen",
    "Freeman",
    "Webb",
    "Tucker",
    "Guzman",
    "Burns",
    "Crawford",
    "Olson",
    "Simpson",
    "Porter",
    "Hunter",
    "Gordon",
    "Mendez",
    "Silva",
    "Shaw",
    "Snyder",
    "Mason",
    "Dixon",
    "Munoz",
    "Hunt",
    "Hicks",
    "Holmes",
    "Palmer",
    "Wagner",
    "Black",
    "Robertson",
    "Boyd",
    "Rose",
    "Stone",
    "Salazar",
    "Fox",
    "Warren",
    "Mills",
    "Meyer",
    "Rice",
    "Schmidt",
    "Garza",
    "Daniels",
    "Ferguson",
    "Nichols",
    "Stephens",
    "Soto",
    "Weaver",
    "Ryan",
    "Gardner",
    "Payne",
    "Grant",
    "Dunn",
    "Kelley",
    "Spencer",
    "Hawkins",
    "Arnold",
    "Pierce",
    "Van der Berg",
    "Hansen",
    "Peters",
    "Santos",
    "Hart",
    "Bradley",
    "Knight",
    "Elliott",
    "Cunningham",
    "Duncan",
    "Armstrong",
    "Hudson",
    "Carroll",
    "Lane",
    "Riley",
    "Andrews",
    "Alvarado",
    "Ray",
    "Delgado",
    "Berry",
    "Perkins",
    "Hoffman",
    "Johnston",
    "Matthews",
    "Pena",
    "Richards",
    "Contreras",
    "Willis",
    "Carpenter",
    "Lawrence",
    "Sandoval",
    "O Brien",
];

/// The last names the seeder draws from, for scenarios that search by prefix.
pub fn last_names() -> &'static [&'static str] {
    LAST_NAMES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_seed_dependent() {
        assert_eq!(generate_contact(1, 42), generate_contact(1, 42));
        assert_ne!(generate_contact(1, 42), generate_contact(2, 42));
        let contacts: Vec<_> = (1..=400).map(|id| generate_contact(1, id)).collect();
        for count in 0..4 {
            assert!(contacts.iter().any(|contact| contact.phones.len() == count));
            assert!(contacts.iter().any(|contact| contact.emails.len() == count));
        }
        assert!(
            contacts
                .iter()
                .all(|contact| (1..=3).contains(&contact.type_id))
        );
    }
}
