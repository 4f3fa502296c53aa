//! The harness: what every `bakeoff` command does to a server, written once. The servers under
//! test ([`servers`]), the database they are given ([`database`]), the dimensions a run covers and
//! the configuration of one server ([`settings`]), the containers of a compose run
//! ([`containers`]), the delay line to the database of a
//! latency level ([`db_latency`]), the flags that choose them ([`flags`]), and one
//! lifecycle: start -> ready -> verify -> the command's measurement -> stop ([`lifecycle`]), filling
//! in each server's record (`results::server::ServerRecord`), and the faults a command may inject into the
//! database during a cell ([`faults`]). Load split over several processes or hosts runs one
//! shard of a plan at a time, at wall-clock times all shards share ([`sharding`]).
//!
//! Commands are thin drivers over it: parse their flags into a plan, [`lifecycle::drive`] the
//! trials, hand the outcomes to their report. The harness imports no command.

pub mod containers;
pub mod database;
pub mod db_latency;
pub mod faults;
pub mod flags;
pub mod lifecycle;
pub mod peer_builds;
pub mod peers;
pub mod pooler;
pub mod servers;
pub mod settings;
pub mod sharding;
