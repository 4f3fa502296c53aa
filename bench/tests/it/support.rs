//! What the end-to-end tests share: the `bakeoff` binary with a clean environment, the variant
//! they run, a run into a temporary folder and the results directory it leaves, rendering its
//! report again, and the check of a written chart.

use std::path::{Path, PathBuf};
use std::process::Command;

use bakeoff::results::vocabulary::Variant;
use bakeoff_testkit::server::workspace_binary;
use tempfile::TempDir;

/// The `bakeoff` binary of this build, without the caller's `DATABASE_URL`: the run starts its
/// own throwaway PostgreSQL.
pub fn bakeoff() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bakeoff"));
    command.env_remove("DATABASE_URL");
    command
}

/// The first variant whose debug binary is built: the tests run one real server, whichever.
pub fn built_variant() -> String {
    Variant::all()
        .iter()
        .map(|variant| variant.name())
        .find(|name| workspace_binary(name, false).is_ok())
        .unwrap_or_else(|| {
            panic!("no variant's debug binary is built; run `cargo build --workspace` first")
        })
}

/// Runs `bakeoff` with `arguments` and `--out` a new temporary folder; the command must succeed
/// and leave one results directory there. Returns the folder (removed when dropped, so the caller
/// keeps it) and that directory.
pub fn run_bakeoff(arguments: &[&str]) -> (TempDir, PathBuf) {
    run_bakeoff_on(arguments, None)
}

/// [`run_bakeoff`] against an external database (`DATABASE_URL`) when one is given.
pub fn run_bakeoff_on(arguments: &[&str], database_url: Option<&str>) -> (TempDir, PathBuf) {
    let out = tempfile::tempdir().unwrap();
    let mut command = bakeoff();
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
    let status = command
        .args(arguments)
        .arg("--out")
        .arg(out.path())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "bakeoff {}: {status}",
        arguments.join(" ")
    );
    let mut directories: Vec<PathBuf> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(directories.len(), 1, "{directories:?}");
    let directory = directories.remove(0);
    (out, directory)
}

/// Removes `report.md` from a results directory, has `bakeoff report` render it again from the
/// directory's JSON, and returns the new text.
pub fn render_report_again(directory: &Path) -> String {
    std::fs::remove_file(directory.join("report.md")).unwrap();
    let status = bakeoff().arg("report").arg(directory).status().unwrap();
    assert!(status.success(), "bakeoff report: {status}");
    std::fs::read_to_string(directory.join("report.md")).unwrap()
}

/// The file is a whole SVG document with text in it (a chart with its labels).
pub fn assert_svg(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.starts_with("<svg") && text.trim_end().ends_with("</svg>"),
        "{}",
        path.display()
    );
    assert!(text.contains("<text"), "{} has no labels", path.display());
}
