//! The bakeoff benchmark: runs every server variant in turn against the same database, measures it
//! with its own load engine, and writes the results, a report and charts.
//!
//! The binary (`bakeoff`) is a thin command line over these modules; the integration tests use
//! them directly.

pub mod charts;
pub mod compare;
pub mod concurrency;
pub mod db;
pub mod engine;
pub mod http1;
pub mod machine;
pub mod monitor;
pub mod placement;
pub mod report;
pub mod results;
pub mod run;
pub mod scenarios;
pub mod selftest;
pub mod variants;
pub mod verify;
