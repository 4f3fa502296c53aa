//! Reports and charts of the results files: `report.md`, the terminal tables and the SVG charts
//! of a run ([`report`], [`charts`], the database-latency section [`db_latency_report`], the processes and
//! pooler section [`processes_report`], the containers and CPU per answer [`containers`]), its cells
//! over time ([`timeline`]), its fault cells ([`fault_report`]) and the load shards of a merged
//! run ([`shards`]), of the concurrency study ([`study_report`], [`study_charts`]) and of
//! `bakeoff cost` ([`cost_report`], [`cost_charts`]). [`verdicts`] decides who is ahead of
//! whom, only where the rounds' paired ratios carry it.

pub mod charts;
pub mod containers;
pub mod cost_charts;
pub mod cost_report;
pub mod db_latency_report;
pub mod fault_report;
pub mod processes_report;
pub mod report;
pub mod shards;
pub mod study_charts;
pub mod study_report;
pub mod timeline;
pub mod verdicts;
