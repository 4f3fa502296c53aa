//! The machine a run happened on, recorded with the figures: numbers without their machine cannot
//! be compared.

use std::process::Command;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    /// Logical CPUs online.
    pub cpu_count: usize,
    pub memory_bytes: Option<u64>,
    pub kernel: String,
    pub os: String,
    pub postgres_version: Option<String>,
    pub rustc_version: String,
    pub git_commit: String,
    /// Uncommitted changes in the work tree when the run started.
    pub git_dirty: bool,
}

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
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let rest = seconds % 86_400;
    let (hour, minute, second) = (rest / 3_600, rest % 3_600 / 60, rest % 60);
    (
        format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z"),
        format!("{year:04}-{month:02}-{day:02}T{hour:02}-{minute:02}-{second:02}Z"),
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_from_days() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(super::civil_from_days(20_513), (2026, 3, 1));
    }
}
