//! The benchmark's tests: the load engine and its HTTP/1.1 client against small servers whose
//! behaviour is known, the concurrency study, the Docker files, a short `bakeoff run --quick`
//! over one real variant, the Python peers, and a near-contract target run with `--lenient`.

#![allow(clippy::unwrap_used)]

mod concurrency;
mod docker;
mod engine;
mod http1;
mod lenient;
mod peers;
mod quick_run;
mod support;
mod test_server;
