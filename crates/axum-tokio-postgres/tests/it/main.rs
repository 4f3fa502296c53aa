//! The shared conformance suite, run over this crate's real binary.

bakeoff_suite::conformance_tests!(env!("CARGO_BIN_EXE_axum-tokio-postgres"));
