//! What a server is run with, as dimensions of a run: worker count, pool size, connection-check
//! policy, processes and a pooler; each later dimension (database latency, processes, a pooler) is one more field
//! here and one more list in [`Dimensions`], and so reaches every command that drives the harness.
//!
//! A [`Configuration`] is one point of the dimensions; [`Dimensions::configurations`] expands the
//! lists for one server, leaving out the points that do not apply to it (a connection-check policy
//! for a server without checkout, anything at all for a target the run does not start).

use std::fmt;
use std::num::NonZeroUsize;

pub use bakeoff_core::DbRecycle as Recycle;
use serde::{Deserialize, Serialize};

use crate::harness::pooler::Pooler;
use crate::harness::servers::ServerSpec;

/// `WORKERS`: each server's own default for the CPUs it is pinned to, or one count for all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workers {
    /// Not set: each server runs the worker count its architecture recommends for its CPUs.
    OwnDefault,
    /// The same count for every server.
    Fixed(NonZeroUsize),
}

impl fmt::Display for Workers {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Workers::OwnDefault => formatter.write_str("own default"),
            Workers::Fixed(count) => write!(formatter, "{count}"),
        }
    }
}

/// One point of the dimensions: what one server is started with. `None` in a field means the
/// dimension does not apply to that server (it is not set, and the report says so).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Configuration {
    pub workers: Workers,
    pub db_pool_size: NonZeroUsize,
    /// `None` for a server without connection checkout.
    pub recycle: Option<Recycle>,
    /// `PROCESSES` for a variant, `WORKERS` (its worker processes) for a peer; `None` when the
    /// run does not set it (one process; a peer's own worker count), as in files written before
    /// the dimension existed.
    #[serde(default)]
    pub processes: Option<NonZeroUsize>,
    /// What stands between the server and PostgreSQL.
    #[serde(default)]
    pub pooler: Pooler,
}

/// The values of every dimension a run covers; every list has at least one value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dimensions {
    pub workers: Vec<Workers>,
    pub db_pool_sizes: Vec<NonZeroUsize>,
    pub recycle: Vec<Recycle>,
    /// Empty: not set (one process). See [`Configuration::processes`].
    #[serde(default)]
    pub processes: Vec<NonZeroUsize>,
    /// At least one value in a run; empty in files written before the dimension (no pooler).
    #[serde(default)]
    pub poolers: Vec<Pooler>,
}

impl Dimensions {
    /// The dimensions from the flags' lists; an empty list takes the default.
    pub fn new(
        workers: &[NonZeroUsize],
        db_pool_sizes: &[NonZeroUsize],
        recycle: &[Recycle],
        default_pool_size: NonZeroUsize,
    ) -> Dimensions {
        let workers = if workers.is_empty() {
            vec![Workers::OwnDefault]
        } else {
            workers.iter().copied().map(Workers::Fixed).collect()
        };
        Dimensions {
            workers: sorted(workers),
            db_pool_sizes: sorted(if db_pool_sizes.is_empty() {
                vec![default_pool_size]
            } else {
                db_pool_sizes.to_vec()
            }),
            recycle: sorted(if recycle.is_empty() {
                vec![Recycle::Fast]
            } else {
                recycle.to_vec()
            }),
            processes: Vec::new(),
            poolers: vec![Pooler::None],
        }
    }

    /// The process counts and poolers a run covers (`--processes`, `--pooler`); empty lists
    /// leave one process and no pooler.
    pub fn with_processes_and_poolers(
        mut self,
        processes: &[NonZeroUsize],
        poolers: &[Pooler],
    ) -> Dimensions {
        self.processes = sorted(processes.to_vec());
        self.poolers = if poolers.is_empty() {
            vec![Pooler::None]
        } else {
            sorted(poolers.to_vec())
        };
        self
    }

    fn poolers_or_none(&self) -> Vec<Pooler> {
        if self.poolers.is_empty() {
            vec![Pooler::None]
        } else {
            self.poolers.clone()
        }
    }

    /// The configurations `server` is run in; empty for a target (it runs as it was started).
    pub fn configurations(&self, server: &ServerSpec) -> Vec<Configuration> {
        let recycle_applies = match server {
            ServerSpec::Variant(variant) => variant.checks_out_connections(),
            // Every peer's pool checks connections out (asyncpg, SQLAlchemy, psycopg_pool).
            ServerSpec::Peer(_) => true,
            ServerSpec::Target(_) => return Vec::new(),
        };
        let recycle: Vec<Option<Recycle>> = if recycle_applies {
            self.recycle.iter().copied().map(Some).collect()
        } else {
            vec![None]
        };
        let processes: Vec<Option<NonZeroUsize>> = if self.processes.is_empty() {
            vec![None]
        } else {
            self.processes.iter().copied().map(Some).collect()
        };
        // A peer's processes are its WORKERS: with --processes, the workers dimension is that.
        let workers = match server {
            ServerSpec::Peer(_) if !self.processes.is_empty() => vec![Workers::OwnDefault],
            _ => self.workers.clone(),
        };
        let poolers = self.poolers_or_none();
        let mut configurations = Vec::new();
        for &workers in &workers {
            for &db_pool_size in &self.db_pool_sizes {
                for &recycle in &recycle {
                    for &processes in &processes {
                        for &pooler in &poolers {
                            configurations.push(Configuration {
                                workers,
                                db_pool_size,
                                recycle,
                                processes,
                                pooler,
                            });
                        }
                    }
                }
            }
        }
        configurations
    }

    /// Whether more than one value of some dimension is covered, so that labels must name it.
    pub fn varies(&self) -> bool {
        self.workers.len() > 1
            || self.db_pool_sizes.len() > 1
            || self.recycle.len() > 1
            || self.processes.len() > 1
            || self.poolers.len() > 1
    }

    /// A server's name with the values of the dimensions that vary in the run:
    /// `actix-deadpool (verified)`, `threaded-blocking (workers 3, pool 16)`.
    pub fn label(&self, name: &str, configuration: Option<&Configuration>) -> String {
        let Some(configuration) = configuration else {
            return name.to_string();
        };
        let mut parts = Vec::new();
        if self.workers.len() > 1 {
            parts.push(format!("workers {}", configuration.workers));
        }
        if self.db_pool_sizes.len() > 1 {
            parts.push(format!("pool {}", configuration.db_pool_size));
        }
        if self.recycle.len() > 1
            && let Some(recycle) = configuration.recycle
        {
            parts.push(recycle.to_string());
        }
        if self.processes.len() > 1
            && let Some(processes) = configuration.processes
        {
            parts.push(match processes.get() {
                1 => "1 process".to_string(),
                count => format!("{count} processes"),
            });
        }
        if self.poolers.len() > 1 {
            parts.push(configuration.pooler.to_string());
        }
        if parts.is_empty() {
            name.to_string()
        } else {
            format!("{name} ({})", parts.join(", "))
        }
    }
}

impl Dimensions {
    /// In words, for the reports: what every server was started with.
    pub fn describe(&self) -> String {
        let list = |values: Vec<String>| values.join(", ");
        let workers = if self.workers == [Workers::OwnDefault] {
            "each variant's own default for the CPUs it is pinned to".to_string()
        } else {
            format!(
                "{} for every variant (equal thread counts, not each architecture's own practice)",
                list(self.workers.iter().map(ToString::to_string).collect())
            )
        };
        let mut described = format!(
            "WORKERS {workers}; DB_POOL_SIZE {}; DB_RECYCLE {} (where a variant checks connections out)",
            list(self.db_pool_sizes.iter().map(ToString::to_string).collect()),
            list(self.recycle.iter().map(ToString::to_string).collect()),
        );
        if !self.processes.is_empty() {
            described.push_str(&format!(
                "; PROCESSES {} (a peer's WORKERS), each with its own pool",
                list(self.processes.iter().map(ToString::to_string).collect())
            ));
        }
        if self.poolers_or_none() != [Pooler::None] {
            described.push_str(&format!(
                "; pooler {}",
                list(
                    self.poolers_or_none()
                        .iter()
                        .map(ToString::to_string)
                        .collect()
                )
            ));
        }
        described
    }
}

fn sorted<T: Ord>(mut values: Vec<T>) -> Vec<T> {
    values.sort();
    values.dedup();
    values
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::harness::peers::Peer;
    use crate::harness::pooler::PoolMode;
    use crate::harness::servers::{TargetSpec, Variant};

    fn count(value: usize) -> NonZeroUsize {
        NonZeroUsize::new(value).unwrap()
    }

    #[test]
    fn defaults_are_own_workers_pool_four_and_fast() {
        let dimensions = Dimensions::new(&[], &[], &[], count(4));
        let configurations =
            dimensions.configurations(&ServerSpec::Variant(Variant::ActixDeadpool));
        assert_eq!(
            configurations,
            [Configuration {
                workers: Workers::OwnDefault,
                db_pool_size: count(4),
                recycle: Some(Recycle::Fast),
                processes: None,
                pooler: Pooler::None,
            }]
        );
        assert!(!dimensions.varies());
        assert_eq!(
            dimensions.label("actix-deadpool", configurations.first()),
            "actix-deadpool"
        );
    }

    #[test]
    fn the_policy_dimension_skips_servers_without_checkout() {
        let dimensions = Dimensions::new(
            &[],
            &[count(16), count(4)],
            &[Recycle::Verified, Recycle::Fast],
            count(4),
        );
        let actix = dimensions.configurations(&ServerSpec::Variant(Variant::ActixDeadpool));
        assert_eq!(actix.len(), 4);
        let axum = dimensions.configurations(&ServerSpec::Variant(Variant::AxumTokioPostgres));
        assert_eq!(axum.len(), 2);
        assert!(axum.iter().all(|c| c.recycle.is_none()));
        let labels: Vec<String> = actix
            .iter()
            .map(|c| dimensions.label("actix-deadpool", Some(c)))
            .collect();
        assert_eq!(
            labels,
            [
                "actix-deadpool (pool 4, fast)",
                "actix-deadpool (pool 4, verified)",
                "actix-deadpool (pool 16, fast)",
                "actix-deadpool (pool 16, verified)",
            ]
        );
        assert_eq!(
            dimensions.label("axum-tokio-postgres", axum.first()),
            "axum-tokio-postgres (pool 4)"
        );
        let target = TargetSpec::parse("t=http://127.0.0.1:1").unwrap();
        assert!(
            dimensions
                .configurations(&ServerSpec::Target(target.clone()))
                .is_empty()
        );
        let poolers = Dimensions::new(&[], &[], &[], count(4))
            .with_processes_and_poolers(&[], &[Pooler::PgBouncer(PoolMode::Session)]);
        assert!(
            poolers
                .configurations(&ServerSpec::Target(target.clone()))
                .is_empty()
        );
        assert!(
            dimensions
                .configurations(&ServerSpec::Target(target))
                .is_empty()
        );
    }

    #[test]
    fn processes_and_poolers_multiply_and_name_themselves() {
        let dimensions = Dimensions::new(&[count(2)], &[], &[], count(4))
            .with_processes_and_poolers(
                &[count(2), count(1)],
                &[Pooler::PgBouncer(PoolMode::Session), Pooler::None],
            );
        assert!(dimensions.varies());
        let axum = dimensions.configurations(&ServerSpec::Variant(Variant::AxumTokioPostgres));
        let labels: Vec<String> = axum
            .iter()
            .map(|c| dimensions.label("axum-tokio-postgres", Some(c)))
            .collect();
        assert_eq!(
            labels,
            [
                "axum-tokio-postgres (1 process, no pooler)",
                "axum-tokio-postgres (1 process, pgbouncer session)",
                "axum-tokio-postgres (2 processes, no pooler)",
                "axum-tokio-postgres (2 processes, pgbouncer session)",
            ]
        );
        assert!(axum.iter().all(|c| c.workers == Workers::Fixed(count(2))));
        // A peer's processes are its WORKERS: --workers does not apply beside --processes.
        let peer = dimensions.configurations(&ServerSpec::Peer(Peer::FlaskGunicorn));
        assert_eq!(peer.len(), 4);
        assert!(peer.iter().all(|c| c.workers == Workers::OwnDefault));
        assert!(
            dimensions.describe().ends_with(
                "; PROCESSES 1, 2 (a peer's WORKERS), each with its own pool; pooler no pooler, pgbouncer session"
            ),
            "{}",
            dimensions.describe()
        );
        // Without the flags nothing changes: one configuration, no processes set, no pooler.
        let plain = Dimensions::new(&[], &[], &[], count(4)).with_processes_and_poolers(&[], &[]);
        let configurations = plain.configurations(&ServerSpec::Peer(Peer::FlaskGunicorn));
        assert_eq!(configurations.len(), 1);
        assert_eq!(configurations[0].processes, None);
        assert_eq!(configurations[0].pooler, Pooler::None);
        assert!(!plain.varies());
    }
}
