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

constexpr int kLanes = 16;     // x rows a vector: a tile
constexpr int kUnits = 16;     // 4-byte units a pair of blocks takes (64 values)
constexpr int kUnitBytes = 4;  // values a lane's vpdpbusd sums

#define TFX_TARGET_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))

TFX_TARGET_VNNI inline __m512i broadcast_unit(const uint8_t* at) {
    int32_t unit;
    std::memcpy(&unit, at, sizeof unit);
    return _mm512_set1_epi32(unit);
}

// Weight rows [row0, row0 + 4) (a group) against the x rows of tiles [tile0, tile0 + V), into y.
//
// Unit u of a pair holds four values of block u % 2 (the pair order: quant_matvec.h). q8_0's
// row pair is its 16 units; q4's is 32 bytes whose low nibbles are units 0-7 and high nibbles
// units 8-15. vpdpbusd takes the weights (stored unsigned: q8_0 as q + 128, q4_0 as q + 8) as
// its unsigned operand, so a block's sums start from -128 or -8 x the x row's block sum.
template <QuantFormat F, int V>
TFX_TARGET_VNNI void group_tile(const XLanes& x, const QuantizedWeight& w, int64_t row0, int64_t row_end,
                                int64_t tile0, const float* bias, float* y) {
    const int64_t pairs = x.pairs, blocks = 2 * pairs, pair_bytes = quant_pair_bytes(F);
    const int64_t tile_bytes = pairs * kUnits * kLanes * kUnitBytes;
    const uint8_t* wq = w.quants + row0 * pairs * pair_bytes;
    const uint16_t* ws = w.scales + row0 * pairs * 2;
    __m512 acc[kQuantRowGroup][V];
    for (auto& row : acc) {
        for (auto& a : row) a = _mm512_setzero_ps();
    }
    for (int64_t p = 0; p < pairs; ++p) {
        // The group's eight scales of pair p: row t's block b is entry 2t + b.
        alignas(32) float w_scale[8], w_min[8];
        _mm256_store_ps(w_scale, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ws + p * 8))));
        if constexpr (F == QuantFormat::q4_1) {
            _mm256_store_ps(w_min, _mm256_cvtph_ps(_mm_loadu_si128(
                                       reinterpret_cast<const __m128i*>(w.mins + row0 * pairs * 2 + p * 8))));
        }
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
                        const __m512i wv = broadcast_unit(group_pair + t * pair_bytes + u * kUnitBytes);
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
                        const __m512i packed = broadcast_unit(group_pair + t * pair_bytes + j * kUnitBytes);
                        const __m512i low = _mm512_and_si512(packed, low4);
                        const __m512i high = _mm512_and_si512(_mm512_srli_epi16(packed, 4), low4);
                        for (int v = 0; v < V; ++v) {
                            sums[t][v] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(sums[t][v], low, x_low[v]), high,
                                                             x_high[v]);
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
    const int rows = static_cast<int>(std::min<int64_t>(kQuantRowGroup, row_end - row0));
    alignas(16) float bias4[4] = {};
    if (bias != nullptr) std::copy_n(bias + row0, rows, bias4);
    const __m512 bias_vector = _mm512_broadcast_f32x4(_mm_load_ps(bias4));
    for (int v = 0; v < V; ++v) {
        const __m512d lo01 = _mm512_castps_pd(_mm512_unpacklo_ps(acc[0][v], acc[1][v]));
        const __m512d hi01 = _mm512_castps_pd(_mm512_unpackhi_ps(acc[0][v], acc[1][v]));
        const __m512d lo23 = _mm512_castps_pd(_mm512_unpacklo_ps(acc[2][v], acc[3][v]));
        const __m512d hi23 = _mm512_castps_pd(_mm512_unpackhi_ps(acc[2][v], acc[3][v]));
        alignas(64) float out[4][kLanes];
        _mm512_store_ps(out[0], _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(lo01, lo23)), bias_vector));
        _mm512_store_ps(out[1], _mm512_add_ps(_mm512_castpd_ps(_mm512_unpackhi_pd(lo01, lo23)), bias_vector));
        _mm512_store_ps(out[2], _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(hi01, hi23)), bias_vector));
        _mm512_store_ps(out[3], _mm512_add_ps(_mm512_castpd_ps(_mm512_unpackhi_pd(hi01, hi23)), bias_vector));
        const int64_t first = (tile0 + v) * kLanes;
        const int valid = static_cast<int>(std::min<int64_t>(kLanes, x.m - first));
        for (int i = 0; i < valid; ++i) {
            float* dst = y + (first + i) * w.n + row0;
            const float* src = out[i % 4] + (i / 4) * 4;
            if (rows == kQuantRowGroup) {
                _mm_storeu_ps(dst, _mm_load_ps(src));
            } else {
                std::copy_n(src, rows, dst);
            }
        }
    }
}

// Weights a pass over the x tiles reads (at most): the rows of w go in chunks of about this
// size, which stay in L2 while every x tile passes them; all the rows at once would stream a
// large matrix (an output projection) from memory once for every three x tiles.
constexpr int64_t kChunkBytes = int64_t{192} << 10;

// Per chunk of w's rows: tiles of x three at a time (48 rows: 4 x 3 int sums and 4 x 3 float
// sums fill 24 of the 32 registers), then the one or two left; within each, every group of the
// chunk, so the x tiles stay in L1 while the weights stream from L2.
template <QuantFormat F>
void run_lanes(const XLanes& x, const QuantizedWeight& w, const float* bias, float* y, int64_t r0, int64_t r1) {
    constexpr int kTilesAtOnce = 3;
    const int64_t row_bytes = x.pairs * quant_pair_bytes(F);
    const int64_t chunk = std::max<int64_t>(1, kChunkBytes / (row_bytes * kQuantRowGroup)) * kQuantRowGroup;
    for (int64_t c0 = r0; c0 < r1; c0 += chunk) {
        const int64_t c1 = std::min(r1, c0 + chunk);
        for (int64_t tile0 = 0; tile0 < x.tiles; tile0 += kTilesAtOnce) {
            const int64_t tiles = std::min<int64_t>(kTilesAtOnce, x.tiles - tile0);
            for (int64_t row0 = c0; row0 < c1; row0 += kQuantRowGroup) {
                if (tiles == 3) {
                    group_tile<F, 3>(x, w, row0, r1, tile0, bias, y);
                } else if (tiles == 2) {
                    group_tile<F, 2>(x, w, row0, r1, tile0, bias, y);
                } else {
                    group_tile<F, 1>(x, w, row0, r1, tile0, bias, y);
                }
            }
        }
    }
}

}  // namespace

void to_lanes(const QuantizedRows& x, int64_t m, XLanes& out) {
    const int64_t pairs = x.pairs, blocks = 2 * pairs, tiles = (m + kLanes - 1) / kLanes;
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

void quant_gemm_lanes(const XLanes& x, const QuantizedWeight& w, const float* bias, float* y, int64_t r0,
                      int64_t r1) {
    switch (w.format) {
        case QuantFormat::q8_0:
            return run_lanes<QuantFormat::q8_0>(x, w, bias, y, r0, r1);
        case QuantFormat::q4_1:
            return run_lanes<QuantFormat::q4_1>(x, w, bias, y, r0, r1);
        case QuantFormat::q4_0:
            break;
    }
    run_lanes<QuantFormat::q4_0>(x, w, bias, y, r0, r1);
}

}  // namespace tfx::cpu
