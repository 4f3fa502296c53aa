//! The server variants `bakeoff run` measures: the one list to extend when a variant is added.
//!
//! A name here is a workspace package whose binary has the same name, implements the contract and
//! reads the shared configuration variables. Nothing else in the benchmark names a variant.

/// Every variant, in the order runs and reports show them.
pub const VARIANTS: &[&str] = &[
    "axum-tokio-postgres",
    "actix-deadpool",
    "warp-diesel-async",
    "threaded-blocking",
];

/// Whether `name` is in [`VARIANTS`].
pub fn is_known(name: &str) -> bool {
    VARIANTS.contains(&name)
}
