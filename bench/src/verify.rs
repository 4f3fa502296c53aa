//! `bakeoff verify`: the conformance checks against one server, either one already running (a URL)
//! or a variant started for the occasion on a throwaway database.

use anyhow::{Context, Result, bail};
use bakeoff_core::config::ENV_VARS;
use bakeoff_testkit::conformance::{self, Report, StatementCounts, Target};
use bakeoff_testkit::postgres::{APP_ROLE, LocalPostgres};
use bakeoff_testkit::seed::{SeedSpec, seed};
use bakeoff_testkit::server::{ServerProcess, workspace_binary};

/// The options of `bakeoff verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// A running server, http://HOST:PORT; its expected data are read from DATABASE_URL.
    pub url: Option<String>,
    /// A variant to start and verify (on a throwaway, seeded database unless DATABASE_URL is set).
    #[arg(long)]
    pub variant: Option<String>,
    /// The database the server serves (the expected values are read from it).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// The server is not a bakeoff variant: compare JSON values, not bytes.
    #[arg(long)]
    pub foreign: bool,
    /// Start the debug build of the variant.
    #[arg(long)]
    pub debug: bool,
}

/// Runs the checks; the report says what failed.
pub async fn verify(args: VerifyArgs) -> Result<Report> {
    match (&args.url, &args.variant) {
        (Some(url), _) => {
            let database_url = args.database_url.clone().context(
                "verifying a running server needs its DATABASE_URL, to read the expected values",
            )?;
            conformance::verify(&Target {
                base_url: url.trim_end_matches('/').to_string(),
                expectations_url: database_url,
                statement_counts: None,
                variant: args.variant.clone(),
                workers: None,
                exact_bytes: !args.foreign,
            })
            .await
        }
        (None, Some(variant)) => verify_variant(variant, &args).await,
        (None, None) => bail!("give a URL of a running server, or --variant NAME to start one"),
    }
}

async fn verify_variant(variant: &str, args: &VerifyArgs) -> Result<Report> {
    let binary = workspace_binary(variant, !args.debug)?;
    // Without DATABASE_URL a throwaway cluster lives as long as this function.
    let (_postgres, admin_url, app_url, role) = match &args.database_url {
        Some(url) => {
            let role = url::Url::parse(url)
                .ok()
                .map(|parsed| parsed.username().to_string())
                .unwrap_or_default();
            (None, url.clone(), url.clone(), role)
        }
        None => {
            let postgres = LocalPostgres::start_throwaway().await?;
            seed(&postgres.admin_url(), &SeedSpec::default(), &|_| {}).await?;
            let (admin, app) = (postgres.admin_url(), postgres.app_url());
            (Some(postgres), admin, app, APP_ROLE.to_string())
        }
    };
    let mut command = std::process::Command::new(binary);
    for variable in ENV_VARS {
        command.env_remove(variable);
    }
    command
        .env("DATABASE_URL", &app_url)
        .env("BIND", "127.0.0.1:0")
        .env("RUST_LOG", "error");
    let server = tokio::task::spawn_blocking(move || ServerProcess::spawn(command)).await??;
    let report = conformance::verify(&Target {
        base_url: server.base_url(),
        expectations_url: admin_url.clone(),
        statement_counts: (!role.is_empty()).then_some(StatementCounts { admin_url, role }),
        variant: Some(variant.to_string()),
        workers: None,
        exact_bytes: true,
    })
    .await;
    let _ = tokio::task::spawn_blocking(move || {
        server.terminate(bakeoff_core::config::SHUTDOWN_DEADLINE)
    })
    .await;
    report
}
