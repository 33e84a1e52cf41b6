#include "quant_matvec.h"

// GCC 12's AVX-512 headers fill unused lanes with _mm*_undefined_*(), which -Wuninitialized
// reports once inlined (_mm512_reduce_add_ps, for one): a false positive in its own headers.
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "matvec.h"
#include "parallel.h"
#include "quant_gemm.h"
#include "quant_rows.h"
#include "tfx/sdk/half.hpp"

namespace tfx::cpu {
namespace {

// q8_0 values are stored plus 128, as unsigned bytes: vpdpbusd multiplies unsigned by signed
// bytes, so w + 128 goes straight in and 128 x (sum of x) comes off.
constexpr int kQ8Bias = 128;

// Position p (0..63) of a pair in the backend's order holds value perm(p) of the pair's 64
// (block 0's 32, then block 1's). Lane j of the integer sums covers positions 4j..4j+3 of each
// 32-byte half: all from block j % 2.
constexpr int perm(int p) {
    const int i = p % 32, half = p / 32, group = i / 4, r = i % 4;
    return (group % 2) * 32 + half * 16 + (group / 2) * 4 + r;
}

// Where value e (0..31) of block `blk` of a pair goes: byte i of a 32-byte half, and the half
// (for q4_0: the nibble, low or high).
struct Slot {
    int byte, half;
};
constexpr Slot slot_of(int blk, int e) {
    const int half = e / 16, rest = e % 16, group = (rest / 4) * 2 + blk;
    return {group * 4 + rest % 4, half};
}

// Where value e of block `blk` of a pair goes among the pair's 64 bytes.
struct SlotTable {
    uint8_t at[2][kQuantBlock];
    constexpr SlotTable() : at{} {
        for (int blk = 0; blk < 2; ++blk) {
            for (int e = 0; e < kQuantBlock; ++e) {
                const Slot s = slot_of(blk, e);
                at[blk][e] = static_cast<uint8_t>(s.half * 32 + s.byte);
            }
        }
    }
};
constexpr SlotTable kSlots;

// One block of x in order (loops the compiler vectorizes; rounding half to even, as the
// kernels' reference does), then placed in the pair's order.
void quantize_block(const float* x, int64_t n, int blk, int8_t* pair, float& scale, int32_t& neg_sum,
                    float& scaled_sum) {
    float values[kQuantBlock] = {};
    for (int64_t e = 0; e < n; ++e) values[e] = x[e];
    float amax = 0.0f;
    for (float v : values) amax = std::max(amax, std::fabs(v));
    const float d = amax / 127.0f, inv = d != 0.0f ? 1.0f / d : 0.0f;
    int8_t q[kQuantBlock];
    int32_t sum = 0;
    for (int e = 0; e < kQuantBlock; ++e) {
        q[e] = static_cast<int8_t>(__builtin_roundevenf(values[e] * inv));
        sum += q[e];
    }
    for (int e = 0; e < kQuantBlock; ++e) pair[kSlots.at[blk][e]] = q[e];
    scale = d;
    neg_sum = -sum;
    scaled_sum = d * static_cast<float>(sum);
}

#define TFX_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))

// A whole pair of blocks of x (64 values) with AVX2: the same values as quantize_block, in
// ~1/10 of the time (scalar, x's quantization took a fifth of a q4_0 prefill on Zen 5).
TFX_TARGET_AVX2 inline void quantize_pair_avx2(const float* x, int8_t* pair, float* scale, int32_t* neg_sum,
                                               float* scaled_sum) {
    const __m256 sign_bit = _mm256_set1_ps(-0.0f);
    __m256i blocks[2];
    for (int blk = 0; blk < 2; ++blk) {
        __m256 v[4], amax = _mm256_setzero_ps();
        for (int j = 0; j < 4; ++j) {
            v[j] = _mm256_loadu_ps(x + blk * kQuantBlock + 8 * j);
            amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign_bit, v[j]));
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        const float largest = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
        const float d = largest / 127.0f, inv = d != 0.0f ? 1.0f / d : 0.0f;
        __m256i q[4], sum = _mm256_setzero_si256();
        for (int j = 0; j < 4; ++j) {
            const __m256 scaled = _mm256_mul_ps(v[j], _mm256_set1_ps(inv));
            q[j] = _mm256_cvtps_epi32(_mm256_round_ps(scaled, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
            sum = _mm256_add_epi32(sum, q[j]);
        }
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
        const int32_t total = _mm_cvtsi128_si32(_mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1)));
        scale[blk] = d;
        neg_sum[blk] = -total;
        scaled_sum[blk] = d * static_cast<float>(total);
        // Packing leaves the 4-value units in the order 0 2 4 6 1 3 5 7; put them back in order.
        const __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        blocks[blk] = _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    }
    // The pair's order: 4-value units alternate between the blocks, units 0-3 in the first
    // 32 bytes and 4-7 in the second.
    const __m256i low = _mm256_unpacklo_epi32(blocks[0], blocks[1]);
    const __m256i high = _mm256_unpackhi_epi32(blocks[0], blocks[1]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(pair), _mm256_permute2x128_si256(low, high, 0x20));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(pair + 32), _mm256_permute2x128_si256(low, high, 0x31));
}

// Quantizes the m rows of x for `kernel`; the portable kernel's way is the scalar reference.
void quantize_rows(QuantKernel kernel, const float* x, int64_t m, int64_t k, QuantizedRows& out) {
    const int64_t pairs = quant_pairs(k);
    out.pairs = pairs;
    out.q.resize(static_cast<size_t>(m * pairs * kQuantPair));
    out.scale.resize(static_cast<size_t>(m * pairs * 2));
    out.neg_sum.resize(static_cast<size_t>(m * pairs * 2));
    out.scaled_sum.resize(static_cast<size_t>(m * pairs * 2));
    const bool simd = kernel != QuantKernel::portable;
    parallel_for(m, m * k >= (int64_t{1} << 16), [&](int64_t row) {
        const float* xr = x + row * k;
        for (int64_t p = 0; p < pairs; ++p) {
            const size_t at = static_cast<size_t>((row * pairs + p) * 2);
            int8_t* pair = out.q.data() + (row * pairs + p) * kQuantPair;
            if (simd && (p + 1) * kQuantPair <= k) {
                quantize_pair_avx2(xr + p * kQuantPair, pair, &out.scale[at], &out.neg_sum[at], &out.scaled_sum[at]);
                continue;
            }
            for (int blk = 0; blk < 2; ++blk) {  // a pair past the end of the row, or partly
                const int64_t begin = (2 * p + blk) * kQuantBlock, n = std::clamp<int64_t>(k - begin, 0, kQuantBlock);
                quantize_block(xr + std::min(begin, k), n, blk, pair, out.scale[at + blk], out.neg_sum[at + blk],
                               out.scaled_sum[at + blk]);
            }
        }
    });
}

// ---- the kernels: rows [r0, r1) of w against every quantized row of x ----

struct Job {
    const QuantizedRows* x;
    const QuantizedWeight* w;
    const float* bias;
    float* y;  // [m, w.n]
    int64_t m;
};
using RowsFn = void (*)(const Job&, int64_t r0, int64_t r1);

template <QuantFormat F>
void rows_portable(const Job& job, int64_t r0, int64_t r1) {
    const QuantizedWeight& w = *job.w;
    const int64_t pairs = job.x->pairs, pair_bytes = quant_pair_bytes(F);
    for (int64_t r = r0; r < r1; ++r) {
        // Row r's pair p is the (r % 4)-th of its group's pair p.
        const int64_t group = r / kQuantRowGroup, t = r % kQuantRowGroup;
        auto at = [&](int64_t p) { return (group * pairs + p) * kQuantRowGroup + t; };
        for (int64_t i = 0; i < job.m; ++i) {
            const int8_t* xq = job.x->q.data() + i * pairs * kQuantPair;
            const float* xs = job.x->scale.data() + i * pairs * 2;
            float total = 0.0f;
            for (int64_t p = 0; p < pairs; ++p) {
                int32_t sums[2] = {0, 0};
                const uint8_t* wq = w.quants + at(p) * pair_bytes;
                for (int pos = 0; pos < kQuantPair; ++pos) {
                    int32_t v;
                    if constexpr (F == QuantFormat::q8_0) {
                        v = wq[pos] - kQ8Bias;
                    } else {
                        const uint8_t byte = wq[pos % 32];
                        v = (pos < 32 ? byte & 0x0F : byte >> 4) - (F == QuantFormat::q4_0 ? 8 : 0);
                    }
                    sums[perm(pos) / 32] += v * xq[p * kQuantPair + pos];
                }
                for (int blk = 0; blk < 2; ++blk) {
                    total +=
                        sdk::f16_to_f32(w.scales[at(p) * 2 + blk]) * xs[2 * p + blk] * static_cast<float>(sums[blk]);
                    if constexpr (F == QuantFormat::q4_1) {
                        const float* xsum = job.x->scaled_sum.data() + i * pairs * 2;
                        total += sdk::f16_to_f32(w.mins[at(p) * 2 + blk]) * xsum[2 * p + blk];
                    }
                }
            }
            job.y[i * w.n + r] = total + (job.bias != nullptr ? job.bias[r] : 0.0f);
        }
    }
}

#define TFX_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))
#define TFX_TARGET_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))

// The SIMD kernels take a group's four weight rows together: each x vector loaded feeds all
// four, and their sums are independent chains. Per pair of blocks p they widen the group's
// eight f16 scales (4 rows x 2 blocks) in one instruction; each row's sums take their two
// scales (times x's) by a lane permute (q4_1 likewise adds min x (sum of x) for all four
// rows in one multiply-add). An int32 lane of the sums holds products of one block only, and
// lanes alternate between the pair's two blocks.
//
// q4_0 and q4_1 pack a pair row in 32 bytes: byte i's low nibble is position i, its high
// nibble position 32 + i. So x's first 32 bytes meet the low nibbles and its last 32 the high
// ones, and (on AVX-512) one 64-byte load holds two rows' pairs: lanes 0-7 of the sums are
// row t's, lanes 8-15 row t + 1's. That halves the unpacking and the conversions a weight
// takes; the one-row-a-vector form was compute-bound below the read bandwidth on Zen 5.
//
// GCC attaches instruction sets to whole functions, so the AVX-512 loop is stamped out by a
// macro for its two targets (with and without VNNI).

// Lane permutes: the scales of row `t` (entries 2t, 2t + 1 of the group's eight) repeated.
constexpr int32_t kRowScales8[4][8] = {
    {0, 1, 0, 1, 0, 1, 0, 1}, {2, 3, 2, 3, 2, 3, 2, 3}, {4, 5, 4, 5, 4, 5, 4, 5}, {6, 7, 6, 7, 6, 7, 6, 7}};
constexpr int32_t kRowScales16[4][16] = {{0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1},
                                         {2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3},
                                         {4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5},
                                         {6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7}};
// ... and of rows 2u and 2u + 1 in the two halves of a vector (q4 on AVX-512).
constexpr int32_t kTwoRowScales16[2][16] = {{0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3},
                                            {4, 5, 4, 5, 4, 5, 4, 5, 6, 7, 6, 7, 6, 7, 6, 7}};

// ---- AVX2: 8 lanes, 4 a block ----
TFX_TARGET_AVX2 inline float reduce_256(__m256 v) {
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}
// x's two scales (or sums) repeated over eight lanes.
TFX_TARGET_AVX2 inline __m256 pair_of_x_256(const float* p) {
    return _mm256_castpd_ps(_mm256_broadcast_sd(reinterpret_cast<const double*>(p)));
}
// One row's pair: q8_0 as |w| x (x with w's sign), w taken back from its stored w + 128; q4 as nibbles whose 16-bit
// pair sums are added before widening (15 x 127 x 4 fits in 16 bits).
template <QuantFormat F>
TFX_TARGET_AVX2 inline __m256i row_sums_256(const uint8_t* wq, __m256i x0, __m256i x1) {
    const __m256i ones = _mm256_set1_epi16(1);
    if constexpr (F == QuantFormat::q8_0) {
        const __m256i unbias = _mm256_set1_epi8(static_cast<char>(0x80));
        const __m256i w0 = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq)), unbias);
        const __m256i w1 = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq + 32)), unbias);
        return _mm256_add_epi32(
            _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(w0), _mm256_sign_epi8(x0, w0)), ones),
            _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(w1), _mm256_sign_epi8(x1, w1)), ones));
    } else {
        const __m256i low4 = _mm256_set1_epi8(0x0F);
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq));
        const __m256i lo = _mm256_and_si256(v, low4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
        return _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(lo, x0), _mm256_maddubs_epi16(hi, x1)), ones);
    }
}
// The groups of rows [r0, r1) (r0 a group's first row): with one x row, `streams(rows)` for
// S groups at a time, taken from S equal spans of them in lockstep (several streams of
// weights in flight; see kDecodeStreams); then `single(r)` for each group left, or for every
// group when x has more rows.
template <int S, class Streams, class Single>
void walk_groups(int64_t r0, int64_t r1, int64_t m, Streams&& streams, Single&& single) {
    const int64_t groups = (r1 - r0 + kQuantRowGroup - 1) / kQuantRowGroup;
    const int64_t span = m == 1 ? groups / S : 0;
    for (int64_t k = 0; k < span; ++k) {
        int64_t rows[S];
        for (int g = 0; g < S; ++g) rows[g] = r0 + (g * span + k) * kQuantRowGroup;
        streams(rows);
    }
    for (int64_t group = span * S; group < groups; ++group) single(r0 + group * kQuantRowGroup);
}

// Decode streams on AVX2 (see kDecodeStreams below): two, as four groups' sums would not fit
// its 16 vector registers.
constexpr int kDecodeStreams256 = 2;

// G groups of weight rows [r[g], r[g] + 4) against x row i: y for rows below r1.
template <QuantFormat F, int G>
TFX_TARGET_AVX2 void groups_avx2(const Job& job, const int64_t* r, int64_t r1, int64_t i) {
    const QuantizedWeight& w = *job.w;
    const int64_t pairs = job.x->pairs, pair_bytes = quant_pair_bytes(F);
    const int8_t* xq = job.x->q.data() + i * pairs * kQuantPair;
    const float* xs = job.x->scale.data() + i * pairs * 2;
    const int32_t* xn = job.x->neg_sum.data() + i * pairs * 2;
    const float* xsum = job.x->scaled_sum.data() + i * pairs * 2;
    __m256 acc[G][kQuantRowGroup], min_acc[G];
    for (int g = 0; g < G; ++g) {
        min_acc[g] = _mm256_setzero_ps();
        for (auto& v : acc[g]) v = _mm256_setzero_ps();
    }
    for (int64_t p = 0; p < pairs; ++p) {
        const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + p * kQuantPair));
        const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + p * kQuantPair + 32));
        // q4_0 stores q + 8: a block's 4 lanes give back 8 x its sum of x, 2 x each.
        __m256i start = _mm256_setzero_si256();
        if constexpr (F == QuantFormat::q4_0) {
            start = _mm256_broadcastq_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(xn + 2 * p)));
            start = _mm256_add_epi32(start, start);
        }
        for (int g = 0; g < G; ++g) {
            const int64_t at = r[g] * pairs * 2 + p * 8;  // the group's eight scales of pair p
            const __m256 scales =
                _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w.scales + at))),
                              pair_of_x_256(xs + 2 * p));
            if constexpr (F == QuantFormat::q4_1) {
                min_acc[g] =
                    _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w.mins + at))),
                                    pair_of_x_256(xsum + 2 * p), min_acc[g]);
            }
            const uint8_t* group_pair = w.quants + (r[g] * pairs + p * kQuantRowGroup) * pair_bytes;
            for (int t = 0; t < kQuantRowGroup; ++t) {
                const __m256i sums = _mm256_add_epi32(start, row_sums_256<F>(group_pair + t * pair_bytes, x0, x1));
                const __m256 row_scales = _mm256_permutevar8x32_ps(
                    scales, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kRowScales8[t])));
                acc[g][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), row_scales, acc[g][t]);
            }
        }
    }
    for (int g = 0; g < G; ++g) {
        alignas(32) float mins[8];
        _mm256_store_ps(mins, min_acc[g]);
        for (int t = 0; t < kQuantRowGroup && r[g] + t < r1; ++t) {
            const float sum = reduce_256(acc[g][t]) + mins[2 * t] + mins[2 * t + 1];
            job.y[i * w.n + r[g] + t] = sum + (job.bias != nullptr ? job.bias[r[g] + t] : 0.0f);
        }
    }
}

// Every group of [r0, r1) against every x row (a group's weights stay in cache across the x
// rows); one x row takes kDecodeStreams256 groups at a time.
template <QuantFormat F>
TFX_TARGET_AVX2 void rows_avx2(const Job& job, int64_t r0, int64_t r1) {
    walk_groups<kDecodeStreams256>(
        r0, r1, job.m, [&](const int64_t* rows) { groups_avx2<F, kDecodeStreams256>(job, rows, r1, 0); },
        [&](int64_t r) {
            for (int64_t i = 0; i < job.m; ++i) groups_avx2<F, 1>(job, &r, r1, i);
        });
}

// ---- AVX-512: 16 lanes; q8_0 a row a vector (8 lanes a block), q4 two rows a vector (4) ----
// With VNNI, vpdpbusd does the u8 x s8 sums; without it vpmaddubsw + vpmaddwd.
//
// Prefill takes x rows kXTile at a time: a group's weights are unpacked (and q8_0's signs
// found) once for the tile, which leaves 5 instructions a 64 weights and x row of the 9 in
// the one-row form. Decode (one x row) runs the same code with a tile of one, over
// kDecodeStreams groups from evenly spaced parts of a thread's rows at once: four streams of
// weights in flight instead of one, and x's vectors loaded once for the four groups. One
// stream came in at 20-23 GB/s (Zen 5, 1 thread, bench_matvec) where a read loop takes 33-40;
// four measured +10-70% at 1 thread (SmolLM-135M q4_0 / q8_0 decode +7-39% end to end).
constexpr int kXTile = 4;
constexpr int kDecodeStreams = 4;

// vpdpbusd's sums, and the same from vpmaddubsw + vpmaddwd (pairs of products fit 16 bits:
// 255 x 127 x 2 would not, but |w| <= 128 and nibbles <= 15 do).
TFX_TARGET_VNNI inline __m512i dot_vnni(__m512i acc, __m512i u8, __m512i s8) {
    return _mm512_dpbusd_epi32(acc, u8, s8);
}
TFX_TARGET_AVX512 inline __m512i dot_512(__m512i acc, __m512i u8, __m512i s8) {
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u8, s8), _mm512_set1_epi16(1)));
}
// Two floats (x's scales or sums of a pair) repeated over 16 lanes.
TFX_TARGET_AVX512 inline __m512 pair_of_x_512(const float* p) {
    return _mm512_castpd_ps(_mm512_broadcastsd_pd(_mm_load_sd(reinterpret_cast<const double*>(p))));
}

// G groups of weight rows [r[g], r[g] + 4) against x rows [i, i + XT): y for rows below r1.
#define TFX_GROUP_PAIR                                                                                             \
    const __m512 weight_scales =                                                                                   \
        _mm512_castps256_ps512(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ws[g] + p * 8)))); \
    const uint8_t* group_pair = wq[g] + p * kQuantRowGroup * pair_bytes;
#define TFX_QUANT_TILE_512(DOT, VNNI)                                                                                  \
    const QuantizedWeight& w = *job.w;                                                                                 \
    const int64_t pairs = job.x->pairs, pair_bytes = quant_pair_bytes(F);                                              \
    const uint8_t* wq[G];                                                                                              \
    const uint16_t *ws[G], *wm[G];                                                                                     \
    for (int g = 0; g < G; ++g) {                                                                                      \
        wq[g] = w.quants + r[g] * pairs * pair_bytes;                                                                  \
        ws[g] = w.scales + r[g] * pairs * 2;                                                                           \
        wm[g] = w.mins + r[g] * pairs * 2;                                                                             \
    }                                                                                                                  \
    const int64_t x_pairs = pairs * kQuantPair, x_blocks = pairs * 2;                                                  \
    const int8_t* xq = job.x->q.data() + i * x_pairs;                                                                  \
    const float* xs = job.x->scale.data() + i * x_blocks;                                                              \
    const int32_t* xn = job.x->neg_sum.data() + i * x_blocks;                                                          \
    const float* xsum = job.x->scaled_sum.data() + i * x_blocks;                                                       \
    /* Sums vectors an x row: q8_0 one a weight row, q4 one for two. */                                                \
    constexpr int kVectors = F == QuantFormat::q8_0 ? kQuantRowGroup : kQuantRowGroup / 2;                             \
    __m512 acc[G][XT][kVectors];                                                                                       \
    __m256 min_acc[G][XT];                                                                                             \
    for (int g = 0; g < G; ++g) {                                                                                      \
        for (int j = 0; j < XT; ++j) {                                                                                 \
            min_acc[g][j] = _mm256_setzero_ps();                                                                       \
            for (auto& v : acc[g][j]) v = _mm512_setzero_ps();                                                         \
        }                                                                                                              \
    }                                                                                                                  \
    for (int64_t p = 0; p < pairs; ++p) {                                                                              \
        __m512 x_scales[XT];                                                                                           \
        for (int j = 0; j < XT; ++j) x_scales[j] = pair_of_x_512(xs + j * x_blocks + 2 * p);                           \
        if constexpr (F == QuantFormat::q8_0) {                                                                        \
            __m512i x[XT], start[XT];                                                                                  \
            for (int j = 0; j < XT; ++j) {                                                                             \
                x[j] = _mm512_loadu_si512(xq + j * x_pairs + p * kQuantPair);                                          \
                /* vpdpbusd on the stored w + 128: a block's 8 lanes give back 128 x its sum of x, 16 x each. */       \
                const __m512i negated = _mm512_broadcastq_epi64(                                                       \
                    _mm_loadl_epi64(reinterpret_cast<const __m128i*>(xn + j * x_blocks + 2 * p)));                     \
                start[j] = VNNI ? _mm512_slli_epi32(negated, 4) : _mm512_setzero_si512();                              \
            }                                                                                                          \
            for (int g = 0; g < G; ++g) {                                                                              \
                TFX_GROUP_PAIR                                                                                         \
                for (int t = 0; t < kQuantRowGroup; ++t) {                                                             \
                    const __m512i stored = _mm512_loadu_si512(group_pair + t * pair_bytes);                            \
                    const __m512 row_scales =                                                                          \
                        _mm512_permutexvar_ps(_mm512_loadu_si512(kRowScales16[t]), weight_scales);                     \
                    /* Without VNNI: |w| times x with w's sign (w + 128 times x would overflow */                      \
                    /* vpmaddubsw's 16 bits). */                                                                       \
                    __m512i magnitude = stored;                                                                        \
                    __mmask64 negative = 0;                                                                            \
                    if constexpr (!VNNI) {                                                                             \
                        const __m512i w_signed = _mm512_xor_si512(stored, _mm512_set1_epi8(static_cast<char>(0x80)));  \
                        negative = _mm512_movepi8_mask(w_signed);                                                      \
                        magnitude = _mm512_abs_epi8(w_signed);                                                         \
                    }                                                                                                  \
                    for (int j = 0; j < XT; ++j) {                                                                     \
                        __m512i sums;                                                                                  \
                        if constexpr (VNNI) {                                                                          \
                            sums = DOT(start[j], stored, x[j]);                                                        \
                        } else {                                                                                       \
                            sums = DOT(start[j], magnitude,                                                            \
                                       _mm512_mask_sub_epi8(x[j], negative, _mm512_setzero_si512(), x[j]));            \
                        }                                                                                              \
                        acc[g][j][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums),                                       \
                                                       _mm512_mul_ps(row_scales, x_scales[j]), acc[g][j][t]);          \
                    }                                                                                                  \
                }                                                                                                      \
            }                                                                                                          \
        } else {                                                                                                       \
            __m512i x_low[XT], x_high[XT], start[XT];                                                                  \
            for (int j = 0; j < XT; ++j) {                                                                             \
                const int8_t* xp = xq + j * x_pairs + p * kQuantPair;                                                  \
                x_low[j] = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp)));           \
                x_high[j] = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp + 32)));     \
                /* q4_0 stores q + 8: a block's 4 lanes a row give back 8 x its sum of x, 2 x each. */                 \
                start[j] = _mm512_setzero_si512();                                                                     \
                if constexpr (F == QuantFormat::q4_0) {                                                                \
                    const __m512i negated = _mm512_broadcastq_epi64(                                                   \
                        _mm_loadl_epi64(reinterpret_cast<const __m128i*>(xn + j * x_blocks + 2 * p)));                 \
                    start[j] = _mm512_add_epi32(negated, negated);                                                     \
                }                                                                                                      \
            }                                                                                                          \
            const __m512i low4 = _mm512_set1_epi8(0x0F);                                                               \
            for (int g = 0; g < G; ++g) {                                                                              \
                TFX_GROUP_PAIR                                                                                         \
                for (int u = 0; u < kVectors; ++u) {                                                                   \
                    const __m512i v = _mm512_loadu_si512(group_pair + 2 * u * pair_bytes);                             \
                    const __m512i low = _mm512_and_si512(v, low4),                                                     \
                                  high = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);                              \
                    const __m512 row_scales =                                                                          \
                        _mm512_permutexvar_ps(_mm512_loadu_si512(kTwoRowScales16[u]), weight_scales);                  \
                    for (int j = 0; j < XT; ++j) {                                                                     \
                        const __m512i sums = DOT(DOT(start[j], low, x_low[j]), high, x_high[j]);                       \
                        acc[g][j][u] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums),                                       \
                                                       _mm512_mul_ps(row_scales, x_scales[j]), acc[g][j][u]);          \
                    }                                                                                                  \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
        if constexpr (F == QuantFormat::q4_1) {                                                                        \
            /* + min x (sum of x) for the four rows' eight blocks at once. */                                          \
            for (int g = 0; g < G; ++g) {                                                                              \
                const __m256 mins = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wm[g] + p * 8))); \
                for (int j = 0; j < XT; ++j) {                                                                         \
                    const __m256 sums_of_x = _mm256_castpd_ps(                                                         \
                        _mm256_broadcast_sd(reinterpret_cast<const double*>(xsum + j * x_blocks + 2 * p)));            \
                    min_acc[g][j] = _mm256_fmadd_ps(mins, sums_of_x, min_acc[g][j]);                                   \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
    }                                                                                                                  \
    for (int g = 0; g < G; ++g) {                                                                                      \
        for (int j = 0; j < XT; ++j) {                                                                                 \
            alignas(32) float mins[8];                                                                                 \
            _mm256_store_ps(mins, min_acc[g][j]);                                                                      \
            for (int t = 0; t < kQuantRowGroup && r[g] + t < r1; ++t) {                                                \
                float sum;                                                                                             \
                if constexpr (F == QuantFormat::q8_0) {                                                                \
                    sum = _mm512_reduce_add_ps(acc[g][j][t]);                                                          \
                } else {                                                                                               \
                    const __m512 two_rows = acc[g][j][t / 2];                                                          \
                    sum = reduce_256(t % 2 == 0 ? _mm512_castps512_ps256(two_rows)                                     \
                                                : _mm512_extractf32x8_ps(two_rows, 1));                                \
                }                                                                                                      \
                sum += mins[2 * t] + mins[2 * t + 1];                                                                  \
                job.y[(i + j) * w.n + r[g] + t] = sum + (job.bias != nullptr ? job.bias[r[g] + t] : 0.0f);             \
            }                                                                                                          \
        }                                                                                                              \
    }

template <QuantFormat F, int XT, int G>
TFX_TARGET_AVX512 void tile_avx512(const Job& job, const int64_t* r, int64_t r1, int64_t i) {
    TFX_QUANT_TILE_512(dot_512, false)
}
template <QuantFormat F, int XT, int G>
TFX_TARGET_VNNI void tile_vnni(const Job& job, const int64_t* r, int64_t r1, int64_t i) {
    TFX_QUANT_TILE_512(dot_vnni, true)
}
#undef TFX_QUANT_TILE_512
#undef TFX_GROUP_PAIR

// Every group of [r0, r1) against every x row, in tiles of kXTile x rows and then single ones;
// one x row takes kDecodeStreams groups at a time.
#define TFX_QUANT_ROWS_512(TILE)                                                                   \
    walk_groups<kDecodeStreams>(                                                                   \
        r0, r1, job.m, [&](const int64_t* rows) { TILE<F, 1, kDecodeStreams>(job, rows, r1, 0); }, \
        [&](int64_t r) {                                                                           \
            int64_t i = 0;                                                                         \
            for (; i + kXTile <= job.m; i += kXTile) TILE<F, kXTile, 1>(job, &r, r1, i);           \
            for (; i < job.m; ++i) TILE<F, 1, 1>(job, &r, r1, i);                                  \
        });

template <QuantFormat F>
TFX_TARGET_AVX512 void rows_avx512(const Job& job, int64_t r0, int64_t r1) {
    TFX_QUANT_ROWS_512(tile_avx512)
}
template <QuantFormat F>
TFX_TARGET_VNNI void rows_vnni(const Job& job, int64_t r0, int64_t r1) {
    TFX_QUANT_ROWS_512(tile_vnni)
}
#undef TFX_QUANT_ROWS_512

template <QuantFormat F>
RowsFn rows_for(QuantKernel kernel) {
    switch (kernel) {
        case QuantKernel::avx512_vnni:
            return &rows_vnni<F>;
        case QuantKernel::avx512:
            return &rows_avx512<F>;
        case QuantKernel::avx2:
            return &rows_avx2<F>;
        case QuantKernel::portable:
            break;
    }
    return &rows_portable<F>;
}

RowsFn rows_of(QuantKernel kernel, QuantFormat format) {
    switch (format) {
        case QuantFormat::q8_0:
            return rows_for<QuantFormat::q8_0>(kernel);
        case QuantFormat::q4_1:
            return rows_for<QuantFormat::q4_1>(kernel);
        case QuantFormat::q4_0:
            break;
    }
    return rows_for<QuantFormat::q4_0>(kernel);
}

// Bytes a ggml block of the format takes, and where its quants start (after d, and m for q4_1).
int64_t ggml_block_bytes(QuantFormat format) {
    return format == QuantFormat::q8_0 ? 2 + kQuantBlock : format == QuantFormat::q4_1 ? 4 + 16 : 2 + 16;
}
int64_t ggml_quants_at(QuantFormat format) {
    return format == QuantFormat::q4_1 ? 4 : 2;
}

// Below this many weights a call runs on one thread (as the float matvec: waking the other
// threads costs more than it saves).
constexpr int64_t kParallelMinWeights = int64_t{1} << 16;

}  // namespace

int64_t ggml_row_bytes(QuantFormat format, int64_t k) {
    if (k <= 0 || k % kQuantBlock != 0) return 0;
    return k / kQuantBlock * ggml_block_bytes(format);
}

void dequantize_packed_row(const QuantizedWeight& w, int64_t row, float* out) {
    const int64_t pairs = quant_pairs(w.k), pair_bytes = quant_pair_bytes(w.format);
    // Row r's pair p is the (r % 4)-th of its group's pair p.
    const int64_t group = row / kQuantRowGroup, t = row % kQuantRowGroup;
    for (int64_t p = 0; p < pairs; ++p) {
        const int64_t at = (group * pairs + p) * kQuantRowGroup + t;
        const uint8_t* q = w.quants + at * pair_bytes;
        for (int pos = 0; pos < kQuantPair; ++pos) {
            const int64_t value = p * kQuantPair + perm(pos);
            if (value >= w.k) continue;
            int32_t v;
            if (w.format == QuantFormat::q8_0) {
                v = q[pos] - kQ8Bias;
            } else {
                v = (pos < 32 ? q[pos % 32] & 0x0F : q[pos % 32] >> 4) - (w.format == QuantFormat::q4_0 ? 8 : 0);
            }
            const int blk = perm(pos) / 32;
            out[value] = sdk::f16_to_f32(w.scales[at * 2 + blk]) * static_cast<float>(v) +
                         (w.format == QuantFormat::q4_1 ? sdk::f16_to_f32(w.mins[at * 2 + blk]) : 0.0f);
        }
    }
}

void repack_ggml_rows(QuantFormat format, const uint8_t* src, int64_t rows, int64_t k, uint8_t* quants,
                      uint16_t* scales, uint16_t* mins) {
    const int64_t blocks = k / kQuantBlock, pairs = quant_pairs(k), pair_bytes = quant_pair_bytes(format);
    const int64_t block_bytes = ggml_block_bytes(format), at = ggml_quants_at(format);
    parallel_for(quant_padded_rows(rows), rows * k >= kParallelMinWeights, [&](int64_t r) {
        const int64_t group = r / kQuantRowGroup, t = r % kQuantRowGroup;
        // Pair p of row r: its quants and its two scales (and minimums) within the group.
        auto q = [&](int64_t p) { return quants + ((group * pairs + p) * kQuantRowGroup + t) * pair_bytes; };
        auto s = [&](int64_t p) { return ((group * pairs + p) * kQuantRowGroup + t) * 2; };
        for (int64_t p = 0; p < pairs; ++p) {
            // Padding: scale (and min) 0, and the stored value that means 0 (q4_0: 8, q8_0: 128).
            const int zero = format == QuantFormat::q4_0 ? 0x88 : format == QuantFormat::q8_0 ? kQ8Bias : 0;
            std::memset(q(p), zero, static_cast<size_t>(pair_bytes));
            scales[s(p)] = scales[s(p) + 1] = 0;
            if (format == QuantFormat::q4_1) mins[s(p)] = mins[s(p) + 1] = 0;
        }
        if (r >= rows) return;
        for (int64_t b = 0; b < blocks; ++b) {
            const uint8_t* block = src + (r * blocks + b) * block_bytes;
            const int64_t p = b / 2;
            const int blk = static_cast<int>(b % 2);
            std::memcpy(&scales[s(p) + blk], block, 2);
            if (format == QuantFormat::q4_1) std::memcpy(&mins[s(p) + blk], block + 2, 2);
            uint8_t* pair = q(p);
            for (int e = 0; e < kQuantBlock; ++e) {
                const Slot slot = slot_of(blk, e);
                if (format == QuantFormat::q8_0) {
                    pair[slot.half * 32 + slot.byte] = static_cast<uint8_t>(block[2 + e] ^ 0x80);  // + kQ8Bias
                } else {
                    const uint8_t value = e < 16 ? block[at + e] & 0x0F : block[at + e - 16] >> 4;
                    uint8_t& byte = pair[slot.byte];
                    byte = slot.half == 0 ? static_cast<uint8_t>((byte & 0xF0) | value)
                                          : static_cast<uint8_t>((byte & 0x0F) | (value << 4));
                }
            }
        }
    });
}

std::vector<QuantKernel> quant_kernels() {
    // The CPU's features do not change: read once (quant_matmul asks on every call).
    static const std::vector<QuantKernel> kernels = [] {
        std::vector<QuantKernel> out{QuantKernel::portable};
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) out.push_back(QuantKernel::avx2);
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
            out.push_back(QuantKernel::avx512);
            if (__builtin_cpu_supports("avx512vnni")) out.push_back(QuantKernel::avx512_vnni);
        }
        return out;
    }();
    return kernels;
}

QuantKernel quant_kernel_in_use() {
    // The float kernels' dispatch target caps these too, so TFX_CPU_ISA=avx2 runs AVX2 code
    // everywhere (Highway's AVX3 targets all include AVX-512 F/BW/VL/DQ).
    const std::string target = isa_in_use();
    static const QuantKernel best = quant_kernels().back();
    QuantKernel cap = QuantKernel::portable;
    if (target.rfind("avx3", 0) == 0) {
        cap = QuantKernel::avx512_vnni;
    } else if (target == "avx2") {
        cap = QuantKernel::avx2;
    }
    return std::min(best, cap);
}

std::string quant_kernel_name(QuantKernel kernel) {
    switch (kernel) {
        case QuantKernel::avx512_vnni:
            return "avx512-vnni";
        case QuantKernel::avx512:
            return "avx512";
        case QuantKernel::avx2:
            return "avx2";
        case QuantKernel::portable:
            break;
    }
    return "portable";
}

void quant_matmul_with(QuantKernel kernel, const float* x, const QuantizedWeight& w, const float* bias, float* y,
                       int64_t m) {
    QuantizedRows xq;
    quantize_rows(kernel, x, m, w.k, xq);
    if (runs_lanes(kernel, m)) {
        XLanes lanes;
        to_lanes(kernel, xq, m, lanes);
        return quant_gemm_lanes(lanes, w, bias, y, 0, w.n);
    }
    rows_of(kernel, w.format)(Job{&xq, &w, bias, y, m}, 0, w.n);
}

void quant_matmul(const float* x, const QuantizedWeight& w, const float* bias, float* y, int64_t m) {
    quant_matmul_many(x, &w, &bias, &y, 1, m);
}

void quant_matmul_many(const float* x, const QuantizedWeight* ws, const float* const* biases, float* const* ys,
                       int count, int64_t m) {
    if (count <= 0) return;
    thread_local QuantizedRows scratch;  // grow-only: no allocation per decode step
    thread_local XLanes lanes_scratch;
    // Plain references: inside the parallel region the names would mean each thread's own
    // (empty) copies.
    QuantizedRows& xq = scratch;
    XLanes& lanes = lanes_scratch;
    const QuantKernel kernel = quant_kernel_in_use();
    quantize_rows(kernel, x, m, ws[0].k, xq);
    const bool along_lanes = runs_lanes(kernel, m);
    if (along_lanes) to_lanes(kernel, xq, m, lanes);
    // The weights' row groups numbered one after another: weight i has groups
    // [first_group[i], first_group[i + 1]); threads take whole groups.
    int64_t first_group[kQuantMatmulMany + 1] = {};
    int64_t weights = 0;
    for (int i = 0; i < count; ++i) {
        first_group[i + 1] = first_group[i] + quant_padded_rows(ws[i].n) / kQuantRowGroup;
        weights += ws[i].n * ws[i].k;
    }
    auto run_groups = [&](int64_t g0, int64_t g1) {
        for (int i = 0; i < count; ++i) {
            const int64_t a = std::max(g0, first_group[i]), b = std::min(g1, first_group[i + 1]);
            if (a >= b) continue;
            const int64_t begin = (a - first_group[i]) * kQuantRowGroup;
            const int64_t end = std::min(ws[i].n, (b - first_group[i]) * kQuantRowGroup);
            if (along_lanes) {
                quant_gemm_lanes(lanes, ws[i], biases[i], ys[i], begin, end);
            } else {
                rows_of(kernel, ws[i].format)(Job{&xq, &ws[i], biases[i], ys[i], m}, begin, end);
            }
        }
    };
    const int64_t groups = first_group[count];
    if (!use_threads(weights >= kParallelMinWeights)) return run_groups(0, groups);
#pragma omp parallel
    {
        const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
        run_groups(groups * t / threads, groups * (t + 1) / threads);
    }
}

}  // namespace tfx::cpu
