//! `bakeoff merge SHARD... --out DIR`: the shard files of one run (`bakeoff load --shard K/N`,
//! from one host or many) merged into one results folder, rendered like any run's
//! (`results::shard::merge`, then the report).

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::measure::merge::merge as merge_shards;
use crate::results::ResultsFile;
use crate::results::shard::ShardFile;

/// The options of `bakeoff merge`.
#[derive(Debug, Clone, clap::Args)]
pub struct MergeArgs {
    /// The shard files, or folders holding them (their shard-*.json): every shard of the run
    /// once.
    #[arg(required = true)]
    pub shards: Vec<PathBuf>,
    /// The results folder to write (results.json, report.md, charts); created if needed.
    #[arg(long)]
    pub out: PathBuf,
}

/// Merges the shards and writes the results folder; returns it.
pub fn merge(args: MergeArgs, command_line: &str) -> Result<PathBuf> {
    let shards = ShardFile::read_all(&args.shards)?;
    let results = merge_shards(shards, command_line)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    results.write(&args.out)?;
    crate::render::report::write(&results, &args.out)?;
    println!("{}", crate::render::report::terminal(&results));
    println!("results: {}", args.out.display());
    Ok(args.out)
}
