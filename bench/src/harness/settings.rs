//! What a server is run with, as dimensions of a run: worker count, pool size, connection-check
//! policy, the round trip added between the server and PostgreSQL, processes and a pooler; each
//! later dimension is one more field here and one more list in [`Dimensions`], and so reaches
//! every command that drives the harness.
//!
//! A [`Configuration`] is one point of the dimensions; [`Dimensions::configurations`] expands the
//! lists for one server, leaving out the points that do not apply to it (a connection-check policy
//! for a server without checkout, anything at all for a target the run does not start).

use std::fmt;
use std::num::NonZeroUsize;

pub use bakeoff_core::DbRecycle;

use crate::harness::servers::ServerSpec;
use crate::results::setup::{Configuration, Dimensions, RoundTrip, Workers};
use crate::results::vocabulary::Pooler;

impl fmt::Display for Workers {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Workers::OwnDefault => formatter.write_str("own default"),
            Workers::Fixed(count) => write!(formatter, "{count}"),
        }
    }
}

/// The lists of a run's dimensions as the flags give them; an empty list takes the default.
#[derive(Debug, Clone, Default)]
pub struct DimensionLists {
    pub workers: Vec<NonZeroUsize>,
    pub db_pool_sizes: Vec<NonZeroUsize>,
    pub recycle: Vec<DbRecycle>,
    pub db_latencies: Vec<RoundTrip>,
    pub processes: Vec<NonZeroUsize>,
    pub poolers: Vec<Pooler>,
}

impl Dimensions {
    /// The dimensions from the flags' lists; an empty list takes the default.
    pub fn new(lists: &DimensionLists, default_pool_size: NonZeroUsize) -> Dimensions {
        let DimensionLists {
            workers,
            db_pool_sizes,
            recycle,
            db_latencies,
            processes,
            poolers,
        } = lists;
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
                vec![DbRecycle::Fast]
            } else {
                recycle.to_vec()
            }),
            db_latencies: sorted(if db_latencies.is_empty() {
                vec![RoundTrip::ZERO]
            } else {
                db_latencies.to_vec()
            }),
            processes: sorted(processes.to_vec()),
            poolers: if poolers.is_empty() {
                vec![Pooler::None]
            } else {
                sorted(poolers.to_vec())
            },
        }
    }

    fn poolers_or_none(&self) -> Vec<Pooler> {
        if self.poolers.is_empty() {
            vec![Pooler::None]
        } else {
            self.poolers.clone()
        }
    }

    /// Whether some level puts a delay line between the servers and PostgreSQL.
    pub fn adds_db_latency(&self) -> bool {
        self.db_latencies.iter().any(|latency| !latency.is_zero())
    }

    /// The configurations `server` is run in; empty for a target (it runs as it was started).
    pub fn configurations(&self, server: &ServerSpec) -> Vec<Configuration> {
        let recycle_applies = match server {
            ServerSpec::Variant(variant) => variant.checks_out_connections(),
            // Every peer's pool checks connections out (asyncpg, SQLAlchemy, psycopg_pool).
            ServerSpec::Peer(_) => true,
            ServerSpec::Target(_) => return Vec::new(),
        };
        let recycle: Vec<Option<DbRecycle>> = if recycle_applies {
            self.recycle.iter().copied().map(Some).collect()
        } else {
            vec![None]
        };
        let processes: Vec<Option<NonZeroUsize>> = if self.processes.is_empty() {
            vec![None]
        } else {
            self.processes.iter().copied().map(Some).collect()
        };
        // A Python peer's processes are its WORKERS: with --processes, the workers dimension is
        // that.
        let workers = match server {
            ServerSpec::Peer(peer)
                if peer.workers_are_processes() && !self.processes.is_empty() =>
            {
                vec![Workers::OwnDefault]
            }
            _ => self.workers.clone(),
        };
        let poolers = self.poolers_or_none();
        let mut configurations = Vec::new();
        for &db_latency in &self.db_latencies {
            for &workers in &workers {
                for &db_pool_size in &self.db_pool_sizes {
                    for &recycle in &recycle {
                        for &processes in &processes {
                            for &pooler in &poolers {
                                configurations.push(Configuration {
                                    workers,
                                    db_pool_size,
                                    recycle,
                                    db_latency,
                                    processes,
                                    pooler,
                                });
                            }
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
            || self.db_latencies.len() > 1
            || self.processes.len() > 1
            || self.poolers.len() > 1
    }

    /// A server's name with the values of the dimensions that vary in the run:
    /// `actix-deadpool (verified)`, `threaded-blocking (workers 3, pool 16, db +2ms)`.
    pub fn label(&self, name: &str, configuration: Option<&Configuration>) -> String {
        let mut label = self.label_at_any_latency(name, configuration);
        // A run at one level above zero names it too: its figures are not loopback figures.
        if (self.db_latencies.len() > 1 || self.adds_db_latency())
            && let Some(configuration) = configuration
        {
            let latency = format!("db +{}", configuration.db_latency);
            label = match label.strip_suffix(')') {
                Some(open) => format!("{open}, {latency})"),
                None => format!("{label} ({latency})"),
            };
        }
        label
    }

    /// The label less the latency: one line of a chart against latency.
    pub fn label_at_any_latency(
        &self,
        name: &str,
        configuration: Option<&Configuration>,
    ) -> String {
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
        let latency = if self.adds_db_latency() {
            format!(
                "; database round trip +{} (through a delay line; 0: direct)",
                list(self.db_latencies.iter().map(ToString::to_string).collect())
            )
        } else {
            String::new()
        };
        let mut described = format!(
            "WORKERS {workers}; DB_POOL_SIZE {}; DB_RECYCLE {} (where a variant checks connections out){latency}",
            list(self.db_pool_sizes.iter().map(ToString::to_string).collect()),
            list(self.recycle.iter().map(ToString::to_string).collect()),
        );
        if !self.processes.is_empty() {
            described.push_str(&format!(
                "; PROCESSES {} (a Python peer's WORKERS), each with its own pool",
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
    use crate::harness::servers::TargetSpec;
    use crate::results::vocabulary::{Peer, PoolMode, Variant};

    fn count(value: usize) -> NonZeroUsize {
        NonZeroUsize::new(value).unwrap()
    }

    #[test]
    fn defaults_are_own_workers_pool_four_and_fast() {
        let dimensions = Dimensions::new(&DimensionLists::default(), count(4));
        let configurations =
            dimensions.configurations(&ServerSpec::Variant(Variant::ActixDeadpool));
        assert_eq!(
            configurations,
            [Configuration {
                workers: Workers::OwnDefault,
                db_pool_size: count(4),
                recycle: Some(DbRecycle::Fast),
                db_latency: RoundTrip::ZERO,
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
            &DimensionLists {
                db_pool_sizes: vec![count(16), count(4)],
                recycle: vec![DbRecycle::Verified, DbRecycle::Fast],
                ..DimensionLists::default()
            },
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
        let poolers = Dimensions::new(
            &DimensionLists {
                poolers: vec![Pooler::PgBouncer(PoolMode::Session)],
                ..DimensionLists::default()
            },
            count(4),
        );
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
    fn latency_levels_come_first_and_are_named_last() {
        let dimensions = Dimensions::new(
            &DimensionLists {
                db_pool_sizes: vec![count(16), count(4)],
                db_latencies: vec!["2ms".parse().unwrap(), RoundTrip::ZERO],
                ..DimensionLists::default()
            },
            count(4),
        );
        assert!(dimensions.adds_db_latency());
        let labels: Vec<String> = dimensions
            .configurations(&ServerSpec::Variant(Variant::AxumTokioPostgres))
            .iter()
            .map(|c| dimensions.label("axum-tokio-postgres", Some(c)))
            .collect();
        assert_eq!(
            labels,
            [
                "axum-tokio-postgres (pool 4, db +0)",
                "axum-tokio-postgres (pool 16, db +0)",
                "axum-tokio-postgres (pool 4, db +2ms)",
                "axum-tokio-postgres (pool 16, db +2ms)",
            ]
        );
        let only_latency = Dimensions::new(
            &DimensionLists {
                db_latencies: vec!["0.5ms".parse().unwrap(), RoundTrip::ZERO],
                ..DimensionLists::default()
            },
            count(4),
        );
        let configurations =
            only_latency.configurations(&ServerSpec::Variant(Variant::ActixDeadpool));
        assert_eq!(
            only_latency.label("actix-deadpool", configurations.last()),
            "actix-deadpool (db +0.5ms)"
        );
        assert_eq!(
            only_latency.label_at_any_latency("actix-deadpool", configurations.last()),
            "actix-deadpool"
        );
    }

    #[test]
    fn processes_and_poolers_multiply_and_name_themselves() {
        let dimensions = Dimensions::new(
            &DimensionLists {
                workers: vec![count(2)],
                processes: vec![count(2), count(1)],
                poolers: vec![Pooler::PgBouncer(PoolMode::Session), Pooler::None],
                ..DimensionLists::default()
            },
            count(4),
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
        // A Go peer's WORKERS are threads: --workers applies, as to a variant.
        let go = dimensions.configurations(&ServerSpec::Peer(Peer::GoPgx));
        assert!(go.iter().all(|c| c.workers == Workers::Fixed(count(2))));
        assert!(
            dimensions.describe().ends_with(
                "; PROCESSES 1, 2 (a Python peer's WORKERS), each with its own pool; pooler no pooler, pgbouncer session"
            ),
            "{}",
            dimensions.describe()
        );
        // Without the flags nothing changes: one configuration, no processes set, no pooler.
        let plain = Dimensions::new(&DimensionLists::default(), count(4));
        let configurations = plain.configurations(&ServerSpec::Peer(Peer::FlaskGunicorn));
        assert_eq!(configurations.len(), 1);
        assert_eq!(configurations[0].processes, None);
        assert_eq!(configurations[0].pooler, Pooler::None);
        assert!(!plain.varies());
    }
}
