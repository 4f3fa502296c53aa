//! What is read around every cell besides the server: the load engine's own container (in a
//! compose run) and the database (its container, or the throwaway cluster's processes), so that
//! a cell's cost per request can be told for the whole request path, not the server alone.

use crate::harness::containers::Containers;
use crate::harness::database::Database;
use crate::monitor::Watched;
use crate::results::run::{Measurement, RunContainers};
use crate::results::server::ContainerRecord;

/// What is read of the load engine and the database around every cell.
#[derive(Default)]
pub struct Sides {
    engine_container: Option<Watched>,
    database: Option<Watched>,
}

impl Sides {
    /// Finds the engine's and the database's containers (a compose run), or the throwaway
    /// cluster's postmaster.
    pub async fn find(containers: Option<&Containers>, database: &Database) -> Sides {
        match containers {
            Some(containers) => Sides {
                engine_container: containers.own().map(Watched::Container),
                database: containers
                    .of_url(&database.admin_url)
                    .await
                    .map(Watched::Container),
            },
            None => Sides {
                engine_container: None,
                database: database.postmaster_pid().map(Watched::Process),
            },
        }
    }

    pub fn records(&self) -> RunContainers {
        let record = |watched: &Option<Watched>| match watched {
            Some(Watched::Container(cgroup)) => Some(ContainerRecord::of(cgroup)),
            _ => None,
        };
        RunContainers {
            engine: record(&self.engine_container),
            database: record(&self.database),
        }
    }

    /// CPU seconds so far: (engine's container, database).
    pub fn cpu_seconds(&self) -> (Option<f64>, Option<f64>) {
        let read = |watched: &Option<Watched>| watched.as_ref().and_then(Watched::cpu_seconds);
        (read(&self.engine_container), read(&self.database))
    }

    /// Sets the CPU seconds used since `before` on `measurement`.
    pub fn record_since(&self, before: (Option<f64>, Option<f64>), measurement: &mut Measurement) {
        let after = self.cpu_seconds();
        let used = |before: Option<f64>, after: Option<f64>| {
            before
                .zip(after)
                .map(|(before, after)| (after - before).max(0.0))
        };
        measurement.engine_container_cpu_seconds = used(before.0, after.0);
        measurement.database_cpu_seconds = used(before.1, after.1);
    }
}
