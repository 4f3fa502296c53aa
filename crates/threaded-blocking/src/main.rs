//! The threaded-blocking server: configuration from the environment, then the worker threads.

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let config = bakeoff_core::startup::startup(&threaded_blocking::VARIANT);
    threaded_blocking::run(config)
        .with_context(|| format!("{} stopped", threaded_blocking::VARIANT.name))
}
