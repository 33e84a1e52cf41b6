// Prefill matmuls on bf16 weights with AVX-512 BF16 dot products (vdpbf16ps: two bf16
// products summed into each f32 lane, twice the multiply-adds of an f32 FMA), for
// matmul_precision "medium": x is rounded to bf16 (nearest even) as it is packed, the weights
// are read as stored, the sums are f32. The same register tiles as gemm.h, with pairs of k.
#pragma once

#include <cstdint>

#include "matvec.h"

namespace tfx::cpu {

// Whether the CPU has AVX-512 BF16 and the dispatch cap (TFX_CPU_ISA, use_isa) allows AVX-512.
bool bf16_dot_products_available();

// y[m, n] = sum_k bf16(x[m, k]) * w[n, k] (+ bias[n]) for each weight of ws, all of them bf16,
// x packed once for all; k even (the pairs of the dot products). Only where
// bf16_dot_products_available().
void gemm_many_bf16(const float* x, const MatvecWeight* ws, int count, int64_t m, int64_t k);

}  // namespace tfx::cpu
