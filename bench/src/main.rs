//! The `bakeoff` command: runs the benchmark and the tools around it. Each subcommand is a module
//! of `bakeoff::commands`; this file only parses the command line and reports errors.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use bakeoff::commands::{
    compare, concurrency, cost, db, delay_proxy, load, merge, peers, report, run, selftest, verify,
};

#[derive(Debug, Parser)]
#[command(
    name = "bakeoff",
    version,
    about = "Comparable Rust API servers over PostgreSQL, and the benchmark that compares them."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The local PostgreSQL: `db up`, `db seed`, `db url`, `db down`.
    Db(db::DbArgs),
    /// Start the local database (seeding it if empty) and run one server over it.
    Serve(db::ServeArgs),
    /// Run the benchmark: every variant in turn, every scenario, report and charts.
    Run(run::RunArgs),
    /// The concurrency study: bursts of N requests of T seconds each, per workload and variant.
    Concurrency(concurrency::ConcurrencyArgs),
    /// Exact cost: instructions per request of each server and scenario, under callgrind.
    Cost(cost::CostArgs),
    /// The Python peers' environment: `peers install`, `peers list`.
    Peers(peers::PeersArgs),
    /// Print the contract's OpenAPI document (generated from core's types; every server serves it).
    Openapi,
    /// Check one server against the contract.
    Verify(verify::VerifyArgs),
    /// One shard of a load plan against running servers (--shard K/N, --start-at): the engine's
    /// share of the load, written to a shard file for `bakeoff merge`.
    Load(load::LoadArgs),
    /// Merge the shard files of one run into one results folder and its report.
    Merge(merge::MergeArgs),
    /// Measure the engine beside wrk and oha on the fastest endpoint.
    Selftest(selftest::SelftestArgs),
    /// Render report.md and the charts of a results directory again.
    Report {
        /// A results/<timestamp> directory (of `bakeoff run`, `bakeoff concurrency` or
        /// `bakeoff cost`).
        directory: PathBuf,
    },
    /// The delay line in front of PostgreSQL for `--db-latency` (started by the harness).
    #[command(hide = true)]
    DelayProxy(delay_proxy::DelayProxyArgs),
    /// Show what changed between two runs (or two `bakeoff cost` runs, by instructions).
    Compare {
        /// The earlier run's directory (or its results.json or cost.json).
        a: PathBuf,
        /// The later run's directory (or its results.json or cost.json).
        b: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    bakeoff_core::config::init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Ctrl-C or SIGTERM drops the command's future: servers are killed and a throwaway database
    // is stopped and removed by their destructors before the process exits.
    let outcome = runtime.block_on(async {
        tokio::select! {
            result = execute(cli.command) => result,
            signal = interrupted() => Err(anyhow::anyhow!("interrupted by {signal}")),
        }
    });
    // Engine threads see the stop flag and end within a request timeout; don't wait longer.
    runtime.shutdown_timeout(std::time::Duration::from_secs(10));
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: Command) -> Result<ExitCode> {
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    match command {
        Command::Db(args) => db::db(args).await?,
        Command::Serve(args) => db::serve(args).await?,
        Command::Run(args) => {
            run::run(args, command_line).await?;
        }
        Command::Concurrency(args) => {
            concurrency::concurrency(args, command_line).await?;
        }
        Command::Cost(args) => {
            cost::cost(args, command_line).await?;
        }
        Command::Verify(args) => {
            let report = verify::verify(args).await?;
            print!("{report}");
            if !report.passed() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Peers(args) => peers::peers(args)?,
        Command::Openapi => print!("{}", bakeoff_core::openapi::OPENAPI_JSON.as_str()),
        Command::DelayProxy(args) => delay_proxy::delay_proxy(args).await?,
        Command::Load(args) => {
            load::load(args, command_line).await?;
        }
        Command::Merge(args) => {
            merge::merge(args, &command_line)?;
        }
        Command::Selftest(args) => {
            let results = selftest::selftest(args).await?;
            print!("{}", selftest::render(&results));
        }
        Command::Report { directory } => report::report_again(&directory)?,
        Command::Compare { a, b } => print!("{}", compare::compare(&a, &b)?),
    }
    Ok(ExitCode::SUCCESS)
}

async fn interrupted() -> &'static str {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "Ctrl-C",
        () = terminate => "SIGTERM",
    }
}
