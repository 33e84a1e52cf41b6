// Written with intrinsics under a target attribute rather than Highway: Highway 1.0.3 (Debian
// 12) has no target with AVX-512 BF16, and emulates the bf16 dot product by widening. Only
// bf16_dot_products_available() machines ever call into these functions.
#include "gemm_bf16.h"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "gemm_blocked.h"
#include "tile_store.h"

#define TFX_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

namespace tfx::cpu {
namespace {

// 32 vector registers: 6 weight rows x 4 vectors of 16 rows of x in accumulators, 4 vectors of
// x and one broadcast weight pair, as gemm.cpp's AVX-512 tile.
constexpr int64_t kTileRows = 6, kTileVectors = 4, kLanes = 16, kWidth = kTileVectors * kLanes;
constexpr int64_t kMaxBlockColumns = 2048;
// Rows of x per block: half-size values, so twice gemm.cpp's rows in the same bytes of L2,
// and each weight tile is read half as often.
constexpr int64_t kMaxBlockRows = 256;

// out[i][c] (kWidth floats a row) = sum over pairs p of w[i][2p, 2p+1] · xp[p][c][2] for MM
// weight rows and NV vectors of packed rows.
template <int64_t MM, int64_t NV>
TFX_AVX512_BF16 void multiply_tile(const uint32_t* __restrict xp, const uint16_t* __restrict w, int64_t w_stride,
                                   int64_t pairs, float* __restrict out) {
    __m512 acc[MM][NV];
    for (auto& row : acc) {
        for (auto& v : row) v = _mm512_setzero_ps();
    }
    for (int64_t p = 0; p < pairs; ++p) {
        __m512bh xv[NV];
        for (int64_t v = 0; v < NV; ++v) xv[v] = (__m512bh)_mm512_load_si512(xp + p * kWidth + v * kLanes);
        for (int64_t i = 0; i < MM; ++i) {
            uint32_t pair;
            std::memcpy(&pair, w + i * w_stride + 2 * p, sizeof pair);
            const __m512bh wi = (__m512bh)_mm512_set1_epi32(static_cast<int>(pair));
            for (int64_t v = 0; v < NV; ++v) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], xv[v], wi);
        }
    }
    for (int64_t i = 0; i < MM; ++i) {
        for (int64_t v = 0; v < NV; ++v) _mm512_store_ps(out + i * kWidth + v * kLanes, acc[i][v]);
    }
}

using TileKernel = void (*)(const uint32_t*, const uint16_t*, int64_t, int64_t, float*);
template <size_t... I>
constexpr std::array<TileKernel, sizeof...(I)> tile_kernels(std::index_sequence<I...>) {
    return {&multiply_tile<static_cast<int64_t>(I) / kTileVectors + 1, static_cast<int64_t>(I) % kTileVectors + 1>...};
}
// kTileKernels[(MM - 1) * kTileVectors + NV - 1]: the tails of n and m with fewer registers.
constexpr auto kTileKernels = tile_kernels(std::make_index_sequence<kTileRows * kTileVectors>());

// Row r's pair words j (columns 2j and 2j + 1 of x rounded to bf16, j < pairs) for 16 rows
// into t[j]'s lanes r: a 16 x 16 transpose of 32-bit words in three rounds of shuffles.
TFX_AVX512_BF16 void transpose_16x16(__m512i r[16], __m512i t[16]) {
    __m512i a[16], b[16];
    for (int i = 0; i < 16; i += 2) {
        a[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);  // per 128 bits: r_i[0] r_i+1[0] r_i[1] r_i+1[1]
        a[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        // b[i + c] holds words c, c + 4, c + 8, c + 12 (one per 128 bits) of rows i .. i + 3.
        b[i] = _mm512_unpacklo_epi64(a[i], a[i + 2]);
        b[i + 1] = _mm512_unpackhi_epi64(a[i], a[i + 2]);
        b[i + 2] = _mm512_unpacklo_epi64(a[i + 1], a[i + 3]);
        b[i + 3] = _mm512_unpackhi_epi64(a[i + 1], a[i + 3]);
    }
    for (int c = 0; c < 4; ++c) {
        const __m512i low01 = _mm512_shuffle_i32x4(b[c], b[4 + c], 0x44);  // 128-bit parts 0, 1 of each
        const __m512i low23 = _mm512_shuffle_i32x4(b[8 + c], b[12 + c], 0x44);
        const __m512i high01 = _mm512_shuffle_i32x4(b[c], b[4 + c], 0xEE);  // parts 2, 3
        const __m512i high23 = _mm512_shuffle_i32x4(b[8 + c], b[12 + c], 0xEE);
        t[c] = _mm512_shuffle_i32x4(low01, low23, 0x88);
        t[c + 4] = _mm512_shuffle_i32x4(low01, low23, 0xDD);
        t[c + 8] = _mm512_shuffle_i32x4(high01, high23, 0x88);
        t[c + 12] = _mm512_shuffle_i32x4(high01, high23, 0xDD);
    }
}

// Rows [m0, m0 + mc) of x, columns [k0, k0 + kc) (kc even), rounded to bf16 for the groups
// [g0, g1): group g holds rows m0 + g*kWidth .. + kWidth as xp[g][pair][row] (a 32-bit word of
// the row's two columns of the pair), zero past mc. 16 rows by 32 columns at a time: each row's
// 32 columns rounded in one conversion into 16 pair words, then the 16 rows transposed.
TFX_AVX512_BF16 void pack_rows(const float* x, int64_t k, int64_t m0, int64_t mc, int64_t k0, int64_t kc, int64_t g0,
                               int64_t g1, void* packed) {
    const int64_t pairs = kc / 2;
    uint32_t* xp = static_cast<uint32_t*>(packed);
    for (int64_t g = g0; g < g1; ++g) {
        uint32_t* group = xp + g * pairs * kWidth;
        for (int64_t v = 0; v < kTileVectors; ++v) {
            const int64_t first_row = g * kWidth + v * kLanes;
            for (int64_t p0 = 0; p0 < pairs; p0 += 16) {
                const int64_t n = std::min<int64_t>(16, pairs - p0), floats = 2 * n;
                const __mmask16 lo = static_cast<__mmask16>(floats >= 16 ? 0xFFFF : (1u << floats) - 1);
                const __mmask16 hi = static_cast<__mmask16>(floats <= 16 ? 0 : (1u << (floats - 16)) - 1);
                __m512i words[16], columns[16];
                for (int64_t r = 0; r < kLanes; ++r) {
                    if (first_row + r >= mc) {
                        words[r] = _mm512_setzero_si512();
                        continue;
                    }
                    const float* src = x + (m0 + first_row + r) * k + k0 + 2 * p0;
                    const __m512 a = _mm512_maskz_loadu_ps(lo, src), b = _mm512_maskz_loadu_ps(hi, src + 16);
                    words[r] = (__m512i)_mm512_cvtne2ps_pbh(b, a);
                }
                transpose_16x16(words, columns);
                for (int64_t j = 0; j < n; ++j) _mm512_store_si512(group + (p0 + j) * kWidth + v * kLanes, columns[j]);
            }
        }
    }
}

// Output features [r0, r1) of one bf16 weight for the packed block; y = the block's product
// (+ bias) when `first`, y += it after. The tile's [feature][row of x] results reach y's
// [row][feature] through 8 x 8 transposes (tile_store.h).
TFX_AVX512_BF16 void tile_range(const void* packed, int64_t m0, int64_t mc, int64_t k0, int64_t kc, bool first,
                                const MatvecWeight* w, int64_t k, int64_t r0, int64_t r1) {
    const uint32_t* xp = static_cast<const uint32_t*>(packed);
    const int64_t pairs = kc / 2;
    alignas(64) float out[kTileRows * kWidth];
    for (int64_t r = r0; r < r1; r += kTileRows) {
        const int64_t rows = std::min(kTileRows, r1 - r);
        const uint16_t* tile_w = static_cast<const uint16_t*>(w->w) + r * k + k0;
        for (int64_t c0 = 0; c0 < mc; c0 += kWidth) {
            const int64_t columns = std::min(kWidth, mc - c0), vectors = (columns + kLanes - 1) / kLanes;
            kTileKernels[static_cast<size_t>((rows - 1) * kTileVectors + vectors - 1)](xp + c0 * pairs, tile_w, k,
                                                                                       pairs, out);
            store_tile_transposed(out, kWidth, rows, columns, first, w->bias != nullptr ? w->bias + r : nullptr,
                                  w->y + (m0 + c0) * w->n + r, w->n);
        }
    }
}

}  // namespace

bool bf16_dot_products_available() {
    static const bool cpu_has_them = __builtin_cpu_supports("avx512bf16");
    return cpu_has_them && isa_in_use().rfind("avx3", 0) == 0;
}

void gemm_many_bf16(const float* x, const MatvecWeight* ws, int count, int64_t m, int64_t k) {
    if (k % 2 != 0) throw std::invalid_argument("gemm_many_bf16: k must be even (pairs of bf16 products)");
    BlockedKernels kernels;
    kernels.tile_rows = kTileRows;
    kernels.width = kWidth;
    kernels.max_block_columns = kMaxBlockColumns;
    kernels.max_block_rows = kMaxBlockRows;
    kernels.column_step = 2;
    kernels.packed_value_bytes = sizeof(uint16_t);
    kernels.pack = &pack_rows;
    kernels.multiply = &tile_range;
    run_blocked(kernels, x, ws, count, m, k);
}

}  // namespace tfx::cpu
