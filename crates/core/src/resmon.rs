//! `GET /test/resmon`: the server's own resource use, read from /proc by the process itself.

use serde::{Deserialize, Serialize};

/// The body of `/test/resmon`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceSnapshot {
    pub variant: String,
    pub pid: u32,
    pub threads: i64,
    pub rss_bytes: u64,
    pub cpu_user_seconds: f64,
    pub cpu_system_seconds: f64,
    pub uptime_seconds: f64,
    pub workers: usize,
    pub db_pool_size: usize,
}

/// Reads the calling process. Fails only where /proc is missing (not Linux).
pub fn snapshot(
    variant: &str,
    workers: usize,
    db_pool_size: usize,
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
        workers,
        db_pool_size,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let snapshot = super::snapshot("test", 2, 3).unwrap();
        assert!(snapshot.threads >= 1);
        assert!(snapshot.rss_bytes > 0);
        assert_eq!(snapshot.pid, std::process::id());
    }
}
