//! Shard files (`shard-K-of-N.json`, written by `bakeoff load`, merged into one run's results
//! by `measure::merge` for `bakeoff merge`).
//!
//! A shard file keeps everything needed to merge exactly: every cell's counts and errors, its
//! engine's CPU time, its latency histograms in HdrHistogram's own lossless encoding (V2 with
//! deflate, as base64, the form of HdrHistogram's interval logs) and its series with each
//! interval's histogram.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

use crate::results::series::Series;
use crate::results::server::EffectiveSettings;
use crate::results::setup::{Machine, ShardIndex};
use crate::results::vocabulary::Scenario;

/// Bumped when the shard file's shape changes; `bakeoff merge` reads only its own version, as
/// the shards of one run are written by one build.
/// Version 2: cells measured in interleaved rounds (`round`, `rounds`), not repeats.
pub const SHARD_FORMAT_VERSION: u32 = 2;

/// One shard's file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardFile {
    pub format_version: u32,
    pub shard: ShardIndex,
    /// Where the shard ran: the node (`NODE_NAME`, set from the pod's spec in Kubernetes) or
    /// the host name.
    pub host: String,
    /// The command line, as typed.
    pub command: String,
    pub started_at: String,
    pub finished_at: String,
    pub machine: Machine,
    /// What every shard of the run must share.
    pub plan: SharedPlan,
    /// This shard's engine threads.
    pub engine_threads: usize,
    pub targets: Vec<ShardTarget>,
    pub cells: Vec<ShardCell>,
}

/// The plan as every shard of a run has it: merging refuses shards whose plans differ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedPlan {
    pub start_at: String,
    pub scenarios: Vec<Scenario>,
    /// Levels, all shards together.
    pub connections: Vec<usize>,
    /// All shards together.
    pub rate: Option<f64>,
    /// A cell's measured time over all its rounds.
    pub duration_seconds: f64,
    pub warmup_seconds: f64,
    /// Unrecorded load before each cell's window in a round.
    pub cell_warmup_seconds: f64,
    pub gap_seconds: f64,
    pub rounds: usize,
    pub timeout_seconds: f64,
    pub check_every: u64,
    pub seed: u64,
    pub statuses_only: bool,
    /// Whether the requests were drawn from a database.
    pub database: bool,
}

/// A server of the plan, as this shard reached it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardTarget {
    pub name: String,
    pub url: String,
    /// What it reported running with (`/test/resmon`), where it has the endpoint.
    pub effective: Option<EffectiveSettings>,
}

/// One recorded cell in one shard.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardCell {
    pub target: String,
    pub scenario: Scenario,
    /// The level, all shards together.
    pub connections: usize,
    pub rate: Option<f64>,
    /// The round, from 0.
    pub round: usize,
    /// This shard's part of the level.
    pub shard_connections: usize,
    pub shard_rate: Option<f64>,
    /// When the plan begins the cell's measured window (after its warm-up), and when this
    /// shard's began (RFC 3339).
    pub scheduled_start: String,
    pub window_start: String,
    pub seconds: f64,
    pub ok: u64,
    pub responses: u64,
    pub body_bytes: u64,
    pub checked_bodies: u64,
    pub errors: BTreeMap<String, u64>,
    /// CPU time of this shard's engine threads in the window.
    pub engine_cpu_seconds: f64,
    pub latency: EncodedHistogram,
    pub uncorrected_latency: Option<EncodedHistogram>,
    pub series: Series,
    /// The histogram of each interval of `series` (`None` without answers).
    pub interval_latency: Vec<Option<EncodedHistogram>>,
}

/// A histogram in HdrHistogram's V2 deflate encoding, as base64: lossless, and readable by any
/// HdrHistogram implementation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EncodedHistogram(pub String);

impl EncodedHistogram {
    pub fn encode(histogram: &Histogram<u64>) -> Result<EncodedHistogram> {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(histogram, &mut bytes)
            .map_err(|error| anyhow::anyhow!("encoding a histogram: {error:?}"))?;
        Ok(EncodedHistogram(BASE64.encode(bytes)))
    }

    pub fn decode(&self) -> Result<Histogram<u64>> {
        let bytes = BASE64
            .decode(&self.0)
            .context("a histogram that is not base64")?;
        Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|error| anyhow::anyhow!("decoding a histogram: {error:?}"))
    }
}

impl ShardCell {
    /// How busy this shard's engine was in the cell, in percent of its threads' time.
    pub fn engine_busy_percent(&self, engine_threads: usize) -> Option<f64> {
        (self.seconds > 0.0 && engine_threads > 0).then(|| {
            (self.engine_cpu_seconds / (self.seconds * engine_threads as f64) * 100.0).min(100.0)
        })
    }
}

impl ShardFile {
    /// The file's name in its folder: `shard-2-of-3.json`.
    pub fn file_name(&self) -> String {
        format!("{}.json", self.shard.slug())
    }

    /// Writes the file into `directory` (created if needed); returns its path.
    pub fn write(&self, directory: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(directory)
            .with_context(|| format!("creating {}", directory.display()))?;
        let text = serde_json::to_string_pretty(self).context("serializing the shard")?;
        crate::results::write_file(directory, &self.file_name(), text)?;
        Ok(directory.join(self.file_name()))
    }

    pub fn read(path: &Path) -> Result<ShardFile> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        #[derive(Deserialize)]
        struct Versioned {
            format_version: u32,
        }
        let version = serde_json::from_str::<Versioned>(&text)
            .with_context(|| format!("{} is not a bakeoff shard file", path.display()))?
            .format_version;
        anyhow::ensure!(
            version == SHARD_FORMAT_VERSION,
            "{} has shard format version {version}, this bakeoff reads version \
             {SHARD_FORMAT_VERSION}: load every shard of the run again with this bakeoff",
            path.display()
        );
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a bakeoff shard file", path.display()))
    }

    /// The shard files given: files as they are, folders for the `shard-*.json` in them.
    pub fn read_all(paths: &[PathBuf]) -> Result<Vec<ShardFile>> {
        let mut files = Vec::new();
        for path in paths {
            if path.is_dir() {
                let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                    .with_context(|| format!("reading {}", path.display()))?
                    .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                    .filter(|file| {
                        file.file_name()
                            .and_then(|name| name.to_str())
                            .is_some_and(|name| {
                                name.starts_with("shard-") && name.ends_with(".json")
                            })
                    })
                    .collect();
                anyhow::ensure!(
                    !found.is_empty(),
                    "{} holds no shard-*.json",
                    path.display()
                );
                found.sort();
                files.extend(found);
            } else {
                files.push(path.clone());
            }
        }
        files.iter().map(|file| ShardFile::read(file)).collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::results::Percentiles;

    #[test]
    fn a_histogram_survives_its_encoding_exactly() {
        let mut histogram = Histogram::<u64>::new(3).unwrap();
        for value in [1, 2, 3, 250, 1_000, 65_000, 3_000_000] {
            histogram.record_n(value, value % 7 + 1).unwrap();
        }
        let decoded = EncodedHistogram::encode(&histogram)
            .unwrap()
            .decode()
            .unwrap();
        assert_eq!(decoded, histogram);
        assert_eq!(Percentiles::of(&decoded), Percentiles::of(&histogram));
        assert!(EncodedHistogram("not base64!".into()).decode().is_err());
    }
}
