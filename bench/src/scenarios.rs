//! The scenarios: named request mixes, each with the exact body every answer must carry.
//!
//! A scenario's requests are drawn once per run from the database (seeded, so two runs over the
//! same data send the same requests), and their expected bodies are computed by the shared core:
//! the same SQL through core's query code, serialized by core's model, which is by definition what
//! every variant must answer. The engine compares a sample of the answers with them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use bakeoff_core::model::{VersionInfo, to_json};
use bakeoff_core::workload::{self, FibonacciBody};
use bakeoff_core::{ContactId, FibonacciN, LastNamePrefix, PageRequest, pg};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use tokio_postgres::{Client, Statement};

use crate::engine::{PlannedRequest, SplitMix64};
use crate::results::vocabulary::{PathStyle, Scenario};

/// The page size of the page and search scenarios.
pub const PAGE_SIZE: i64 = 100;
/// `n` of the fibonacci scenario.
pub const FIBONACCI_N: &str = "25";

/// How many distinct requests a database scenario draws.
const CONTACT_POOL: usize = 1_000;
const PAGE_POOL: usize = 200;
const SEARCH_POOL: usize = 200;
/// Expected bodies are computed this many requests at a time (pipelined on one connection).
const PIPELINE_DEPTH: usize = 16;

impl std::fmt::Display for Scenario {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&crate::names::name_of(self))
    }
}

impl Scenario {
    /// Every scenario, in the order reports show them.
    pub fn all() -> &'static [Scenario] {
        <Scenario as clap::ValueEnum>::value_variants()
    }

    /// One line: what it sends and what it shows.
    pub fn description(self) -> &'static str {
        match self {
            Scenario::Version => {
                "GET /version: no database, a tiny constant body; the framework's own overhead"
            }
            Scenario::Types => {
                "GET /types: one statement, a small JSON list; the cost of a database round trip"
            }
            Scenario::Contact => {
                "GET /contacts/{id} for a random existing id: three statements, one contact"
            }
            Scenario::ContactsPage => {
                "GET /contacts?limit=100&offset={random}: three statements, about 20 KB of JSON"
            }
            Scenario::ContactsSearch => {
                "GET /contacts?starts={random two-letter prefix}: an index prefix scan plus details"
            }
            Scenario::Fibonacci => {
                "GET /fibonacci/25: naive recursion, about a millisecond of CPU per request"
            }
        }
    }

    pub fn uses_database(self) -> bool {
        match self {
            Scenario::Version | Scenario::Fibonacci => false,
            Scenario::Types
            | Scenario::Contact
            | Scenario::ContactsPage
            | Scenario::ContactsSearch => true,
        }
    }
}

impl PathStyle {
    /// `path_and_query` in this style: `/contacts?limit=5` -> `/contacts/?limit=5`.
    pub fn apply(self, path_and_query: &str) -> String {
        match self {
            PathStyle::Bare => path_and_query.to_string(),
            PathStyle::TrailingSlash => {
                let (path, query) = match path_and_query.split_once('?') {
                    Some((path, query)) => (path, Some(query)),
                    None => (path_and_query, None),
                };
                let slash = if path.ends_with('/') { "" } else { "/" };
                match query {
                    Some(query) => format!("{path}{slash}?{query}"),
                    None => format!("{path}{slash}"),
                }
            }
        }
    }
}

impl std::fmt::Display for PathStyle {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            PathStyle::Bare => "contract paths",
            PathStyle::TrailingSlash => "trailing slash",
        })
    }
}

/// The request pools of the database scenarios, drawn from one database.
#[derive(Debug, Clone)]
pub struct Pools {
    by_scenario: HashMap<Scenario, Arc<Vec<PlannedRequest>>>,
    /// Whether answers are compared with the expected bodies (off for foreign servers).
    check_bodies: bool,
    /// How the paths are written (a target may want a slash after each).
    path_style: PathStyle,
}

impl Pools {
    /// Draws the requests of `scenarios` from the database at `database_url` and computes their
    /// expected bodies. The version scenario is per server and added by [`Pools::mix`].
    pub async fn build(database_url: &str, scenarios: &[Scenario], seed: u64) -> Result<Pools> {
        let client = bakeoff_testkit::connect(database_url).await?;
        let connection = PlainConnection::new(client);
        let mut rng = SplitMix64::new(seed);
        let mut by_scenario = HashMap::new();
        for &scenario in scenarios {
            let requests = match scenario {
                Scenario::Version => continue,
                Scenario::Fibonacci => fibonacci_requests()?,
                Scenario::Types => {
                    let page = pg::list_types(&connection)
                        .await
                        .map_err(|error| anyhow::anyhow!("listing types: {error}"))?;
                    vec![PlannedRequest::new(
                        "/types",
                        Some(Bytes::from(to_json(&page))),
                    )?]
                }
                Scenario::Contact => contact_pool(&connection, &mut rng).await?,
                Scenario::ContactsPage => page_pool(&connection, &mut rng).await?,
                Scenario::ContactsSearch => search_pool(&connection, &mut rng).await?,
            };
            anyhow::ensure!(
                !requests.is_empty(),
                "the {} scenario found no data to request; is the database seeded?",
                scenario
            );
            by_scenario.insert(scenario, Arc::new(requests));
        }
        Ok(Pools {
            by_scenario,
            check_bodies: true,
            path_style: PathStyle::Bare,
        })
    }

    /// The requests of the scenarios that need no database (`version`, `fibonacci`), for a
    /// server whose database is not at hand; a database scenario among them is an error.
    pub fn build_without_database(scenarios: &[Scenario]) -> Result<Pools> {
        let mut by_scenario = HashMap::new();
        for &scenario in scenarios {
            match scenario {
                Scenario::Version => {}
                Scenario::Fibonacci => {
                    by_scenario.insert(scenario, Arc::new(fibonacci_requests()?));
                }
                Scenario::Types
                | Scenario::Contact
                | Scenario::ContactsPage
                | Scenario::ContactsSearch => anyhow::bail!(
                    "the {scenario} scenario draws its requests from the database, and none was given"
                ),
            }
        }
        Ok(Pools {
            by_scenario,
            check_bodies: true,
            path_style: PathStyle::Bare,
        })
    }

    /// The same requests with only their statuses checked: for servers outside the bakeoff,
    /// whose JSON may be formatted otherwise.
    pub fn without_bodies(&self) -> Pools {
        let by_scenario = self
            .by_scenario
            .iter()
            .map(|(scenario, requests)| {
                let bare = requests
                    .iter()
                    .map(|request| PlannedRequest {
                        path: request.path.clone(),
                        expected: None,
                    })
                    .collect();
                (*scenario, Arc::new(bare))
            })
            .collect();
        Pools {
            by_scenario,
            check_bodies: false,
            path_style: self.path_style,
        }
    }

    /// The same requests and bodies with their paths written in `style`.
    pub fn in_path_style(&self, style: PathStyle) -> Result<Pools> {
        let mut by_scenario = HashMap::new();
        for (scenario, requests) in &self.by_scenario {
            let restyled = requests
                .iter()
                .map(|request| {
                    PlannedRequest::new(&style.apply(&request.path), request.expected.clone())
                })
                .collect::<Result<Vec<_>>>()?;
            by_scenario.insert(*scenario, Arc::new(restyled));
        }
        Ok(Pools {
            by_scenario,
            check_bodies: self.check_bodies,
            path_style: style,
        })
    }

    /// The requests of `scenario` for a server whose `/version` body is `version_body`.
    pub fn mix(
        &self,
        scenario: Scenario,
        version_body: &Bytes,
    ) -> Result<Arc<Vec<PlannedRequest>>> {
        if scenario == Scenario::Version {
            let expected = self.check_bodies.then(|| version_body.clone());
            let path = self.path_style.apply("/version");
            return Ok(Arc::new(vec![PlannedRequest::new(&path, expected)?]));
        }
        self.by_scenario
            .get(&scenario)
            .cloned()
            .with_context(|| format!("no requests were drawn for {}", scenario))
    }
}

/// The fibonacci scenario's one request, with the body core computes for it.
fn fibonacci_requests() -> Result<Vec<PlannedRequest>> {
    let n = FibonacciN::parse(FIBONACCI_N)
        .map_err(|error| anyhow::anyhow!("the fibonacci scenario's n: {error}"))?;
    let body = to_json(&FibonacciBody {
        result: workload::fibonacci(n),
    });
    Ok(vec![PlannedRequest::new(
        &format!("/fibonacci/{FIBONACCI_N}"),
        Some(Bytes::from(body)),
    )?])
}

/// The `/version` body of a bakeoff variant.
pub fn version_body(variant: &str) -> Bytes {
    Bytes::from(to_json(&VersionInfo::of(variant)))
}

async fn contact_pool(
    connection: &PlainConnection,
    rng: &mut SplitMix64,
) -> Result<Vec<PlannedRequest>> {
    // At most a million ids are read; a larger table is sampled from its first million.
    let ids: Vec<i32> = connection
        .client
        .query(
            "SELECT contact_id FROM contacts ORDER BY contact_id LIMIT 1000000",
            &[],
        )
        .await
        .context("reading contact ids")?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let chosen: Vec<i32> = (0..CONTACT_POOL)
        .map(|_| ids[rng.below(ids.len())])
        .collect();
    futures_util::stream::iter(chosen)
        .map(|id| async move {
            let contact_id = ContactId::parse(&id.to_string())
                .map_err(|error| anyhow::anyhow!("contact id {id}: {error}"))?;
            let contact = pg::get_contact(connection, contact_id)
                .await
                .map_err(|error| anyhow::anyhow!("reading contact {id}: {error}"))?;
            PlannedRequest::new(
                &format!("/contacts/{id}"),
                Some(Bytes::from(to_json(&contact))),
            )
        })
        .buffered(PIPELINE_DEPTH)
        .try_collect()
        .await
}

async fn page_pool(
    connection: &PlainConnection,
    rng: &mut SplitMix64,
) -> Result<Vec<PlannedRequest>> {
    let count: i64 = connection
        .client
        .query_one("SELECT count(*) FROM contacts", &[])
        .await
        .context("counting contacts")?
        .try_get(0)?;
    if count == 0 {
        return Ok(Vec::new());
    }
    let last_offset = usize::try_from((count - PAGE_SIZE).max(0)).unwrap_or(0);
    let queries: Vec<String> = (0..PAGE_POOL)
        .map(|_| format!("limit={PAGE_SIZE}&offset={}", rng.below(last_offset + 1)))
        .collect();
    pooled_pages(connection, queries).await
}

async fn search_pool(
    connection: &PlainConnection,
    rng: &mut SplitMix64,
) -> Result<Vec<PlannedRequest>> {
    // Prefixes that occur, so that searches find something; the server lower-cases them anyway.
    let prefixes: Vec<String> = connection
        .client
        .query(
            "SELECT DISTINCT lower(left(last_name, 2)) FROM contacts ORDER BY 1",
            &[],
        )
        .await
        .context("reading last-name prefixes")?
        .iter()
        .filter_map(|row| row.try_get::<_, String>(0).ok())
        .filter(|prefix| prefix.chars().count() == 2 && LastNamePrefix::parse(prefix).is_ok())
        .collect();
    if prefixes.is_empty() {
        return Ok(Vec::new());
    }
    let queries: Vec<String> = (0..SEARCH_POOL)
        .map(|_| {
            let prefix = &prefixes[rng.below(prefixes.len())];
            let encoded: String = url::form_urlencoded::byte_serialize(prefix.as_bytes()).collect();
            format!("starts={encoded}")
        })
        .collect();
    pooled_pages(connection, queries).await
}

async fn pooled_pages(
    connection: &PlainConnection,
    queries: Vec<String>,
) -> Result<Vec<PlannedRequest>> {
    futures_util::stream::iter(queries)
        .map(|query| async move {
            let request = PageRequest::from_query(Some(&query))
                .map_err(|error| anyhow::anyhow!("query {query:?}: {error}"))?;
            let page = pg::list_contacts(connection, &request)
                .await
                .map_err(|error| anyhow::anyhow!("reading page {query:?}: {error}"))?;
            PlannedRequest::new(
                &format!("/contacts?{query}"),
                Some(Bytes::from(to_json(&page))),
            )
        })
        .buffered(PIPELINE_DEPTH)
        .try_collect()
        .await
}

/// One plain connection for computing expected bodies, with its statements prepared once.
struct PlainConnection {
    client: Client,
    statements: Mutex<HashMap<&'static str, Statement>>,
}

impl PlainConnection {
    fn new(client: Client) -> PlainConnection {
        PlainConnection {
            client,
            statements: Mutex::new(HashMap::new()),
        }
    }
}

impl pg::DbConnection for PlainConnection {
    fn client(&self) -> &Client {
        &self.client
    }

    async fn statement(&self, sql: &'static str) -> Result<Statement, tokio_postgres::Error> {
        let cached = self
            .statements
            .lock()
            .ok()
            .and_then(|statements| statements.get(sql).cloned());
        if let Some(statement) = cached {
            return Ok(statement);
        }
        let statement = self.client.prepare(sql).await?;
        if let Ok(mut statements) = self.statements.lock() {
            statements.insert(sql, statement.clone());
        }
        Ok(statement)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_styles_put_the_slash_before_the_query() {
        let cases = [
            (PathStyle::Bare, "/contacts?limit=5", "/contacts?limit=5"),
            (PathStyle::TrailingSlash, "/types", "/types/"),
            (PathStyle::TrailingSlash, "/contacts/7", "/contacts/7/"),
            (
                PathStyle::TrailingSlash,
                "/contacts?limit=100&offset=3",
                "/contacts/?limit=100&offset=3",
            ),
            (PathStyle::TrailingSlash, "/version/", "/version/"),
        ];
        for (style, path, expected) in cases {
            assert_eq!(style.apply(path), expected, "{style:?} {path}");
        }
    }
}
