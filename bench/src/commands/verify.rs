//! `bakeoff verify`: the conformance checks against one server, either one already running (a URL)
//! or a variant or peer started through the harness on a throwaway, seeded database.

use anyhow::{Context, Result, bail};
use bakeoff_testkit::conformance::{self, Report, Target};
use indicatif::MultiProgress;

use crate::harness::database::{Database, DatabaseChoice};
use crate::harness::flags::DimensionArgs;
use crate::harness::lifecycle::{self, RunningServer, Session, Trial, Verify};
use crate::harness::servers::ServerSpec;
use crate::results::server::BuildProfile;
use crate::results::setup::Placement;
use crate::results::vocabulary::{Peer, Variant};

/// The options of `bakeoff verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// A running server, http://HOST:PORT; its expected data are read from DATABASE_URL.
    pub url: Option<String>,
    /// A variant to start and verify (on a throwaway, seeded database unless DATABASE_URL is set).
    #[arg(long, value_enum, conflicts_with = "peer")]
    pub variant: Option<Variant>,
    /// A peer to start and verify, as --variant does.
    #[arg(long, value_enum)]
    pub peer: Option<Peer>,
    /// The database the server serves (the expected values are read from it).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// The server is not a bakeoff variant: compare JSON values, not bytes.
    #[arg(long)]
    pub foreign: bool,
    /// Start the debug build of the variant.
    #[arg(long)]
    pub debug: bool,
    #[command(flatten)]
    pub dimensions: DimensionArgs,
}

/// Runs the checks; the report says what failed.
pub async fn verify(args: VerifyArgs) -> Result<Report> {
    let started = match (args.variant, args.peer) {
        (Some(variant), _) => Some(ServerSpec::Variant(variant)),
        (None, Some(peer)) => Some(ServerSpec::Peer(peer)),
        (None, None) => None,
    };
    match (&args.url, started) {
        (Some(url), _) => {
            let database_url = args.database_url.clone().context(
                "verifying a running server needs its DATABASE_URL, to read the expected values",
            )?;
            conformance::verify(&Target {
                base_url: url.trim_end_matches('/').to_string(),
                expectations_url: database_url,
                statement_counts: None,
                variant: args.variant.map(Variant::name),
                workers: None,
                exact_bytes: !args.foreign,
            })
            .await
        }
        (None, Some(server)) => verify_started(server, &args).await,
        (None, None) => {
            bail!("give a URL of a running server, or --variant NAME or --peer NAME to start one")
        }
    }
}

async fn verify_started(server: ServerSpec, args: &VerifyArgs) -> Result<Report> {
    let profile = if args.debug {
        BuildProfile::Debug
    } else {
        BuildProfile::Release
    };
    let dimensions = args.dimensions.dimensions();
    let trials = lifecycle::trials(std::slice::from_ref(&server), &dimensions, profile)?;
    let choice = match &args.database_url {
        Some(url) => DatabaseChoice::External {
            url: url.clone(),
            data: None,
        },
        None => DatabaseChoice::Throwaway {
            data: Some(Default::default()),
        },
    };
    let database = Database::prepare(choice, &MultiProgress::new()).await?;
    let placement = Placement::unpinned();
    let session = Session {
        placement: &placement,
        database: Some(&database),
        dimensions: &dimensions,
        allow_remote: false,
        containers: None,
    };
    let mut reports = Vec::new();
    let outcomes = lifecycle::drive(
        &trials,
        &session,
        Verify::Skip,
        &|line| eprintln!("{line}"),
        async |trial: &Trial, server: &RunningServer| {
            reports.push(lifecycle::check_contract(trial, server, &session).await?);
            Ok(())
        },
    )
    .await;
    if let Some(reason) = outcomes
        .iter()
        .find_map(|outcome| outcome.record.skipped.clone())
    {
        bail!("{}: {reason}", server.name());
    }
    let mut merged = Report::default();
    for report in reports {
        merged.checks += report.checks;
        merged.failures.extend(report.failures);
    }
    Ok(merged)
}
