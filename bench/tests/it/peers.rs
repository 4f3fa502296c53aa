//! The peers against the contract, as CI runs them: each started by the harness on a
//! throwaway, seeded database and checked by the same conformance suite as the variants, byte for
//! byte and with statements counted, under both `DB_RECYCLE` policies; and each through the
//! Rust servers' own recovery tests (`bakeoff-suite`): a PostgreSQL restart and terminated
//! backends under both policies, with no failed request after them. A peer that drifts from the
//! contract fails here.

use bakeoff::results::vocabulary::Peer;
use bakeoff_suite::{DbRecycle, ServerProgram};

use crate::support::bakeoff;

/// The peer as the suite starts it: its program as its runtime runs it (the environment's
/// Python with its `serve.py`, the Go program, `java -jar`), prepared first when missing.
fn peer_program(peer: Peer) -> ServerProgram {
    let program = peer.program().unwrap();
    ServerProgram::new(program.program, program.arguments, &peer.name())
}

fn verify_peer(peer: &str) {
    verify_peer_recycling(peer, DbRecycle::Fast);
}

fn verify_peer_recycling(peer: &str, recycle: DbRecycle) {
    let output = bakeoff()
        .args(["verify", "--peer", peer, "--recycle", recycle.as_str()])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{peer} does not conform:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains(", 0 failed"), "{report}");
}

#[test]
fn fastapi_asyncpg_conforms_to_the_contract() {
    verify_peer("fastapi-asyncpg");
}

#[test]
fn fastapi_sqlalchemy_conforms_to_the_contract() {
    verify_peer("fastapi-sqlalchemy");
}

#[test]
fn flask_gunicorn_conforms_to_the_contract() {
    verify_peer("flask-gunicorn");
}

#[test]
fn go_pgx_conforms_to_the_contract() {
    verify_peer("go-pgx");
}

#[test]
fn spring_jdbc_conforms_to_the_contract() {
    verify_peer("spring-jdbc");
}

#[test]
fn django_drf_conforms_to_the_contract() {
    verify_peer("django-drf");
}

#[test]
fn fastapi_aiopg_conforms_to_the_contract() {
    verify_peer("fastapi-aiopg");
}

#[test]
fn fastapi_aiopg_pypy_conforms_to_the_contract() {
    verify_peer("fastapi-aiopg-pypy");
}

#[test]
fn fastapi_asyncpg_conforms_with_verified_connections() {
    verify_peer_recycling("fastapi-asyncpg", DbRecycle::Verified);
}

#[test]
fn fastapi_sqlalchemy_conforms_with_verified_connections() {
    verify_peer_recycling("fastapi-sqlalchemy", DbRecycle::Verified);
}

#[test]
fn flask_gunicorn_conforms_with_verified_connections() {
    verify_peer_recycling("flask-gunicorn", DbRecycle::Verified);
}

#[test]
fn go_pgx_conforms_with_verified_connections() {
    verify_peer_recycling("go-pgx", DbRecycle::Verified);
}

#[test]
fn spring_jdbc_conforms_with_verified_connections() {
    verify_peer_recycling("spring-jdbc", DbRecycle::Verified);
}

#[test]
fn django_drf_conforms_with_verified_connections() {
    verify_peer_recycling("django-drf", DbRecycle::Verified);
}

#[test]
fn fastapi_aiopg_conforms_with_verified_connections() {
    verify_peer_recycling("fastapi-aiopg", DbRecycle::Verified);
}

#[test]
fn fastapi_aiopg_pypy_conforms_with_verified_connections() {
    verify_peer_recycling("fastapi-aiopg-pypy", DbRecycle::Verified);
}

/// The suite's two recovery tests for one peer under one policy.
macro_rules! recovery_tests {
    ($($name:ident: $peer:expr, $recycle:expr;)*) => {
        $(
            mod $name {
                use super::*;

                #[test]
                fn recovers_when_postgres_restarts_or_starts_late() {
                    bakeoff_suite::recovers_when_postgres_restarts_or_starts_late(
                        peer_program($peer),
                        $recycle,
                    );
                }

                #[test]
                fn serves_on_when_its_backends_are_terminated() {
                    bakeoff_suite::serves_on_when_its_backends_are_terminated(
                        peer_program($peer),
                        $recycle,
                    );
                }
            }
        )*
    };
}

recovery_tests! {
    fastapi_asyncpg_fast: Peer::FastapiAsyncpg, DbRecycle::Fast;
    fastapi_asyncpg_verified: Peer::FastapiAsyncpg, DbRecycle::Verified;
    fastapi_sqlalchemy_fast: Peer::FastapiSqlalchemy, DbRecycle::Fast;
    fastapi_sqlalchemy_verified: Peer::FastapiSqlalchemy, DbRecycle::Verified;
    flask_gunicorn_fast: Peer::FlaskGunicorn, DbRecycle::Fast;
    flask_gunicorn_verified: Peer::FlaskGunicorn, DbRecycle::Verified;
    go_pgx_fast: Peer::GoPgx, DbRecycle::Fast;
    go_pgx_verified: Peer::GoPgx, DbRecycle::Verified;
    spring_jdbc_fast: Peer::SpringJdbc, DbRecycle::Fast;
    spring_jdbc_verified: Peer::SpringJdbc, DbRecycle::Verified;
    django_drf_fast: Peer::DjangoDrf, DbRecycle::Fast;
    django_drf_verified: Peer::DjangoDrf, DbRecycle::Verified;
    fastapi_aiopg_fast: Peer::FastapiAiopg, DbRecycle::Fast;
    fastapi_aiopg_verified: Peer::FastapiAiopg, DbRecycle::Verified;
    fastapi_aiopg_pypy_fast: Peer::FastapiAiopgPypy, DbRecycle::Fast;
    fastapi_aiopg_pypy_verified: Peer::FastapiAiopgPypy, DbRecycle::Verified;
}

#[test]
fn the_peers_serve_the_document_core_generates() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../peers/common/openapi.json");
    let copy = std::fs::read_to_string(path).unwrap();
    assert!(
        copy == bakeoff_core::openapi::OPENAPI_JSON.as_str(),
        "{path} is not core's generated document: write it again with \
         `cargo run -p bakeoff -- openapi > peers/common/openapi.json`"
    );
}
