//! The machine's speed during a run: a fixed piece of CPU work (iterations of core's workload,
//! the study's calibrated matrix passes) timed on the servers' CPUs between rounds, while no load
//! runs. The work never changes, so its time moves only with the machine: a neighbour on the
//! host, a slower clock, a busier memory bus. The report says how much it moved during the run.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::results::setup::CpuList;

/// The reference moved more than this during a run (largest over smallest round): the report
/// flags the run.
pub const FLAG_PERCENT: f64 = 10.0;

/// How many times the work is timed per reading; the fastest counts (anything slower was
/// disturbed by something else, which is not the machine's speed).
const TIMINGS: usize = 3;

/// Times the reference on `cpus` (unpinned when `None`); milliseconds for one piece of work.
pub async fn reference_ms(cpus: Option<CpuList>) -> Result<f64> {
    tokio::task::spawn_blocking(move || {
        if let Some(cpus) = &cpus {
            cpus.pin_current_thread()
                .context("pinning the speed reference to the server CPUs")?;
        }
        let fastest = (0..TIMINGS)
            .map(|_| time_once())
            .min()
            .unwrap_or(Duration::ZERO);
        Ok(fastest.as_secs_f64() * 1_000.0)
    })
    .await
    .context("timing the speed reference")?
}

fn time_once() -> Duration {
    let started = Instant::now();
    std::hint::black_box(bakeoff_core::workload::one_iteration());
    started.elapsed()
}

/// How much the reference moved over a run: (largest - smallest) / smallest, in percent.
pub fn moved_percent(readings: &[f64]) -> Option<f64> {
    let smallest = readings.iter().copied().fold(f64::INFINITY, f64::min);
    let largest = readings.iter().copied().fold(0.0, f64::max);
    (readings.len() >= 2 && smallest > 0.0).then(|| (largest - smallest) / smallest * 100.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_drift_is_the_largest_over_the_smallest_reading() {
        assert_eq!(super::moved_percent(&[10.0, 11.0, 12.0]), Some(20.0));
        assert_eq!(super::moved_percent(&[10.0]), None);
        assert_eq!(super::moved_percent(&[]), None);
    }
}
