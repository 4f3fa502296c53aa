//! The tests every server crate runs over its own binary, through [`conformance_tests!`]:
//! the contract, recovery from a PostgreSQL restart (and a late start) and from terminated
//! backends under both `DB_RECYCLE` policies, service from the first request after a start,
//! configuration errors, graceful shutdown, and serving as two processes (`PROCESSES=2`). Each starts its own throwaway PostgreSQL and the real binary; nothing is
//! mocked. They panic with a full report on failure, as tests do.

#![allow(clippy::unwrap_used)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use bakeoff_core::DbRecycle;
use bakeoff_core::config::{ENV_VARS, SHUTDOWN_DEADLINE};
use futures_util::future::join_all;
use nix::sys::signal::Signal;

use bakeoff_testkit::conformance::{self, StatementCounts, Target};
use bakeoff_testkit::postgres::{APP_ROLE, LocalPostgres, free_port};
use bakeoff_testkit::seed::{SeedSpec, seed};
use bakeoff_testkit::server::{ServerEnvironment, ServerProcess};

/// The configuration every test server gets.
const TEST_WORKERS: usize = 2;
const TEST_POOL_SIZE: usize = 4;
const TEST_WAIT_TIMEOUT_MS: u64 = 1_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn variant_of(binary: &str) -> String {
    Path::new(binary)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The test configuration: what every test server is started with.
fn test_environment(database_url: &str) -> ServerEnvironment {
    let mut environment = ServerEnvironment::new(database_url);
    environment.workers = Some(TEST_WORKERS);
    environment.db_pool_size = Some(TEST_POOL_SIZE);
    environment.db_wait_timeout_ms = Some(TEST_WAIT_TIMEOUT_MS);
    environment
}

/// The server command with the test configuration and nothing inherited that could change it.
pub fn server_command(binary: &str, database_url: &str) -> Command {
    test_environment(database_url).command(Path::new(binary))
}

/// What a test starts: a server binary, or a program with its arguments (a peer: an interpreter
/// with its script, `java -jar`, a Go program), which reads the same environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerProgram {
    program: PathBuf,
    arguments: Vec<OsString>,
    /// What its `/version` and `/test/resmon` answer as the variant.
    name: String,
}

impl ServerProgram {
    /// A server binary, named by its file name.
    pub fn binary(path: &str) -> ServerProgram {
        ServerProgram {
            program: PathBuf::from(path),
            arguments: Vec::new(),
            name: variant_of(path),
        }
    }

    /// `interpreter script`, answering as `name`.
    pub fn script(interpreter: PathBuf, script: PathBuf, name: &str) -> ServerProgram {
        ServerProgram::new(interpreter, vec![script.into_os_string()], name)
    }

    /// `program arguments...`, answering as `name`.
    pub fn new(program: PathBuf, arguments: Vec<OsString>, name: &str) -> ServerProgram {
        ServerProgram {
            program,
            arguments,
            name: name.to_string(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The command under `environment`.
    fn command(&self, environment: &ServerEnvironment) -> Command {
        let mut command = environment.command(&self.program);
        command.args(&self.arguments);
        command
    }
}

impl From<&str> for ServerProgram {
    fn from(binary: &str) -> ServerProgram {
        ServerProgram::binary(binary)
    }
}

/// The server command with the test configuration under one `DB_RECYCLE` policy.
fn server_command_recycling(
    server: &ServerProgram,
    database_url: &str,
    recycle: DbRecycle,
) -> Command {
    let mut environment = test_environment(database_url);
    environment.db_recycle = Some(recycle);
    server.command(&environment)
}

/// The policy as `DB_RECYCLE` and `/test/resmon` spell it.
fn recycle_value(recycle: DbRecycle) -> &'static str {
    match recycle {
        DbRecycle::Fast => "fast",
        DbRecycle::Verified => "verified",
    }
}

async fn seeded_postgres(contacts: u32, seed_value: u64) -> LocalPostgres {
    let postgres = LocalPostgres::start_throwaway().await.unwrap();
    seed(
        &postgres.admin_url(),
        &SeedSpec {
            contacts,
            seed: seed_value,
        },
        &|_| {},
    )
    .await
    .unwrap();
    postgres
}

/// The whole contract against the real binary over a freshly seeded database.
pub fn conforms_to_the_contract(binary: &str) {
    runtime().block_on(async {
        let postgres = seeded_postgres(1_000, 7).await;
        let server = ServerProcess::spawn(server_command(binary, &postgres.app_url())).unwrap();
        let target = Target {
            base_url: server.base_url(),
            expectations_url: postgres.admin_url(),
            statement_counts: Some(StatementCounts {
                admin_url: postgres.admin_url(),
                role: APP_ROLE.to_string(),
            }),
            variant: Some(variant_of(binary)),
            workers: Some(TEST_WORKERS),
            exact_bytes: true,
        };
        let report = conformance::verify(&target).await.unwrap();
        assert!(
            report.passed(),
            "{} does not conform:\n{report}",
            variant_of(binary)
        );
        assert!(report.checks > 80, "too few checks ran: {report}");
    });
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, Option<String>, String) {
    match client.get(url).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|value| value.to_str().ok())
                .map(str::to_string);
            (
                status,
                retry_after,
                response.text().await.unwrap_or_default(),
            )
        }
        Err(error) => (0, None, error.to_string()),
    }
}

/// While PostgreSQL is down: 503 with Retry-After and the contract body, quickly, for every
/// database path; `/version` still 200.
async fn expect_unavailable(client: &reqwest::Client, base_url: &str) {
    for path in ["/types", "/contacts/1", "/contacts?limit=5"] {
        let started = Instant::now();
        let (status, retry_after, body) = get(client, &format!("{base_url}{path}")).await;
        let elapsed = started.elapsed();
        assert_eq!(status, 503, "{path} while the database is down: {body}");
        assert!(retry_after.is_some(), "{path}: 503 without Retry-After");
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["status"], 503, "{body}");
        assert!(parsed["errors"]["request"].is_string(), "{body}");
        assert!(
            elapsed < Duration::from_millis(TEST_WAIT_TIMEOUT_MS) + Duration::from_millis(1_500),
            "{path}: the 503 took {elapsed:?}"
        );
    }
    let (status, _, body) = get(client, &format!("{base_url}/version")).await;
    assert_eq!(status, 200, "/version needs no database: {body}");
}

/// Polls `/types` until 200; returns how long it took.
async fn wait_for_service(client: &reqwest::Client, base_url: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (status, _, body) = get(client, &format!("{base_url}/types")).await;
        if status == 200 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "no 200 within {limit:?} after PostgreSQL came back; last: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// After recovery, no request fails on a stale connection.
async fn expect_steady_service(client: &reqwest::Client, base_url: &str) {
    for round in 0..15 {
        for path in ["/types", "/contacts/1", "/contacts?limit=5"] {
            let (status, _, body) = get(client, &format!("{base_url}{path}")).await;
            assert_eq!(status, 200, "round {round}, {path} after recovery: {body}");
        }
    }
}

/// `/test/resmon` reports the policy the server was given.
async fn expect_recycle_policy(client: &reqwest::Client, base_url: &str, recycle: DbRecycle) {
    let (status, _, body) = get(client, &format!("{base_url}/test/resmon")).await;
    assert_eq!(status, 200, "/test/resmon: {body}");
    let snapshot: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        snapshot["db_recycle"],
        recycle_value(recycle),
        "/test/resmon with DB_RECYCLE={}: {body}",
        recycle_value(recycle)
    );
}

/// PostgreSQL restarted under a running server: 503 while down, 200 within 2 s after it is back,
/// and then no request fails on a connection the restart closed. Then a server started while
/// PostgreSQL is down: it listens, answers 503, and serves once the database comes up.
pub fn recovers_when_postgres_restarts_or_starts_late(
    server: impl Into<ServerProgram>,
    recycle: DbRecycle,
) {
    let server = server.into();
    runtime().block_on(async {
        let mut postgres = seeded_postgres(50, 3).await;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let app_url = postgres.app_url();
        let command = || server_command_recycling(&server, &app_url, recycle);

        let running = ServerProcess::spawn(command()).unwrap();
        let base_url = running.base_url();
        wait_for_service(&client, &base_url, Duration::from_secs(5)).await;
        expect_recycle_policy(&client, &base_url, recycle).await;
        open_connections(&client, &base_url).await;
        expect_steady_service(&client, &base_url).await;

        postgres.stop().unwrap();
        expect_unavailable(&client, &base_url).await;
        postgres.start().unwrap();
        let recovery = wait_for_service(&client, &base_url, Duration::from_secs(10)).await;
        assert!(
            recovery <= Duration::from_secs(2),
            "service came back {recovery:?} after PostgreSQL did"
        );
        expect_steady_service(&client, &base_url).await;
        drop(running);

        postgres.stop().unwrap();
        let late = ServerProcess::spawn(command()).unwrap();
        let base_url = late.base_url();
        expect_unavailable(&client, &base_url).await;
        postgres.start().unwrap();
        wait_for_service(&client, &base_url, Duration::from_secs(5)).await;
        expect_steady_service(&client, &base_url).await;
    });
}

/// Has the server open as many connections as its pool allows: concurrent requests, since a
/// pool reuses one idle connection for requests that come one at a time.
async fn open_connections(client: &reqwest::Client, base_url: &str) {
    let url = format!("{base_url}/contacts?limit=5");
    let answers = join_all((0..12).map(|_| get(client, &url))).await;
    for (status, _, body) in answers {
        assert_eq!(status, 200, "concurrent /contacts?limit=5: {body}");
    }
}

/// Terminates every backend of the server's role, as an administrator would with
/// `pg_terminate_backend`; returns their process ids.
async fn terminate_server_backends(admin: &tokio_postgres::Client) -> Vec<i32> {
    let rows = admin
        .query(
            "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
            &[&APP_ROLE],
        )
        .await
        .unwrap();
    rows.iter()
        .filter(|row| row.get::<_, bool>(1))
        .map(|row| row.get(0))
        .collect()
}

/// Waits until none of `pids` is a backend any more.
async fn wait_for_backends_to_exit(admin: &tokio_postgres::Client, pids: &[i32]) {
    let started = Instant::now();
    loop {
        let row = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)",
                &[&pids],
            )
            .await
            .unwrap();
        if row.get::<_, i64>(0) == 0 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "terminated backends {pids:?} still there after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every backend of the running server terminated by an administrator while the server is idle,
/// first with the next requests right behind the termination, then once the backends are gone:
/// every one of the 30 requests that follow is a 200, the server having dropped the closed
/// connections and retried on others.
pub fn serves_on_when_its_backends_are_terminated(
    server: impl Into<ServerProgram>,
    recycle: DbRecycle,
) {
    let server = server.into();
    runtime().block_on(async {
        let postgres = seeded_postgres(50, 5).await;
        let admin = bakeoff_testkit::connect(&postgres.admin_url())
            .await
            .unwrap();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let running = ServerProcess::spawn(server_command_recycling(
            &server,
            &postgres.app_url(),
            recycle,
        ))
        .unwrap();
        let base_url = running.base_url();
        wait_for_service(&client, &base_url, Duration::from_secs(5)).await;
        expect_recycle_policy(&client, &base_url, recycle).await;

        for wait_for_exit in [false, true] {
            open_connections(&client, &base_url).await;
            let terminated = terminate_server_backends(&admin).await;
            assert!(
                !terminated.is_empty(),
                "the server held no connection to terminate"
            );
            if wait_for_exit {
                wait_for_backends_to_exit(&admin, &terminated).await;
            }
            for round in 0..10 {
                for path in ["/types", "/contacts/1", "/contacts?limit=5"] {
                    let (status, _, body) = get(&client, &format!("{base_url}{path}")).await;
                    assert_eq!(
                        status,
                        200,
                        "DB_RECYCLE={}, request {} after terminating backends {terminated:?} \
                         ({}): {path}: {body}",
                        recycle_value(recycle),
                        round * 3 + 1,
                        if wait_for_exit {
                            "once they had exited"
                        } else {
                            "at once"
                        }
                    );
                }
            }
        }
    });
}

/// Twenty fresh starts with the database up: the first request of each, sent as soon as the
/// server says it is listening, is a 200, whatever the server still has to connect. The starts
/// alternate between the two `DB_RECYCLE` policies.
pub fn answers_the_first_request_after_every_start(binary: &str) {
    runtime().block_on(async {
        let postgres = seeded_postgres(20, 11).await;
        for start in 0..20 {
            let recycle = if start % 2 == 0 {
                DbRecycle::Fast
            } else {
                DbRecycle::Verified
            };
            let command = server_command_recycling(&binary.into(), &postgres.app_url(), recycle);
            let server = tokio::task::spawn_blocking(move || ServerProcess::spawn(command))
                .await
                .unwrap()
                .unwrap();
            // A new client each time: no connection kept from the previous server.
            let client = reqwest::Client::new();
            let (status, _, body) = get(&client, &format!("{}/types", server.base_url())).await;
            assert_eq!(
                status,
                200,
                "start {start} (DB_RECYCLE={}): the first /types: {body}",
                recycle_value(recycle)
            );
            drop(server);
        }
    });
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary to completion with `variables` as its whole configuration; kills it after
/// 10 s (a server that ignored a bad configuration would run forever).
fn run_to_exit(binary: &str, arguments: &[&str], variables: &[(&str, &str)]) -> Outcome {
    let mut command = Command::new(binary);
    for variable in ENV_VARS {
        command.env_remove(variable);
    }
    command.args(arguments).envs(variables.iter().copied());
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("{binary} {arguments:?} with {variables:?} did not exit within 10 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().unwrap();
    Outcome {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A missing or malformed variable is one line naming it on stderr and exit code 2; `--help`
/// lists every variable; `--version` prints the version.
pub fn rejects_bad_configuration_with_exit_code_2(binary: &str) {
    let url = "postgres://bakeoff_app@127.0.0.1:1/bakeoff";
    let cases: [(&str, Vec<(&str, &str)>); 9] = [
        ("DATABASE_URL", vec![]),
        (
            "DATABASE_URL",
            vec![("DATABASE_URL", "mysql://somewhere/db")],
        ),
        ("DATABASE_URL", vec![("DATABASE_URL", "not a url")]),
        ("BIND", vec![("DATABASE_URL", url), ("BIND", "nowhere")]),
        ("WORKERS", vec![("DATABASE_URL", url), ("WORKERS", "0")]),
        (
            "DB_POOL_SIZE",
            vec![("DATABASE_URL", url), ("DB_POOL_SIZE", "many")],
        ),
        (
            "DB_WAIT_TIMEOUT_MS",
            vec![("DATABASE_URL", url), ("DB_WAIT_TIMEOUT_MS", "soon")],
        ),
        (
            "DB_STATEMENTS",
            vec![("DATABASE_URL", url), ("DB_STATEMENTS", "sometimes")],
        ),
        ("PROCESSES", vec![("DATABASE_URL", url), ("PROCESSES", "0")]),
    ];
    for (variable, variables) in cases {
        let outcome = run_to_exit(binary, &[], &variables);
        assert_eq!(
            outcome.code,
            Some(2),
            "{variables:?}: exit code; stderr: {}",
            outcome.stderr
        );
        let lines: Vec<&str> = outcome
            .stderr
            .lines()
            .filter(|line| !line.trim().is_empty())
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "{variables:?}: expected one line on stderr, got {:?}",
            outcome.stderr
        );
        assert!(
            lines[0].contains(variable),
            "{variables:?}: {:?} does not name {variable}",
            lines[0]
        );
        assert!(
            outcome.stdout.is_empty(),
            "{variables:?}: printed {:?} on stdout",
            outcome.stdout
        );
    }

    let help = run_to_exit(binary, &["--help"], &[]);
    assert_eq!(help.code, Some(0));
    for variable in ENV_VARS {
        assert!(
            help.stdout.contains(variable),
            "--help does not mention {variable}:\n{}",
            help.stdout
        );
    }
    let version = run_to_exit(binary, &["--version"], &[]);
    assert_eq!(version.code, Some(0));
    assert_eq!(
        version.stdout.trim(),
        format!("{} {}", variant_of(binary), bakeoff_core::VERSION)
    );
    let unknown = run_to_exit(binary, &["--frobnicate"], &[("DATABASE_URL", url)]);
    assert_eq!(unknown.code, Some(2), "an unknown argument must be refused");
}

/// SIGTERM and SIGINT: the request in flight completes, then the process exits 0 well within the
/// deadline, and the port is closed.
pub fn finishes_in_flight_requests_on_sigterm_and_sigint(binary: &str) {
    runtime().block_on(async {
        // No database is needed: the wait endpoint does not touch it, and an unreachable database
        // is not fatal.
        let database_url = format!(
            "postgres://{APP_ROLE}@127.0.0.1:{}/bakeoff",
            free_port().unwrap()
        );
        for signal in [Signal::SIGTERM, Signal::SIGINT] {
            let mut server = ServerProcess::spawn(server_command(binary, &database_url)).unwrap();
            let url = format!("{}/test/async-iobound/1500", server.base_url());
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            let in_flight = tokio::spawn(async move { get(&client, &url).await });
            tokio::time::sleep(Duration::from_millis(400)).await;

            let signalled = Instant::now();
            server.signal(signal).unwrap();
            let (status, _, body) = in_flight.await.unwrap();
            assert_eq!(
                status, 200,
                "{signal}: the in-flight request was cut: {body}"
            );
            assert!(body.contains("Waited 1500 ms"), "{signal}: {body}");

            let exit = tokio::task::spawn_blocking(move || {
                let report =
                    server.wait_for_exit(signalled, SHUTDOWN_DEADLINE + Duration::from_secs(5));
                (report, server.address())
            });
            let (report, address) = exit.await.unwrap();
            let report = report.unwrap();
            assert!(report.is_clean(), "{signal}: exited {report:?}");
            assert!(
                report.elapsed < SHUTDOWN_DEADLINE,
                "{signal}: took {:?} to exit after the last request finished",
                report.elapsed
            );
            assert!(
                std::net::TcpStream::connect(address).is_err(),
                "{signal}: port still open after exit"
            );
        }
    });
}

/// The processes `pid` started (from its main thread, where the supervisor starts them).
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|child| child.parse().ok())
        .collect()
}

/// `PROCESSES=2`: two copies share the port (both answer, each reports `processes` 2 and its
/// own pid), each holds its own pool at PostgreSQL; SIGTERM drains both and the group exits 0
/// with a request in flight completed. A copy killed while serving leaves the other serving and
/// makes the group's exit code `EXIT_PROCESS_DIED`.
pub fn serves_as_two_processes_and_reports_one_dying(binary: &str) {
    runtime().block_on(async {
        let postgres = seeded_postgres(100, 7).await;
        let mut environment = test_environment(&postgres.app_url());
        environment.processes = Some(2);
        let server = ServerProcess::spawn(environment.command(Path::new(binary))).unwrap();
        let children = children_of(server.pid());
        assert_eq!(
            children.len(),
            2,
            "children of the supervisor: {children:?}"
        );

        // New connections are spread over both listeners by the kernel.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let mut answered_by = std::collections::BTreeSet::new();
        for _ in 0..40 {
            let (status, _, body) =
                get(&client, &format!("{}/test/resmon", server.base_url())).await;
            assert_eq!(status, 200, "{body}");
            let snapshot: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(snapshot["processes"], 2, "{body}");
            answered_by.insert(snapshot["pid"].as_u64().unwrap() as u32);
            let (status, _, body) = get(&client, &format!("{}/types", server.base_url())).await;
            assert_eq!(status, 200, "{body}");
        }
        let expected: std::collections::BTreeSet<u32> = children.iter().copied().collect();
        assert_eq!(
            answered_by, expected,
            "the pids that answered are the two children"
        );

        // Each copy has its own pool: more connections at PostgreSQL than one pool holds.
        let admin = bakeoff_testkit::connect(&postgres.admin_url())
            .await
            .unwrap();
        let connections: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = $1",
                &[&APP_ROLE],
            )
            .await
            .unwrap()
            .get(0);
        assert!(
            connections >= 2,
            "{connections} connections for two processes"
        );

        // SIGTERM drains both: a request in flight completes, the group exits 0, no copy is left.
        let url = format!("{}/test/async-iobound/1000", server.base_url());
        let waiting = client.clone();
        let in_flight = tokio::spawn(async move { get(&waiting, &url).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let signalled = Instant::now();
        server.signal(Signal::SIGTERM).unwrap();
        let (status, _, body) = in_flight.await.unwrap();
        assert_eq!(status, 200, "the in-flight request was cut: {body}");
        let mut server = server;
        let report = tokio::task::spawn_blocking(move || {
            server.wait_for_exit(signalled, SHUTDOWN_DEADLINE + Duration::from_secs(5))
        })
        .await
        .unwrap()
        .unwrap();
        assert!(report.is_clean(), "the group exited {report:?}");
        for child in &children {
            assert!(
                !Path::new(&format!("/proc/{child}")).exists(),
                "process {child} outlived its supervisor"
            );
        }

        // A copy that dies while serving is not replaced: the other serves on, and the group's
        // exit code says that one died.
        let server = ServerProcess::spawn(environment.command(Path::new(binary))).unwrap();
        let children = children_of(server.pid());
        assert_eq!(children.len(), 2, "{children:?}");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(children[0] as i32),
            Signal::SIGKILL,
        )
        .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            children_of(server.pid()),
            vec![children[1]],
            "not restarted"
        );
        for _ in 0..10 {
            let (status, _, body) = get(&client, &format!("{}/types", server.base_url())).await;
            assert_eq!(status, 200, "the surviving process: {body}");
        }
        let report = tokio::task::spawn_blocking(move || {
            server.terminate(SHUTDOWN_DEADLINE + Duration::from_secs(5))
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(
            report.code,
            Some(bakeoff_core::process_group::EXIT_PROCESS_DIED),
            "{report:?}"
        );
    });
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
            $crate::conforms_to_the_contract($binary);
        }

        #[test]
        fn recovers_when_postgres_restarts_or_starts_late_with_fast_recycling() {
            $crate::recovers_when_postgres_restarts_or_starts_late(
                $binary,
                $crate::DbRecycle::Fast,
            );
        }

        #[test]
        fn recovers_when_postgres_restarts_or_starts_late_with_verified_recycling() {
            $crate::recovers_when_postgres_restarts_or_starts_late(
                $binary,
                $crate::DbRecycle::Verified,
            );
        }

        #[test]
        fn serves_on_when_its_backends_are_terminated_with_fast_recycling() {
            $crate::serves_on_when_its_backends_are_terminated($binary, $crate::DbRecycle::Fast);
        }

        #[test]
        fn serves_on_when_its_backends_are_terminated_with_verified_recycling() {
            $crate::serves_on_when_its_backends_are_terminated(
                $binary,
                $crate::DbRecycle::Verified,
            );
        }

        #[test]
        fn answers_the_first_request_after_every_start() {
            $crate::answers_the_first_request_after_every_start($binary);
        }

        #[test]
        fn rejects_bad_configuration_with_exit_code_2() {
            $crate::rejects_bad_configuration_with_exit_code_2($binary);
        }

        #[test]
        fn finishes_in_flight_requests_on_sigterm_and_sigint() {
            $crate::finishes_in_flight_requests_on_sigterm_and_sigint($binary);
        }

        #[test]
        fn serves_as_two_processes_and_reports_one_dying() {
            $crate::serves_as_two_processes_and_reports_one_dying($binary);
        }
    };
}
