package bakeoff.springjdbc;

/**
 * The CPU-bound work of the contract ({@code core::workload}): naive Fibonacci, and the matrix
 * workload of the concurrency study: square every element of a fixed, seeded 1024x1024 matrix
 * into a new matrix and reduce it to a checksum, 30 passes per iteration. The matrix is core's
 * (SplitMix64 from the same seed), so the checksum is core's on every machine: Java's long
 * arithmetic wraps modulo 2^64 as Rust's wrapping_add and wrapping_mul do, and the u32 elements
 * are read unsigned.
 */
final class Workload {
    static final int MATRIX_SIDE = 1024;
    static final int PASSES_PER_ITERATION = 30;
    private static final long MATRIX_SEED = 0x6261_6b65_6f66_6621L; // "bakeoff!"
    private static final int[] MATRIX = buildMatrix();

    private Workload() {}

    /** fib(0) = fib(1) = 1 by naive recursion, on purpose: the cost grows as fib(n). */
    static long fibonacci(int n) {
        return n < 2 ? 1 : fibonacci(n - 1) + fibonacci(n - 2);
    }

    /** Element i is SplitMix64's (i + 1)-th output from the seed, as u32 (kept in an int). */
    private static int[] buildMatrix() {
        int[] matrix = new int[MATRIX_SIDE * MATRIX_SIDE];
        long state = MATRIX_SEED;
        for (int index = 0; index < matrix.length; index++) {
            state += 0x9e37_79b9_7f4a_7c15L;
            long z = state;
            z = (z ^ (z >>> 30)) * 0xbf58_476d_1ce4_e5b9L;
            z = (z ^ (z >>> 27)) * 0x94d0_49bb_1331_11ebL;
            matrix[index] = (int) (z ^ (z >>> 31));
        }
        return matrix;
    }

    /** Loads the class, and so builds the matrix, before the first request. */
    static void warmUp() {
        if (MATRIX.length != MATRIX_SIDE * MATRIX_SIDE) {
            throw new IllegalStateException("matrix of " + MATRIX.length);
        }
    }

    /** Squares every element into a new u64 matrix, then reduces it to a checksum; 30 passes. */
    static long oneIteration() {
        long checksum = 0;
        for (long pass = 0; pass < PASSES_PER_ITERATION; pass++) {
            // A new matrix each pass, as numpy's and core's: the allocation is part of the work.
            long[] squared = new long[MATRIX.length];
            for (int index = 0; index < MATRIX.length; index++) {
                long element = Integer.toUnsignedLong(MATRIX[index]);
                squared[index] = element * element + pass;
            }
            for (long value : squared) {
                checksum += value;
            }
        }
        return checksum;
    }

    static Model.CpuBody runIterations(int iterations) {
        long started = System.nanoTime();
        long checksum = 0;
        for (int count = 0; count < iterations; count++) {
            checksum += oneIteration();
        }
        return new Model.CpuBody(
                "Duration of " + iterations + " iterations", seconds(started), checksum);
    }

    static Model.TimedBody calibrate() {
        long started = System.nanoTime();
        oneIteration();
        return new Model.TimedBody("Duration of one iteration", seconds(started));
    }

    static Model.TimedBody sleep(long millis) throws InterruptedException {
        long started = System.nanoTime();
        Thread.sleep(millis);
        return new Model.TimedBody("Waited " + millis + " ms", seconds(started));
    }

    private static double seconds(long startedNanos) {
        return (System.nanoTime() - startedNanos) / 1e9;
    }
}
