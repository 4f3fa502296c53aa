//! The warp-diesel-async server: configuration from the environment, then the library.

fn main() -> anyhow::Result<()> {
    let config = bakeoff_core::startup::startup(&warp_diesel_async::VARIANT);
    warp_diesel_async::run(config)
}
