// Matmuls for many rows of activations (prefill): compute-bound, so they keep the FMA units
// busy from registers. The weights stay as stored ([n, k] rows, f32 or bf16/f16 widened a
// tile at a time in L1): no second copy of any matrix, and no per-call repacking of the
// weights. One Highway source compiled for every x86 target, dispatched as matvec.h says.
#pragma once

#include <cstdint>

#include "matvec.h"

namespace tfx::cpu {

// y[m, n] = sum_k x[m, k] * w[n, k] (+ bias[n]) for each weight of ws, x packed once for all
// of them (q, k and v; gate and up), split across the threads by tiles of output features.
// The sum is f32; each output is summed in ascending k within a block of columns.
void gemm_many(const float* x, const MatvecWeight* ws, int count, int64_t m, int64_t k);

inline void gemm(const float* x, const void* w, WeightFormat format, const float* bias, float* y, int64_t m, int64_t n,
                 int64_t k) {
    const MatvecWeight one{w, format, bias, y, n};
    gemm_many(x, &one, 1, m, k);
}

}  // namespace tfx::cpu
