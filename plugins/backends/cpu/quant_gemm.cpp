#include "quant_gemm.h"

// GCC 12's AVX-512 headers fill unused lanes with _mm*_undefined_*(), which -Wuninitialized
// reports once inlined: a false positive in its own headers (see quant_matvec.cpp).
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "parallel.h"

namespace tfx::cpu {
namespace {

constexpr int kUnits = 16;     // 4-byte units a pair of blocks takes (64 values)
constexpr int kUnitBytes = 4;  // values a lane's vpdpbusd sums

#define TFX_TARGET_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))
#define TFX_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))

// x rows a vector (a tile) for each kernel: 16 on AVX-512, 8 on AVX2.
constexpr int kLanes512 = 16;
constexpr int kLanes256 = 8;

// The group's eight scales (or q4_1 minimums) of a pair as floats: row t's block b is 2t + b.
TFX_TARGET_AVX2 inline void widen_pair_scales(const uint16_t* at, float* out) {
    _mm256_storeu_ps(out, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(at))));
}

// Writes a tile's results: out[c][4L + t] is weight row row0 + t of x row first + 4L + c (the
// kernels' 4 x 4 transposes); rows past x's m or past row_end are not written.
void store_tile(const float (*out)[kLanes512], int lanes, const XLanes& x, int64_t first, int64_t row0, int64_t row_end,
                int64_t n, float* y) {
    const int rows = static_cast<int>(std::min<int64_t>(kQuantRowGroup, row_end - row0));
    const int valid = static_cast<int>(std::min<int64_t>(lanes, x.m - first));
    for (int i = 0; i < valid; ++i) {
        const float* src = out[i % 4] + (i / 4) * 4;
        float* dst = y + (first + i) * n + row0;
        if (rows == kQuantRowGroup) {
            std::memcpy(dst, src, sizeof(float) * kQuantRowGroup);
        } else {
            std::copy_n(src, rows, dst);
        }
    }
}

TFX_TARGET_AVX2 inline int32_t load_unit(const uint8_t* at) {
    int32_t unit;
    std::memcpy(&unit, at, sizeof unit);
    return unit;
}

// Weight rows [row0, row0 + 4) (a group) against the x rows of tiles [tile0, tile0 + V), into y.
//
// Unit u of a pair holds four values of block u % 2 (the pair order: quant_matvec.h). q8_0's
// row pair is its 16 units; q4's is 32 bytes whose low nibbles are units 0-7 and high nibbles
// units 8-15. vpdpbusd takes the weights (stored unsigned: q8_0 as q + 128, q4_0 as q + 8) as
// its unsigned operand, so a block's sums start from -128 or -8 x the x row's block sum.
template <QuantFormat F, int V>
TFX_TARGET_VNNI void group_tile_vnni(const XLanes& x, const QuantizedWeight& w, int64_t row0, int64_t row_end,
                                     int64_t tile0, const float* bias, float* y) {
    const int64_t pairs = x.pairs, blocks = 2 * pairs, pair_bytes = quant_pair_bytes(F);
    constexpr int kLanes = kLanes512;
    const int64_t tile_bytes = pairs * kUnits * kLanes * kUnitBytes;
    const uint8_t* wq = w.quants + row0 * pairs * pair_bytes;
    const uint16_t* ws = w.scales + row0 * pairs * 2;
    __m512 acc[kQuantRowGroup][V];
    for (auto& row : acc) {
        for (auto& a : row) a = _mm512_setzero_ps();
    }
    for (int64_t p = 0; p < pairs; ++p) {
        // The group's eight scales of pair p: row t's block b is entry 2t + b.
        float w_scale[8], w_min[8];
        widen_pair_scales(ws + p * 8, w_scale);
        if constexpr (F == QuantFormat::q4_1) widen_pair_scales(w.mins + row0 * pairs * 2 + p * 8, w_min);
        const uint8_t* group_pair = wq + p * kQuantRowGroup * pair_bytes;
        const int8_t* x_pair = x.q.data() + tile0 * tile_bytes + p * kUnits * kLanes * kUnitBytes;
        for (int blk = 0; blk < 2; ++blk) {
            const int64_t b = 2 * p + blk;
            __m512i sums[kQuantRowGroup][V];
            for (int v = 0; v < V; ++v) {
                const int32_t* neg_sum = x.neg_sum.data() + ((tile0 + v) * blocks + b) * kLanes;
                __m512i start = _mm512_setzero_si512();
                if constexpr (F == QuantFormat::q8_0) start = _mm512_slli_epi32(_mm512_loadu_si512(neg_sum), 7);
                if constexpr (F == QuantFormat::q4_0) start = _mm512_slli_epi32(_mm512_loadu_si512(neg_sum), 3);
                for (auto& row : sums) row[v] = start;
            }
            // Unrolled: otherwise GCC copies every sum register once an iteration.
            if constexpr (F == QuantFormat::q8_0) {
#pragma GCC unroll 8
                for (int u = blk; u < kUnits; u += 2) {
                    __m512i xv[V];
                    for (int v = 0; v < V; ++v) xv[v] = _mm512_loadu_si512(x_pair + v * tile_bytes + u * 64);
                    for (int t = 0; t < kQuantRowGroup; ++t) {
                        const __m512i wv = _mm512_set1_epi32(load_unit(group_pair + t * pair_bytes + u * kUnitBytes));
                        for (int v = 0; v < V; ++v) sums[t][v] = _mm512_dpbusd_epi32(sums[t][v], wv, xv[v]);
                    }
                }
            } else {
                const __m512i low4 = _mm512_set1_epi8(0x0F);
#pragma GCC unroll 4
                for (int j = blk; j < kUnits / 2; j += 2) {  // units j (low nibbles) and 8 + j (high)
                    __m512i x_low[V], x_high[V];
                    for (int v = 0; v < V; ++v) {
                        x_low[v] = _mm512_loadu_si512(x_pair + v * tile_bytes + j * 64);
                        x_high[v] = _mm512_loadu_si512(x_pair + v * tile_bytes + (kUnits / 2 + j) * 64);
                    }
                    for (int t = 0; t < kQuantRowGroup; ++t) {
                        const __m512i packed =
                            _mm512_set1_epi32(load_unit(group_pair + t * pair_bytes + j * kUnitBytes));
                        const __m512i low = _mm512_and_si512(packed, low4);
                        const __m512i high = _mm512_and_si512(_mm512_srli_epi16(packed, 4), low4);
                        for (int v = 0; v < V; ++v) {
                            sums[t][v] =
                                _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(sums[t][v], low, x_low[v]), high, x_high[v]);
                        }
                    }
                }
            }
            for (int v = 0; v < V; ++v) {
                const int64_t at = ((tile0 + v) * blocks + b) * kLanes;
                const __m512 x_scale = _mm512_loadu_ps(x.scale.data() + at);
                for (int t = 0; t < kQuantRowGroup; ++t) {
                    const __m512 scale = _mm512_mul_ps(x_scale, _mm512_set1_ps(w_scale[2 * t + blk]));
                    acc[t][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums[t][v]), scale, acc[t][v]);
                }
                if constexpr (F == QuantFormat::q4_1) {  // + min x (the block's sum of x)
                    const __m512 x_sum = _mm512_loadu_ps(x.scaled_sum.data() + at);
                    for (int t = 0; t < kQuantRowGroup; ++t) {
                        acc[t][v] = _mm512_fmadd_ps(x_sum, _mm512_set1_ps(w_min[2 * t + blk]), acc[t][v]);
                    }
                }
            }
        }
    }
    // acc[t][v] holds weight row row0 + t for 16 x rows: transposed in 4 x 4 blocks, so that
    // 128-bit lane L of out[c] holds the four weight rows of x row 4L + c.
    alignas(16) float bias4[4] = {};
    if (bias != nullptr) std::copy_n(bias + row0, std::min<int64_t>(kQuantRowGroup, row_end - row0), bias4);
    const __m512 bias_vector = _mm512_broadcast_f32x4(_mm_load_ps(bias4));
    for (int v = 0; v < V; ++v) {
        const __m512d lo01 = _mm512_castps_pd(_mm512_unpacklo_ps(acc[0][v], acc[1][v]));
        const __m512d hi01 = _mm512_castps_pd(_mm512_unpackhi_ps(acc[0][v], acc[1][v]));
        const __m512d lo23 = _mm512_castps_pd(_mm512_unpacklo_ps(acc[2][v], acc[3][v]));
        const __m512d hi23 = _mm512_castps_pd(_mm512_unpackhi_ps(acc[2][v], acc[3][v]));
        alignas(64) float out[4][kLanes512];
        _mm512_store_ps(out[0], _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(lo01, lo23)), bias_vector));
        _mm512_store_ps(out[1], _mm512_add_ps(_mm512_castpd_ps(_mm512_unpackhi_pd(lo01, lo23)), bias_vector));
        _mm512_store_ps(out[2], _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(hi01, hi23)), bias_vector));
        _mm512_store_ps(out[3], _mm512_add_ps(_mm512_castpd_ps(_mm512_unpackhi_pd(hi01, hi23)), bias_vector));
        store_tile(out, kLanes, x, (tile0 + v) * kLanes, row0, row_end, w.n, y);
    }
}

// The same on AVX2, 8 x rows a vector, without vpdpbusd: vpmaddubsw sums pairs of u8 x s8
// products in 16 bits, vpmaddwd pairs of those in 32. q8_0 takes |w| x (x with w's sign), as
// 128 x 127 x 2 fits 16 bits where 255 x 127 x 2 would not. q4's 16-bit sums of a whole block
// fit (8 x 15 x 127 x 2 < 2^15), so they widen once a block rather than once a unit. Two x
// tiles (16 rows) a register tile: 16 registers hold the sums and the operands.
template <QuantFormat F, int V>
TFX_TARGET_AVX2 void group_tile_avx2(const XLanes& x, const QuantizedWeight& w, int64_t row0, int64_t row_end,
                                     int64_t tile0, const float* bias, float* y) {
    const int64_t pairs = x.pairs, blocks = 2 * pairs, pair_bytes = quant_pair_bytes(F);
    constexpr int kLanes = kLanes256;
    const int64_t tile_bytes = pairs * kUnits * kLanes * kUnitBytes;
    const uint8_t* wq = w.quants + row0 * pairs * pair_bytes;
    const uint16_t* ws = w.scales + row0 * pairs * 2;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[kQuantRowGroup][V];
    for (auto& row : acc) {
        for (auto& a : row) a = _mm256_setzero_ps();
    }
    for (int64_t p = 0; p < pairs; ++p) {
        float w_scale[8], w_min[8];
        widen_pair_scales(ws + p * 8, w_scale);
        if constexpr (F == QuantFormat::q4_1) widen_pair_scales(w.mins + row0 * pairs * 2 + p * 8, w_min);
        const uint8_t* group_pair = wq + p * kQuantRowGroup * pair_bytes;
        const int8_t* x_pair = x.q.data() + tile0 * tile_bytes + p * kUnits * kLanes * kUnitBytes;
        for (int blk = 0; blk < 2; ++blk) {
            const int64_t b = 2 * p + blk;
            __m256i sums[kQuantRowGroup][V];  // q8_0: 32-bit; q4: 16-bit until the block ends
            for (auto& row : sums) {
                for (auto& s : row) s = _mm256_setzero_si256();
            }
            if constexpr (F == QuantFormat::q8_0) {
                const __m256i unbias = _mm256_set1_epi8(static_cast<char>(0x80));
#pragma GCC unroll 1
                for (int u = blk; u < kUnits; u += 2) {
                    __m256i xv[V];
                    for (int v = 0; v < V; ++v) {
                        xv[v] = _mm256_loadu_si256(
                            reinterpret_cast<const __m256i*>(x_pair + v * tile_bytes + u * kLanes * kUnitBytes));
                    }
                    for (int t = 0; t < kQuantRowGroup; ++t) {
                        const __m256i wv = _mm256_xor_si256(
                            _mm256_set1_epi32(load_unit(group_pair + t * pair_bytes + u * kUnitBytes)), unbias);
                        const __m256i magnitude = _mm256_abs_epi8(wv);
                        for (int v = 0; v < V; ++v) {
                            const __m256i products = _mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(xv[v], wv));
                            sums[t][v] = _mm256_add_epi32(sums[t][v], _mm256_madd_epi16(products, ones));
                        }
                    }
                }
            } else {
                const __m256i low4 = _mm256_set1_epi8(0x0F);
#pragma GCC unroll 1
                for (int j = blk; j < kUnits / 2; j += 2) {  // units j (low nibbles) and 8 + j (high)
                    __m256i x_low[V], x_high[V];
                    for (int v = 0; v < V; ++v) {
                        const int8_t* at = x_pair + v * tile_bytes + j * kLanes * kUnitBytes;
                        x_low[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(at));
                        x_high[v] =
                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(at + kUnits / 2 * kLanes * kUnitBytes));
                    }
                    for (int t = 0; t < kQuantRowGroup; ++t) {
                        const __m256i packed =
                            _mm256_set1_epi32(load_unit(group_pair + t * pair_bytes + j * kUnitBytes));
                        const __m256i low = _mm256_and_si256(packed, low4);
                        const __m256i high = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low4);
                        for (int v = 0; v < V; ++v) {
                            sums[t][v] =
                                _mm256_add_epi16(sums[t][v], _mm256_add_epi16(_mm256_maddubs_epi16(low, x_low[v]),
                                                                              _mm256_maddubs_epi16(high, x_high[v])));
                        }
                    }
                }
            }
            for (int v = 0; v < V; ++v) {
                const int64_t at = ((tile0 + v) * blocks + b) * kLanes;
                const __m256 x_scale = _mm256_loadu_ps(x.scale.data() + at);
                // q4_0's stored bias: -8 x the block's sum of x (q8_0's sums took w back already).
                __m256i start = _mm256_setzero_si256();
                if constexpr (F == QuantFormat::q4_0) {
                    start = _mm256_slli_epi32(
                        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.neg_sum.data() + at)), 3);
                }
                for (int t = 0; t < kQuantRowGroup; ++t) {
                    __m256i total = sums[t][v];
                    if constexpr (F != QuantFormat::q8_0) total = _mm256_madd_epi16(total, ones);
                    total = _mm256_add_epi32(total, start);
                    const __m256 scale = _mm256_mul_ps(x_scale, _mm256_set1_ps(w_scale[2 * t + blk]));
                    acc[t][v] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total), scale, acc[t][v]);
                }
                if constexpr (F == QuantFormat::q4_1) {  // + min x (the block's sum of x)
                    const __m256 x_sum = _mm256_loadu_ps(x.scaled_sum.data() + at);
                    for (int t = 0; t < kQuantRowGroup; ++t) {
                        acc[t][v] = _mm256_fmadd_ps(x_sum, _mm256_set1_ps(w_min[2 * t + blk]), acc[t][v]);
                    }
                }
            }
        }
    }
    // As on AVX-512, with two 128-bit lanes: x rows 4L + c for L = 0, 1.
    alignas(16) float bias4[4] = {};
    if (bias != nullptr) std::copy_n(bias + row0, std::min<int64_t>(kQuantRowGroup, row_end - row0), bias4);
    const __m256 bias_vector = _mm256_broadcast_ps(reinterpret_cast<const __m128*>(bias4));
    for (int v = 0; v < V; ++v) {
        const __m256d lo01 = _mm256_castps_pd(_mm256_unpacklo_ps(acc[0][v], acc[1][v]));
        const __m256d hi01 = _mm256_castps_pd(_mm256_unpackhi_ps(acc[0][v], acc[1][v]));
        const __m256d lo23 = _mm256_castps_pd(_mm256_unpacklo_ps(acc[2][v], acc[3][v]));
        const __m256d hi23 = _mm256_castps_pd(_mm256_unpackhi_ps(acc[2][v], acc[3][v]));
        alignas(64) float out[4][kLanes512];
        _mm256_store_ps(out[0], _mm256_add_ps(_mm256_castpd_ps(_mm256_unpacklo_pd(lo01, lo23)), bias_vector));
        _mm256_store_ps(out[1], _mm256_add_ps(_mm256_castpd_ps(_mm256_unpackhi_pd(lo01, lo23)), bias_vector));
        _mm256_store_ps(out[2], _mm256_add_ps(_mm256_castpd_ps(_mm256_unpacklo_pd(hi01, hi23)), bias_vector));
        _mm256_store_ps(out[3], _mm256_add_ps(_mm256_castpd_ps(_mm256_unpackhi_pd(hi01, hi23)), bias_vector));
        store_tile(out, kLanes, x, (tile0 + v) * kLanes, row0, row_end, w.n, y);
    }
}

// Weights a pass over the x tiles reads (at most): the rows of w go in chunks of about this
// size, which stay in L2 while every x tile passes them; all the rows at once would stream a
// large matrix (an output projection) from memory once for every three x tiles.
constexpr int64_t kChunkBytes = int64_t{192} << 10;

// Per chunk of w's rows: tiles of x V at a time (AVX-512: three, 48 rows, whose 4 x 3 int and
// float sums fill 24 of the 32 registers; AVX2: two), then the rest; within each, every group of
// the chunk, so the x tiles stay in L1 while the weights stream from L2.
template <QuantFormat F, int V, class Tile>
void run_lanes(const XLanes& x, int64_t r0, int64_t r1, Tile&& tile) {
    const int64_t row_bytes = x.pairs * quant_pair_bytes(F);
    const int64_t chunk = std::max<int64_t>(1, kChunkBytes / (row_bytes * kQuantRowGroup)) * kQuantRowGroup;
    for (int64_t c0 = r0; c0 < r1; c0 += chunk) {
        const int64_t c1 = std::min(r1, c0 + chunk);
        for (int64_t tile0 = 0; tile0 < x.tiles; tile0 += V) {
            const int64_t tiles = std::min<int64_t>(V, x.tiles - tile0);
            for (int64_t row0 = c0; row0 < c1; row0 += kQuantRowGroup) tile(tiles, row0, tile0);
        }
    }
}

template <QuantFormat F>
void run_format(const XLanes& x, const QuantizedWeight& w, const float* bias, float* y, int64_t r0, int64_t r1) {
    if (x.kernel == QuantKernel::avx512_vnni) {
        return run_lanes<F, 3>(x, r0, r1, [&](int64_t tiles, int64_t row0, int64_t tile0) {
            if (tiles == 3) return group_tile_vnni<F, 3>(x, w, row0, r1, tile0, bias, y);
            if (tiles == 2) return group_tile_vnni<F, 2>(x, w, row0, r1, tile0, bias, y);
            group_tile_vnni<F, 1>(x, w, row0, r1, tile0, bias, y);
        });
    }
    run_lanes<F, 2>(x, r0, r1, [&](int64_t tiles, int64_t row0, int64_t tile0) {
        if (tiles == 2) return group_tile_avx2<F, 2>(x, w, row0, r1, tile0, bias, y);
        group_tile_avx2<F, 1>(x, w, row0, r1, tile0, bias, y);
    });
}

}  // namespace

void to_lanes(QuantKernel kernel, const QuantizedRows& x, int64_t m, XLanes& out) {
    const int kLanes = kernel == QuantKernel::avx512_vnni ? kLanes512 : kLanes256;
    const int64_t pairs = x.pairs, blocks = 2 * pairs, tiles = (m + kLanes - 1) / kLanes;
    out.kernel = kernel;
    out.m = m;
    out.tiles = tiles;
    out.pairs = pairs;
    out.q.resize(static_cast<size_t>(tiles * pairs * kUnits * kLanes * kUnitBytes));
    out.scale.resize(static_cast<size_t>(tiles * blocks * kLanes));
    out.neg_sum.resize(out.scale.size());
    out.scaled_sum.resize(out.scale.size());
    parallel_for(tiles, m * pairs >= 1024, [&](int64_t tile) {
        for (int lane = 0; lane < kLanes; ++lane) {
            const int64_t i = tile * kLanes + lane;
            const bool real = i < m;  // padding rows: zeros, scale 0
            for (int64_t p = 0; p < pairs; ++p) {
                int8_t* dst = out.q.data() + ((tile * pairs + p) * kUnits * kLanes + lane) * kUnitBytes;
                const int8_t* src = x.q.data() + (i * pairs + p) * kQuantPair;
                for (int u = 0; u < kUnits; ++u) {
                    if (real) {
                        std::memcpy(dst + u * kLanes * kUnitBytes, src + u * kUnitBytes, kUnitBytes);
                    } else {
                        std::memset(dst + u * kLanes * kUnitBytes, 0, kUnitBytes);
                    }
                }
            }
            for (int64_t b = 0; b < blocks; ++b) {
                const size_t at = static_cast<size_t>((tile * blocks + b) * kLanes + lane);
                const size_t from = static_cast<size_t>(i * blocks + b);
                out.scale[at] = real ? x.scale[from] : 0.0f;
                out.neg_sum[at] = real ? x.neg_sum[from] : 0;
                out.scaled_sum[at] = real ? x.scaled_sum[from] : 0.0f;
            }
        }
    });
}

void quant_gemm_lanes(const XLanes& x, const QuantizedWeight& w, const float* bias, float* y, int64_t r0, int64_t r1) {
    switch (w.format) {
        case QuantFormat::q8_0:
            return run_format<QuantFormat::q8_0>(x, w, bias, y, r0, r1);
        case QuantFormat::q4_1:
            return run_format<QuantFormat::q4_1>(x, w, bias, y, r0, r1);
        case QuantFormat::q4_0:
            break;
    }
    run_format<QuantFormat::q4_0>(x, w, bias, y, r0, r1);
}

}  // namespace tfx::cpu
