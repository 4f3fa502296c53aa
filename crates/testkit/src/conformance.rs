//! The conformance checks: every row of the contract and every error case, against a running
//! server, with the expected JSON read from the database itself, statement counts from
//! pg_stat_statements, and every response validated against the OpenAPI document.
//!
//! The expected values come from the test's own SQL (written independently of `core::sql`) and
//! are serialized with core's model, so a server that sends other values, other field order or
//! other bytes fails. `bakeoff verify` runs the same checks against any server.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bakeoff_core::model::{Contact, ContactType, Page, VersionInfo, to_json};
use bakeoff_core::params::{
    ContactId, FibonacciN, Iterations, LastNamePrefix, Millis, PageRequest,
};
use bakeoff_core::workload::{self, FibonacciBody};
use bakeoff_core::{ApiError, ErrorBody};
use serde_json::Value;
use tokio_postgres::Client;

use crate::openapi::OpenApi;

/// What to check a server against.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://host:port`, no trailing slash.
    pub base_url: String,
    /// A database URL from which the expected values are read (the server's data).
    pub expectations_url: String,
    /// Where statements per request are counted: a superuser URL and the role the server uses.
    pub statement_counts: Option<StatementCounts>,
    /// The variant name `/version` must answer, when known.
    pub variant: Option<String>,
    /// The `WORKERS` the server was given, when known (checked in `/test/resmon`).
    pub workers: Option<usize>,
    /// Bodies must be byte-for-byte what core serializes (every bakeoff variant). Off for foreign
    /// servers, whose JSON is compared as values and whose error messages may differ.
    pub exact_bytes: bool,
}

#[derive(Debug, Clone)]
pub struct StatementCounts {
    pub admin_url: String,
    pub role: String,
}

/// The outcome of a conformance run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub checks: usize,
    pub failures: Vec<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            formatter,
            "{} checks, {} failed",
            self.checks,
            self.failures.len()
        )?;
        for failure in &self.failures {
            writeln!(formatter, "  - {failure}")?;
        }
        Ok(())
    }
}

/// A response as the checks see it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
}

/// The most statements one request may run.
pub const STATEMENT_BUDGET: i64 = 3;

/// Runs every check against `target`.
pub async fn verify(target: &Target) -> Result<Report> {
    let mut checker = Checker::new(target).await?;
    checker.run_all().await?;
    Ok(checker.report)
}

struct Checker<'a> {
    target: &'a Target,
    http: reqwest::Client,
    database: Client,
    counter: Option<(Client, String)>,
    openapi: OpenApi,
    report: Report,
}

impl<'a> Checker<'a> {
    async fn new(target: &'a Target) -> Result<Checker<'a>> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?;
        let database = crate::connect(&target.expectations_url).await?;
        let counter = match &target.statement_counts {
            Some(counts) => Some((
                crate::connect(&counts.admin_url).await?,
                counts.role.clone(),
            )),
            None => None,
        };
        Ok(Checker {
            target,
            http,
            database,
            counter,
            openapi: OpenApi::contract()?,
            report: Report::default(),
        })
    }

    async fn run_all(&mut self) -> Result<()> {
        self.check_version().await?;
        self.check_types().await?;
        self.check_contact_pages().await?;
        self.check_single_contacts().await?;
        self.check_fibonacci().await?;
        self.check_test_endpoints().await?;
        self.check_bad_requests().await?;
        self.check_not_found_and_methods().await?;
        self.check_openapi_document().await?;
        Ok(())
    }

    fn fail(&mut self, message: String) {
        self.report.failures.push(message);
    }

    /// Sends a request; a transport failure is recorded as a failed check.
    async fn send(&mut self, method: reqwest::Method, path: &str) -> Option<Answer> {
        let url = format!("{}{}", self.target.base_url, path);
        let result = async {
            let response = self.http.request(method.clone(), &url).send().await?;
            let status = response.status().as_u16();
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_string)
            };
            let content_type = header("content-type").unwrap_or_default();
            let retry_after = header("retry-after");
            let body = response.bytes().await?.to_vec();
            Ok::<_, reqwest::Error>(Answer {
                status,
                content_type,
                retry_after,
                body,
            })
        }
        .await;
        match result {
            Ok(answer) => Some(answer),
            Err(error) => {
                self.fail(format!("{method} {path}: request failed: {error}"));
                None
            }
        }
    }

    /// Checks status, content type, the OpenAPI schema, and returns the parsed body.
    async fn fetch(&mut self, path: &str, status: u16) -> Option<(Answer, Value)> {
        self.report.checks += 1;
        let answer = self.send(reqwest::Method::GET, path).await?;
        self.check_envelope(&answer, "GET", path, status)
    }

    fn check_envelope(
        &mut self,
        answer: &Answer,
        method: &str,
        path: &str,
        status: u16,
    ) -> Option<(Answer, Value)> {
        let preview =
            String::from_utf8_lossy(&answer.body[..answer.body.len().min(300)]).into_owned();
        if answer.status != status {
            self.fail(format!(
                "{method} {path}: status {} (expected {status}); body {preview}",
                answer.status
            ));
            return None;
        }
        if !answer
            .content_type
            .starts_with(bakeoff_core::JSON_CONTENT_TYPE)
        {
            self.fail(format!(
                "{method} {path}: content-type {:?} is not application/json",
                answer.content_type
            ));
        }
        let value: Value = match serde_json::from_slice(&answer.body) {
            Ok(value) => value,
            Err(error) => {
                self.fail(format!(
                    "{method} {path}: body is not JSON ({error}): {preview}"
                ));
                return None;
            }
        };
        if method == "GET"
            && let Err(error) = self.openapi.validate(path, status, &value)
        {
            self.fail(format!("{error:#}"));
        }
        Some((
            Answer {
                status: answer.status,
                content_type: answer.content_type.clone(),
                retry_after: answer.retry_after.clone(),
                body: answer.body.clone(),
            },
            value,
        ))
    }

    /// Checks that `path` answers `status` with exactly `expected`'s JSON.
    async fn expect_body(&mut self, path: &str, status: u16, expected: &impl serde::Serialize) {
        let Some((answer, value)) = self.fetch(path, status).await else {
            return;
        };
        self.compare_body(path, &answer, &value, expected);
    }

    fn compare_body(
        &mut self,
        path: &str,
        answer: &Answer,
        value: &Value,
        expected: &impl serde::Serialize,
    ) {
        let expected_bytes = to_json(expected);
        let expected_value: Value = serde_json::from_slice(&expected_bytes).unwrap_or(Value::Null);
        if *value != expected_value {
            let got =
                String::from_utf8_lossy(&answer.body[..answer.body.len().min(400)]).into_owned();
            let want = String::from_utf8_lossy(&expected_bytes[..expected_bytes.len().min(400)])
                .into_owned();
            self.fail(format!(
                "GET {path}: body differs\n      got:      {got}\n      expected: {want}"
            ));
        } else if self.target.exact_bytes && answer.body != expected_bytes {
            self.fail(format!(
                "GET {path}: same JSON value but not the same bytes as core's serialization: {}",
                String::from_utf8_lossy(&answer.body[..answer.body.len().min(400)])
            ));
        }
    }

    /// The app role's statement count so far (health-check pings excluded), if counting.
    async fn statements_so_far(&self) -> Result<Option<i64>> {
        let Some((admin, role)) = &self.counter else {
            return Ok(None);
        };
        let row = admin
            .query_one(
                "SELECT coalesce(sum(s.calls), 0)::int8 FROM pg_stat_statements s \
                 JOIN pg_roles r ON r.oid = s.userid \
                 JOIN pg_database d ON d.oid = s.dbid \
                 WHERE r.rolname = $1 AND d.datname = current_database() \
                   AND s.query !~* '^\\s*select\\s+(1|\\$1)\\s*;?\\s*$' AND s.query <> ''",
                &[role],
            )
            .await
            .context("reading pg_stat_statements")?;
        Ok(Some(row.get(0)))
    }

    /// Fetches `path` and checks how many statements it ran: `expected` inclusive range.
    async fn expect_statements(
        &mut self,
        path: &str,
        expected: std::ops::RangeInclusive<i64>,
    ) -> Result<()> {
        let Some(before) = self.statements_so_far().await? else {
            return Ok(());
        };
        self.report.checks += 1;
        if self.send(reqwest::Method::GET, path).await.is_none() {
            return Ok(());
        }
        // Statistics are written as each statement ends; allow a moment for the last one.
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(500) {
            let ran = self.statements_so_far().await?.unwrap_or(0) - before;
            if ran >= *expected.start() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // One more look, in case a statement beyond the budget was still being recorded.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let ran = self.statements_so_far().await?.unwrap_or(0) - before;
        if !expected.contains(&ran) {
            self.fail(format!(
                "GET {path}: ran {ran} SQL statements, expected {expected:?}"
            ));
        }
        Ok(())
    }

    async fn check_version(&mut self) -> Result<()> {
        for path in ["/version", "/version/"] {
            let Some((answer, value)) = self.fetch(path, 200).await else {
                continue;
            };
            match &self.target.variant {
                Some(variant) => {
                    self.compare_body(path, &answer, &value, &VersionInfo::of(variant))
                }
                None => {
                    let variant = value["variant"].as_str().unwrap_or_default().to_string();
                    self.compare_body(path, &answer, &value, &VersionInfo::of(&variant));
                }
            }
        }
        self.expect_statements("/version", 0..=0).await
    }

    async fn expected_types(&self) -> Result<Page<ContactType>> {
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

    async fn check_types(&mut self) -> Result<()> {
        let expected = self.expected_types().await?;
        for path in ["/types", "/types/"] {
            self.expect_body(path, 200, &expected).await;
        }
        self.expect_statements("/types", 1..=1).await
    }

    async fn expected_contact(&self, id: i32) -> Result<Option<Contact>> {
        let Some(row) = self
            .database
            .query_opt(
                "SELECT c.contact_id, c.first_name, c.last_name, t.type_id, t.type_name \
                 FROM contacts c, contact_types t WHERE t.type_id = c.contact_type_id AND c.contact_id = $1",
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
                "SELECT email FROM contact_emails WHERE contact_id = $1 ORDER BY email_id",
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

    async fn expected_page(
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

    async fn check_contact_pages(&mut self) -> Result<()> {
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

        let default_limit = PageRequest::DEFAULT_LIMIT;
        let mut cases: Vec<(String, i64, i64, Option<String>)> = vec![
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
        if let Some(name) = &common_last_name {
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
                Some(name.clone()),
            ));
        }
        if let Some(name) = &spaced_last_name {
            let encoded = name.replace(' ', "%20");
            cases.push((
                format!("/contacts?starts={encoded}"),
                default_limit,
                0,
                Some(name.clone()),
            ));
            let plus = name.replace(' ', "+");
            cases.push((
                format!("/contacts?starts={plus}"),
                default_limit,
                0,
                Some(name.clone()),
            ));
        }

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

    async fn check_single_contacts(&mut self) -> Result<()> {
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
            self.expect_error(&format!("/contacts/{absent}"), &ApiError::ContactNotFound)
                .await;
        }
        Ok(())
    }

    async fn check_fibonacci(&mut self) -> Result<()> {
        for n in ["0", "1", "2", "10", "25"] {
            let Ok(parsed) = FibonacciN::parse(n) else {
                continue;
            };
            let expected = FibonacciBody {
                result: workload::fibonacci(parsed),
            };
            self.expect_body(&format!("/fibonacci/{n}"), 200, &expected)
                .await;
        }
        self.expect_body("/fibonacci/10/", 200, &FibonacciBody { result: 89 })
            .await;
        self.expect_statements("/fibonacci/10", 0..=0).await
    }

    async fn check_test_endpoints(&mut self) -> Result<()> {
        if let Some((_, value)) = self.fetch("/test/calibrate", 200).await {
            self.expect_field(
                &value,
                "/test/calibrate",
                "message",
                Value::from("Duration of one iteration"),
            );
            self.expect_positive(&value, "/test/calibrate", 0.0);
        }
        let two = Iterations::parse("2").map_err(|error| anyhow::anyhow!("{error}"))?;
        let checksum = workload::run_iterations(two).checksum;
        for path in [
            "/test/sync-cpubound/2",
            "/test/offload-cpubound/2",
            "/test/offload-cpubound/2/",
        ] {
            if let Some((_, value)) = self.fetch(path, 200).await {
                self.expect_field(
                    &value,
                    path,
                    "message",
                    Value::from("Duration of 2 iterations"),
                );
                self.expect_field(&value, path, "checksum", Value::from(checksum));
                self.expect_positive(&value, path, 0.0);
            }
        }
        for (path, millis) in [
            ("/test/async-iobound/50", 50u64),
            ("/test/blocking-iobound/20/", 20),
        ] {
            if let Some((_, value)) = self.fetch(path, 200).await {
                self.expect_field(
                    &value,
                    path,
                    "message",
                    Value::from(format!("Waited {millis} ms")),
                );
                self.expect_positive(&value, path, millis as f64 / 1000.0);
            }
        }
        if let Some((_, value)) = self.fetch("/test/resmon", 200).await {
            if let Some(variant) = self.target.variant.clone() {
                self.expect_field(&value, "/test/resmon", "variant", Value::from(variant));
            }
            if let Some(workers) = self.target.workers {
                self.expect_field(&value, "/test/resmon", "workers", Value::from(workers));
            }
            if value["threads"].as_i64().unwrap_or(0) < 1
                || value["rss_bytes"].as_u64().unwrap_or(0) == 0
            {
                self.fail(format!("GET /test/resmon: implausible snapshot {value}"));
            }
        }
        Ok(())
    }

    fn expect_field(&mut self, value: &Value, path: &str, field: &str, expected: Value) {
        if value[field] != expected {
            self.fail(format!(
                "GET {path}: {field} is {} (expected {expected})",
                value[field]
            ));
        }
    }

    fn expect_positive(&mut self, value: &Value, path: &str, at_least: f64) {
        let result = value["result"].as_f64().unwrap_or(-1.0);
        // A timer may round a wait down by a hair; a millisecond of slack.
        if result <= 0.0 || result + 0.001 < at_least {
            self.fail(format!(
                "GET {path}: result {result} (expected at least {at_least} s)"
            ));
        }
    }

    /// Checks an error answer: the status and, for bakeoff variants, the exact body.
    async fn expect_error(&mut self, path: &str, expected: &ApiError) {
        let Some((answer, value)) = self.fetch(path, expected.status()).await else {
            return;
        };
        self.compare_error(&format!("GET {path}"), &answer, &value, expected);
    }

    fn compare_error(&mut self, what: &str, answer: &Answer, value: &Value, expected: &ApiError) {
        if self.target.exact_bytes {
            let expected_body = expected.body();
            let got: Option<ErrorBody> = serde_json::from_value(value.clone()).ok();
            if got.as_ref() != Some(&expected_body) || answer.body != expected.to_json() {
                self.fail(format!(
                    "{what}: error body {} (expected {})",
                    String::from_utf8_lossy(&answer.body),
                    String::from_utf8_lossy(&expected.to_json())
                ));
            }
            return;
        }
        // Foreign servers: the same status and the same parameter named.
        let keys = |body: &ErrorBody| body.errors.keys().cloned().collect::<Vec<_>>();
        let got: Option<ErrorBody> = serde_json::from_value(value.clone()).ok();
        if got.as_ref().map(keys) != Some(keys(&expected.body())) {
            self.fail(format!(
                "{what}: error body {value} does not name {:?}",
                keys(&expected.body())
            ));
        }
    }

    async fn check_bad_requests(&mut self) -> Result<()> {
        let long = "a".repeat(LastNamePrefix::MAX_CHARS + 1);
        let page = |query: &str| PageRequest::from_query(Some(query)).err();
        let cases: Vec<(String, Option<ApiError>)> = vec![
            ("/contacts/0".into(), ContactId::parse("0").err()),
            ("/contacts/abc".into(), ContactId::parse("abc").err()),
            ("/contacts/-1".into(), ContactId::parse("-1").err()),
            (
                "/contacts/2147483648".into(),
                ContactId::parse("2147483648").err(),
            ),
            ("/contacts/1.5".into(), ContactId::parse("1.5").err()),
            ("/contacts/1e3/".into(), ContactId::parse("1e3").err()),
            ("/contacts/%20".into(), ContactId::parse(" ").err()),
            (
                "/contacts/99999999999999999999999".into(),
                ContactId::parse("99999999999999999999999").err(),
            ),
            ("/contacts?limit=0".into(), page("limit=0")),
            ("/contacts?limit=201".into(), page("limit=201")),
            ("/contacts?limit=abc".into(), page("limit=abc")),
            ("/contacts?limit=".into(), page("limit=")),
            ("/contacts/?offset=-1".into(), page("offset=-1")),
            (
                "/contacts?offset=2147483648".into(),
                page("offset=2147483648"),
            ),
            ("/contacts?offset=1.5".into(), page("offset=1.5")),
            ("/contacts?starts=".into(), page("starts=")),
            ("/contacts?starts=a%25".into(), page("starts=a%25")),
            ("/contacts?starts=a_b".into(), page("starts=a_b")),
            (
                "/contacts?starts=o%27brien".into(),
                page("starts=o%27brien"),
            ),
            (
                format!("/contacts?starts={long}"),
                page(&format!("starts={long}")),
            ),
            (
                "/contacts?limit=0&offset=-1&starts=%25".into(),
                page("limit=0&offset=-1&starts=%25"),
            ),
            ("/fibonacci/41".into(), FibonacciN::parse("41").err()),
            ("/fibonacci/-1".into(), FibonacciN::parse("-1").err()),
            ("/fibonacci/x/".into(), FibonacciN::parse("x").err()),
            ("/test/sync-cpubound/0".into(), Iterations::parse("0").err()),
            (
                "/test/sync-cpubound/10001".into(),
                Iterations::parse("10001").err(),
            ),
            (
                "/test/offload-cpubound/x".into(),
                Iterations::parse("x").err(),
            ),
            (
                "/test/async-iobound/60001".into(),
                Millis::parse("60001").err(),
            ),
            (
                "/test/blocking-iobound/-5".into(),
                Millis::parse("-5").err(),
            ),
        ];
        for (path, expected) in cases {
            let Some(expected) = expected else {
                self.fail(format!("test table: core accepts the input of {path}"));
                continue;
            };
            self.expect_error(&path, &expected).await;
        }
        Ok(())
    }

    async fn check_not_found_and_methods(&mut self) -> Result<()> {
        for path in [
            "/nope",
            "/contacts/1/extra",
            "/version/extra",
            "/test",
            "/test/unknown/1",
        ] {
            self.expect_error(path, &ApiError::RouteNotFound).await;
        }
        let wrong_methods = [
            (reqwest::Method::POST, "/version"),
            (reqwest::Method::POST, "/contacts"),
            (reqwest::Method::PUT, "/types/"),
            (reqwest::Method::DELETE, "/contacts/1"),
            (reqwest::Method::PATCH, "/fibonacci/3"),
        ];
        for (method, path) in wrong_methods {
            self.report.checks += 1;
            let Some(answer) = self.send(method.clone(), path).await else {
                continue;
            };
            let what = format!("{method} {path}");
            if let Some((answer, value)) = self.check_envelope(&answer, method.as_str(), path, 405)
            {
                self.compare_error(&what, &answer, &value, &ApiError::MethodNotAllowed);
            }
        }
        // HEAD has no body to compare: every variant answers only GET, so HEAD is 405 too.
        self.report.checks += 1;
        if let Some(answer) = self.send(reqwest::Method::HEAD, "/types").await
            && answer.status != 405
        {
            self.fail(format!(
                "HEAD /types: status {} (expected 405)",
                answer.status
            ));
        }
        Ok(())
    }

    async fn check_openapi_document(&mut self) -> Result<()> {
        let Some((answer, value)) = self.fetch("/openapi.json", 200).await else {
            return Ok(());
        };
        // Bakeoff's own variants serve core's generated document itself: the same bytes. A foreign
        // server may serialize it differently but must serve the same document.
        if &value != self.openapi.document() {
            self.fail("GET /openapi.json: not the contract's document".to_string());
        } else if self.target.exact_bytes
            && answer.body != bakeoff_core::openapi::OPENAPI_JSON.as_bytes()
        {
            self.fail(
                "GET /openapi.json: not byte for byte the document core generates".to_string(),
            );
        }
        Ok(())
    }
}
