package main

// The CPU-bound work of the contract (core::workload): naive Fibonacci, and the matrix workload
// of the concurrency study: square every element of a fixed, seeded 1024x1024 matrix into a new
// matrix and reduce it to a checksum, 30 passes per iteration. The matrix is core's (SplitMix64
// from the same seed), so the checksum is core's on every machine.

import (
	"fmt"
	"sync"
	"time"
)

const (
	matrixSide         = 1024
	passesPerIteration = 30
	matrixSeed         = 0x6261_6b65_6f66_6621 // "bakeoff!"
)

// fibonacci is fib(0) = fib(1) = 1 by naive recursion, on purpose: the cost grows as fib(n).
func fibonacci(n uint32) uint64 {
	if n < 2 {
		return 1
	}
	return fibonacci(n-1) + fibonacci(n-2)
}

var (
	matrixOnce sync.Once
	theMatrix  []uint32
)

// matrix is core's: element i is SplitMix64's (i + 1)-th output from matrixSeed, as u32.
func matrix() []uint32 {
	matrixOnce.Do(func() {
		theMatrix = make([]uint32, matrixSide*matrixSide)
		state := uint64(matrixSeed)
		for index := range theMatrix {
			// uint64 arithmetic wraps, as Rust's wrapping_add and wrapping_mul do.
			state += 0x9e37_79b9_7f4a_7c15
			z := state
			z = (z ^ (z >> 30)) * 0xbf58_476d_1ce4_e5b9
			z = (z ^ (z >> 27)) * 0x94d0_49bb_1331_11eb
			theMatrix[index] = uint32(z ^ (z >> 31))
		}
	})
	return theMatrix
}

// oneIteration squares every element into a new u64 matrix, then reduces that matrix to a
// checksum; 30 passes.
func oneIteration() uint64 {
	source := matrix()
	var checksum uint64
	for pass := uint64(0); pass < passesPerIteration; pass++ {
		// A new matrix each pass, as numpy's and core's: the allocation is part of the work.
		squared := make([]uint64, len(source))
		for index, element := range source {
			squared[index] = uint64(element)*uint64(element) + pass
		}
		for _, value := range squared {
			checksum += value
		}
	}
	return checksum
}

// cpuBody is the body of `/test/sync-cpubound` and `/test/offload-cpubound`.
type cpuBody struct {
	Message  string  `json:"message"`
	Result   Seconds `json:"result"`
	Checksum uint64  `json:"checksum"`
}

// timedBody is the body of `/test/calibrate` and of the waits.
type timedBody struct {
	Message string  `json:"message"`
	Result  Seconds `json:"result"`
}

// runIterations runs the workload on the calling goroutine.
func runIterations(iterations uint32) cpuBody {
	started := time.Now()
	var checksum uint64
	for count := uint32(0); count < iterations; count++ {
		checksum += oneIteration()
	}
	return cpuBody{
		Message:  fmt.Sprintf("Duration of %d iterations", iterations),
		Result:   Seconds(time.Since(started).Seconds()),
		Checksum: checksum,
	}
}

func calibrate() timedBody {
	started := time.Now()
	oneIteration()
	return timedBody{"Duration of one iteration", Seconds(time.Since(started).Seconds())}
}

func waitedBody(millis uint64, elapsed time.Duration) timedBody {
	return timedBody{fmt.Sprintf("Waited %d ms", millis), Seconds(elapsed.Seconds())}
}
