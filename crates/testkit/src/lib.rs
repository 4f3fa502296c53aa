//! What the tests and the benchmark share: a throwaway local PostgreSQL ([`postgres`]), the
//! deterministic seeder ([`seed`]), running server binaries ([`server`]), and the conformance
//! suite every server passes ([`conformance`] for the checks, [`suite`] and
//! [`conformance_tests!`] for the tests each server crate runs over its own binary).

pub mod conformance;
pub mod openapi;
pub mod postgres;
pub mod seed;
pub mod server;
pub mod suite;

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

/// Generates the shared tests for one server binary. A server crate's `tests/it/main.rs` is:
///
/// ```ignore
/// bakeoff_testkit::conformance_tests!(env!("CARGO_BIN_EXE_axum-tokio-postgres"));
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($binary:expr) => {
        #[test]
        fn conforms_to_the_contract() {
            $crate::suite::conforms_to_the_contract($binary);
        }

        #[test]
        fn recovers_when_postgres_restarts_or_starts_late_with_fast_recycling() {
            $crate::suite::recovers_when_postgres_restarts_or_starts_late(
                $binary,
                $crate::suite::DbRecycle::Fast,
            );
        }

        #[test]
        fn recovers_when_postgres_restarts_or_starts_late_with_verified_recycling() {
            $crate::suite::recovers_when_postgres_restarts_or_starts_late(
                $binary,
                $crate::suite::DbRecycle::Verified,
            );
        }

        #[test]
        fn serves_on_when_its_backends_are_terminated_with_fast_recycling() {
            $crate::suite::serves_on_when_its_backends_are_terminated(
                $binary,
                $crate::suite::DbRecycle::Fast,
            );
        }

        #[test]
        fn serves_on_when_its_backends_are_terminated_with_verified_recycling() {
            $crate::suite::serves_on_when_its_backends_are_terminated(
                $binary,
                $crate::suite::DbRecycle::Verified,
            );
        }

        #[test]
        fn answers_the_first_request_after_every_start() {
            $crate::suite::answers_the_first_request_after_every_start($binary);
        }

        #[test]
        fn rejects_bad_configuration_with_exit_code_2() {
            $crate::suite::rejects_bad_configuration_with_exit_code_2($binary);
        }

        #[test]
        fn finishes_in_flight_requests_on_sigterm_and_sigint() {
            $crate::suite::finishes_in_flight_requests_on_sigterm_and_sigint($binary);
        }
    };
}
