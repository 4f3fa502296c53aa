//! Containers seen from the host's cgroups, for servers the run did not start: in a compose run
//! the benchmark container mounts the host's `/sys/fs/cgroup` read-only (`--container-cgroups`)
//! and reads each target container's CPU time, memory, threads and limits from it, its own
//! container's (the load engine's) and the database's, as /proc gives them for the servers it
//! starts. Nothing is asked of the containers themselves.
//!
//! Both layouts: cgroup v1 (one hierarchy per controller, `cpuacct.usage` in nanoseconds,
//! `cpu.cfs_quota_us`, `memory.limit_in_bytes`) and v2 (one hierarchy, `cpu.stat`, `cpu.max`,
//! `memory.max`), and both drivers' names: `.../<id>` (cgroupfs) and `.../docker-<id>.scope`
//! (systemd).

use std::path::{Path, PathBuf};

use crate::results::setup::ContainerLimits;

/// How deep below a hierarchy's root container cgroups are looked for (`/docker/<id>`,
/// `/system.slice/docker-<id>.scope`, or under a `cgroup_parent`).
const SEARCH_DEPTH: usize = 4;

/// A cgroup hierarchy, mounted at `root`.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    root: PathBuf,
    layout: Layout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    V1,
    V2,
}

/// A controller of cgroup v1 (v2 has them all in one hierarchy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Controller {
    Cpu,
    Cpuacct,
    Cpuset,
    Memory,
    Pids,
}

impl Controller {
    fn name(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Cpuacct => "cpuacct",
            Controller::Cpuset => "cpuset",
            Controller::Memory => "memory",
            Controller::Pids => "pids",
        }
    }
}

impl Hierarchy {
    /// The hierarchy mounted at `root`: v2 when it has `cgroup.controllers`, v1 when it has a
    /// `cpuacct` controller folder (`cpuacct` or `cpu,cpuacct`).
    pub fn open(root: &Path) -> Result<Hierarchy, String> {
        let hierarchy = |layout| Hierarchy {
            root: root.to_path_buf(),
            layout,
        };
        if root.join("cgroup.controllers").is_file() {
            return Ok(hierarchy(Layout::V2));
        }
        let v1 = hierarchy(Layout::V1);
        if v1.controller_root(Controller::Cpuacct).is_some() {
            return Ok(v1);
        }
        Err(format!(
            "{}: not a cgroup hierarchy (no cgroup.controllers, no cpuacct controller); mount the \
             host's /sys/fs/cgroup there",
            root.display()
        ))
    }

    /// Where a controller's hierarchy is: v1's folder named by it alone or with others
    /// (`cpu,cpuacct`), v2's root.
    fn controller_root(&self, controller: Controller) -> Option<PathBuf> {
        if self.layout == Layout::V2 {
            return Some(self.root.clone());
        }
        let entries = std::fs::read_dir(&self.root).ok()?;
        entries
            .flatten()
            .filter(|entry| entry.path().is_dir())
            .find(|entry| {
                entry
                    .file_name()
                    .to_string_lossy()
                    .split(',')
                    .any(|name| name == controller.name())
            })
            .map(|entry| entry.path())
    }

    /// The root from which container cgroups are listed: v1's cpuacct, v2's root.
    fn listing_root(&self) -> Option<PathBuf> {
        self.controller_root(Controller::Cpuacct)
    }

    /// Every container cgroup below the root: folders whose name holds a 64-digit hexadecimal
    /// container id.
    pub fn containers(&self) -> Vec<ContainerCgroup> {
        let Some(root) = self.listing_root() else {
            return Vec::new();
        };
        let mut found = Vec::new();
        let mut pending = vec![(root.clone(), 0)];
        while let Some((folder, depth)) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&folder) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if !path.is_dir() {
                    continue;
                }
                match container_id(&entry.file_name().to_string_lossy()) {
                    Some(id) => {
                        if let Ok(relative) = path.strip_prefix(&root) {
                            found.push(self.cgroup(id, relative));
                        }
                    }
                    None if depth + 1 < SEARCH_DEPTH => pending.push((path, depth + 1)),
                    None => {}
                }
            }
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        found
    }

    /// The cgroup of the process reading this, from `/proc/self/cgroup`, when it is a
    /// container's: by its path where cgroups are not namespaced (v1), and otherwise by the
    /// host name, which Docker sets to the container's short id unless told otherwise.
    pub fn own_container(&self) -> Option<ContainerCgroup> {
        let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let controller = match self.layout {
            Layout::V1 => Controller::Cpuacct.name(),
            Layout::V2 => "",
        };
        let path = own_cgroup_path(&own, controller)?;
        let containers = self.containers();
        if let Some(found) = containers
            .iter()
            .find(|container| Path::new(&path).ends_with(&container.relative))
        {
            return Some(found.clone());
        }
        let hostname = std::fs::read_to_string("/etc/hostname").ok()?;
        let hostname = hostname.trim();
        (hostname.len() == SHORT_ID_LENGTH)
            .then(|| {
                containers
                    .into_iter()
                    .find(|container| container.id.starts_with(hostname))
            })
            .flatten()
    }

    fn cgroup(&self, id: String, relative: &Path) -> ContainerCgroup {
        ContainerCgroup {
            id,
            relative: relative.to_path_buf(),
            hierarchy: self.clone(),
        }
    }
}

/// Docker's short container id: what `docker ps` shows, the default host name, and the alias
/// every container has on a user-defined network.
pub const SHORT_ID_LENGTH: usize = 12;

/// The container id in a cgroup folder's name: `<id>`, `docker-<id>.scope`, `libpod-<id>.scope`.
fn container_id(name: &str) -> Option<String> {
    let stem = name.strip_suffix(".scope").unwrap_or(name);
    let id = stem.rsplit('-').next()?;
    (id.len() == 64 && id.bytes().all(|byte| byte.is_ascii_hexdigit())).then(|| id.to_string())
}

/// The path of `controller`'s line in `/proc/self/cgroup` (`4:cpu,cpuacct:/docker/<id>`);
/// `controller` empty for v2's `0::/...`.
fn own_cgroup_path(proc_self_cgroup: &str, controller: &str) -> Option<String> {
    proc_self_cgroup.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let matches = if controller.is_empty() {
            controllers.is_empty()
        } else {
            controllers.split(',').any(|name| name == controller)
        };
        matches.then(|| path.to_string())
    })
}

/// One container's cgroup.
#[derive(Debug, Clone)]
pub struct ContainerCgroup {
    /// The full container id.
    pub id: String,
    /// Its path below each controller's root.
    relative: PathBuf,
    hierarchy: Hierarchy,
}

impl ContainerCgroup {
    /// The short id.
    pub fn short_id(&self) -> &str {
        &self.id[..SHORT_ID_LENGTH.min(self.id.len())]
    }

    /// Its path below a controller's root, as the host names it.
    pub fn path(&self) -> String {
        format!("/{}", self.relative.display())
    }

    fn file(&self, controller: Controller, name: &str) -> Option<String> {
        let root = self.hierarchy.controller_root(controller)?;
        std::fs::read_to_string(root.join(&self.relative).join(name)).ok()
    }

    /// CPU seconds used by every process of the container since it started.
    pub fn cpu_seconds(&self) -> Option<f64> {
        match self.hierarchy.layout {
            Layout::V1 => {
                let nanoseconds: u64 = self
                    .file(Controller::Cpuacct, "cpuacct.usage")?
                    .trim()
                    .parse()
                    .ok()?;
                Some(nanoseconds as f64 / 1e9)
            }
            Layout::V2 => {
                let stat = self.file(Controller::Cpu, "cpu.stat")?;
                let microseconds: u64 = stat_value(&stat, "usage_usec")?;
                Some(microseconds as f64 / 1e6)
            }
        }
    }

    /// Anonymous memory of its processes (what RSS mostly is; page cache left out): v1's
    /// `total_rss`, v2's `anon`.
    pub fn memory_bytes(&self) -> Option<u64> {
        let stat = self.file(Controller::Memory, "memory.stat")?;
        match self.hierarchy.layout {
            Layout::V1 => stat_value(&stat, "total_rss"),
            Layout::V2 => stat_value(&stat, "anon"),
        }
    }

    /// Threads (tasks) in it now, from the pids controller: the lists of tasks and processes
    /// name only those in the reader's own PID namespace, none of another container's.
    pub fn threads(&self) -> Option<u64> {
        self.file(Controller::Pids, "pids.current")?
            .trim()
            .parse()
            .ok()
    }

    /// The limits its cgroup enforces.
    pub fn limits(&self) -> ContainerLimits {
        let cpus = match self.hierarchy.layout {
            Layout::V1 => {
                let quota: i64 = self
                    .file(Controller::Cpu, "cpu.cfs_quota_us")
                    .and_then(|text| text.trim().parse().ok())
                    .unwrap_or(-1);
                let period: i64 = self
                    .file(Controller::Cpu, "cpu.cfs_period_us")
                    .and_then(|text| text.trim().parse().ok())
                    .unwrap_or(0);
                (quota > 0 && period > 0).then(|| quota as f64 / period as f64)
            }
            Layout::V2 => self
                .file(Controller::Cpu, "cpu.max")
                .and_then(|text| parse_cpu_max(&text)),
        };
        let cpuset_file = match self.hierarchy.layout {
            Layout::V1 => "cpuset.cpus",
            Layout::V2 => "cpuset.cpus.effective",
        };
        let memory = match self.hierarchy.layout {
            Layout::V1 => self.file(Controller::Memory, "memory.limit_in_bytes"),
            Layout::V2 => self.file(Controller::Memory, "memory.max"),
        };
        ContainerLimits {
            cpus,
            cpuset: self
                .file(Controller::Cpuset, cpuset_file)
                .map(|text| text.trim().to_string())
                .filter(|text| !text.is_empty()),
            memory_bytes: memory.and_then(|text| parse_memory_limit(&text)),
        }
    }
}

/// A `key value` line's value in a cgroup `*.stat` file.
fn stat_value(stat: &str, key: &str) -> Option<u64> {
    stat.lines().find_map(|line| {
        let (name, value) = line.split_once(' ')?;
        (name == key).then(|| value.trim().parse().ok()).flatten()
    })
}

/// v2's `cpu.max`, `QUOTA PERIOD` or `max PERIOD`, in CPUs.
fn parse_cpu_max(text: &str) -> Option<f64> {
    let (quota, period) = text.trim().split_once(' ')?;
    let quota: f64 = quota.parse().ok()?;
    let period: f64 = period.parse().ok()?;
    (period > 0.0).then(|| quota / period)
}

/// A memory limit: v2's `max` and v1's near-`i64::MAX` "unlimited" are `None`.
fn parse_memory_limit(text: &str) -> Option<u64> {
    let bytes: u64 = text.trim().parse().ok()?;
    // v1 reports no limit as the largest page-aligned i64.
    (bytes < 1 << 62).then_some(bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ID: &str = "e1e3309655012e3c34d589d2fe737e9564b80f156da1f0d8f9d5826e1bca6601";

    #[test]
    fn container_ids_in_folder_names() {
        assert_eq!(container_id(ID).as_deref(), Some(ID));
        assert_eq!(
            container_id(&format!("docker-{ID}.scope")).as_deref(),
            Some(ID)
        );
        assert_eq!(container_id("system.slice"), None);
        assert_eq!(container_id(&ID[..63]), None);
        assert_eq!(container_id(&format!("{}g", &ID[..63])), None);
    }

    #[test]
    fn own_cgroup_lines() {
        let v1 = format!("9:name=systemd:/docker/{ID}\n4:cpu,cpuacct:/docker/{ID}\n1:cpuset:/\n");
        assert_eq!(
            own_cgroup_path(&v1, "cpuacct"),
            Some(format!("/docker/{ID}"))
        );
        assert_eq!(own_cgroup_path(&v1, "cpuset").as_deref(), Some("/"));
        assert_eq!(own_cgroup_path("0::/\n", "").as_deref(), Some("/"));
        assert_eq!(own_cgroup_path(&v1, ""), None);
    }

    #[test]
    fn limits_parse() {
        assert_eq!(parse_cpu_max("200000 100000\n"), Some(2.0));
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_memory_limit("1073741824\n"), Some(1 << 30));
        assert_eq!(parse_memory_limit("9223372036854771712\n"), None);
        assert_eq!(parse_memory_limit("max\n"), None);
        assert_eq!(
            stat_value("cache 1\nrss 5\ntotal_rss 7\n", "total_rss"),
            Some(7)
        );
        assert_eq!(
            stat_value("usage_usec 250\nuser_usec 1\n", "usage_usec"),
            Some(250)
        );
    }

    /// A v1 hierarchy laid out in a folder as the kernel lays it out, read back.
    #[test]
    fn a_v1_hierarchy_is_read() {
        let root = tempfile::tempdir().unwrap();
        let container = |controller: &str| root.path().join(controller).join("docker").join(ID);
        for controller in ["cpu", "cpuacct", "cpuset", "memory", "pids"] {
            std::fs::create_dir_all(container(controller)).unwrap();
        }
        std::fs::create_dir_all(root.path().join("cpuacct/system.slice")).unwrap();
        let write = |controller: &str, file: &str, text: &str| {
            std::fs::write(container(controller).join(file), text).unwrap();
        };
        write("cpuacct", "cpuacct.usage", "1500000000\n");
        write("pids", "pids.current", "3\n");
        write("cpu", "cpu.cfs_quota_us", "150000\n");
        write("cpu", "cpu.cfs_period_us", "100000\n");
        write("cpuset", "cpuset.cpus", "0-1\n");
        write("memory", "memory.limit_in_bytes", "1073741824\n");
        write(
            "memory",
            "memory.stat",
            "cache 4096\nrss 8192\ntotal_rss 8192\n",
        );

        let hierarchy = Hierarchy::open(root.path()).unwrap();
        let containers = hierarchy.containers();
        assert_eq!(containers.len(), 1);
        let found = &containers[0];
        assert_eq!(found.short_id(), "e1e330965501");
        assert_eq!(found.path(), format!("/docker/{ID}"));
        assert_eq!(found.cpu_seconds(), Some(1.5));
        assert_eq!(found.memory_bytes(), Some(8192));
        assert_eq!(found.threads(), Some(3));
        assert_eq!(
            found.limits(),
            ContainerLimits {
                cpus: Some(1.5),
                cpuset: Some("0-1".to_string()),
                memory_bytes: Some(1 << 30),
            }
        );
        assert!(Hierarchy::open(&root.path().join("cpu")).is_err());
    }
}
