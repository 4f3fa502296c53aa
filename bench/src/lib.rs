//! The bakeoff tool: runs the server variants (and any other server on the contract) under
//! identical conditions, measures them with its own load engine, and reports.
//!
//! Layers, each importing only those below it:
//! - [`commands`]: one module per `bakeoff` subcommand, each a thin driver that parses its flags
//!   into a plan, drives the harness and hands the outcome to its report. No command imports
//!   another command.
//! - [`measure`]: the measurement layer: a plan in, cells out; one function measures a cell,
//!   normal or under a fault; groups of servers measured in interleaved rounds.
//! - [`render`]: reports, tables and charts of the results files.
//! - [`results`]: the results files (`results.json`, `concurrency.json`) and their directory.
//! - [`harness`]: servers, database, dimensions and the one lifecycle every command drives.
//! - the measuring parts: [`engine`] (load), [`delay_line`] (latency to the database),
//!   [`burst`] (the study's bursts), [`http1`] (their HTTP/1.1 client), [`scenarios`],
//!   [`monitor`], [`processes`] and [`cgroups`], [`placement`], [`machine`], [`order`] (the
//!   shuffled order of a round), [`recovery`] (how a server rode out a fault, read from its fault
//!   cells), and the shared [`format`], [`stats`] and [`names`].
//!
//! The binary (`bakeoff`) is a thin command line over [`commands`]; the integration tests use
//! the modules directly.

pub mod burst;
pub mod callgrind;
pub mod cgroups;
pub mod commands;
pub mod delay_line;
pub mod engine;
pub mod format;
pub mod harness;
pub mod http1;
pub mod machine;
pub mod measure;
pub mod monitor;
pub mod names;
pub mod order;
pub mod placement;
pub mod processes;
pub mod recovery;
pub mod render;
pub mod results;
pub mod scenarios;
pub mod sequence;
pub mod stats;
