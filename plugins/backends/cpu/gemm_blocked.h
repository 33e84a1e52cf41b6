// The blocked GEMM's driver, shared by the f32 kernels (gemm.cpp, one per ISA target) and the
// bf16 dot-product kernels (gemm_bf16.cpp): x packed one block of rows and columns at a time,
// once for every weight of the call, while the threads share the register tiles of output
// features over it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "matvec.h"

namespace tfx::cpu {

struct BlockedKernels {
    int64_t tile_rows = 0;          // output features per register tile
    int64_t width = 0;              // rows of x per packed group (a tile's vectors of rows)
    int64_t max_block_columns = 0;  // columns of k per block
    // Rows of x per block: the packed block (this x the block's columns) stays in L2 while
    // every weight tile passes over it.
    int64_t max_block_rows = 128;
    int64_t column_step = 1;        // a block's columns are a multiple of this (bf16 pairs: 2)
    size_t packed_value_bytes = 4;  // bytes of one packed value of x
    // Packs rows [m0, m0 + mc) of x, columns [k0, k0 + kc), for the groups [g0, g1) into xp.
    void (*pack)(const float* x, int64_t k, int64_t m0, int64_t mc, int64_t k0, int64_t kc, int64_t g0, int64_t g1,
                 void* xp) = nullptr;
    // Output features [r0, r1) of w for the packed block: y = the block's product (+ bias)
    // when `first`, y += it after.
    void (*multiply)(const void* xp, int64_t m0, int64_t mc, int64_t k0, int64_t kc, bool first, const MatvecWeight* w,
                     int64_t k, int64_t r0, int64_t r1) = nullptr;
};

// y = x · wᵀ (+ bias) for each weight of ws, all of k columns, through `kernels`.
void run_blocked(const BlockedKernels& kernels, const float* x, const MatvecWeight* ws, int count, int64_t m,
                 int64_t k);

}  // namespace tfx::cpu
