//! A local PostgreSQL cluster run from the installed server binaries: throwaway for tests and
//! benchmark runs ([`LocalPostgres`]), or persistent under a project folder for `bakeoff db up`
//! ([`Cluster::start_detached`]).
//!
//! `initdb` and `postgres` refuse to run as root. When this process is root, every server command
//! runs as the unprivileged `postgres` account through `setpriv`, and the data directory is
//! handed to that account; otherwise they run as the current user.
//!
//! Each cluster has a database `bakeoff` with the schema applied, the `pg_stat_statements`
//! extension (the tests and the benchmark count statements per request with it), a superuser
//! `postgres` for administration and a login role `bakeoff_app` with only the rights a server
//! needs. Servers connect as `bakeoff_app`, so its statements can be told apart from everyone
//! else's.

use std::fs;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, Uid, User};

/// The database every cluster serves.
pub const DATABASE: &str = "bakeoff";
/// The role servers connect as.
pub const APP_ROLE: &str = "bakeoff_app";
/// The superuser.
pub const ADMIN_ROLE: &str = "postgres";

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings passed to every cluster. Durability is off: these clusters hold generated data that
/// is reseeded at will, and fsync would only make seeding slow.
const SERVER_SETTINGS: &[(&str, &str)] = &[
    ("listen_addresses", "127.0.0.1"),
    ("max_connections", "400"),
    ("shared_preload_libraries", "pg_stat_statements"),
    ("pg_stat_statements.track", "top"),
    // SET and other utility statements that drivers send when connecting are not requests' SQL.
    ("pg_stat_statements.track_utility", "off"),
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
    ("shared_buffers", "256MB"),
    ("log_min_messages", "warning"),
];

/// The installed PostgreSQL server programs.
#[derive(Debug, Clone)]
pub struct Binaries {
    directory: Option<PathBuf>,
}

impl Binaries {
    /// Finds `initdb` on PATH, or else in the newest `/usr/lib/postgresql/*/bin`.
    pub fn locate() -> Result<Binaries> {
        if which("initdb").is_some() && which("postgres").is_some() {
            return Ok(Binaries { directory: None });
        }
        let mut versions: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
            .map(|entries| {
                entries
                    .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
                    .collect()
            })
            .unwrap_or_default();
        versions.retain(|bin| bin.join("initdb").is_file());
        // Version folders are numbers; sort numerically so 15 beats 9.6.
        versions.sort_by_key(|bin| {
            bin.parent()
                .and_then(|version| {
                    version
                        .file_name()?
                        .to_str()?
                        .split('.')
                        .next()?
                        .parse::<u32>()
                        .ok()
                })
                .unwrap_or(0)
        });
        match versions.pop() {
            Some(directory) => Ok(Binaries {
                directory: Some(directory),
            }),
            None => bail!(
                "PostgreSQL server binaries (initdb, postgres) not found on PATH or under \
                 /usr/lib/postgresql/*/bin; install them, e.g. `apt-get install postgresql`"
            ),
        }
    }

    fn program(&self, name: &str) -> PathBuf {
        match &self.directory {
            Some(directory) => directory.join(name),
            None => PathBuf::from(name),
        }
    }

    /// A command for a server program, run as the `postgres` account when we are root.
    fn command(&self, name: &str) -> Result<Command> {
        Ok(unprivileged_command(&self.program(name)))
    }
}

/// A command for a program that refuses to run as root (PostgreSQL's, PgBouncer): as the
/// `postgres` account through `setpriv` when we are root, as ourselves otherwise.
pub fn unprivileged_command(program: &Path) -> Command {
    if !Uid::effective().is_root() {
        return Command::new(program);
    }
    let mut command = Command::new("setpriv");
    command
        .args([
            "--reuid",
            ADMIN_ROLE,
            "--regid",
            ADMIN_ROLE,
            "--init-groups",
            "--",
        ])
        .arg(program);
    command
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|directory| directory.join(program))
        .find(|path| path.is_file())
}

/// A cluster's data directory and port, started or not.
#[derive(Debug, Clone)]
pub struct Cluster {
    binaries: Binaries,
    data_directory: PathBuf,
    port: u16,
}

impl Cluster {
    /// A cluster in `data_directory` (created by [`Cluster::init`] if new) on `port`.
    pub fn new(data_directory: PathBuf, port: u16) -> Result<Cluster> {
        Ok(Cluster {
            binaries: Binaries::locate()?,
            data_directory,
            port,
        })
    }

    pub fn data_directory(&self) -> &Path {
        &self.data_directory
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether `initdb` has already run here.
    pub fn is_initialized(&self) -> bool {
        self.data_directory.join("PG_VERSION").is_file()
    }

    /// The URL for the superuser.
    pub fn admin_url(&self) -> String {
        format!("postgres://{ADMIN_ROLE}@127.0.0.1:{}/{DATABASE}", self.port)
    }

    /// The URL servers use.
    pub fn app_url(&self) -> String {
        format!("postgres://{APP_ROLE}@127.0.0.1:{}/{DATABASE}", self.port)
    }

    /// Runs `initdb` (trust authentication on loopback only, UTF-8, C.UTF-8 locale).
    pub fn init(&self) -> Result<()> {
        fs::create_dir_all(&self.data_directory)
            .with_context(|| format!("creating {}", self.data_directory.display()))?;
        hand_to_postgres_account(&self.data_directory)?;
        let output = self
            .binaries
            .command("initdb")?
            .arg("--pgdata")
            .arg(&self.data_directory)
            .args([
                "--username",
                ADMIN_ROLE,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
            ])
            .args(["--locale", "C.UTF-8", "--no-sync"])
            .stdin(Stdio::null())
            .output()
            .context("running initdb")?;
        if !output.status.success() {
            bail!(
                "initdb failed in {}: {}",
                self.data_directory.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    fn server_arguments(&self) -> Vec<String> {
        let mut arguments = vec![
            "-D".to_string(),
            self.data_directory.display().to_string(),
            "-p".to_string(),
            self.port.to_string(),
            // The socket lives in the data directory: /var/run/postgresql may not be writable.
            "-k".to_string(),
            self.data_directory.display().to_string(),
        ];
        for (name, value) in SERVER_SETTINGS {
            arguments.push("-c".to_string());
            arguments.push(format!("{name}={value}"));
        }
        arguments
    }

    /// Starts `postgres` as a child of this process, logging to `server.log` in the data
    /// directory, and waits until it accepts connections.
    pub fn start_child(&self) -> Result<Child> {
        let log = self.open_log()?;
        let child = self
            .binaries
            .command("postgres")?
            .args(self.server_arguments())
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("duplicating the log file")?)
            .stderr(log)
            .spawn()
            .context("starting postgres")?;
        self.wait_until_ready()?;
        Ok(child)
    }

    /// Starts the cluster in the background with `pg_ctl`, so that it outlives this process.
    pub fn start_detached(&self) -> Result<()> {
        let log_path = self.data_directory.join("server.log");
        let status = self
            .binaries
            .command("pg_ctl")?
            .arg("start")
            .arg("--pgdata")
            .arg(&self.data_directory)
            .arg("--log")
            .arg(&log_path)
            .arg("--options")
            .arg(shell_words(&self.server_arguments()[2..]))
            .args(["--wait", "--silent"])
            .stdin(Stdio::null())
            .status()
            .context("running pg_ctl start")?;
        if !status.success() {
            bail!("pg_ctl start failed; see {}", log_path.display());
        }
        self.wait_until_ready()
    }

    /// Stops a cluster started by [`Cluster::start_detached`] (fast shutdown).
    pub fn stop_detached(&self) -> Result<()> {
        let status = self
            .binaries
            .command("pg_ctl")?
            .arg("stop")
            .arg("--pgdata")
            .arg(&self.data_directory)
            .args(["--mode", "fast", "--wait", "--silent"])
            .stdin(Stdio::null())
            .status()
            .context("running pg_ctl stop")?;
        if !status.success() {
            bail!("pg_ctl stop failed for {}", self.data_directory.display());
        }
        Ok(())
    }

    /// Whether a postmaster is running for this data directory.
    pub fn is_running(&self) -> bool {
        let Ok(pid_file) = fs::read_to_string(self.data_directory.join("postmaster.pid")) else {
            return false;
        };
        let Some(pid) = pid_file
            .lines()
            .next()
            .and_then(|line| line.trim().parse::<i32>().ok())
        else {
            return false;
        };
        // Signal 0 checks that the process exists without touching it.
        kill(Pid::from_raw(pid), None).is_ok()
    }

    fn open_log(&self) -> Result<fs::File> {
        let path = self.data_directory.join("server.log");
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))
    }

    fn wait_until_ready(&self) -> Result<()> {
        let started = Instant::now();
        loop {
            let ready = self
                .binaries
                .command("pg_isready")?
                .args([
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &self.port.to_string(),
                    "--quiet",
                ])
                .args(["--dbname", "postgres", "--username", ADMIN_ROLE])
                .stdin(Stdio::null())
                .status()
                .map(|status| status.success())
                .unwrap_or(false);
            if ready {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                let log =
                    fs::read_to_string(self.data_directory.join("server.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(10).collect();
                bail!(
                    "PostgreSQL did not accept connections on port {} within {:?}; last log lines:\n{}",
                    self.port,
                    READY_TIMEOUT,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Creates the `bakeoff` database, the app role, the extension and the schema, if absent.
    pub async fn prepare_database(&self) -> Result<()> {
        let maintenance_url = format!("postgres://{ADMIN_ROLE}@127.0.0.1:{}/postgres", self.port);
        let client = crate::connect(&maintenance_url).await?;
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&DATABASE])
            .await?
            .is_some();
        if !exists {
            client
                .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
                .await?;
        }
        client
            .batch_execute(&format!(
                "DO $$ BEGIN \
                   IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN \
                     CREATE ROLE {APP_ROLE} LOGIN; \
                   END IF; \
                 END $$"
            ))
            .await?;
        let client = crate::connect(&self.admin_url()).await?;
        client
            .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .await?;
        crate::seed::apply_schema(&client).await?;
        // Servers only read, but a user who exported the app URL may reseed through it
        // (`bakeoff db seed` with DATABASE_URL set), so the role may write the contact tables.
        client
            .batch_execute(&format!(
                "GRANT USAGE, CREATE ON SCHEMA public TO {APP_ROLE}; \
                 GRANT ALL ON ALL TABLES IN SCHEMA public TO {APP_ROLE}; \
                 GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}"
            ))
            .await
            .context("granting the app role its rights")?;
        Ok(())
    }
}

/// Quotes arguments for `pg_ctl --options`, which passes them through a shell.
fn shell_words(arguments: &[String]) -> String {
    arguments
        .iter()
        .map(|argument| format!("'{}'", argument.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Gives the `postgres` account the directory when we are root (it must own its data directory).
fn hand_to_postgres_account(directory: &Path) -> Result<()> {
    if !Uid::effective().is_root() {
        return Ok(());
    }
    let account = User::from_name(ADMIN_ROLE)
        .context("looking up the postgres account")?
        .context("running as root needs an unprivileged `postgres` account to run PostgreSQL")?;
    std::os::unix::fs::chown(
        directory,
        Some(account.uid.as_raw()),
        Some(account.gid.as_raw()),
    )
    .with_context(|| format!("handing {} to the postgres account", directory.display()))?;
    fs::set_permissions(
        directory,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .with_context(|| format!("restricting {}", directory.display()))?;
    Ok(())
}

/// A port that was free a moment ago.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// A throwaway cluster: its own temporary directory and port, stopped and removed on drop.
#[derive(Debug)]
pub struct LocalPostgres {
    cluster: Cluster,
    postmaster: Option<Child>,
    // Declared last so that it is removed after the server has stopped.
    _directory: tempfile::TempDir,
}

impl LocalPostgres {
    /// Creates, starts and prepares a new cluster (database, roles, extension, schema; no data).
    pub async fn start_throwaway() -> Result<LocalPostgres> {
        let directory = tempfile::Builder::new()
            .prefix("bakeoff-pg-")
            .tempdir()
            .context("creating a temporary directory")?;
        // The temporary directory itself is 0700 and ours; the data directory inside it must be
        // reachable by the postgres account.
        fs::set_permissions(
            directory.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )?;
        let data_directory = directory.path().join("data");
        let cluster = Cluster::new(data_directory, free_port()?)?;
        let init_cluster = cluster.clone();
        tokio::task::spawn_blocking(move || init_cluster.init()).await??;
        let start_cluster = cluster.clone();
        let postmaster = tokio::task::spawn_blocking(move || start_cluster.start_child()).await??;
        let local = LocalPostgres {
            cluster,
            postmaster: Some(postmaster),
            _directory: directory,
        };
        local.cluster.prepare_database().await?;
        Ok(local)
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    pub fn admin_url(&self) -> String {
        self.cluster.admin_url()
    }

    pub fn app_url(&self) -> String {
        self.cluster.app_url()
    }

    pub fn port(&self) -> u16 {
        self.cluster.port()
    }

    /// Stops the server (fast shutdown: open connections are closed), keeping the data.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut postmaster) = self.postmaster.take() else {
            return Ok(());
        };
        stop_postmaster(&mut postmaster)
    }

    /// Starts the server again on the same port and data.
    pub fn start(&mut self) -> Result<()> {
        if self.postmaster.is_some() {
            return Ok(());
        }
        self.postmaster = Some(self.cluster.start_child()?);
        Ok(())
    }

    pub fn is_running(&self) -> bool {
        self.postmaster.is_some()
    }
}

fn stop_postmaster(postmaster: &mut Child) -> Result<()> {
    // SIGINT is PostgreSQL's fast shutdown: roll back open transactions, close connections.
    let pid = Pid::from_raw(i32::try_from(postmaster.id()).context("pid out of range")?);
    if kill(pid, Signal::SIGINT).is_err() {
        // Already gone.
        let _ = postmaster.wait();
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if postmaster.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Immediate shutdown as a last resort.
    let _ = kill(pid, Signal::SIGQUIT);
    postmaster.wait()?;
    Ok(())
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            eprintln!("warning: stopping the throwaway PostgreSQL: {error:#}");
        }
    }
}

/// The statements `role` has run so far in the connected database, from pg_stat_statements: the
/// one count the conformance checks and the benchmark's monitor both use. Connection health
/// checks (`SELECT 1`, the empty query) are not a request's SQL and are left out, and so is any
/// query on the statistics views (the monitor's own, where the servers and the monitor share a
/// role on an external database).
pub async fn statements_of_role(admin: &tokio_postgres::Client, role: &str) -> Result<i64> {
    Ok(statement_totals_of_role(admin, role).await?.calls)
}

/// The statements of a role whose figures are counted: the role's, in the connected database,
/// less health checks and queries on the statistics views (see [`statements_of_role`]).
const ROLE_STATEMENTS: &str = "FROM pg_stat_statements s \
     JOIN pg_roles r ON r.oid = s.userid \
     JOIN pg_database d ON d.oid = s.dbid \
     WHERE r.rolname = $1 AND d.datname = current_database() \
     AND s.query NOT LIKE '%pg_stat%' \
     AND s.query !~* '^\\s*select\\s+(1|\\$1)\\s*;?\\s*$' AND s.query <> ''";

/// What the statements counted by [`statements_of_role`] did so far, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StatementTotals {
    pub calls: i64,
    pub rows: i64,
    /// Shared buffers hit or read.
    pub buffers: i64,
    /// Execution time, in milliseconds.
    pub exec_ms: f64,
}

/// [`statements_of_role`] with the rows, buffers and execution time of the same statements.
pub async fn statement_totals_of_role(
    admin: &tokio_postgres::Client,
    role: &str,
) -> Result<StatementTotals> {
    let row = admin
        .query_one(
            &format!(
                "SELECT coalesce(sum(s.calls), 0)::int8, coalesce(sum(s.rows), 0)::int8, \
                 coalesce(sum(s.shared_blks_hit + s.shared_blks_read), 0)::int8, \
                 coalesce(sum(s.total_exec_time), 0)::float8 {ROLE_STATEMENTS}"
            ),
            &[&role],
        )
        .await
        .context("reading pg_stat_statements")?;
    Ok(StatementTotals {
        calls: row.get(0),
        rows: row.get(1),
        buffers: row.get(2),
        exec_ms: row.get(3),
    })
}
