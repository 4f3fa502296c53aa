//! The `actix-deadpool` server: configuration from the environment, then [`actix_deadpool::run`].

use actix_deadpool::{PoolSetupError, RunError};
use anyhow::Context;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let config = bakeoff_core::startup::startup(&actix_deadpool::VARIANT);
    match actix_deadpool::run(config).await {
        // A URL of the right form that the driver still refuses (an unknown option, say) is a
        // configuration error like any other: one line, exit code 2.
        Err(error @ RunError::Pool(PoolSetupError::DatabaseUrl(_))) => {
            eprintln!("error: {error}");
            std::process::exit(2);
        }
        result => result.with_context(|| format!("{} stopped", actix_deadpool::VARIANT.name)),
    }
}
