//! `GET /test/resmon`: the server's own resource use, read from /proc by the process itself.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::DbRecycle;

/// The body of `/test/resmon`: the server process as it reads itself from /proc.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResourceSnapshot {
    pub variant: String,
    #[schema(minimum = 1)]
    pub pid: u32,
    /// OS threads of the process.
    #[schema(minimum = 1)]
    pub threads: i64,
    /// Resident memory.
    pub rss_bytes: u64,
    #[schema(minimum = 0)]
    pub cpu_user_seconds: f64,
    #[schema(minimum = 0)]
    pub cpu_system_seconds: f64,
    /// Seconds since the process started.
    #[schema(minimum = 0)]
    pub uptime_seconds: f64,
    /// `PROCESSES`: how many copies of the server share its port (this is one of them). 1 in a
    /// snapshot recorded before the field existed.
    #[serde(default = "one_process")]
    #[schema(minimum = 1)]
    pub processes: usize,
    /// `WORKERS` as the server applied it (in each process).
    #[schema(minimum = 1)]
    pub workers: usize,
    /// `DB_POOL_SIZE` as the server applied it.
    #[schema(minimum = 1)]
    pub db_pool_size: usize,
    /// The effective `DB_RECYCLE`. Always sent by the servers; `None` only when reading a
    /// snapshot recorded before the field existed (an older `concurrency.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_recycle: Option<DbRecycle>,
}

fn one_process() -> usize {
    1
}

/// Reads the calling process. Fails only where /proc is missing (not Linux).
pub fn snapshot(
    variant: &str,
    workers: usize,
    db_pool_size: usize,
    db_recycle: DbRecycle,
) -> Result<ResourceSnapshot, procfs::ProcError> {
    use procfs::Current;

    let process = procfs::process::Process::myself()?;
    let stat = process.stat()?;
    let ticks_per_second = procfs::ticks_per_second() as f64;
    let system_uptime = procfs::Uptime::current()?.uptime;
    Ok(ResourceSnapshot {
        variant: variant.to_string(),
        pid: std::process::id(),
        threads: stat.num_threads,
        rss_bytes: stat.rss * procfs::page_size(),
        cpu_user_seconds: stat.utime as f64 / ticks_per_second,
        cpu_system_seconds: stat.stime as f64 / ticks_per_second,
        uptime_seconds: (system_uptime - stat.starttime as f64 / ticks_per_second).max(0.0),
        processes: crate::process_group::role().processes(),
        workers,
        db_pool_size,
        db_recycle: Some(db_recycle),
    })
}

#[cfg(test)]
mod tests {
    use crate::config::DbRecycle;

    #[test]
    fn reads_this_process() {
        let snapshot = super::snapshot("test", 2, 3, DbRecycle::Verified).unwrap();
        assert!(snapshot.threads >= 1);
        assert!(snapshot.rss_bytes > 0);
        assert_eq!(snapshot.pid, std::process::id());
        let json = serde_json::to_value(&snapshot).unwrap();
        assert_eq!(json["db_recycle"], "verified");
        assert_eq!(json["db_pool_size"], 3);
    }

    #[test]
    fn reads_a_snapshot_recorded_before_db_recycle() {
        let recorded = r#"{"variant":"x","pid":1,"threads":2,"rss_bytes":3,"cpu_user_seconds":0.5,
            "cpu_system_seconds":0.25,"uptime_seconds":9.0,"workers":2,"db_pool_size":4}"#;
        let snapshot: super::ResourceSnapshot = serde_json::from_str(recorded).unwrap();
        assert_eq!(snapshot.db_recycle, None);
        assert_eq!(snapshot.processes, 1);
    }
}
