//! The one definition of the bakeoff contacts API, shared by every server variant.
//!
//! Servers depend on this crate and never on each other. Everything that must be identical
//! across variants lives here: the JSON model, the SQL text, the parsing of every path and query
//! parameter, the error body, the CPU workload, configuration from the environment, process
//! self-measurement and the OpenAPI document. A server only adds what its architecture is about:
//! routing in its framework, and how it gets a database connection.

pub mod config;
pub mod error;
pub mod model;
pub mod openapi;
pub mod params;
pub mod process_group;
pub mod resmon;
pub mod shutdown;
pub mod sql;
pub mod startup;
pub mod workload;

#[cfg(feature = "postgres")]
pub mod pg;

#[cfg(feature = "orm")]
pub mod orm;

#[cfg(feature = "tokio")]
pub mod serving;

pub use config::{Config, ConfigError, DbRecycle, DbStatements, VariantInfo};
pub use error::{ApiError, ErrorBody};
pub use params::{ContactId, FibonacciN, Iterations, LastNamePrefix, Millis, PageRequest};

/// The workspace version, answered by `GET /version` and written into the OpenAPI document.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The `Content-Type` of every response body, success or error.
pub const JSON_CONTENT_TYPE: &str = "application/json";
