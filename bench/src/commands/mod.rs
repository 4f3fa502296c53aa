//! One module per `bakeoff` subcommand. Each parses its flags into a plan, drives the harness and
//! hands what it measured to its report; none imports another.

pub mod compare;
pub mod concurrency;
pub mod cost;
pub mod db;
pub mod delay_proxy;
pub mod load;
pub mod merge;
pub mod peers;
pub mod report;
pub mod run;
pub mod selftest;
pub mod verify;
