//! The server seen from outside while it is measured: CPU time, memory, threads and processes
//! from /proc (summed over its process tree), or from its container's cgroup when it is a
//! container the run did not start,
//! database connections from pg_stat_activity (and at a pooler, from its console) and statements
//! from pg_stat_statements. Nothing
//! here asks the server itself, so a server cannot flatter its own figures.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use bakeoff_testkit::postgres::StatementTotals;
use tokio::sync::{Mutex, MutexGuard, watch};
use tokio_postgres::Client;

use crate::cgroups::ContainerCgroup;
use crate::harness::pooler::PoolerWatch;
use crate::processes::{TreeSample, read_tree};
use crate::results::ServerFigures;

/// How often /proc is read during a run (cheap), and PostgreSQL's activity view (not free: it is
/// a query on the database under test, so it is asked less often).
const PROC_INTERVAL: Duration = Duration::from_millis(100);
const DATABASE_EVERY: u32 = 5;

/// A connection to PostgreSQL that counts what one role (the servers') does. A connection that
/// a fault closed (a restart, `pg_terminate_backend`) is opened again on the next question, so
/// the cells after a fault keep their database figures.
pub struct DatabaseWatch {
    client: Mutex<Client>,
    admin_url: String,
    role: String,
}

impl DatabaseWatch {
    /// Connects with `admin_url` (which may see every role's statistics) to watch `role`.
    pub async fn connect(admin_url: &str, role: &str) -> Result<DatabaseWatch> {
        let client = bakeoff_testkit::connect(admin_url).await?;
        Ok(DatabaseWatch {
            client: Mutex::new(client),
            admin_url: admin_url.to_string(),
            role: role.to_string(),
        })
    }

    /// The connection, opened again if it was closed; `None` while the database is away.
    async fn client(&self) -> Option<MutexGuard<'_, Client>> {
        let mut client = self.client.lock().await;
        if client.is_closed() {
            *client = bakeoff_testkit::connect(&self.admin_url).await.ok()?;
        }
        Some(client)
    }

    /// Statements the role has run so far in this database; `None` without pg_stat_statements.
    pub async fn statements(&self) -> Option<i64> {
        // Counted as the conformance checks count them (health checks and statistics queries
        // left out).
        let client = self.client().await?;
        bakeoff_testkit::postgres::statements_of_role(&client, &self.role)
            .await
            .ok()
    }

    /// Connections the role holds to this database now; with `client_ports`, only those coming
    /// from these ports (one server's, where several share the role).
    pub async fn connections(&self, client_ports: Option<&[u16]>) -> Option<i64> {
        let client = self.client().await?;
        let row = match client_ports {
            None => client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE usename = $1 AND datname = current_database() AND pid <> pg_backend_pid()",
                    &[&self.role],
                )
                .await,
            Some(ports) => {
                let ports: Vec<i32> = ports.iter().map(|&port| i32::from(port)).collect();
                client
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity \
                         WHERE usename = $1 AND datname = current_database() \
                         AND pid <> pg_backend_pid() AND client_port = ANY($2)",
                        &[&self.role, &ports],
                    )
                    .await
            }
        };
        row.ok()?.try_get(0).ok()
    }

    /// What the role's statements did so far in this database (calls, rows, buffers, time),
    /// counted as [`DatabaseWatch::statements`] counts them; `None` without pg_stat_statements.
    pub async fn statement_totals(&self) -> Option<StatementTotals> {
        let client = self.client().await?;
        bakeoff_testkit::postgres::statement_totals_of_role(&client, &self.role)
            .await
            .ok()
    }

    /// `SHOW server_version`.
    pub async fn server_version(&self) -> Option<String> {
        self.query_value("SHOW server_version").await
    }

    /// How many contacts the database holds.
    pub async fn contacts(&self) -> Option<i64> {
        self.query_value("SELECT count(*) FROM contacts").await
    }

    async fn query_value<T: for<'a> tokio_postgres::types::FromSql<'a>>(
        &self,
        sql: &str,
    ) -> Option<T> {
        self.client()
            .await?
            .query_one(sql, &[])
            .await
            .ok()?
            .try_get(0)
            .ok()
    }
}

/// The connections of `watch`'s role that come from the sockets of `clients` (all of the role's
/// when there are none to look at).
async fn connections(watch: &DatabaseWatch, clients: &[u32]) -> Option<i64> {
    if clients.is_empty() {
        return watch.connections(None).await;
    }
    let roots = clients.to_vec();
    let ports = tokio::task::spawn_blocking(move || crate::processes::tcp_ports_of(&roots))
        .await
        .ok()?;
    watch.connections(Some(&ports)).await
}

/// What is read of a server: the process tree the run started, or a container's cgroup.
#[derive(Debug, Clone)]
pub enum Watched {
    Process(u32),
    Container(ContainerCgroup),
}

impl Watched {
    /// CPU, memory, threads and processes now; `None` when it is gone. A container's memory is
    /// its processes' anonymous memory, what their RSS mostly is.
    pub fn sample(&self) -> Option<TreeSample> {
        match self {
            Watched::Process(pid) => read_tree(*pid),
            // Its processes cannot be counted from outside its PID namespace: 0, shown as "–".
            Watched::Container(cgroup) => Some(TreeSample {
                cpu_seconds: cgroup.cpu_seconds()?,
                rss_bytes: cgroup.memory_bytes().unwrap_or(0),
                threads: cgroup.threads().unwrap_or(0),
                processes: 0,
            }),
        }
    }

    /// CPU seconds used so far.
    pub fn cpu_seconds(&self) -> Option<f64> {
        match self {
            Watched::Process(pid) => read_tree(*pid).map(|sample| sample.cpu_seconds),
            Watched::Container(cgroup) => cgroup.cpu_seconds(),
        }
    }
}

/// Samples a server during one run; [`Sampler::finish`] gives its figures.
pub struct Sampler {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Peaks>,
    watched: Watched,
    database: Option<Arc<DatabaseWatch>>,
    pooler: Option<Arc<PoolerWatch>>,
    clients: Arc<Vec<u32>>,
    before: TreeSample,
    statements_before: Option<i64>,
}

#[derive(Debug, Default)]
struct Peaks {
    rss_bytes: u64,
    threads: u64,
    processes: u64,
    db_connections: Option<u64>,
    pooler_clients: Option<u64>,
    pooler_server_connections: Option<u64>,
}

impl Peaks {
    async fn read_pooler(&mut self, pooler: &PoolerWatch) {
        if let Some(counts) = pooler.counts().await {
            self.pooler_clients = Some(self.pooler_clients.unwrap_or(0).max(counts.clients));
            self.pooler_server_connections = Some(
                self.pooler_server_connections
                    .unwrap_or(0)
                    .max(counts.server_connections),
            );
        }
    }
}

impl Sampler {
    /// Starts sampling `watched` (the server's process tree, or its container). Its database connections are those of
    /// `database`'s role coming from the sockets of `clients` (the processes that connect to
    /// PostgreSQL for it: the server, the delay line or the pooler in front of the database),
    /// so that servers sharing a database are counted apart; with `clients` empty, the role's.
    /// Behind a pooler, its console is read as often as PostgreSQL's activity view.
    pub async fn start(
        watched: Watched,
        database: Option<Arc<DatabaseWatch>>,
        pooler: Option<Arc<PoolerWatch>>,
        clients: Vec<u32>,
    ) -> Sampler {
        let before = watched.sample().unwrap_or_default();
        let statements_before = match &database {
            Some(watch) => watch.statements().await,
            None => None,
        };
        let (stop, mut stopped) = watch::channel(false);
        let watch_database = database.clone();
        let watch_pooler = pooler.clone();
        let clients = Arc::new(clients);
        let clients_for_finish = Arc::clone(&clients);
        let sampled = watched.clone();
        let task = tokio::spawn(async move {
            let mut peaks = Peaks::default();
            let mut interval = tokio::time::interval(PROC_INTERVAL);
            let mut tick: u32 = 0;
            loop {
                tokio::select! {
                    _ = interval.tick() => {}
                    _ = stopped.changed() => break,
                }
                if let Some(sample) = sampled.sample() {
                    peaks.rss_bytes = peaks.rss_bytes.max(sample.rss_bytes);
                    peaks.threads = peaks.threads.max(sample.threads);
                    peaks.processes = peaks.processes.max(sample.processes);
                }
                if tick.is_multiple_of(DATABASE_EVERY)
                    && let Some(watch) = &watch_database
                    && let Some(count) = connections(watch, &clients).await
                {
                    let count = u64::try_from(count).unwrap_or(0);
                    peaks.db_connections = Some(peaks.db_connections.unwrap_or(0).max(count));
                }
                if tick.is_multiple_of(DATABASE_EVERY)
                    && let Some(pooler) = &watch_pooler
                {
                    peaks.read_pooler(pooler).await;
                }
                tick = tick.wrapping_add(1);
            }
            peaks
        });
        Sampler {
            stop,
            task,
            watched,
            database,
            pooler,
            clients: Arc::clone(&clients_for_finish),
            before,
            statements_before,
        }
    }

    /// Stops sampling and computes the figures for `responses` answers.
    pub async fn finish(self, responses: u64) -> ServerFigures {
        let _ = self.stop.send(true);
        let mut peaks = self.task.await.unwrap_or_default();
        let after = self.watched.sample().unwrap_or_default();
        peaks.rss_bytes = peaks.rss_bytes.max(after.rss_bytes);
        peaks.threads = peaks.threads.max(after.threads);
        peaks.processes = peaks.processes.max(after.processes);
        if let Some(watch) = &self.database
            && let Some(count) = connections(watch, &self.clients).await
        {
            let count = u64::try_from(count).unwrap_or(0);
            peaks.db_connections = Some(peaks.db_connections.unwrap_or(0).max(count));
        }
        if let Some(pooler) = &self.pooler {
            peaks.read_pooler(pooler).await;
        }
        let statements_after = match &self.database {
            Some(watch) => watch.statements().await,
            None => None,
        };
        let cpu_seconds = (after.cpu_seconds - self.before.cpu_seconds).max(0.0);
        let per_answer = |value: f64| (responses > 0).then(|| value / responses as f64);
        ServerFigures {
            cpu_seconds,
            cpu_ms_per_1k: per_answer(cpu_seconds * 1_000.0 * 1_000.0),
            rss_peak_bytes: peaks.rss_bytes,
            rss_final_bytes: after.rss_bytes,
            threads_peak: peaks.threads,
            threads_final: after.threads,
            threads_at_start: self.before.threads,
            processes_peak: peaks.processes,
            rss_at_start_bytes: self.before.rss_bytes,
            db_connections_peak: peaks.db_connections,
            pooler_clients_peak: peaks.pooler_clients,
            pooler_server_connections_peak: peaks.pooler_server_connections,
            statements_per_request: match (self.statements_before, statements_after) {
                (Some(before), Some(after)) => per_answer((after - before).max(0) as f64),
                _ => None,
            },
        }
    }
}
