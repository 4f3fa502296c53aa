"""The CPU-bound work of the contract (`core::workload`): naive Fibonacci and the matrix workload
of the concurrency study.

The matrix workload is the study's numpy code, with core's data: square every element of a fixed,
seeded 1024x1024 matrix into a new matrix and reduce it to a checksum, 30 passes per iteration.
The matrix comes from core's SplitMix64 stream, so the checksum is core's on every machine (the
conformance suite compares it). numpy releases the GIL inside its loops, so offloaded iterations on
two threads do use two CPUs; an iteration takes longer than core's, which `/test/calibrate`
measures and the study accounts for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache

import numpy as np

MATRIX_SIDE = 1024
PASSES_PER_ITERATION = 30
MATRIX_SEED = 0x6261_6B65_6F66_6621  # "bakeoff!"
_U64 = (1 << 64) - 1


def fibonacci(n: int) -> int:
    """fib(0) = fib(1) = 1, by naive recursion on purpose: the cost grows as fib(n) itself."""
    return 1 if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)


@cache
def matrix() -> np.ndarray:
    """core's matrix: element i is SplitMix64's (i + 1)-th output from MATRIX_SEED, as u32."""
    steps = np.arange(1, MATRIX_SIDE * MATRIX_SIDE + 1, dtype=np.uint64)
    # uint64 array arithmetic wraps, as Rust's wrapping_add and wrapping_mul do.
    z = np.uint64(MATRIX_SEED) + steps * np.uint64(0x9E37_79B9_7F4A_7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58_476D_1CE4_E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D0_49BB_1331_11EB)
    z = z ^ (z >> np.uint64(31))
    return z.astype(np.uint32).reshape(MATRIX_SIDE, MATRIX_SIDE)


def warm_up() -> None:
    """Builds the matrix ahead of the first request, so that no request pays for it."""
    matrix()


def one_iteration() -> int:
    """Squares every element into a new u64 matrix, then reduces it to a checksum; 30 passes."""
    source = matrix()
    checksum = 0
    for pass_number in range(PASSES_PER_ITERATION):
        squared = np.square(source, dtype=np.uint64)
        squared += np.uint64(pass_number)
        # A uint64 sum wraps modulo 2^64, like core's wrapping fold (addition modulo 2^64 does
        # not care about numpy's pairwise order).
        checksum = (checksum + int(squared.sum(dtype=np.uint64))) & _U64
    return checksum


@dataclass(frozen=True)
class CpuReport:
    """What a CPU-bound test endpoint measured."""

    iterations: int
    elapsed: float
    checksum: int

    def body(self) -> dict:
        """The body of `/test/sync-cpubound` and `/test/offload-cpubound`."""
        return {
            "message": f"Duration of {self.iterations} iterations",
            "result": self.elapsed,
            "checksum": self.checksum,
        }


def run_iterations(iterations: int) -> CpuReport:
    """Runs the workload `iterations` times on the calling thread."""
    started = time.perf_counter()
    checksum = 0
    for _ in range(iterations):
        checksum = (checksum + one_iteration()) & _U64
    return CpuReport(iterations, time.perf_counter() - started, checksum)


def calibrate() -> dict:
    """`/test/calibrate`: the duration of one iteration."""
    started = time.perf_counter()
    one_iteration()
    return {"message": "Duration of one iteration", "result": time.perf_counter() - started}


def waited_body(millis: int, elapsed: float) -> dict:
    """The body of `/test/async-iobound` and `/test/blocking-iobound` after a wait of `millis`."""
    return {"message": f"Waited {millis} ms", "result": elapsed}
