//! The containers' section of a report: in a compose run (`--container-cgroups`), each
//! container's limits as its cgroup enforces them; and, in every run, the CPU time per 1,000
//! answers of the server, the load engine and the database side by side, so that a compose run
//! and a loopback run of the same servers can be set against each other.

use std::fmt::Write as _;

use crate::format::{Table, group_thousands};
use crate::results::run::{Measurement, RunResults};
use crate::results::server::ContainerRecord;

/// Whether the run found containers (a compose run).
pub fn applies(results: &RunResults) -> bool {
    results.containers.is_some()
        || results
            .servers
            .iter()
            .any(|server| server.record.container.is_some())
}

/// Every container with its role: the servers', the engine's, the database's.
fn containers(results: &RunResults) -> Vec<(String, &ContainerRecord)> {
    let mut rows: Vec<(String, &ContainerRecord)> = results
        .servers
        .iter()
        .filter_map(|server| {
            let container = server.record.container.as_ref()?;
            Some((server.record.shown_name().to_string(), container))
        })
        .collect();
    if let Some(sides) = &results.containers {
        rows.extend(
            sides
                .engine
                .iter()
                .map(|container| ("load engine".to_string(), container)),
        );
        rows.extend(
            sides
                .database
                .iter()
                .map(|container| ("database".to_string(), container)),
        );
    }
    rows
}

/// The containers and their limits.
pub fn limits_table(results: &RunResults) -> Table {
    let mut table = Table::new(&["container", "id", "CPUs", "cpuset", "memory MiB"]);
    for (name, container) in containers(results) {
        let limits = &container.limits;
        table.rows.push(vec![
            name,
            container.id.clone(),
            limits
                .cpus
                .map_or_else(|| "unlimited".to_string(), |cpus| format!("{cpus:.2}")),
            limits.cpuset.clone().unwrap_or_else(|| "–".to_string()),
            limits.memory_bytes.map_or_else(
                || "unlimited".to_string(),
                |bytes| group_thousands((bytes >> 20) as i64),
            ),
        ]);
    }
    table
}

/// CPU milliseconds per 1,000 answers of one cell's median run: the server, the load engine
/// (its container's in a compose run, its threads' otherwise) and the database.
pub fn cpu_per_thousand(run: &Measurement) -> [Option<f64>; 3] {
    let server = run
        .server
        .as_ref()
        .and_then(|figures| figures.cpu_ms_per_1k);
    let engine =
        run.cpu_ms_per_thousand(run.engine_container_cpu_seconds.or(run.engine_cpu_seconds));
    let database = run.cpu_ms_per_thousand(run.database_cpu_seconds);
    [server, engine, database]
}

/// Every server's cells with their CPU per 1,000 answers, where anything was read.
pub fn cpu_table(results: &RunResults) -> Table {
    let engine = if results.containers.is_some() {
        "engine container"
    } else {
        "engine threads"
    };
    let mut table = Table::new(&[
        "server",
        "scenario",
        "connections",
        "req/s",
        "server",
        engine,
        "database",
        "total",
    ]);
    let shown = |value: Option<f64>| value.map_or_else(|| "–".to_string(), |v| format!("{v:.1}"));
    for server in &results.servers {
        for cell in &server.cells {
            let Some(run) = cell.median() else { continue };
            let parts = cpu_per_thousand(run);
            if parts.iter().all(Option::is_none) {
                continue;
            }
            let total = parts.iter().flatten().sum::<f64>();
            table.rows.push(vec![
                server.record.shown_name().to_string(),
                cell.scenario.to_string(),
                cell.connections.to_string(),
                group_thousands(cell.summary.ok_per_second.round() as i64),
                shown(parts[0]),
                shown(parts[1]),
                shown(parts[2]),
                format!("{total:.1}"),
            ]);
        }
    }
    table
}

/// The section for report.md.
pub fn markdown(results: &RunResults) -> String {
    let mut text = String::new();
    if applies(results) {
        text.push_str("\n## Containers\n\n");
        text.push_str(
            "Each container's limits, read from its cgroup (`CPUs` is the CPU-time quota; \
             `unlimited` where none is set):\n\n",
        );
        text.push_str(&limits_table(results).markdown());
        text.push('\n');
    }
    let cpu = cpu_table(results);
    if !cpu.rows.is_empty() {
        let _ = write!(
            text,
            "\n## CPU per 1,000 answers\n\nCPU milliseconds per 1,000 answers, each cell's median \
             run: the server ({}), the load engine ({}) and the database ({}).\n\n",
            if applies(results) {
                "its container's cgroup"
            } else {
                "its process tree"
            },
            if results.containers.is_some() {
                "its container's cgroup: the engine with its share of the network"
            } else {
                "its threads"
            },
            if applies(results) {
                "its container's cgroup"
            } else {
                "the throwaway cluster's processes"
            },
        );
        text.push_str(&cpu.markdown());
        text.push('\n');
    }
    text
}

/// The section for the terminal.
pub fn terminal(results: &RunResults) -> String {
    let mut text = String::new();
    if applies(results) {
        text.push_str("\nContainers and their limits (from their cgroups)\n\n");
        text.push_str(&limits_table(results).terminal());
    }
    let cpu = cpu_table(results);
    if !cpu.rows.is_empty() {
        text.push_str("\nCPU ms per 1,000 answers\n\n");
        text.push_str(&cpu.terminal());
    }
    text
}
