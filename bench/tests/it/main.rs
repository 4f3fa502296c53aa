//! The benchmark's tests: the load engine against a small server whose behaviour is known, and a
//! short `bakeoff run --quick` over one real variant.

#![allow(clippy::unwrap_used)]

mod concurrency;
mod docker;
mod engine;
mod quick_run;
mod test_server;
