//! The axum-tokio-postgres server: configuration from the environment, then the library.

fn main() -> anyhow::Result<()> {
    let config = bakeoff_core::startup::startup(&axum_tokio_postgres::VARIANT);
    axum_tokio_postgres::run(config)
}
