//! Where things run: the server and the load engine on disjoint CPUs, so that neither steals the
//! other's cycles and the figures say what the server alone can do. PostgreSQL is left to the
//! scheduler (it is a shared resource of every variant, not a contestant).

use crate::results::setup::{CpuList, Placement};

/// The CPUs this process may use (its affinity mask), in order.
pub fn allowed_cpus() -> Vec<usize> {
    use nix::sched::{CpuSet, sched_getaffinity};
    match sched_getaffinity(nix::unistd::Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
            .collect(),
        Err(_) => (0..bakeoff_core::config::available_cpus().get()).collect(),
    }
}

/// The placement flags shared by `bakeoff run` and `bakeoff selftest`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PlacementArgs {
    /// CPUs of the servers, e.g. 0 or 0-1 (default: the first half of the CPUs).
    #[arg(long)]
    pub server_cpus: Option<CpuList>,
    /// CPUs of the load engine (default: the other half).
    #[arg(long)]
    pub engine_cpus: Option<CpuList>,
    /// Pin nothing.
    #[arg(long)]
    pub no_pin: bool,
    /// Engine threads (default: one per engine CPU).
    #[arg(long)]
    pub engine_threads: Option<usize>,
}

impl Placement {
    /// The default: with two or more CPUs, the server gets the first half (at least one) and the
    /// engine the rest (on two CPUs: server on CPU 0, engine on CPU 1). With one CPU nothing can
    /// be separated, and nothing is pinned.
    pub fn choose(options: &PlacementArgs) -> Result<Placement, String> {
        let PlacementArgs {
            server_cpus: server,
            engine_cpus: engine,
            no_pin,
            engine_threads,
        } = options.clone();
        let allowed = allowed_cpus();
        let (server, engine) = if no_pin {
            (None, None)
        } else {
            let half = (allowed.len() / 2).max(1);
            let default_server = CpuList::new(allowed[..half.min(allowed.len())].to_vec());
            let default_engine = CpuList::new(allowed[half.min(allowed.len())..].to_vec());
            match (server, engine) {
                (Some(server), Some(engine)) => (Some(server), Some(engine)),
                (Some(server), None) => {
                    let rest = allowed
                        .iter()
                        .copied()
                        .filter(|cpu| !server.cpus().contains(cpu))
                        .collect();
                    let engine = CpuList::new(rest);
                    (Some(server), engine)
                }
                (None, Some(engine)) => {
                    let rest = allowed
                        .iter()
                        .copied()
                        .filter(|cpu| !engine.cpus().contains(cpu))
                        .collect();
                    (CpuList::new(rest), Some(engine))
                }
                (None, None) => match (default_server, default_engine) {
                    (Some(server), Some(engine)) => (Some(server), Some(engine)),
                    _ => (None, None),
                },
            }
        };
        for list in [&server, &engine].into_iter().flatten() {
            if let Some(cpu) = list.cpus().iter().find(|cpu| !allowed.contains(cpu)) {
                return Err(format!(
                    "CPU {cpu} is not available here (allowed: {})",
                    CpuList::new(allowed.clone()).map_or_else(String::new, |l| l.to_string())
                ));
            }
        }
        if let (Some(server), Some(engine)) = (&server, &engine)
            && server.overlaps(engine)
        {
            return Err(format!(
                "the server CPUs ({server}) and the engine CPUs ({engine}) overlap; they must be disjoint"
            ));
        }
        let engine_threads = engine_threads
            .unwrap_or_else(|| engine.as_ref().map_or(1, CpuList::len))
            .max(1);
        let note = match (&server, &engine) {
            (Some(server), Some(engine)) => format!(
                "server pinned to CPU {server}, load engine ({engine_threads} thread(s)) to CPU {engine}; PostgreSQL unpinned"
            ),
            (Some(server), None) => {
                format!("server pinned to CPU {server}, load engine unpinned; PostgreSQL unpinned")
            }
            (None, Some(engine)) => {
                format!("server unpinned, load engine pinned to CPU {engine}; PostgreSQL unpinned")
            }
            (None, None) if no_pin => "nothing pinned (--no-pin)".to_string(),
            (None, None) => "nothing pinned (a single CPU cannot be split)".to_string(),
        };
        Ok(Placement {
            server_cpus: server,
            engine_cpus: engine,
            engine_threads,
            note,
        })
    }

    /// Nothing pinned, one engine thread: for commands that measure nothing (`bakeoff verify`).
    pub fn unpinned() -> Placement {
        Placement {
            server_cpus: None,
            engine_cpus: None,
            engine_threads: 1,
            note: "nothing pinned".to_string(),
        }
    }

    /// The command that starts `program` on the server CPUs (through `taskset -c`).
    pub fn server_command(&self, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
        command_on(self.server_cpus.as_ref(), program)
    }

    /// The command that starts `program` on the engine CPUs: the load tools of `selftest` and the
    /// delay line, whose cycles belong with the load rather than with the server.
    pub fn engine_command(&self, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
        command_on(self.engine_cpus.as_ref(), program)
    }
}

/// `program` under `taskset -c cpus`, or as it is where nothing is pinned.
fn command_on(
    cpus: Option<&CpuList>,
    program: impl AsRef<std::ffi::OsStr>,
) -> std::process::Command {
    let Some(cpus) = cpus else {
        return std::process::Command::new(program);
    };
    let mut command = std::process::Command::new("taskset");
    command.arg("-c").arg(cpus.to_string()).arg(program);
    command
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_round_trip() {
        let list: CpuList = "3,0-1, 7".parse().unwrap();
        assert_eq!(list.cpus(), [0, 1, 3, 7]);
        assert_eq!(list.to_string(), "0-1,3,7");
        assert!("".parse::<CpuList>().is_err());
        assert!("2-1".parse::<CpuList>().is_err());
        assert!("x".parse::<CpuList>().is_err());
    }
}
