//! Reports and charts of the results files: `report.md`, the terminal tables and the SVG charts
//! of a run ([`report`], [`charts`], and [`processes`] for the processes and pooler dimensions) and of the concurrency study ([`study_report`],
//! [`study_charts`]).

pub mod charts;
pub mod processes;
pub mod report;
pub mod study_charts;
pub mod study_report;
