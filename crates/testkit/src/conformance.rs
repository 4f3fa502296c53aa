//! The conformance checks: every row of the contract and every error case, against a running
//! server, with the expected JSON read from the database itself, statement counts from
//! pg_stat_statements, and every response validated against the OpenAPI document.
//!
//! The expected values come from the test's own SQL (written independently of `core::sql`) and
//! are serialized with core's model, so a server that sends other values, other field order or
//! other bytes fails. What the contract says in words is written here as literals, not taken from
//! core: every error message (`BAD_REQUESTS` and the `*_MESSAGE` constants), and every header
//! ([`CONTENT_TYPE`], [`HEADERS_BY_STATUS`]). A change to one of those in core then fails here
//! until the contract is changed on purpose. `bakeoff verify` runs the same checks against any
//! server.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bakeoff_core::model::{Contact, ContactType, Page, VersionInfo, to_json};
use bakeoff_core::params::Iterations;
use bakeoff_core::workload::{self, FibonacciBody};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::Client;

use crate::openapi::OpenApi;

/// The `Content-Type` of every answer of the contract, success or error.
pub const CONTENT_TYPE: &str = "application/json";

/// The headers the contract adds to an answer by its status: (status, header name, value).
pub const HEADERS_BY_STATUS: [(u16, &str, &str); 2] = [
    // Every path answers GET and HEAD, in this spelling on every variant.
    (405, "allow", "GET, HEAD"),
    // While the database is unavailable (or a handler ran out of time): retry in a second.
    (503, "retry-after", "1"),
];

/// `limit` when the query has none.
const DEFAULT_LIMIT: i64 = 100;

/// The messages of the contract's 400s, by parameter.
const CONTACT_ID_MESSAGE: &str = "must be an integer from 1 to 2147483647";
const FIBONACCI_N_MESSAGE: &str = "must be an integer from 0 to 40";
const ITERATIONS_MESSAGE: &str = "must be an integer from 1 to 10000";
const MILLIS_MESSAGE: &str = "must be an integer from 0 to 60000";
const LIMIT_MESSAGE: &str = "must be an integer from 1 to 200";
const OFFSET_MESSAGE: &str = "must be an integer from 0 to 2147483647";
const STARTS_LENGTH_MESSAGE: &str = "must be 1 to 100 characters";
const STARTS_CHARACTERS_MESSAGE: &str = "may contain only letters, digits and spaces";

/// An error answer of the contract: its status and its `errors`, (parameter or `request`,
/// message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedError {
    pub status: u16,
    pub errors: Vec<(&'static str, &'static str)>,
}

impl ExpectedError {
    /// An answer naming one parameter: (status, parameter, message).
    fn one((status, parameter, message): (u16, &'static str, &'static str)) -> ExpectedError {
        ExpectedError {
            status,
            errors: vec![(parameter, message)],
        }
    }
}

/// The errors of the contract other than 400s: (status, parameter or `request`, message).
const CONTACT_NOT_FOUND: (u16, &str, &str) = (404, "contact_id", "contact not found");
const ROUTE_NOT_FOUND: (u16, &str, &str) = (404, "request", "no such path");
const METHOD_NOT_ALLOWED: (u16, &str, &str) = (405, "request", "method not allowed");

/// Every rejected input of the contract: (path, status, parameter, exact message). Consecutive
/// rows with the same path are one answer that names several parameters.
#[rustfmt::skip]
const BAD_REQUESTS: &[(&str, u16, &str, &str)] = &[
    ("/contacts/0",                            400, "contact_id", CONTACT_ID_MESSAGE),
    ("/contacts/abc",                          400, "contact_id", CONTACT_ID_MESSAGE),
    ("/contacts/-1",                           400, "contact_id", CONTACT_ID_MESSAGE),
    ("/contacts/2147483648",                   400, "contact_id", CONTACT_ID_MESSAGE),
    ("/contacts/1.5",                          400, "contact_id", CONTACT_ID_MESSAGE),
    ("/contacts/1e3/",                         400, "contact_id", CONTACT_ID_MESSAGE),
    ("/contacts/%20",                          400, "contact_id", CONTACT_ID_MESSAGE),
    ("/contacts/99999999999999999999999",      400, "contact_id", CONTACT_ID_MESSAGE),
    ("/contacts?limit=0",                      400, "limit",      LIMIT_MESSAGE),
    ("/contacts?limit=201",                    400, "limit",      LIMIT_MESSAGE),
    ("/contacts?limit=abc",                    400, "limit",      LIMIT_MESSAGE),
    ("/contacts?limit=",                       400, "limit",      LIMIT_MESSAGE),
    ("/contacts/?offset=-1",                   400, "offset",     OFFSET_MESSAGE),
    ("/contacts?offset=2147483648",            400, "offset",     OFFSET_MESSAGE),
    ("/contacts?offset=1.5",                   400, "offset",     OFFSET_MESSAGE),
    ("/contacts?starts=",                      400, "starts",     STARTS_LENGTH_MESSAGE),
    // 101 characters, one over the limit.
    (LONG_STARTS_PATH,                         400, "starts",     STARTS_LENGTH_MESSAGE),
    ("/contacts?starts=a%25",                  400, "starts",     STARTS_CHARACTERS_MESSAGE),
    ("/contacts?starts=a_b",                   400, "starts",     STARTS_CHARACTERS_MESSAGE),
    ("/contacts?starts=o%27brien",             400, "starts",     STARTS_CHARACTERS_MESSAGE),
    // Every invalid value is reported, not just the first.
    ("/contacts?limit=0&offset=-1&starts=%25", 400, "limit",      LIMIT_MESSAGE),
    ("/contacts?limit=0&offset=-1&starts=%25", 400, "offset",     OFFSET_MESSAGE),
    ("/contacts?limit=0&offset=-1&starts=%25", 400, "starts",     STARTS_CHARACTERS_MESSAGE),
    ("/fibonacci/41",                          400, "n",          FIBONACCI_N_MESSAGE),
    ("/fibonacci/-1",                          400, "n",          FIBONACCI_N_MESSAGE),
    ("/fibonacci/x/",                          400, "n",          FIBONACCI_N_MESSAGE),
    ("/test/sync-cpubound/0",                  400, "iterations", ITERATIONS_MESSAGE),
    ("/test/sync-cpubound/10001",              400, "iterations", ITERATIONS_MESSAGE),
    ("/test/offload-cpubound/x",               400, "iterations", ITERATIONS_MESSAGE),
    ("/test/async-iobound/60001",              400, "millis",     MILLIS_MESSAGE),
    ("/test/blocking-iobound/-5",              400, "millis",     MILLIS_MESSAGE),
];

/// A `starts` of 101 letters.
const LONG_STARTS_PATH: &str = "/contacts?starts=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// [`BAD_REQUESTS`] as one expected answer per path.
fn bad_requests() -> Vec<(&'static str, ExpectedError)> {
    let mut cases: Vec<(&'static str, ExpectedError)> = Vec::new();
    for &(path, status, parameter, message) in BAD_REQUESTS {
        match cases.last_mut() {
            Some((last_path, expected)) if *last_path == path && expected.status == status => {
                expected.errors.push((parameter, message));
            }
            _ => cases.push((path, ExpectedError::one((status, parameter, message)))),
        }
    }
    cases
}

/// Paths no route matches, whatever the method.
const UNKNOWN_PATHS: &[&str] = &[
    "/nope",
    "/contacts/1/extra",
    "/version/extra",
    "/test",
    "/test/unknown/1",
];

/// Methods other than GET and HEAD on known paths (405 with `Allow`), and on unknown ones (404).
const OTHER_METHODS: &[(&str, &str, (u16, &str, &str))] = &[
    ("POST", "/version", METHOD_NOT_ALLOWED),
    ("POST", "/contacts", METHOD_NOT_ALLOWED),
    ("PUT", "/types/", METHOD_NOT_ALLOWED),
    ("DELETE", "/contacts/1", METHOD_NOT_ALLOWED),
    ("DELETE", "/contacts/abc", METHOD_NOT_ALLOWED),
    ("PATCH", "/fibonacci/3", METHOD_NOT_ALLOWED),
    ("OPTIONS", "/openapi.json", METHOD_NOT_ALLOWED),
    ("POST", "/test/resmon", METHOD_NOT_ALLOWED),
    ("POST", "/nope", ROUTE_NOT_FOUND),
    ("DELETE", "/contacts/1/extra", ROUTE_NOT_FOUND),
];

/// Paths whose HEAD must answer as their GET does, with its status: the same headers, the GET
/// body's length as `Content-Length`, and no body. Their bodies do not change between two
/// requests, so the lengths can be compared. A contact that exists and one that does not are
/// added from the database.
const HEAD_PATHS: &[(&str, u16)] = &[
    ("/version", 200),
    ("/types/", 200),
    ("/contacts?limit=3&offset=1", 200),
    // Over 32 KiB, where some servers switch to chunked coding.
    ("/contacts?limit=200", 200),
    ("/fibonacci/20", 200),
    ("/openapi.json", 200),
    ("/contacts/0", 400),
    ("/contacts?limit=0&offset=-1", 400),
    ("/fibonacci/41/", 400),
    ("/test/sync-cpubound/0", 400),
    ("/nope", 404),
    ("/contacts/1/extra", 404),
];

/// `fib(n)` as the contract computes it (`fib(0) = fib(1) = 1`).
const FIBONACCI: [(&str, u64); 5] = [("0", 1), ("1", 1), ("2", 2), ("10", 89), ("25", 121_393)];

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
    /// Bodies must be byte-for-byte what core serializes (every bakeoff variant), and headers
    /// exactly the contract's spelling. Off for foreign servers, whose JSON is compared as
    /// values, whose error messages may differ, and whose headers need only mean the same.
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
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// Every header as received, names in lower case, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// Every value of the header `name` (lower case).
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(header, _)| header == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// The value of the header `name` (lower case), if it came exactly once.
    pub fn header(&self, name: &str) -> Option<&str> {
        match self.header_values(name).as_slice() {
            [value] => Some(value),
            _ => None,
        }
    }
}

/// Whether a header value means what the contract's does, for servers that need not spell it
/// the same: a media type with parameters, methods in another order or spacing, another delay.
fn equivalent_header(name: &str, got: &str, expected: &str) -> bool {
    match name {
        "content-type" => got
            .split(';')
            .next()
            .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case(expected)),
        "allow" => {
            let methods = |list: &str| {
                let mut methods: Vec<String> = list
                    .split(',')
                    .map(|method| method.trim().to_string())
                    .filter(|method| !method.is_empty())
                    .collect();
                methods.sort();
                methods
            };
            methods(got) == methods(expected)
        }
        "retry-after" => got.trim().parse::<u64>().is_ok(),
        _ => got == expected,
    }
}

/// The exact bytes of an error body: `{"status":S,"errors":{"key":"message",...}}`, keys in
/// alphabetical order. Strings are escaped by serde_json; the layout is the contract's.
fn error_bytes(expected: &ExpectedError) -> Vec<u8> {
    let mut errors = expected.errors.to_vec();
    errors.sort();
    let quoted = |text: &str| serde_json::to_string(text).unwrap_or_default();
    let members: Vec<String> = errors
        .iter()
        .map(|(key, message)| format!("{}:{}", quoted(key), quoted(message)))
        .collect();
    format!(
        "{{\"status\":{},\"errors\":{{{}}}}}",
        expected.status,
        members.join(",")
    )
    .into_bytes()
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
        self.check_head().await?;
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
            let headers = response
                .headers()
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_string(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let body = response.bytes().await?.to_vec();
            Ok::<_, reqwest::Error>(Answer {
                status,
                headers,
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

    /// Checks status, headers, the OpenAPI schema, and returns the parsed body.
    async fn fetch(&mut self, path: &str, status: u16) -> Option<(Answer, Value)> {
        self.report.checks += 1;
        let answer = self.send(reqwest::Method::GET, path).await?;
        self.check_envelope(answer, "GET", path, status)
    }

    /// Checks the contract's headers of one answer: `Content-Type`, and those its status
    /// carries ([`HEADERS_BY_STATUS`]), each exactly once.
    fn check_headers(&mut self, what: &str, answer: &Answer) {
        let expected = std::iter::once(("content-type", CONTENT_TYPE)).chain(
            HEADERS_BY_STATUS
                .iter()
                .filter(|(status, _, _)| *status == answer.status)
                .map(|&(_, name, value)| (name, value)),
        );
        for (name, value) in expected {
            let got = answer.header_values(name);
            let matches = match got.as_slice() {
                [one] if self.target.exact_bytes => *one == value,
                [one] => equivalent_header(name, one, value),
                _ => false,
            };
            if matches {
                continue;
            }
            let got = match got.as_slice() {
                [] => "missing".to_string(),
                [one] => format!("{one:?}"),
                many => format!("sent {} times: {many:?}", many.len()),
            };
            self.fail(format!(
                "{what}: answered {} with header {name} {got} (expected {value:?})",
                answer.status
            ));
        }
    }

    fn check_envelope(
        &mut self,
        answer: Answer,
        method: &str,
        path: &str,
        status: u16,
    ) -> Option<(Answer, Value)> {
        let preview =
            String::from_utf8_lossy(&answer.body[..answer.body.len().min(300)]).into_owned();
        // The headers go with the status the server chose, so a wrong status (a 503 in the middle
        // of a run, say) is checked for its own headers too.
        self.check_headers(&format!("{method} {path}"), &answer);
        if answer.status != status {
            self.fail(format!(
                "{method} {path}: status {} (expected {status}); body {preview}",
                answer.status
            ));
            return None;
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
        Some((answer, value))
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
        Ok(Some(
            crate::postgres::statements_of_role(admin, role).await?,
        ))
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

        let default_limit = DEFAULT_LIMIT;
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
            self.expect_error(
                &format!("/contacts/{absent}"),
                &ExpectedError::one(CONTACT_NOT_FOUND),
            )
            .await;
        }
        Ok(())
    }

    async fn check_fibonacci(&mut self) -> Result<()> {
        for (n, result) in FIBONACCI {
            self.expect_body(&format!("/fibonacci/{n}"), 200, &FibonacciBody { result })
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

    /// Checks an error answer: the status, the headers and, for bakeoff variants, the exact body.
    async fn expect_error(&mut self, path: &str, expected: &ExpectedError) {
        let Some((answer, value)) = self.fetch(path, expected.status).await else {
            return;
        };
        self.compare_error(&format!("GET {path}"), &answer, &value, expected);
    }

    fn compare_error(
        &mut self,
        what: &str,
        answer: &Answer,
        value: &Value,
        expected: &ExpectedError,
    ) {
        let expected_bytes = error_bytes(expected);
        if self.target.exact_bytes {
            if answer.body != expected_bytes {
                self.fail(format!(
                    "{what}: error body {} (expected {})",
                    String::from_utf8_lossy(&answer.body),
                    String::from_utf8_lossy(&expected_bytes)
                ));
            }
            return;
        }
        // Foreign servers: the same status and the same parameters named; messages may differ.
        let mut expected_keys: Vec<&str> = expected.errors.iter().map(|(key, _)| *key).collect();
        expected_keys.sort();
        let got_keys = value["errors"].as_object().map(|errors| {
            let mut keys: Vec<&str> = errors.keys().map(String::as_str).collect();
            keys.sort();
            keys
        });
        if value["status"] != expected.status || got_keys != Some(expected_keys.clone()) {
            self.fail(format!(
                "{what}: error body {value} does not have status {} and errors named {expected_keys:?}",
                expected.status
            ));
        }
    }

    async fn check_bad_requests(&mut self) -> Result<()> {
        for (path, expected) in bad_requests() {
            self.expect_error(path, &expected).await;
        }
        Ok(())
    }

    async fn check_not_found_and_methods(&mut self) -> Result<()> {
        for path in UNKNOWN_PATHS {
            self.expect_error(path, &ExpectedError::one(ROUTE_NOT_FOUND))
                .await;
        }
        for &(method, path, expected) in OTHER_METHODS {
            let expected = ExpectedError::one(expected);
            self.report.checks += 1;
            let Ok(method) = reqwest::Method::from_bytes(method.as_bytes()) else {
                self.fail(format!("test table: {method:?} is not a method"));
                continue;
            };
            let Some(answer) = self.send(method.clone(), path).await else {
                continue;
            };
            let what = format!("{method} {path}");
            if let Some((answer, value)) =
                self.check_envelope(answer, method.as_str(), path, expected.status)
            {
                self.compare_error(&what, &answer, &value, &expected);
            }
        }
        Ok(())
    }

    /// HEAD answers as GET does, without the body: for each path, the GET's status, the
    /// contract's headers, `Content-Length` equal to the GET body's length, and nothing after
    /// the headers.
    async fn check_head(&mut self) -> Result<()> {
        let mut paths: Vec<(String, u16)> = HEAD_PATHS
            .iter()
            .map(|&(path, status)| (path.to_string(), status))
            .collect();
        let ids = self
            .database
            .query_one(
                "SELECT min(contact_id), coalesce(max(contact_id), 0) FROM contacts",
                &[],
            )
            .await?;
        if let Some(first) = ids.get::<_, Option<i32>>(0) {
            paths.push((format!("/contacts/{first}"), 200));
        }
        let last: i32 = ids.get(1);
        if last < i32::MAX {
            paths.push((format!("/contacts/{}/", last + 1), 404));
        }

        for (path, status) in paths {
            self.report.checks += 1;
            let Some(get) = self.send(reqwest::Method::GET, &path).await else {
                continue;
            };
            if get.status != status {
                self.fail(format!(
                    "GET {path}: status {} (expected {status}), so its HEAD cannot be compared",
                    get.status
                ));
                continue;
            }
            let Some(head) = self.send_head(&path).await else {
                continue;
            };
            let what = format!("HEAD {path}");
            if head.status != status {
                self.fail(format!(
                    "{what}: status {} (the GET's is {status})",
                    head.status
                ));
                continue;
            }
            self.check_headers(&what, &head);
            let length = head.header("content-length");
            if length.and_then(|length| length.parse::<usize>().ok()) != Some(get.body.len()) {
                self.fail(format!(
                    "{what}: Content-Length {length:?} (the GET's body is {} bytes)",
                    get.body.len()
                ));
            }
            if !head.body.is_empty() {
                self.fail(format!(
                    "{what}: {} bytes after the headers (a HEAD answer has no body): {}",
                    head.body.len(),
                    String::from_utf8_lossy(&head.body[..head.body.len().min(200)])
                ));
            }
        }
        Ok(())
    }

    /// Sends `HEAD path` on a connection of its own with `Connection: close` and reads until the
    /// server closes it, so that bytes sent after the headers are seen: an HTTP client would
    /// drop them, knowing that an answer to HEAD has no body.
    async fn send_head(&mut self, path: &str) -> Option<Answer> {
        match self.head_over_tcp(path).await {
            Ok(answer) => Some(answer),
            Err(error) => {
                self.fail(format!("HEAD {path}: {error:#}"));
                None
            }
        }
    }

    async fn head_over_tcp(&self, path: &str) -> Result<Answer> {
        const LIMIT: Duration = Duration::from_secs(30);
        let url = url::Url::parse(&self.target.base_url)
            .with_context(|| format!("{} is not a URL", self.target.base_url))?;
        anyhow::ensure!(
            url.scheme() == "http",
            "HEAD is checked over plain TCP, which needs an http:// URL (got {})",
            self.target.base_url
        );
        let host = url.host_str().context("the base URL has no host")?;
        let port = url.port_or_known_default().unwrap_or(80);
        let authority = format!("{host}:{port}");
        let exchange = async {
            let mut stream = tokio::net::TcpStream::connect(&authority)
                .await
                .with_context(|| format!("connecting to {authority}"))?;
            let request =
                format!("HEAD {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
            stream
                .write_all(request.as_bytes())
                .await
                .context("sending the request")?;
            let mut received = Vec::new();
            stream
                .read_to_end(&mut received)
                .await
                .context("reading the answer")?;
            Ok::<_, anyhow::Error>(received)
        };
        let received = tokio::time::timeout(LIMIT, exchange).await.with_context(|| {
            format!("no complete answer within {LIMIT:?} (the connection stayed open after `Connection: close`?)")
        })??;

        let mut header_slots = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut header_slots);
        let head_length = match response.parse(&received) {
            Ok(httparse::Status::Complete(length)) => length,
            Ok(httparse::Status::Partial) => anyhow::bail!(
                "the connection closed within the headers: {:?}",
                String::from_utf8_lossy(&received)
            ),
            Err(error) => anyhow::bail!(
                "not an HTTP answer ({error}): {:?}",
                String::from_utf8_lossy(&received[..received.len().min(300)])
            ),
        };
        Ok(Answer {
            status: response.code.unwrap_or(0),
            headers: response
                .headers
                .iter()
                .map(|header| {
                    (
                        header.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(header.value).into_owned(),
                    )
                })
                .collect(),
            body: received[head_length..].to_vec(),
        })
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_the_contract_layout_with_keys_in_order() {
        let (_, expected) = bad_requests()
            .into_iter()
            .find(|(path, _)| *path == "/contacts?limit=0&offset=-1&starts=%25")
            .unwrap();
        assert_eq!(
            String::from_utf8(error_bytes(&expected)).unwrap(),
            r#"{"status":400,"errors":{"limit":"must be an integer from 1 to 200","offset":"must be an integer from 0 to 2147483647","starts":"may contain only letters, digits and spaces"}}"#
        );
        let reversed = ExpectedError {
            status: 405,
            errors: vec![("x", "b"), ("request", "method not allowed")],
        };
        assert_eq!(
            String::from_utf8(error_bytes(&reversed)).unwrap(),
            r#"{"status":405,"errors":{"request":"method not allowed","x":"b"}}"#
        );
        assert_eq!(bad_requests().len(), BAD_REQUESTS.len() - 2);
    }

    #[test]
    fn foreign_headers_may_be_spelled_otherwise_but_must_mean_the_same() {
        assert!(equivalent_header("allow", "HEAD,GET", "GET, HEAD"));
        assert!(!equivalent_header("allow", "GET", "GET, HEAD"));
        assert!(!equivalent_header("allow", "GET, HEAD, POST", "GET, HEAD"));
        assert!(equivalent_header(
            "content-type",
            "Application/JSON; charset=utf-8",
            "application/json"
        ));
        assert!(!equivalent_header(
            "content-type",
            "text/plain",
            "application/json"
        ));
        assert!(equivalent_header("retry-after", "5", "1"));
        assert!(!equivalent_header("retry-after", "soon", "1"));
    }

    #[test]
    fn the_longest_rejected_prefix_is_one_over_the_limit() {
        let prefix = LONG_STARTS_PATH.trim_start_matches("/contacts?starts=");
        assert_eq!(prefix.len(), 101);
        assert!(prefix.bytes().all(|byte| byte == b'a'));
    }
}
