//! The benchmark's tests: the load engine and its HTTP/1.1 client against small servers whose
//! behaviour is known, the concurrency study, the Docker files, and a short `bakeoff run --quick`
//! over one real variant, and one over processes and PgBouncer.

#![allow(clippy::unwrap_used)]

mod concurrency;
mod docker;
mod engine;
mod http1;
mod peers;
mod processes;
mod quick_run;
mod support;
mod test_server;
