//! The names the results files write and the command line takes: one enum per kind of thing
//! (scenarios, variants, peers, faults, databases, poolers, workloads, cost components), each
//! value spelled once, in kebab-case, the same in `--help`, in reports and in the JSON. Renaming a
//! value breaks reading every results file that holds it: the frozen files under
//! `bench/tests/frozen/` fail first. What each name does lives with its work (`impl Scenario` in
//! `scenarios.rs`, `impl Variant` in `harness/servers.rs`, ...).

use serde::{Deserialize, Serialize};

/// A named request mix.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
#[value(rename_all = "kebab-case")]
pub enum Scenario {
    Version,
    Types,
    Contact,
    ContactsPage,
    ContactsSearch,
    Fibonacci,
}

/// How a server's paths are written: the contract's, or each with one trailing slash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PathStyle {
    #[default]
    Bare,
    TrailingSlash,
}

/// A bakeoff server variant: a workspace package whose binary has the same name, implements the
/// contract and reads the shared configuration. The one list to extend when a variant is added.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
#[value(rename_all = "kebab-case")]
pub enum Variant {
    AxumTokioPostgres,
    ActixDeadpool,
    WarpDieselAsync,
    ThreadedBlocking,
}

/// A peer: a folder of `peers/` with its own program, run as its
/// [`Runtime`](crate::harness::peers::Runtime) says.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
#[value(rename_all = "kebab-case")]
pub enum Peer {
    /// FastAPI on uvicorn workers under gunicorn, an asyncpg pool per process.
    FastapiAsyncpg,
    /// FastAPI with SQLAlchemy 2's async ORM over asyncpg.
    FastapiSqlalchemy,
    /// Flask under gunicorn sync workers, psycopg 3 with psycopg_pool.
    FlaskGunicorn,
    /// Go's net/http, a goroutine per request, pgxpool.
    GoPgx,
    /// Spring MVC 4.3 in embedded Jetty 9.4, thread-per-request, JdbcTemplate over HikariCP.
    SpringJdbc,
    /// Django REST framework on uvicorn workers under gunicorn, Django's psycopg 3 pool.
    DjangoDrf,
    /// FastAPI on uvicorn workers under gunicorn, an aiopg pool (psycopg2) per process.
    FastapiAiopg,
    /// fastapi-aiopg's app under PyPy (psycopg2cffi standing in for psycopg2).
    FastapiAiopgPypy,
}

/// What is done to the database.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// PostgreSQL stopped (fast shutdown) and started again.
    DbRestart,
    /// Every PostgreSQL process stopped (SIGSTOP), then resumed (SIGCONT).
    DbStall,
    /// The servers' connections terminated with pg_terminate_backend.
    BackendKill,
}

/// Where the database came from, as recorded in the results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatabaseKind {
    /// Started, seeded and removed by the command.
    Throwaway,
    /// Given with `DATABASE_URL`.
    External,
    /// No database: only targets were run.
    None,
}

/// PgBouncer's `pool_mode`: when a server connection goes back to the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PoolMode {
    /// When the client disconnects: a client keeps its server connection for its whole session.
    Session,
    /// After each transaction (each statement outside one): clients share server connections.
    Transaction,
}

/// What stands between the servers and PostgreSQL.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Pooler {
    /// The servers connect to PostgreSQL themselves.
    #[default]
    None,
    /// A PgBouncer the harness starts for each server, in this pool mode.
    PgBouncer(PoolMode),
}

/// A part of the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    /// The server's own crate and bakeoff-core.
    Server,
    /// HTTP: the framework, its HTTP implementation and router.
    Framework,
    /// The async runtime and I/O: tokio, mio, futures, actix's runtime, buffers, locks.
    Runtime,
    /// The database driver, pool and ORM (and libpq).
    Database,
    /// serde, serde_json, number formatting.
    Serialization,
    /// malloc and free (glibc) and Rust's allocator shims.
    Allocator,
    /// Rust's standard library (core, alloc, std).
    Std,
    /// glibc (less its allocator), the dynamic loader and other system libraries.
    System,
    /// Anything else: logging, hashing, crates not in the list.
    Other,
}

/// The four workloads of the study.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
#[value(rename_all = "kebab-case")]
pub enum Workload {
    /// CPU work inline in the handler, on a request-serving thread.
    SyncCpubound,
    /// The same CPU work moved off the request-serving threads.
    OffloadCpubound,
    /// A non-blocking wait of T.
    AsyncIobound,
    /// A thread sleep of T inside the handler.
    BlockingIobound,
}
