// This machine's limits, measured the way the kernels would meet them: read bandwidth with a
// vectorised read loop over a buffer far larger than the caches, and f32 FMA throughput with
// independent vector FMA chains, both on the best SIMD target the CPU runs (Highway dispatch)
// and on `threads` threads. `tfx bench --roofline` states its figures as shares of these.
#pragma once

#include <cstdint>
#include <string>

namespace tfx::cli {

struct Roofline {
    double read_gb_per_s = 0;  // best of several passes
    double fma_gflop_per_s = 0;
    std::string simd_target;  // "avx3", "avx2", ...
};

Roofline measure_roofline(int threads);

// The sum of floats [0, n), read by the same vectorised loop (on the calling thread): benchmarks
// read their own buffers with it, for a bandwidth reference on the very memory they stream.
float read_all(const float* data, int64_t n);

}  // namespace tfx::cli
