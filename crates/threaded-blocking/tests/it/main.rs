//! The shared conformance suite, run over this crate's real binary, and this crate's own tests.
bakeoff_suite::conformance_tests!(env!("CARGO_BIN_EXE_threaded-blocking"));

mod bursts;
