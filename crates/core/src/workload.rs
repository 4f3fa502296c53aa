//! The CPU-bound work of the contract: naive Fibonacci (the first study's CPU endpoint) and the
//! matrix workload of the second study, with the bodies of the `/test/*` endpoints.
//!
//! The matrix workload mirrors the study's numpy code: square every element of a fixed, seeded
//! matrix into a new matrix and reduce it to a checksum. The matrix is generated once per process
//! from a fixed seed, so every iteration does the same work and yields the same checksum on every
//! machine. Sized so that one iteration takes roughly 10 ms on one core of the reference machine
//! (2-CPU AMD EPYC: about 0.33 ms a pass, from the fastest of 60 `/test/calibrate` calls on a
//! release build; a busy machine doubles the median).

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{FibonacciN, Iterations, Millis};

/// Side of the square matrix.
pub const MATRIX_SIDE: usize = 1024;
/// Passes over the matrix per iteration (squaring is cheap; this sets the iteration's length).
pub const PASSES_PER_ITERATION: usize = 30;
const MATRIX_SEED: u64 = 0x6261_6b65_6f66_6621; // "bakeoff!"

/// fib(0) = fib(1) = 1, by naive recursion on purpose: the cost grows as fib(n) itself.
pub fn fibonacci(n: FibonacciN) -> u64 {
    fn naive(n: u32) -> u64 {
        if n < 2 {
            1
        } else {
            naive(n - 1) + naive(n - 2)
        }
    }
    // black_box keeps the compiler from folding the recursion for a constant n.
    naive(black_box(n.get()))
}

/// `{"result": fib(n)}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({"result": 89})))]
pub struct FibonacciBody {
    /// fib(n), with fib(0) = fib(1) = 1.
    #[schema(minimum = 1)]
    pub result: u64,
}

fn matrix() -> &'static [u32] {
    static MATRIX: OnceLock<Vec<u32>> = OnceLock::new();
    MATRIX.get_or_init(|| {
        // SplitMix64: a fixed, documented generator, so the matrix never changes with a crate.
        let mut state = MATRIX_SEED;
        (0..MATRIX_SIDE * MATRIX_SIDE)
            .map(|_| {
                state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                (z ^ (z >> 31)) as u32
            })
            .collect()
    })
}

/// Builds the matrix ahead of the first request, so that no request pays for it.
pub fn warm_up() {
    black_box(matrix());
}

/// One iteration: square every element into a new matrix, then reduce that matrix to a checksum.
pub fn one_iteration() -> u64 {
    let source = matrix();
    let mut checksum = 0u64;
    for pass in 0..PASSES_PER_ITERATION as u64 {
        let squared: Vec<u64> = source
            .iter()
            .map(|&element| u64::from(element) * u64::from(element) + pass)
            .collect();
        // The new matrix must exist, as numpy's would: black_box stops the compiler from fusing
        // the square into the sum and skipping the allocation.
        let squared = black_box(squared);
        checksum = squared
            .iter()
            .fold(checksum, |sum, &value| sum.wrapping_add(value));
    }
    checksum
}

/// Runs the workload `iterations` times on the calling thread.
pub fn run_iterations(iterations: Iterations) -> CpuReport {
    let started = Instant::now();
    let mut checksum = 0u64;
    for _ in 0..iterations.get() {
        checksum = checksum.wrapping_add(black_box(one_iteration()));
    }
    CpuReport {
        iterations: iterations.get(),
        elapsed: started.elapsed(),
        checksum,
    }
}

/// What a CPU-bound test endpoint measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuReport {
    pub iterations: u32,
    pub elapsed: Duration,
    pub checksum: u64,
}

/// `{"message": "...", "result": <seconds>}`: the body of waits and calibration. Also what a
/// client that wants only the seconds reads from any timed endpoint (serde ignores the checksum of
/// a CPU body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({"message": "Waited 50 ms", "result": 0.050_212})))]
pub struct TimedBody {
    pub message: String,
    /// Seconds, measured by the server.
    #[schema(minimum = 0)]
    pub result: f64,
}

/// `{"message": "...", "result": <seconds>, "checksum": <integer>}`: the body of the CPU-bound
/// endpoints. The checksum is the same on every machine for the same iterations, so a client can
/// tell that the work was done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({"message": "Duration of 2 iterations", "result": 0.020_481, "checksum": 9_941_081_029_964_651_844_u64})))]
pub struct TimedCpuBody {
    pub message: String,
    /// Seconds, measured by the server.
    #[schema(minimum = 0)]
    pub result: f64,
    /// Wraps around: any u64, beyond int64's range too.
    #[schema(format = "uint64")]
    pub checksum: u64,
}

impl CpuReport {
    /// The body of `/test/sync-cpubound` and `/test/offload-cpubound`.
    pub fn body(&self) -> TimedCpuBody {
        TimedCpuBody {
            message: format!("Duration of {} iterations", self.iterations),
            result: self.elapsed.as_secs_f64(),
            checksum: self.checksum,
        }
    }
}

/// `/test/calibrate`: the duration of one iteration.
pub fn calibrate() -> TimedBody {
    let started = Instant::now();
    black_box(one_iteration());
    TimedBody {
        message: "Duration of one iteration".to_string(),
        result: started.elapsed().as_secs_f64(),
    }
}

/// The body of `/test/async-iobound` and `/test/blocking-iobound` after a wait of `millis`.
pub fn waited_body(millis: Millis, elapsed: Duration) -> TimedBody {
    TimedBody {
        message: format!("Waited {} ms", millis.get()),
        result: elapsed.as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fibonacci_starts_at_one_one() {
        let fib = |n: u32| fibonacci(FibonacciN::parse(&n.to_string()).unwrap());
        assert_eq!(
            [fib(0), fib(1), fib(2), fib(10), fib(25)],
            [1, 1, 2, 89, 121_393]
        );
    }

    #[test]
    fn the_checksum_is_deterministic_and_additive() {
        let one = run_iterations(Iterations::parse("1").unwrap());
        let three = run_iterations(Iterations::parse("3").unwrap());
        assert_eq!(one.checksum, one_iteration());
        assert_eq!(three.checksum, one.checksum.wrapping_mul(3));
        assert_ne!(one.checksum, 0);
    }
}
