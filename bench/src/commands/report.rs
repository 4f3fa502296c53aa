//! `bakeoff report DIR`: renders `report.md` and the charts of a results directory again, of a
//! run (`results.json`), of a concurrency study (`concurrency.json`) or of `bakeoff cost`
//! (`cost.json`).

use std::path::Path;

use anyhow::Result;

use crate::render::{cost_report, report, study_report};
use crate::results::ResultsFile;
use crate::results::cost::CostResults;
use crate::results::run::RunResults;
use crate::results::study::StudyResults;

/// Renders the directory again and prints its tables.
pub fn report_again(directory: &Path) -> Result<()> {
    if directory.join(StudyResults::FILE_NAME).is_file() {
        let results = StudyResults::read(directory)?;
        study_report::write(&results, directory)?;
        println!("{}", study_report::terminal(&results));
    } else if directory.join(CostResults::FILE_NAME).is_file() {
        let results = CostResults::read(directory)?;
        cost_report::write(&results, directory)?;
        println!("{}", cost_report::terminal(&results));
    } else {
        let results = RunResults::read(directory)?;
        report::write(&results, directory)?;
        println!("{}", report::terminal(&results));
    }
    println!("rewrote {}", directory.join("report.md").display());
    Ok(())
}
