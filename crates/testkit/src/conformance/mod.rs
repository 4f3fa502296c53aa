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
//!
//! One `Checker` runs them, its checks split by what they check: `contract` (the answers that
//! need no database, and how bodies compare), `contacts` (the database rows), `errors` (every
//! error answer), `headers` (headers, and HEAD), `statements` (the SQL budget), over `exchange`
//! (sending requests and reading answers).

mod contacts;
mod contract;
mod errors;
mod exchange;
mod headers;
mod statements;

use std::time::Duration;

use anyhow::{Context, Result};
use tokio_postgres::Client;

use crate::openapi::OpenApi;

pub use errors::ExpectedError;
pub use headers::{CONTENT_TYPE, HEADERS_BY_STATUS};
pub use statements::STATEMENT_BUDGET;

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
}
