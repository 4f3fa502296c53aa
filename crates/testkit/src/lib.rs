//! What the tests and the benchmark share: a throwaway local PostgreSQL ([`postgres`]), the
//! deterministic seeder ([`seed`]), running server binaries and their environment ([`server`]),
//! and the conformance checks every server passes ([`conformance`], [`openapi`]). The tests each
//! server crate runs over its own binary are in `bakeoff-suite`, so that the `bakeoff` tool,
//! which depends on this crate, carries no test code.

pub mod conformance;
pub mod openapi;
pub mod postgres;
pub mod seed;
pub mod server;

use anyhow::{Context, Result};

/// Connects to PostgreSQL without TLS (every database here is local) and drives the connection
/// on a background task.
pub async fn connect(database_url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to {}", redact(database_url)))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "database connection ended");
        }
    });
    Ok(client)
}

/// A database URL with any password replaced, for messages.
pub fn redact(database_url: &str) -> String {
    match url::Url::parse(database_url) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => database_url.to_string(),
    }
}
