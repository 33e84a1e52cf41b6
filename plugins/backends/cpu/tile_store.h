// The blocked GEMMs' output step on AVX-512 machines: a register tile's results are held
// [weight row][row of x] (gemm.cpp, gemm_bf16.cpp), while y is [row of x][weight row]. Eight
// features at a time go through an 8 x 8 transpose and reach y as one masked vector per row
// of x; a scalar copy took 5-10% of a prefill. Only callers compiled for AVX-512 use it.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#define TFX_TILE_STORE_TARGET __attribute__((target("avx,avx2,fma,avx512f,avx512vl")))

namespace tfx::cpu {

// An 8 x 8 block of floats transposed in place (r[i][j] <- r[j][i]).
TFX_TILE_STORE_TARGET inline void transpose_8x8(__m256 r[8]) {
    __m256 t[8], s[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        s[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        s[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        s[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        s[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 4; ++i) {
        r[i] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x31);
    }
}

// tile[i][c] (i < features <= 8, c < columns, `tile_stride` floats a row) into
// y[c][i] (`y_stride` floats a row): y = tile + bias when `first` (bias may be null), y += tile
// after.
TFX_TILE_STORE_TARGET inline void store_tile_transposed(const float* tile, int64_t tile_stride, int64_t features,
                                                        int64_t columns, bool first, const float* bias, float* y,
                                                        int64_t y_stride) {
    const __mmask8 mask = static_cast<__mmask8>((1u << features) - 1);
    const __m256 start = first && bias != nullptr ? _mm256_maskz_loadu_ps(mask, bias) : _mm256_setzero_ps();
    for (int64_t c8 = 0; c8 < columns; c8 += 8) {
        __m256 block[8];
        for (int64_t i = 0; i < 8; ++i)
            block[i] = i < features ? _mm256_loadu_ps(tile + i * tile_stride + c8) : _mm256_setzero_ps();
        transpose_8x8(block);
        for (int64_t j = 0; j < std::min<int64_t>(8, columns - c8); ++j) {
            float* row = y + (c8 + j) * y_stride;
            const __m256 before = first ? start : _mm256_maskz_loadu_ps(mask, row);
            _mm256_mask_storeu_ps(row, mask, _mm256_add_ps(block[j], before));
        }
    }
}

}  // namespace tfx::cpu
