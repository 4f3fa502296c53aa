//! A near-contract target measured with `--lenient`: a real variant on a throwaway, seeded
//! database, behind a small proxy that deviates the way the first study's FastAPI application
//! does: every contract path answers 307 to its slash form, the slash form is served, and an
//! empty `email` list is `null`. The run must detect the path style, list the deviations, measure
//! the target with its rows marked unverified, and count the deviating bodies apart from the
//! checked ones; without `--lenient` the same target is reported, not measured.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bakeoff::results::ResultsFile;
use bakeoff::results::run::RunResults;
use bakeoff::results::vocabulary::{PathStyle, Scenario};
use bakeoff_testkit::postgres::LocalPostgres;
use bakeoff_testkit::seed::{SeedSpec, seed};
use bakeoff_testkit::server::{ServerEnvironment, ServerProcess, workspace_binary};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::support::{built_variant, run_bakeoff, run_bakeoff_on};

/// Starts the deviating proxy in front of `upstream`; it lives as long as the test process.
fn start_near_contract_proxy(upstream: SocketAddr) -> SocketAddr {
    crate::test_server::serve_http1(move |request| answer(request, upstream))
}

async fn answer(
    request: Request<Incoming>,
    upstream: SocketAddr,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let path = request.uri().path().to_string();
    let query = request
        .uri()
        .query()
        .map_or_else(String::new, |query| format!("?{query}"));
    if !path.ends_with('/') {
        // FastAPI's redirect_slashes: the route is declared with a slash.
        return Ok(Response::builder()
            .status(307)
            .header("location", format!("{path}/{query}"))
            .body(Full::new(Bytes::new()))
            .unwrap());
    }
    let upstream_path = format!("{}{query}", path.trim_end_matches('/'));
    let (status, body) =
        bakeoff::http1::get_once(upstream, &upstream_path, Duration::from_secs(10))
            .await
            .unwrap_or((502, Bytes::new()));
    // The first study's pydantic model: an empty list of emails is null.
    let body = String::from_utf8_lossy(&body).replace("\"email\":[]", "\"email\":null");
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap())
}

fn run_against(target: &str, lenient: bool) -> (tempfile::TempDir, RunResults, String) {
    let mut arguments = vec![
        "run",
        "--quick",
        "--variants",
        "none",
        "--target",
        target,
        "--scenarios",
        "types,contact",
        "--duration",
        "1s",
        "--warmup",
        "300ms",
        "--connections",
        "4",
        "--check-every",
        "1",
    ];
    if lenient {
        arguments.push("--lenient");
    }
    let (out, directory) = run_bakeoff(&arguments);
    let results = RunResults::read(&directory).unwrap();
    let report = std::fs::read_to_string(Path::new(&directory).join("report.md")).unwrap();
    (out, results, report)
}

#[test]
fn a_lenient_target_is_measured_with_its_deviations_listed() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // 200 contacts: some have no email, so `contact` answers deviate now and then.
    let postgres = runtime.block_on(async {
        let postgres = LocalPostgres::start_throwaway().await.unwrap();
        seed(
            &postgres.admin_url(),
            &SeedSpec {
                contacts: 200,
                seed: 3,
            },
            &|_| {},
        )
        .await
        .unwrap();
        postgres
    });
    let binary = workspace_binary(&built_variant(), false).unwrap();
    let variant =
        ServerProcess::spawn(ServerEnvironment::new(&postgres.app_url()).command(&binary)).unwrap();
    let proxy = start_near_contract_proxy(variant.address());
    let target = format!("near=http://{proxy},{}", postgres.admin_url());

    let (_strict_out, strict, _) = run_against(&target, false);
    let record = &strict.servers[0].record;
    assert!(
        record
            .skipped
            .as_deref()
            .unwrap_or_default()
            .contains("failed verification"),
        "{:?}",
        record.skipped
    );
    assert!(strict.servers[0].cells.is_empty());

    let (_out, results, report) = run_against(&target, true);
    let server = &results.servers[0];
    let record = &server.record;
    assert_eq!(record.skipped, None, "a lenient target is measured");
    assert!(record.verification.ran && record.verification.lenient);
    assert!(!record.verification.passed && record.is_unverified());
    assert!(
        record
            .verification
            .failures
            .iter()
            .any(|failure| failure.contains("\"email\":null")),
        "{:#?}",
        record.verification.failures
    );
    assert_eq!(record.path_style, Some(PathStyle::TrailingSlash));
    for cell in &server.cells {
        let run = cell.median().unwrap();
        // Every answer is a 200 on the slash form: none is an error, a redirect or a body error.
        assert!(run.ok > 0, "{}: nothing answered", cell.scenario);
        assert_eq!(run.error_count(), 0, "{}: {:?}", cell.scenario, run.errors);
        assert_eq!(run.ok, run.checked_bodies + run.deviating_bodies);
        match cell.scenario {
            Scenario::Types => assert_eq!(run.deviating_bodies, 0),
            Scenario::Contact => assert!(
                run.deviating_bodies > 0 && run.checked_bodies > 0,
                "contact: {} matched, {} deviated",
                run.checked_bodies,
                run.deviating_bodies
            ),
            other => panic!("{other} was not asked for"),
        }
    }
    assert!(report.contains("near (unverified)"), "{report}");
    assert!(report.contains("was measured unverified"), "{report}");

    // Its fault cells go through the same cell as its normal ones: with the run on the target's
    // own database, backend-kill reaches it, and its deviating bodies are counted apart there
    // too, not as failures.
    let target = format!("near=http://{proxy}");
    let (_out, directory) = run_bakeoff_on(
        &[
            "run",
            "--variants",
            "none",
            "--target",
            &target,
            "--lenient",
            "--scenarios",
            "contact",
            "--duration",
            "3s",
            "--rounds",
            "1",
            "--warmup",
            "300ms",
            "--connections",
            "4",
            "--check-every",
            "1",
            "--no-efficiency",
            "--fault",
            "backend-kill:at=1s,for=0s",
        ],
        // As the servers' role: backend-kill terminates that role's connections.
        Some(&postgres.app_url()),
    );
    let results = RunResults::read(&directory).unwrap();
    let server = &results.servers[0];
    assert_eq!(server.record.skipped, None);
    assert_eq!(server.fault_cells.len(), 1);
    let run = server.fault_cells[0].median().unwrap();
    assert!(
        run.deviating_bodies > 0 && run.checked_bodies > 0,
        "contact under a fault: {} matched, {} deviated",
        run.checked_bodies,
        run.deviating_bodies
    );
    assert_eq!(run.errors.get("body"), None, "{:?}", run.errors);
    let fault = server.fault_cells[0].fault.as_ref().unwrap();
    assert_eq!(fault.figures.failed_by_kind.get("body"), None);
}
