//! Reports and charts of the results files: `report.md`, the terminal tables and the SVG charts
//! of a run ([`report`], [`charts`], the database-latency section [`db_latency`], the processes and
//! pooler section [`processes`]), its cells over time ([`timeline`]) and its fault cells
//! ([`fault_report`]), of the concurrency study ([`study_report`], [`study_charts`]) and of
//! `bakeoff cost` ([`cost_report`], [`cost_charts`]).

pub mod charts;
pub mod cost_charts;
pub mod cost_report;
pub mod db_latency;
pub mod fault_report;
pub mod processes;
pub mod report;
pub mod study_charts;
pub mod study_report;
pub mod timeline;
