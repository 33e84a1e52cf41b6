// Prefill on block-quantized weights with the rows of x along the vector lanes (AVX-512 VNNI,
// and AVX2).
//
// The row kernels (quant_matvec.cpp) put one weight row's 64 values of a pair of blocks in a
// vector, so every vpdpbusd's sums mix two blocks and must be scaled to float at once: three
// float instructions for each integer one. Here a vector holds 16 rows of x, 4 values (one
// 4-byte unit of the pair order) each, against a weight row's unit broadcast: a block's 8 units
// add up in the integer sums of 16 x rows, which become float once per block. Four weight rows
// (a row group, read as stored, no repacking) by three vectors of x rows (48) make the register
// tile; x is laid out along the lanes once per call. AVX2 does the same with 8 rows a vector
// and vpmaddubsw + vpmaddwd for the integer sums.
#pragma once

#include <cstdint>
#include <vector>

#include "quant_matvec.h"
#include "quant_rows.h"

namespace tfx::cpu {

// Rows of x from which the lanes kernels run; fewer take the row kernels. AVX-512 without VNNI
// keeps the row kernels.
constexpr int64_t kLanesMinRows = 16;

inline bool runs_lanes(QuantKernel kernel, int64_t m) {
    return (kernel == QuantKernel::avx512_vnni || kernel == QuantKernel::avx2) && m >= kLanesMinRows;
}

// Quantized x in tiles of L rows, 16 for AVX-512 and 8 for AVX2 (the last tile padded with zero
// rows): per tile, pair and 4-byte unit, L rows' units ([tiles][pairs][16 units][L rows][4]);
// per tile and block, the L rows' scales, negated sums and scaled sums ([tiles][blocks][L]).
struct XLanes {
    std::vector<int8_t> q;
    std::vector<float> scale;
    std::vector<int32_t> neg_sum;
    std::vector<float> scaled_sum;
    QuantKernel kernel = QuantKernel::avx512_vnni;  // the kernel it is laid out for
    int64_t m = 0, tiles = 0, pairs = 0;
};

// x's m quantized rows laid out along the lanes for `kernel` (one runs_lanes accepts).
void to_lanes(QuantKernel kernel, const QuantizedRows& x, int64_t m, XLanes& out);

// y[i, r] = x[i] · w[r] (+ bias[r]) for every row i of x and the rows r in [r0, r1) of w
// (r0 the first row of a group of four; y's rows are w.n apart).
void quant_gemm_lanes(const XLanes& x, const QuantizedWeight& w, const float* bias, float* y, int64_t r0, int64_t r1);

}  // namespace tfx::cpu
