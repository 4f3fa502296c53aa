//! A server seen from /proc as the whole tree of processes it started: one Rust binary is one
//! process, a peer is gunicorn's master and its workers. CPU, memory and threads are summed over
//! the tree, so a server of several processes is measured as what it costs, not as its parent.

use std::collections::HashSet;

/// What /proc says about a process and its descendants at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TreeSample {
    /// User + system CPU seconds of every process in the tree (the ones still alive).
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
    pub threads: u64,
    pub processes: u64,
}

/// Reads `pid` and every process below it; `None` when `pid` is gone.
pub fn read_tree(pid: u32) -> Option<TreeSample> {
    let root = i32::try_from(pid).ok()?;
    let ticks = procfs::ticks_per_second() as f64;
    let page = procfs::page_size();
    let mut sample = TreeSample::default();
    let mut seen = HashSet::new();
    let mut pending = vec![root];
    while let Some(pid) = pending.pop() {
        if !seen.insert(pid) {
            continue;
        }
        let Ok(process) = procfs::process::Process::new(pid) else {
            continue;
        };
        let Ok(stat) = process.stat() else {
            // The root must be readable; a child that just exited is simply not counted.
            if pid == root {
                return None;
            }
            continue;
        };
        sample.cpu_seconds += (stat.utime + stat.stime) as f64 / ticks;
        sample.rss_bytes += stat.rss * page;
        sample.threads += u64::try_from(stat.num_threads).unwrap_or(0);
        sample.processes += 1;
        pending.extend(children(&process));
    }
    (sample.processes > 0).then_some(sample)
}

/// `pid` and every process below it, parents before their children; empty when `pid` is gone.
pub fn tree_pids(pid: u32) -> Vec<i32> {
    let Ok(root) = i32::try_from(pid) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut pending = vec![root];
    while let Some(pid) = pending.pop() {
        if found.contains(&pid) {
            continue;
        }
        let Ok(process) = procfs::process::Process::new(pid) else {
            continue;
        };
        found.push(pid);
        pending.extend(children(&process));
    }
    found
}

/// The local TCP ports of the sockets that the processes below `roots` hold: the client ports
/// by which PostgreSQL's activity view tells one server's connections from another's, when
/// several servers share a database and a role.
pub fn tcp_ports_of(roots: &[u32]) -> Vec<u16> {
    let mut inodes = HashSet::new();
    for &root in roots {
        for pid in tree_pids(root) {
            let Ok(process) = procfs::process::Process::new(pid) else {
                continue;
            };
            let Ok(descriptors) = process.fd() else {
                continue;
            };
            for descriptor in descriptors.flatten() {
                if let procfs::process::FDTarget::Socket(inode) = descriptor.target {
                    inodes.insert(inode);
                }
            }
        }
    }
    let mut ports: Vec<u16> = procfs::net::tcp()
        .into_iter()
        .chain(procfs::net::tcp6())
        .flatten()
        .filter(|entry| inodes.contains(&entry.inode))
        .map(|entry| entry.local_address.port())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// The children of every thread of `process` (/proc/PID/task/TID/children).
fn children(process: &procfs::process::Process) -> Vec<i32> {
    let Ok(tasks) = process.tasks() else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| task.children().ok())
        .flatten()
        .filter_map(|child| i32::try_from(child).ok())
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_counts_its_children() {
        let mut parent = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30 & wait"])
            .spawn()
            .unwrap();
        let pid = parent.id();
        let mut sample = None;
        for _ in 0..100 {
            sample = read_tree(pid);
            if sample.is_some_and(|s| s.processes == 3) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let sample = sample.unwrap();
        assert_eq!(sample.processes, 3, "{sample:?}");
        assert!(sample.threads >= 3 && sample.rss_bytes > 0);
        let alone = read_tree(std::process::id()).unwrap();
        assert!(alone.processes >= 1);
        let _ = std::process::Command::new("pkill")
            .args(["-P", &pid.to_string()])
            .status();
        parent.kill().unwrap();
        parent.wait().unwrap();
    }
}
