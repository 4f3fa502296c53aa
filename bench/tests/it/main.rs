//! The benchmark's tests: the load engine (its totals and its series) and its HTTP/1.1 client
//! against small servers whose behaviour is known, the delay line to the database, the
//! concurrency study, the reproducibility of `bakeoff cost`, interleaved rounds, the Docker files
//! and the Kubernetes manifests, a short `bakeoff run --quick` over one real variant, each fault
//! against a real variant, one over processes and PgBouncer, the peers (Python, Go, Java), a
//! near-contract target run with `--lenient`, and load from three shard processes merged into
//! one run; and the frozen results files of every format version (`bench/tests/frozen/`),
//! rendered again.

#![allow(clippy::unwrap_used)]

mod concurrency;
mod cost;
mod delay_line;
mod docker;
mod engine;
mod engine_series;
mod faults;
mod frozen;
mod http1;
mod kubernetes;
mod lenient;
mod peers;
mod processes;
mod quick_run;
mod rounds;
mod shards;
mod support;
mod test_server;
