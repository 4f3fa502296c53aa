//! The machine a run happened on, recorded with the figures: numbers without their machine cannot
//! be compared.

use std::process::Command;

use crate::results::setup::Machine;

impl Machine {
    /// Reads what is known here; `postgres_version` is filled in by the run once it is connected.
    pub fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let cpu_count = cpuinfo
            .lines()
            .filter(|line| line.starts_with("processor"))
            .count()
            .max(1);
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                let line = text.lines().find(|line| line.starts_with("MemTotal:"))?;
                let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kilobytes * 1024)
            });
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|text| text.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|text| {
                text.lines().find_map(|line| {
                    line.strip_prefix("PRETTY_NAME=")
                        .map(|value| value.trim_matches('"').to_string())
                })
            })
            .unwrap_or_else(|| std::env::consts::OS.to_string());
        let git_commit = output_of("git", &["rev-parse", "--short=12", "HEAD"])
            .unwrap_or_else(|| "unknown".into());
        let git_dirty = output_of("git", &["status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|status| !status.is_empty());
        Machine {
            cpu_model,
            cpu_count,
            memory_bytes,
            kernel,
            os,
            postgres_version: None,
            rustc_version: output_of("rustc", &["--version"]).unwrap_or_else(|| "unknown".into()),
            git_commit,
            git_dirty,
        }
    }

    /// The first lines of a comparison of two runs: each run's start and machine, A then B.
    pub fn compared(before: (&str, &Machine), after: (&str, &Machine)) -> String {
        format!(
            "A: {} ({})\nB: {} ({})\n",
            before.0,
            before.1.line(),
            after.0,
            after.1.line()
        )
    }

    /// One line for reports: `Intel Xeon ... (2 CPUs), Linux 6.1, PostgreSQL 17.2, rustc 1.95`.
    pub fn line(&self) -> String {
        let memory = self
            .memory_bytes
            .map(|bytes| format!(", {:.1} GiB", bytes as f64 / (1u64 << 30) as f64))
            .unwrap_or_default();
        // No version is known where no database was used (`bakeoff selftest`).
        let postgres = self
            .postgres_version
            .as_deref()
            .map(|version| format!(", PostgreSQL {version}"))
            .unwrap_or_default();
        format!(
            "{} ({} CPUs{memory}), {} (Linux {}){postgres}, {}, commit {}{}",
            self.cpu_model,
            self.cpu_count,
            self.os,
            self.kernel,
            self.rustc_version,
            self.git_commit,
            if self.git_dirty { " (dirty)" } else { "" }
        )
    }
}

fn output_of(program: &str, arguments: &[&str]) -> Option<String> {
    let output = Command::new(program).args(arguments).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Now as UTC `YYYY-MM-DDTHH:MM:SSZ`, and as a directory name `YYYY-MM-DDTHH-MM-SSZ`.
pub fn utc_now() -> (String, String) {
    let now = jiff::Timestamp::now();
    (
        now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        now.strftime("%Y-%m-%dT%H-%M-%SZ").to_string(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_are_utc_and_the_folder_name_has_no_colons() {
        let (stamp, folder) = super::utc_now();
        assert_eq!(stamp.len(), "2026-01-01T00:00:00Z".len(), "{stamp}");
        assert!(stamp.ends_with('Z') && stamp.contains('T'), "{stamp}");
        assert_eq!(folder, stamp.replace(':', "-"));
    }
}
