//! The database every server of a command is given: a throwaway PostgreSQL the harness starts,
//! seeds and removes, or an external one (`DATABASE_URL`) used as it is (or re-seeded when asked).
//! Either way one type says who to watch in it and whether statements can be counted there.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::results::vocabulary::DatabaseKind;
use anyhow::{Context, Result};
use bakeoff_testkit::conformance::StatementCounts;
use bakeoff_testkit::postgres::{APP_ROLE, LocalPostgres};
use bakeoff_testkit::seed::{SeedProgress, SeedSpec, seed};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

impl DatabaseKind {
    /// Whether the command owns the cluster (and may stop, restart or pause it).
    pub fn is_owned(self) -> bool {
        self == DatabaseKind::Throwaway
    }
}

impl fmt::Display for DatabaseKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            DatabaseKind::Throwaway => "throwaway",
            DatabaseKind::External => "external",
            DatabaseKind::None => "none",
        })
    }
}

/// What a command asks for.
#[derive(Debug, Clone)]
pub enum DatabaseChoice {
    /// A throwaway cluster, seeded with this data set when one is given.
    Throwaway { data: Option<SeedSpec> },
    /// `DATABASE_URL`, its data replaced by this data set when one is given.
    External { url: String, data: Option<SeedSpec> },
}

/// The database of a command, ready for servers.
pub struct Database {
    /// Kept alive for the command; stopped and removed on drop (Ctrl-C and failure included).
    /// Shared behind a lock so that a fault can stop and start it while servers are given its
    /// URLs.
    throwaway: Option<Arc<Mutex<LocalPostgres>>>,
    /// A URL that may read every table and every role's statistics.
    pub admin_url: String,
    /// The URL servers are given.
    pub app_url: String,
    /// The role servers connect as, whose activity the monitor counts.
    pub role: String,
    pub kind: DatabaseKind,
    /// The generated data set, when the command seeded one.
    pub data: Option<SeedSpec>,
}

impl Database {
    /// Starts or connects to the database and seeds it as asked, showing progress.
    pub async fn prepare(choice: DatabaseChoice, progress: &MultiProgress) -> Result<Database> {
        match choice {
            DatabaseChoice::External { url, data } => {
                let role = url::Url::parse(&url)
                    .ok()
                    .map(|parsed| parsed.username().to_string())
                    .filter(|name| !name.is_empty())
                    .unwrap_or_else(|| "postgres".to_string());
                if let Some(spec) = &data {
                    seed_with_progress(&url, spec, progress).await?;
                }
                Ok(Database {
                    throwaway: None,
                    admin_url: url.clone(),
                    app_url: url,
                    role,
                    kind: DatabaseKind::External,
                    data,
                })
            }
            DatabaseChoice::Throwaway { data } => {
                let spinner = progress.add(ProgressBar::new_spinner());
                spinner.set_message("starting a throwaway PostgreSQL");
                spinner.enable_steady_tick(Duration::from_millis(120));
                let postgres = LocalPostgres::start_throwaway()
                    .await
                    .context("starting a throwaway PostgreSQL (or set DATABASE_URL)")?;
                spinner.finish_and_clear();
                let admin_url = postgres.admin_url();
                if let Some(spec) = &data {
                    seed_with_progress(&admin_url, spec, progress).await?;
                }
                Ok(Database {
                    app_url: postgres.app_url(),
                    admin_url,
                    role: APP_ROLE.to_string(),
                    kind: DatabaseKind::Throwaway,
                    data,
                    throwaway: Some(Arc::new(Mutex::new(postgres))),
                })
            }
        }
    }

    /// Where statements per request can be counted. Only on the throwaway cluster: there the
    /// checker's own queries run as another role than the servers'; on an external database both
    /// use DATABASE_URL, and the checker would count itself.
    pub fn statement_counts(&self) -> Option<StatementCounts> {
        self.kind.is_owned().then(|| StatementCounts {
            admin_url: self.admin_url.clone(),
            role: self.role.clone(),
        })
    }

    /// The process id of the throwaway cluster's postmaster, from its `postmaster.pid`: its
    /// process tree is the database's CPU time.
    pub fn postmaster_pid(&self) -> Option<u32> {
        let data_directory = {
            let cluster = self.throwaway.as_ref()?.lock().ok()?;
            cluster.cluster().data_directory().to_path_buf()
        };
        let pid_file = std::fs::read_to_string(data_directory.join("postmaster.pid")).ok()?;
        pid_file.lines().next()?.trim().parse().ok()
    }

    /// The cluster itself, when the command owns it (for faults that stop or pause it).
    pub fn owned_cluster(&self) -> Option<Arc<Mutex<LocalPostgres>>> {
        self.throwaway.clone()
    }
}

/// Replaces the contact data at `url` with the generated data set, with a progress bar.
pub async fn seed_with_progress(
    url: &str,
    spec: &SeedSpec,
    progress: &MultiProgress,
) -> Result<()> {
    let bar = progress.add(ProgressBar::new(u64::from(spec.contacts)));
    bar.set_style(
        ProgressStyle::with_template("seeding {pos}/{len} contacts [{bar:30}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let report = |step: SeedProgress| bar.set_position(step.done);
    seed(url, spec, &report)
        .await
        .with_context(|| format!("seeding {}", bakeoff_testkit::redact(url)))?;
    bar.finish_and_clear();
    Ok(())
}
