//! The results format: every type written to or read from a results file lives here, and nothing
//! here measures. `results.json` of a run ([`run`]), `concurrency.json` of the concurrency study
//! ([`study`]) and `cost.json` of `bakeoff cost` ([`cost`]) are written and read back the same
//! way ([`ResultsFile`]); the shard files of load split over several engines ([`shard`]) and
//! `selftest.json` ([`selftest`]) beside them. The parts they share: each server's record
//! ([`server`]), the setup ([`setup`]), series ([`series`]), fault figures ([`recovery`]),
//! intervals ([`intervals`]) and the names of things ([`vocabulary`]).
//!
//! The harness, the engine and `measure` fill these types in; `render` reads them. Frozen files
//! of every version [`ResultsFile::read`] accepts are kept under `bench/tests/frozen/`.

pub mod cost;
pub mod intervals;
pub mod recovery;
pub mod run;
pub mod selftest;
pub mod series;
pub mod server;
pub mod setup;
pub mod shard;
pub mod study;
pub mod vocabulary;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use run::*;

/// A versioned file of figures in a results directory: `results.json` of a run, or
/// `concurrency.json` of the concurrency study. Both are written and read back the same way.
pub trait ResultsFile: Serialize + DeserializeOwned {
    /// The file's name in its results directory.
    const FILE_NAME: &'static str;
    /// The format version this bakeoff writes.
    const FORMAT_VERSION: u32;
    /// The oldest format version it still reads (fields added since are optional).
    const OLDEST_FORMAT_VERSION: u32;
    /// What the file is, for the error about a file that is not one.
    const DESCRIPTION: &'static str;

    /// Writes the file, as indented JSON, into `directory`.
    fn write(&self, directory: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).context("serializing the results")?;
        write_file(directory, Self::FILE_NAME, text)
    }

    /// Reads the file from its results directory, or from its own path; a file of a format
    /// version this bakeoff does not know is refused rather than read wrong.
    fn read(directory_or_file: &Path) -> Result<Self> {
        let path = if directory_or_file.is_dir() {
            directory_or_file.join(Self::FILE_NAME)
        } else {
            directory_or_file.to_path_buf()
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        // The version first: a file of another version may not parse as this one.
        #[derive(serde::Deserialize)]
        struct Versioned {
            format_version: u32,
        }
        let version = serde_json::from_str::<Versioned>(&text)
            .with_context(|| format!("{} is not a {}", path.display(), Self::DESCRIPTION))?
            .format_version;
        anyhow::ensure!(
            (Self::OLDEST_FORMAT_VERSION..=Self::FORMAT_VERSION).contains(&version),
            "{} has format version {version}, this bakeoff reads versions {} to {}",
            path.display(),
            Self::OLDEST_FORMAT_VERSION,
            Self::FORMAT_VERSION
        );
        let results: Self = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a {}", path.display(), Self::DESCRIPTION))?;
        Ok(results)
    }
}

/// Creates the results directory `name` (a timestamp, for one) under `out`; returns its path.
pub fn create_directory(out: &Path, name: &str) -> Result<PathBuf> {
    let directory = out.join(name);
    std::fs::create_dir_all(&directory)
        .with_context(|| format!("creating {}", directory.display()))?;
    Ok(directory)
}

/// Writes one file of a results directory (the JSON, a report).
pub fn write_file(directory: &Path, name: &str, contents: impl AsRef<[u8]>) -> Result<()> {
    let path = directory.join(name);
    std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))
}
