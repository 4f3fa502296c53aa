//! The Python peers against the contract, as CI runs them: each started by the harness on a
//! throwaway, seeded database and checked by the same conformance suite as the variants, byte for
//! byte and with statements counted. A peer that drifts from the contract fails here.

use crate::support::bakeoff;

fn verify_peer(peer: &str) {
    let output = bakeoff().args(["verify", "--peer", peer]).output().unwrap();
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
fn the_peers_serve_the_document_core_generates() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../peers/common/openapi.json");
    let copy = std::fs::read_to_string(path).unwrap();
    assert!(
        copy == bakeoff_core::openapi::OPENAPI_JSON.as_str(),
        "{path} is not core's generated document: write it again with \
         `cargo run -p bakeoff -- openapi > peers/common/openapi.json`"
    );
}
