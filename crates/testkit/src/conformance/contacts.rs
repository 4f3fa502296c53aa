//! The database rows of the contract: `/types`, pages of `/contacts` and single contacts, each
//! expected body read from the database with the test's own SQL (written independently of
//! `core::sql`) and serialized by core.

use anyhow::Result;
use bakeoff_core::model::{Contact, ContactType, Page};

use super::Checker;
use super::errors::{CONTACT_NOT_FOUND, ExpectedError};
use super::statements::STATEMENT_BUDGET;

/// `limit` when the query has none.
const DEFAULT_LIMIT: i64 = 100;

impl Checker<'_> {
    pub(super) async fn expected_types(&self) -> Result<Page<ContactType>> {
        let rows = self
            .database
            .query(
                "SELECT type_id, type_name FROM contact_types ORDER BY type_id",
                &[],
            )
            .await?;
        let results: Vec<ContactType> = rows
            .iter()
            .map(|row| ContactType {
                type_id: row.get(0),
                type_name: row.get(1),
            })
            .collect();
        Ok(Page {
            count: results.len() as i64,
            results,
        })
    }

    pub(super) async fn check_types(&mut self) -> Result<()> {
        let expected = self.expected_types().await?;
        for path in ["/types", "/types/"] {
            self.expect_body(path, 200, &expected).await;
        }
        self.expect_statements("/types", 1..=1).await
    }

    pub(super) async fn expected_contact(&self, id: i32) -> Result<Option<Contact>> {
        let Some(row) = self
            .database
            .query_opt(
                "SELECT c.contact_id, c.first_name, c.last_name, t.type_id, t.type_name \
                 FROM contacts c, contact_types t WHERE t.type_id = c.type_id AND c.contact_id = $1",
                &[&id],
            )
            .await?
        else {
            return Ok(None);
        };
        let phones = self
            .database
            .query(
                "SELECT phone_number FROM contact_phones WHERE contact_id = $1 ORDER BY phone_id",
                &[&id],
            )
            .await?;
        let emails = self
            .database
            .query(
                "SELECT email_address FROM contact_emails WHERE contact_id = $1 ORDER BY email_id",
                &[&id],
            )
            .await?;
        Ok(Some(Contact {
            contact_id: row.get(0),
            first_name: row.get(1),
            last_name: row.get(2),
            contact_type: ContactType {
                type_id: row.get(3),
                type_name: row.get(4),
            },
            phone_number: phones.iter().map(|row| row.get(0)).collect(),
            email: emails.iter().map(|row| row.get(0)).collect(),
        }))
    }

    pub(super) async fn expected_page(
        &self,
        limit: i64,
        offset: i64,
        starts: Option<&str>,
    ) -> Result<Page<Contact>> {
        let filter = "($1::text IS NULL OR lower(last_name) LIKE lower($1::text) || '%')";
        let count: i64 = self
            .database
            .query_one(
                &format!("SELECT count(*) FROM contacts WHERE {filter}"),
                &[&starts],
            )
            .await?
            .get(0);
        let ids = self
            .database
            .query(
                &format!("SELECT contact_id FROM contacts WHERE {filter} ORDER BY contact_id LIMIT $2 OFFSET $3"),
                &[&starts, &limit, &offset],
            )
            .await?;
        let mut results = Vec::with_capacity(ids.len());
        for row in ids {
            if let Some(contact) = self.expected_contact(row.get(0)).await? {
                results.push(contact);
            }
        }
        Ok(Page { count, results })
    }

    pub(super) async fn check_contact_pages(&mut self) -> Result<()> {
        let total: i64 = self
            .database
            .query_one("SELECT count(*) FROM contacts", &[])
            .await?
            .get(0);
        let common_last_name: Option<String> = self
            .database
            .query_opt(
                "SELECT last_name FROM contacts GROUP BY last_name ORDER BY count(*) DESC, last_name LIMIT 1",
                &[],
            )
            .await?
            .map(|row| row.get(0));
        let spaced_last_name: Option<String> = self
            .database
            .query_opt("SELECT last_name FROM contacts WHERE last_name LIKE '% %' ORDER BY contact_id LIMIT 1", &[])
            .await?
            .map(|row| row.get(0));

        let cases = page_cases(
            total,
            common_last_name.as_deref(),
            spaced_last_name.as_deref(),
        );
        for (path, limit, offset, starts) in cases {
            let expected = self.expected_page(limit, offset, starts.as_deref()).await?;
            self.expect_body(&path, 200, &expected).await;
        }

        // The SQL budget: a full page, a filtered page and an empty page.
        self.expect_statements("/contacts?limit=200", 1..=STATEMENT_BUDGET)
            .await?;
        if let Some(name) = &common_last_name {
            let prefix: String = name.chars().take(2).collect();
            self.expect_statements(&format!("/contacts?starts={prefix}"), 1..=STATEMENT_BUDGET)
                .await?;
        }
        self.expect_statements(
            &format!("/contacts?offset={}", total + 10),
            1..=STATEMENT_BUDGET,
        )
        .await
    }

    pub(super) async fn check_single_contacts(&mut self) -> Result<()> {
        // The first and last contacts, and ones with no and with the most phones and emails.
        let ids = self
            .database
            .query(
                "(SELECT min(contact_id) FROM contacts) UNION \
                 (SELECT max(contact_id) FROM contacts) UNION \
                 (SELECT min(c.contact_id) FROM contacts c WHERE NOT EXISTS \
                    (SELECT 1 FROM contact_phones p WHERE p.contact_id = c.contact_id)) UNION \
                 (SELECT contact_id FROM contact_emails GROUP BY contact_id ORDER BY count(*) DESC, contact_id LIMIT 1) UNION \
                 (SELECT contact_id FROM contact_phones GROUP BY contact_id ORDER BY count(*) DESC, contact_id LIMIT 1)",
                &[],
            )
            .await?;
        let ids: Vec<i32> = ids
            .iter()
            .filter_map(|row| row.get::<_, Option<i32>>(0))
            .collect();
        for (index, id) in ids.iter().enumerate() {
            let Some(expected) = self.expected_contact(*id).await? else {
                continue;
            };
            let slash = if index % 2 == 0 { "" } else { "/" };
            self.expect_body(&format!("/contacts/{id}{slash}"), 200, &expected)
                .await;
        }
        if let Some(id) = ids.first() {
            self.expect_statements(&format!("/contacts/{id}"), 1..=STATEMENT_BUDGET)
                .await?;
        }

        let max_id: i32 = self
            .database
            .query_one("SELECT coalesce(max(contact_id), 0) FROM contacts", &[])
            .await?
            .get(0);
        for absent in [max_id.saturating_add(1), i32::MAX] {
            if self.expected_contact(absent).await?.is_some() {
                continue;
            }
            self.expect_error(
                &format!("/contacts/{absent}"),
                &ExpectedError::one(CONTACT_NOT_FOUND),
            )
            .await;
        }
        Ok(())
    }
}

/// A page of `/contacts` to ask for, and what it must hold: (path, limit, offset, `starts`).
type PageCase = (String, i64, i64, Option<String>);

/// The pages asked for: defaults, limits and offsets (past the end included), repeated and
/// unknown parameters, and prefixes taken from the data (the commonest last name, in either
/// case, and one with a space, encoded either way).
fn page_cases(
    total: i64,
    common_last_name: Option<&str>,
    spaced_last_name: Option<&str>,
) -> Vec<PageCase> {
    let default_limit = DEFAULT_LIMIT;
    let mut cases: Vec<PageCase> = vec![
        ("/contacts".into(), default_limit, 0, None),
        ("/contacts/".into(), default_limit, 0, None),
        ("/contacts?limit=7&offset=3".into(), 7, 3, None),
        ("/contacts/?limit=7&offset=3".into(), 7, 3, None),
        ("/contacts?limit=200".into(), 200, 0, None),
        ("/contacts?limit=1&offset=0&unknown=x".into(), 1, 0, None),
        ("/contacts?limit=3&limit=4".into(), 4, 0, None),
        (
            format!("/contacts?offset={}", (total - 3).max(0)),
            default_limit,
            (total - 3).max(0),
            None,
        ),
        (
            format!("/contacts?offset={}", total + 10),
            default_limit,
            total + 10,
            None,
        ),
        (
            "/contacts?offset=2147483647".into(),
            default_limit,
            2_147_483_647,
            None,
        ),
        (
            "/contacts?starts=zzzzqq".into(),
            default_limit,
            0,
            Some("zzzzqq".into()),
        ),
    ];
    if let Some(name) = common_last_name {
        let prefix: String = name.chars().take(2).collect();
        cases.push((
            format!("/contacts?starts={}", prefix.to_lowercase()),
            default_limit,
            0,
            Some(prefix.to_lowercase()),
        ));
        cases.push((
            format!(
                "/contacts?starts={}&limit=5&offset=2",
                prefix.to_uppercase()
            ),
            5,
            2,
            Some(prefix.to_uppercase()),
        ));
        cases.push((
            format!("/contacts/?starts={}", name.replace(' ', "%20")),
            default_limit,
            0,
            Some(name.to_string()),
        ));
    }
    if let Some(name) = spaced_last_name {
        let encoded = name.replace(' ', "%20");
        cases.push((
            format!("/contacts?starts={encoded}"),
            default_limit,
            0,
            Some(name.to_string()),
        ));
        let plus = name.replace(' ', "+");
        cases.push((
            format!("/contacts?starts={plus}"),
            default_limit,
            0,
            Some(name.to_string()),
        ));
    }
    cases
}
