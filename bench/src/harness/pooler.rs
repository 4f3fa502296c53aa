//! A pooler between the servers and PostgreSQL, as a dimension of a run (`--pooler
//! none,pgbouncer,pgbouncer:transaction`): [`Pooler`], the PgBouncer process the harness starts
//! for one server in one configuration ([`PgBouncer`], stopped and removed on drop), its admin
//! console ([`PoolerWatch`]: clients and server connections from `SHOW CLIENTS` / `SHOW POOLS`),
//! and which servers can run behind it in transaction mode ([`transaction_mode`]).
//!
//! PgBouncer refuses to run as root; it runs as the `postgres` account then, as the throwaway
//! PostgreSQL does. Authentication is `trust` with a userlist naming the roles: the throwaway
//! cluster trusts loopback connections too, so the pooler adds no password the servers lack.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bakeoff_testkit::postgres::{ADMIN_ROLE, free_port, unprivileged_command};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::servers::ServerSpec;
use crate::results::vocabulary::{Peer, PoolMode, Pooler, Variant};

impl PoolMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
        }
    }
}

impl Pooler {
    /// Every pooler and mode, in the order `--pooler`'s help lists them.
    pub const ALL: [Pooler; 3] = [
        Pooler::None,
        Pooler::PgBouncer(PoolMode::Session),
        Pooler::PgBouncer(PoolMode::Transaction),
    ];

    /// As `--pooler` takes it: `none`, `pgbouncer:session`, `pgbouncer:transaction`.
    pub fn name(self) -> String {
        match self {
            Pooler::None => "none".to_string(),
            Pooler::PgBouncer(mode) => format!("pgbouncer:{}", mode.as_str()),
        }
    }

    /// A name of [`Pooler::ALL`], or `pgbouncer` alone for its default mode (session).
    pub fn parse(text: &str) -> Result<Pooler, String> {
        let wanted = text.trim().to_ascii_lowercase();
        if wanted == "pgbouncer" {
            return Ok(Pooler::PgBouncer(PoolMode::Session));
        }
        Pooler::ALL
            .into_iter()
            .find(|pooler| pooler.name() == wanted)
            .ok_or_else(|| format!("{text:?} is not a pooler: {}", Pooler::names()))
    }

    /// `--pooler`'s help.
    pub fn help() -> String {
        format!(
            "What stands between the servers and PostgreSQL, comma-separated for several: {} \
             (default none; pgbouncer alone is session mode). PgBouncer is started per server by \
             the run (`apt-get install pgbouncer`)",
            Pooler::names()
        )
    }

    fn names() -> String {
        Pooler::ALL.map(Pooler::name).join(", ")
    }
}

impl fmt::Display for Pooler {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pooler::None => formatter.write_str("no pooler"),
            Pooler::PgBouncer(mode) => write!(formatter, "pgbouncer {}", mode.as_str()),
        }
    }
}

/// Whether a server can run behind PgBouncer 1.18 in transaction mode: `Ok` with the setting
/// that makes it run its statements unprepared (recorded in the results; for a variant it is
/// `DB_STATEMENTS=unprepared`) or `Ok(None)` when it needs none, `Err` with the reason it is not
/// applicable.
///
/// PgBouncer learned protocol-level prepared statements in transaction mode in 1.21; 1.18
/// (Debian 12) hands a client a different server connection after every transaction, where a
/// named statement prepared on another one does not exist. An unnamed statement works only
/// when its Parse, Bind and Execute go out before one Sync.
pub fn transaction_mode(server: &ServerSpec) -> Result<Option<&'static str>, &'static str> {
    match server {
        ServerSpec::Variant(Variant::AxumTokioPostgres) => Err(
            "prepares every statement once per connection (tokio-postgres `prepare`) and reuses it; PgBouncer 1.18 cannot keep named statements in transaction mode",
        ),
        ServerSpec::Variant(Variant::ActixDeadpool) => Err(
            "prepares named statements (deadpool-postgres `prepare_cached`); PgBouncer 1.18 cannot keep them in transaction mode",
        ),
        ServerSpec::Variant(Variant::WarpDieselAsync) => Err(
            "diesel-async prepares its statements (tokio-postgres named statements, in its statement cache); PgBouncer 1.18 cannot keep them in transaction mode",
        ),
        // diesel 2.3 sends a statement it does not cache with PQsendQueryParams: one round trip.
        ServerSpec::Variant(Variant::ThreadedBlocking) => Ok(Some(
            "DB_STATEMENTS=unprepared: diesel's prepared-statement cache disabled (CacheSize::Disabled), every statement sent with PQsendQueryParams",
        )),
        ServerSpec::Peer(Peer::FastapiAsyncpg) => Err(
            "prepares every statement when a connection opens; asyncpg's documented statement_cache_size=0 would run them unprepared, but the peer has no setting for it yet",
        ),
        ServerSpec::Peer(Peer::FastapiSqlalchemy) => Err(
            "SQLAlchemy's asyncpg dialect prepares named statements; PgBouncer 1.18 cannot keep them in transaction mode",
        ),
        ServerSpec::Peer(Peer::FlaskGunicorn) => Err(
            "psycopg 3 prepares a statement after 5 executions (prepare_threshold); its documented prepare_threshold=None would run them unprepared, but the peer has no setting for it yet",
        ),
        ServerSpec::Peer(Peer::GoPgx) => Err(
            "pgx prepares every statement on a connection's first use of it (its statement cache); its documented PreferSimpleProtocol would run them unprepared, but the peer has no setting for it yet",
        ),
        ServerSpec::Peer(Peer::SpringJdbc) => Err(
            "pgjdbc prepares a statement from its fifth execution on a connection (prepareThreshold=5); its documented prepareThreshold=0 would run them unprepared, but the peer has no setting for it yet",
        ),
        // Django's psycopg 3 backend prepares nothing unless told to (its `prepare_threshold`
        // default is None, "to keep connection poolers working") and binds on the client.
        ServerSpec::Peer(Peer::DjangoDrf) => Ok(None),
        // psycopg2 (and psycopg2cffi) never prepare: every statement is a simple query with its
        // values interpolated on the client.
        ServerSpec::Peer(Peer::FastapiAiopg | Peer::FastapiAiopgPypy) => Ok(None),
        ServerSpec::Target(_) => Err("a target runs as it was started, behind no pooler of ours"),
    }
}

/// `default_pool_size` for one server: the server connections PgBouncer opens to PostgreSQL.
///
/// In transaction mode, the run's `DB_POOL_SIZE`: however many processes connect, PostgreSQL
/// sees one pool, which is what a pooler is for. In session mode a client keeps its server
/// connection until it disconnects, and the servers' pools keep theirs open: a pool smaller than
/// the clients would leave the extra clients waiting for good, so it is every process's pool
/// (`processes x DB_POOL_SIZE`) and the pooler is a pass-through whose cost is measured.
pub fn default_pool_size(mode: PoolMode, processes: usize, db_pool_size: NonZeroUsize) -> usize {
    match mode {
        PoolMode::Session => processes.max(1) * db_pool_size.get(),
        PoolMode::Transaction => db_pool_size.get(),
    }
}

/// The `pgbouncer` program, or an error naming the package.
pub fn locate() -> Result<PathBuf> {
    // Debian installs it in /usr/sbin, which is not on every user's PATH.
    locate_in(
        std::env::var_os("PATH"),
        std::path::Path::new("/usr/sbin/pgbouncer"),
    )
}

fn locate_in(path: Option<std::ffi::OsString>, fallback: &std::path::Path) -> Result<PathBuf> {
    let on_path = path.and_then(|path| {
        std::env::split_paths(&path)
            .map(|directory| directory.join("pgbouncer"))
            .find(|candidate| candidate.is_file())
    });
    on_path
        .or_else(|| Some(fallback.to_path_buf()).filter(|path| path.is_file()))
        .context(
            "--pooler pgbouncer needs the pgbouncer program, not found on PATH or in /usr/sbin: \
             install it with `apt-get install pgbouncer`",
        )
}

/// A PgBouncer started for one server: listening on a free loopback port in front of the run's
/// PostgreSQL, killed and its directory removed on drop.
pub struct PgBouncer {
    child: Child,
    port: u16,
    pub mode: PoolMode,
    pub default_pool_size: usize,
    // Declared last: removed after the process is gone.
    directory: tempfile::TempDir,
}

/// How long PgBouncer has to accept connections after it starts.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

impl PgBouncer {
    /// Starts PgBouncer in front of the database at `database_url` (host, port, database and
    /// role are read from it).
    pub fn start(
        program: &std::path::Path,
        database_url: &str,
        mode: PoolMode,
        default_pool_size: usize,
    ) -> Result<PgBouncer> {
        let url = url::Url::parse(database_url).context("reading the database URL")?;
        let host = url.host_str().unwrap_or("127.0.0.1").to_string();
        let port = url.port().unwrap_or(5432);
        let database = url.path().trim_start_matches('/').to_string();
        let role = url.username().to_string();
        anyhow::ensure!(
            !database.is_empty() && !role.is_empty(),
            "the database URL names no database or role"
        );

        let directory = tempfile::Builder::new()
            .prefix("bakeoff-pgbouncer-")
            .tempdir()
            .context("creating PgBouncer's directory")?;
        // Readable by the postgres account PgBouncer runs as under root; nothing secret in it.
        std::fs::set_permissions(
            directory.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )?;
        let listen_port = free_port()?;
        let userlist = directory.path().join("userlist.txt");
        std::fs::write(
            &userlist,
            format!("\"{role}\" \"\"\n\"{ADMIN_ROLE}\" \"\"\n"),
        )
        .context("writing PgBouncer's userlist")?;
        let ini = directory.path().join("pgbouncer.ini");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n\
                 {database} = host={host} port={port} dbname={database}\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {listen_port}\n\
                 unix_socket_dir =\n\
                 auth_type = trust\n\
                 auth_file = {userlist}\n\
                 admin_users = {ADMIN_ROLE}\n\
                 stats_users = {ADMIN_ROLE}\n\
                 pool_mode = {mode}\n\
                 default_pool_size = {default_pool_size}\n\
                 max_client_conn = 2000\n\
                 ; drivers send these at startup; PgBouncer would refuse the connection\n\
                 ignore_startup_parameters = extra_float_digits,options\n\
                 log_connections = 0\n\
                 log_disconnections = 0\n\
                 log_pooler_errors = 1\n",
                userlist = userlist.display(),
                mode = mode.as_str(),
            ),
        )
        .context("writing pgbouncer.ini")?;
        let log_path = directory.path().join("pgbouncer.log");
        let log = std::fs::File::create(&log_path).context("creating PgBouncer's log")?;
        let mut command = unprivileged_command(program);
        command
            .arg(&ini)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let mut pooler = PgBouncer {
            child,
            port: listen_port,
            mode,
            default_pool_size,
            directory,
        };
        pooler.wait_until_ready(&log_path)?;
        Ok(pooler)
    }

    fn wait_until_ready(&mut self, log_path: &std::path::Path) -> Result<()> {
        let started = Instant::now();
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if let Some(status) = self.child.try_wait()? {
                let log = std::fs::read_to_string(log_path).unwrap_or_default();
                bail!("pgbouncer exited ({status}) at start: {}", log.trim());
            }
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!("pgbouncer did not listen on {address} within {READY_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `database_url` with the pooler's address instead of PostgreSQL's.
    pub fn url_for(&self, database_url: &str) -> Result<String> {
        let mut url = url::Url::parse(database_url).context("reading the database URL")?;
        url.set_host(Some("127.0.0.1"))
            .context("setting the pooler's host")?;
        url.set_port(Some(self.port))
            .map_err(|()| anyhow::anyhow!("setting the pooler's port"))?;
        Ok(url.to_string())
    }

    /// The admin console, as the superuser the userlist names.
    pub fn admin_url(&self) -> String {
        format!("postgres://{ADMIN_ROLE}@127.0.0.1:{}/pgbouncer", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where its configuration lives, while it runs.
    pub fn directory(&self) -> &std::path::Path {
        self.directory.path()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGINT is PgBouncer's safe shutdown; it would wait for clients, which are gone by
            // now. SIGTERM is immediate: nothing of a throwaway run is worth waiting for.
            if let Ok(pid) = i32::try_from(self.child.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// PgBouncer's admin console: connections counted at the pooler.
pub struct PoolerWatch {
    client: tokio_postgres::Client,
    database: String,
}

/// One reading of the console for the run's database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolerCounts {
    /// Client connections (the servers' side): rows of `SHOW CLIENTS`.
    pub clients: u64,
    /// Server connections PgBouncer holds to PostgreSQL: `SHOW POOLS`' sv_* columns summed.
    pub server_connections: u64,
}

impl PoolerWatch {
    pub async fn connect(pooler: &PgBouncer, database: &str) -> Result<PoolerWatch> {
        let client = bakeoff_testkit::connect(&pooler.admin_url())
            .await
            .context("connecting to PgBouncer's admin console")?;
        Ok(PoolerWatch {
            client,
            database: database.to_string(),
        })
    }

    /// The console answers only the simple query protocol, all values as text.
    pub async fn counts(&self) -> Option<PoolerCounts> {
        use tokio_postgres::SimpleQueryMessage;
        let rows = |messages: Vec<SimpleQueryMessage>| -> Vec<tokio_postgres::SimpleQueryRow> {
            messages
                .into_iter()
                .filter_map(|message| match message {
                    SimpleQueryMessage::Row(row) => Some(row),
                    _ => None,
                })
                .collect()
        };
        let clients = rows(self.client.simple_query("SHOW CLIENTS").await.ok()?)
            .iter()
            .filter(|row| row.try_get("database").ok().flatten() == Some(self.database.as_str()))
            .count() as u64;
        let mut server_connections = 0;
        for row in rows(self.client.simple_query("SHOW POOLS").await.ok()?) {
            if row.try_get("database").ok().flatten() != Some(self.database.as_str()) {
                continue;
            }
            for column in ["sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login"] {
                server_connections += row
                    .try_get(column)
                    .ok()
                    .flatten()
                    .and_then(|value| value.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        Some(PoolerCounts {
            clients,
            server_connections,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn poolers_parse_with_session_as_the_default_mode() {
        let cases = [
            ("none", Pooler::None),
            ("pgbouncer", Pooler::PgBouncer(PoolMode::Session)),
            ("PgBouncer:Session", Pooler::PgBouncer(PoolMode::Session)),
            (
                "pgbouncer:transaction",
                Pooler::PgBouncer(PoolMode::Transaction),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(Pooler::parse(text), Ok(expected), "{text}");
        }
        assert_eq!(
            Pooler::parse("odyssey").unwrap_err(),
            r#""odyssey" is not a pooler: none, pgbouncer:session, pgbouncer:transaction"#
        );
        assert_eq!(
            Pooler::PgBouncer(PoolMode::Transaction).to_string(),
            "pgbouncer transaction"
        );
    }

    #[test]
    fn a_missing_pgbouncer_names_the_package() {
        let nowhere = tempfile::tempdir().unwrap();
        let error = locate_in(
            Some(nowhere.path().as_os_str().to_owned()),
            &nowhere.path().join("pgbouncer"),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("apt-get install pgbouncer"),
            "{error}"
        );
    }

    #[test]
    fn session_mode_pools_every_process_and_transaction_mode_one_pool() {
        let four = NonZeroUsize::new(4).unwrap();
        assert_eq!(default_pool_size(PoolMode::Session, 2, four), 8);
        assert_eq!(default_pool_size(PoolMode::Transaction, 2, four), 4);
    }
}
